"""Conversation state: history with timestamps, trimming that is counted, export and load.

`ConversationManager` is the reference document's class: it keeps the turns, builds the
prompt for CLIs without sessions (history replay) and calls any ``call_func``. The
supervisor's conversations (``sup.conversation()``) use the same `ConversationHistory`
model, so an exported file can be loaded by either and continued.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actors import ErrorCategory, LLMError
from actors.lowlevel import errors_in_one_line

from ._result import Result

Role = Literal["system", "user", "assistant"]
HISTORY_FORMAT = 1


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Message(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str
    timestamp: dt.datetime = Field(default_factory=_now)
    session_id: str | None = None


class ConversationHistory(BaseModel):
    """What `export_history` writes: enough to continue the conversation later.

    ``session_ids`` maps a CLI name to the last session id it reported (ids can change on
    resume, so the latest one is kept).
    """

    model_config = ConfigDict(extra="forbid")

    format: int = HISTORY_FORMAT
    system_prompt: str | None = None
    max_turns: int | None = None
    max_history: int = 20
    turn_count: int = 0
    trimmed_turns: int = 0
    messages: list[Message] = Field(default_factory=list)
    session_ids: dict[str, str] = Field(default_factory=dict)


def _check_limits(max_turns: int | None, max_history: int) -> None:
    if max_turns is not None and max_turns < 1:
        raise ValueError(f"max_turns must be >= 1 or None, got {max_turns!r}")
    if max_history < 2:
        raise ValueError(f"max_history must be >= 2 (one exchange), got {max_history!r}")


def render_replay_prompt(history: ConversationHistory, prompt: str) -> str:
    """The prompt for a CLI without sessions: system prompt, kept turns, then the new one."""
    parts: list[str] = []
    if history.system_prompt:
        parts.append(f"System: {history.system_prompt}")
    if history.messages:
        parts.append("Conversation so far:")
        for message in history.messages:
            speaker = "User" if message.role == "user" else "Assistant"
            parts.append(f"{speaker}: {message.content}")
        parts.append("Reply to the user's next message.")
    parts.append(f"User: {prompt}" if history.messages or history.system_prompt else prompt)
    return "\n\n".join(parts)


class ConversationManager:
    """Multi-turn state for any call function, as in the reference document.

    ``await manager.send_message(prompt, call_func)`` sends the system prompt, the kept
    history and the new prompt to ``call_func`` (which returns the answer text or a
    `Result`), records both messages with timestamps and returns the answer text.

    History is trimmed to the latest ``max_history`` messages, oldest exchange first; the
    system prompt is always kept. Trimming is never silent: `trimmed_turns` counts it.
    Past ``max_turns`` turns, `send_message` raises a PERMANENT `LLMError`.
    """

    def __init__(
        self,
        system_prompt: str | None = None,
        max_turns: int | None = None,
        max_history: int = 20,
    ) -> None:
        _check_limits(max_turns, max_history)
        self.state = ConversationHistory(
            system_prompt=system_prompt, max_turns=max_turns, max_history=max_history
        )

    # -------------------------------------------------------------------- queries

    @property
    def system_prompt(self) -> str | None:
        return self.state.system_prompt

    @property
    def history(self) -> list[Message]:
        """The kept messages, oldest first (a copy)."""
        return list(self.state.messages)

    @property
    def turn_count(self) -> int:
        return self.state.turn_count

    @property
    def trimmed_turns(self) -> int:
        return self.state.trimmed_turns

    # -------------------------------------------------------------------- turns

    def check_can_send(self) -> None:
        """Raise the PERMANENT error that `max_turns` was reached, if it was."""
        limit = self.state.max_turns
        if limit is not None and self.state.turn_count >= limit:
            raise LLMError(
                f"the conversation reached max_turns={limit}; start a new one",
                ErrorCategory.PERMANENT,
            )

    async def send_message(
        self, prompt: str, call_func: Callable[[str], Awaitable[str | Result]]
    ) -> str:
        """One turn by history replay: returns the answer text."""
        self.check_can_send()
        answer = await call_func(render_replay_prompt(self.state, prompt))
        if isinstance(answer, Result):
            self.record_turn(prompt, answer.text, session_id=answer.session_id, cli=answer.cli)
            return answer.text
        self.record_turn(prompt, answer)
        return answer

    def record_turn(
        self,
        prompt: str,
        answer: str,
        *,
        session_id: str | None = None,
        cli: str | None = None,
    ) -> None:
        """Add one exchange, then trim to ``max_history``."""
        state = self.state
        state.messages.append(Message(role="user", content=prompt))
        state.messages.append(Message(role="assistant", content=answer, session_id=session_id))
        state.turn_count += 1
        if session_id and cli:
            state.session_ids[cli] = session_id
        excess = len(state.messages) - state.max_history
        if excess > 0:
            # Drop whole exchanges from the front, so no answer loses its question.
            drop = excess + (excess % 2)
            del state.messages[:drop]
            state.trimmed_turns += drop // 2

    # ------------------------------------------------------------ export and load

    def export_history(self, path: str | os.PathLike[str]) -> Path:
        """Write the conversation as JSON (atomically: a crash never leaves half a file)."""
        target = Path(path)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(self.state.model_dump_json(indent=2), encoding="utf-8")
        os.replace(temporary, target)
        return target

    @classmethod
    def load_history(cls, path: str | os.PathLike[str]) -> ConversationManager:
        """A manager continuing a conversation written by `export_history`."""
        state = load_history_file(path)
        manager = cls(state.system_prompt, state.max_turns, state.max_history)
        manager.state = state
        return manager


def load_history_file(path: str | os.PathLike[str]) -> ConversationHistory:
    """Read and validate an exported history; errors name the file and the problem."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read conversation history {str(path)!r}: {exc}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"conversation history {str(path)!r} is not JSON: {exc}") from exc
    try:
        state = ConversationHistory.model_validate(data)
    except ValidationError as exc:
        problems = errors_in_one_line(exc, "history")
        raise ValueError(f"conversation history {str(path)!r} is invalid: {problems}") from exc
    if state.format != HISTORY_FORMAT:
        raise ValueError(
            f"conversation history {str(path)!r} has format {state.format}, "
            f"this version reads format {HISTORY_FORMAT}"
        )
    _check_limits(state.max_turns, state.max_history)
    return state
