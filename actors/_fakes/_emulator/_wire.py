"""What the three provider modules share: the parsed call, stream plans and SSE framing.

Each provider module (`_anthropic`, `_openai`, `_gemini`) turns its API's request into a
`Call`, and a reply text into a `StreamPlan` (head events, one event per text chunk, tail
events) or a JSON body. `_app` executes faults on top of that plan, the same way for all three.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import attrs
from pydantic import BaseModel, ConfigDict

from ._rules import Fault, Provider

Operation = Literal["generate", "static"]


class RecordedMessage(BaseModel):
    """One message of a request's conversation, reduced to its role and text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str
    text: str


@attrs.frozen
class Call:
    """A request the emulator understood: which provider, what it asks for, the conversation."""

    provider: Provider
    operation: Operation
    stream: bool
    model: str
    messages: tuple[RecordedMessage, ...]
    # For operation "static": the JSON to answer with (status 200).
    static_body: object = None

    @property
    def prompt(self) -> str:
        """The latest user message's text without CLI-injected context ("" if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user" and message.text.strip():
                return without_context_blocks(message.text)
        return ""


@attrs.frozen
class StreamPlan:
    """A successful streamed reply as SSE frames: `head`, one frame per chunk, `tail`."""

    head: tuple[bytes, ...]
    chunks: tuple[bytes, ...]
    tail: tuple[bytes, ...]


class ProviderWire(Protocol):
    """The interface of one provider's API (anthropic, openai or gemini)."""

    name: Provider

    def read_call(
        self, method: str, path: str, query: Mapping[str, str], body: object
    ) -> Call | None:
        """The call if this API serves ``method path``; None if the route is not its own."""
        ...

    def stream_plan(self, call: Call, pieces: Sequence[str]) -> StreamPlan:
        """The SSE frames that stream `pieces` (the reply, already chunked)."""
        ...

    def message_body(self, call: Call, text: str) -> object:
        """The non-streamed reply as JSON."""
        ...

    def error_body(self, status: int, message: str, fault: Fault) -> object:
        """The provider's JSON error shape for `status` with `message` (`fault` for extras)."""
        ...

    def default_error_message(self, status: int, retry_after: float | None) -> str:
        """What the real provider says for `status` (mentions `retry_after` when given)."""
        ...


# Context that the CLIs wrap in tags and send as (part of) a user message: claude's
# <system-reminder>, codex's <environment_context>, gemini's <session_context>, ...
_CONTEXT_BLOCK = re.compile(
    r"<(system-reminder|session_context|environment_context|user_instructions"
    r"|skills_instructions|permissions instructions)>.*?</\1>",
    re.DOTALL,
)


def without_context_blocks(text: str) -> str:
    """`text` without the CLIs' injected context blocks, stripped; all of it if nothing is left.

    >>> without_context_blocks("<system-reminder>today is...</system-reminder>\n\nsay hi")
    'say hi'
    """
    remainder = _CONTEXT_BLOCK.sub("", text).strip()
    return remainder or text


def sse_event(event: str | None, data: object) -> bytes:
    """One SSE frame: an optional ``event:`` line, one ``data:`` line, a blank line."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def new_id(prefix: str) -> str:
    """A random id in the provider's style, e.g. ``msg_0f3c...``."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def estimate_tokens(text: str) -> int:
    """A plausible token count: about four characters a token, at least one."""
    return max(1, (len(text) + 3) // 4)


def count_message_tokens(messages: Sequence[RecordedMessage]) -> int:
    """`estimate_tokens` over all message texts."""
    return estimate_tokens("".join(m.text for m in messages))


def retry_hint(retry_after: float | None) -> str:
    """`` Please try again in 20s.`` (empty when `retry_after` is None)."""
    if retry_after is None:
        return ""
    seconds = f"{retry_after:g}"
    return f" Please try again in {seconds}s."


def json_object(value: object) -> Mapping[str, object]:
    """`value` if it is a JSON object, else an empty mapping."""
    return value if isinstance(value, dict) else {}


def text_of_parts(parts: object, text_key: str = "text") -> str:
    """Concatenated text of a content value that is a string or a list of text parts."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return ""
    texts = [
        part[text_key]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get(text_key), str)
    ]
    return "\n".join(texts)
