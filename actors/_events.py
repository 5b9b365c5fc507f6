"""The common typed event model every CLI adapter produces.

These are pydantic models because they cross the process boundary: they are parsed from CLI
output and handed to callers. The same JSON shape is the "native dialect" spoken by the fake
CLI and accepted by ``command(..., output_format="jsonl")``, so any program that prints these
objects one per line is a first-class CLI.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Usage(BaseModel):
    """Token usage, when the CLI reports it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    # The CLI's original JSON object, kept as evidence; excluded from the native dialect.
    raw: dict[str, Any] | None = Field(default=None, exclude=True, repr=False)


class SessionStarted(_Event):
    type: Literal["session_started"] = "session_started"
    session_id: str
    model: str | None = None


class TextDelta(_Event):
    """A chunk of the answer text, as it streams. Deltas concatenate to the final text."""

    type: Literal["text_delta"] = "text_delta"
    text: str


class AssistantMessage(_Event):
    """A complete assistant message (CLIs that do not stream tokens send only these)."""

    type: Literal["assistant_message"] = "assistant_message"
    text: str


class ToolUse(_Event):
    type: Literal["tool_use"] = "tool_use"
    id: str = ""
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResult(_Event):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str = ""
    content: str = ""
    is_error: bool = False


class UsageReport(_Event):
    type: Literal["usage"] = "usage"
    usage: Usage


class FinalResult(_Event):
    """The CLI's last word on a call: the full text plus whatever accounting it gives."""

    type: Literal["result"] = "result"
    text: str
    session_id: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    is_error: bool = False


class ErrorReport(_Event):
    """An error the CLI reported in-band. ``category`` uses `ErrorCategory` values.

    ``terminal`` means waiting for the CLI is pointless: the error will not heal, or the
    CLI is about to retry on its own (the supervisor owns retries). The actor then stops
    the process at once and classifies what it has.
    """

    type: Literal["error"] = "error"
    message: str
    category: str | None = None
    status: int | None = None
    retry_after: float | None = None
    terminal: bool = False


class RawEvent(_Event):
    """An event type the adapter does not know. Kept, never fatal: CLIs add types."""

    type: Literal["raw"] = "raw"
    line: str = ""


Event = Annotated[
    SessionStarted
    | TextDelta
    | AssistantMessage
    | ToolUse
    | ToolResult
    | UsageReport
    | FinalResult
    | ErrorReport
    | RawEvent,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def dump_event(event: Event) -> str:
    """One line of the native dialect (what the fake CLI prints)."""
    return event.model_dump_json(exclude_none=True)
