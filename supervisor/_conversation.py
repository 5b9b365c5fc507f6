"""`Conversation`: multi-turn use of a supervised CLI, carrying context the best way it can.

Three ways to carry context, chosen per CLI (``mode="auto"``):

1. **warm**: a long-lived CLI process fed one turn per stdin line, owned by a *permanent*
   supervised child that reads turns from an inbox channel the conversation owns. Turn 2
   onward costs no process start. If the process dies, the turn in flight fails as
   RETRYABLE and is retried after the supervisor restarts the process (with backoff, under
   its restart intensity), resuming the same session: a retried turn at worst, never lost
   history.
2. **resume**: a new process per turn that continues the stored session id.
3. **replay**: for CLIs without sessions, the trimmed history goes into every prompt.

A CLI may lose a session it never stored (claude writes it shortly after each turn, so a
crash right after a turn leaves nothing to resume). Then the conversation starts a new
session and replays its own kept history into the first turn: nothing is forgotten.

History (with timestamps and session ids) is kept in every mode, trimmed to
``max_history`` with the trimmed turns counted in the supervisor's statistics.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Literal

import trio

from actors import CliSpec, LLMError
from actors.lowlevel import ActorMessage, CallOutcome, Turn, run_warm_process

from ._engine import EVENT_BUFFER, Engine, OnEvent, TaskHandle, relay_until_done
from ._history import ConversationHistory, ConversationManager, Message, render_replay_prompt
from ._policy._fallback import next_cli
from ._policy._intensity import RestartType
from ._policy._session import TurnRecovery, recover_turn
from ._result import Result

logger = logging.getLogger("llmsup.conversation")

Mode = Literal["auto", "warm", "resume", "replay"]


class Conversation:
    """A multi-turn conversation with the supervisor's CLI. Create with `sup.conversation`.

    ``await conv.send(text)`` returns the next `Result`. Use ``async with`` (or
    `aclose`) to stop a warm process as soon as the conversation ends; otherwise it stops
    with the supervisor.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        system_prompt: str | None,
        max_turns: int | None,
        max_history: int,
        mode: Mode = "auto",
        manager: ConversationManager | None = None,
    ) -> None:
        self._engine = engine
        self.spec = engine.cli
        session = self.spec.session
        if mode == "auto":
            mode = "warm" if session and session.warm else "resume" if session else "replay"
        if mode in ("warm", "resume") and session is None:
            raise ValueError(f"{self.spec.name} has no session support; use mode='replay'")
        if mode == "warm" and (session is None or session.warm is None):
            raise ValueError(f"{self.spec.name} cannot keep a warm process; use mode='resume'")
        self.mode: Mode = mode
        self._manager = manager or ConversationManager(system_prompt, max_turns, max_history)
        # The system prompt goes natively on every turn when the CLI takes one; else it is
        # replayed into the text of each session's first turn.
        self._system = self._native_system(self._manager.system_prompt)
        self._replay_next = False  # a fallback answered: replay the history next turn
        self._inbox_send, self._inbox_receive = trio.open_memory_channel[Turn](0)
        self._warm: TaskHandle | None = None
        self._lock = trio.Lock()  # turns are ordered: one at a time

    def _native_system(self, system: str | None) -> str | None:
        """The system prompt to pass natively (None: none, or the CLI cannot take it)."""
        if not system or self.spec.with_system is None:
            return None
        if self.mode == "warm":
            session = self.spec.with_system(system).session
            if session is None or session.warm is None:
                return None  # a warm process of that spec could not carry it
        return system

    # ------------------------------------------------------------------- state

    @property
    def session_id(self) -> str | None:
        """The CLI's latest session id (ids may change on resume; the latest is kept)."""
        return self._manager.state.session_ids.get(self.spec.name)

    @property
    def turn_count(self) -> int:
        return self._manager.turn_count

    @property
    def history(self) -> list[Message]:
        return self._manager.history

    @property
    def trimmed_turns(self) -> int:
        return self._manager.trimmed_turns

    def export_history(self, path: str | os.PathLike[str]) -> Path:
        """Write the history, including the CLI's session id, as JSON."""
        return self._manager.export_history(path)

    # ------------------------------------------------------------------- turns

    async def send(self, text: str) -> Result:
        """Send one user turn; return the answer. Raises `LLMError`.

        Cancellation: the turn's process (one-shot modes) is stopped; a warm process is
        replaced, since its state mid-turn is unknown.
        """
        async with self._lock:
            self._manager.check_can_send()
            if self.mode == "replay":
                prompt = render_replay_prompt(self._replayed_state(), text)
                result = await self._engine.run_call(prompt, system=self._system)
            else:
                result = await self._send_in_session_or_fallback(text)
            trimmed_before = self._manager.trimmed_turns
            self._manager.record_turn(
                text, result.text, session_id=result.session_id, cli=result.cli
            )
            self._engine.note_trimmed(self._manager.trimmed_turns - trimmed_before)
            return result

    async def _send_in_session_or_fallback(self, text: str) -> Result:
        """A session turn; when the CLI refuses it (rate limit, auth, open breaker) and the
        supervisor has fallbacks, the turn goes to them with the history replayed, and the
        CLI's session, which misses that turn, is replaced by a new one next time."""
        try:
            return await self._send_with_recovery(text)
        except LLMError as error:
            if not next_cli(error, 0, len(self._engine.chain)):
                raise
        await self.aclose()
        self._manager.state.session_ids.pop(self.spec.name, None)
        self._replay_next = True
        prompt = render_replay_prompt(self._replayed_state(), text)
        return await self._engine.run_call(prompt, system=self._system, chain_from=1)

    async def _send_with_recovery(self, text: str) -> Result:
        prompt = self._first_turn_text(text)
        restarted = False
        while True:
            try:
                return await self._send_in_session(prompt)
            except LLMError as error:
                # The session as it stands after the failure (a warm turn may have set it).
                verdict = recover_turn(error, session_id=self.session_id, restarted=restarted)
                if verdict is TurnRecovery.FAIL:
                    raise
                lost = error
            prompt = await self._start_new_session(text, lost)
            restarted = True

    async def _send_in_session(self, prompt: str) -> Result:
        if self.mode == "resume":
            spec = self._resume_spec()
            return await self._engine.run_call(prompt, spec=spec, system=self._system)
        return await self._send_warm(prompt)

    async def _start_new_session(self, text: str, error: LLMError) -> str:
        """The CLI lost the session (it died before storing it): forget it, and return the
        new session's first prompt, with the kept history replayed so nothing is forgotten."""
        logger.warning(
            "%s no longer knows session %s (%s); replaying %d turns into a new session",
            self.spec.name,
            self.session_id,
            error.message,
            self._manager.turn_count,
            extra={"cli": self.spec.name},
        )
        await self.aclose()  # a warm process must not restart with the lost id
        del self._manager.state.session_ids[self.spec.name]
        self._engine.note_session_restart()
        return render_replay_prompt(self._replayed_state(), text)

    def _replayed_state(self) -> ConversationHistory:
        """The state a replayed prompt is rendered from: without the system prompt when it
        goes natively."""
        state = self._manager.state
        if self._system is not None:
            return state.model_copy(update={"system_prompt": None})
        return state

    def _first_turn_text(self, text: str) -> str:
        if self._replay_next and not self.session_id:
            # A fallback answered the last turn: the new session gets the whole history.
            self._replay_next = False
            return render_replay_prompt(self._replayed_state(), text)
        # Sessions remember a replayed system prompt after the first turn.
        system = self._manager.system_prompt
        if self._system is not None:
            return text  # passed natively on every turn
        if system and self._manager.turn_count == 0 and not self.session_id:
            return f"System: {system}\n\nUser: {text}"
        return text

    def _resume_spec(self) -> CliSpec:
        session = self.spec.session
        assert session is not None
        return session.resume(self.session_id) if self.session_id else self.spec

    async def _send_warm(self, prompt: str) -> Result:
        if self._warm is None:
            self._warm = await self._engine.start_child(
                self._run_warm, name=f"warm-{self.spec.name}", restart=RestartType.PERMANENT
            )

        async def hand_over(on_event: OnEvent) -> CallOutcome:
            reply_send, reply_receive = trio.open_memory_channel[ActorMessage](EVENT_BUFFER)
            await self._inbox_send.send(Turn(prompt, reply_send))
            return await relay_until_done(reply_receive, on_event, self.spec.name)

        return await self._engine.run_call(prompt, spec=self.spec, runner=hand_over)

    async def _run_warm(self) -> None:
        spec = self.spec
        if self._system is not None and spec.with_system is not None:
            spec = spec.with_system(self._system)
        session = spec.session
        assert session is not None and session.warm is not None
        launch = session.warm(self.session_id)
        await run_warm_process(
            spec,
            launch,
            self._inbox_receive,
            self._engine.timeouts,
            on_spawn=self._engine.note_spawn,
            on_session=self._note_session,
        )

    def _note_session(self, session_id: str) -> None:
        self._manager.state.session_ids[self.spec.name] = session_id

    # -------------------------------------------------------------- lifecycle

    async def aclose(self) -> None:
        """Stop the warm process (if any); the history stays available."""
        if self._warm is not None:
            await self._warm.cancel_and_wait()
            self._warm = None

    async def __aenter__(self) -> Conversation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
