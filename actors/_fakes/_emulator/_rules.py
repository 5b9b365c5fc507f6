"""What the emulator answers: rules, faults, and loading them from a JSON file.

A rule says *which* requests it applies to (`match`, `provider`, `times`) and *what* to send
back (`reply` split into `chunks` text deltas, or a `fault`). The first rule that matches a
request wins; when none matches, the emulator echoes the prompt (`DEFAULT_REPLY`).

Faults:

======================  ==========================================================================
``status``              an HTTP error in the provider's JSON error shape (`status`, optional
                        `retry_after` seconds, sent as a ``retry-after`` header and in the message)
``slow``                the normal reply, with `chunk_delay_s` (default 1) seconds before every
                        text chunk
``stall``               send `stall_after_chunks` chunks, then nothing more: the connection stays
                        open, silent, until the client gives up or the emulator closes
``disconnect``          send `disconnect_after_chunks` chunks, then close the connection without
                        finishing the response (the client sees a truncated body)
``malformed``           a 200 response whose stream (or JSON body) is not valid JSON
``tool_call``           the model asks for the tool `tool_name` with `tool_input` (Anthropic
                        ``tool_use`` block, OpenAI ``function_call`` item, Gemini
                        ``functionCall`` part); a request whose latest turn carries a tool result
                        gets the rule's reply as text instead
======================  ==========================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from ..._validators import errors_in_one_line

Provider = Literal["anthropic", "openai", "gemini"]
FaultKind = Literal["status", "slow", "stall", "disconnect", "malformed", "tool_call"]
StructuredMode = Literal["tool", "prose"]

DEFAULT_REPLY = "echo: {prompt}"
DEFAULT_CHUNK_DELAY_S = 1.0

# Which optional Fault fields make sense for which kind (the rest must stay unset).
_FIELDS_OF_KIND: dict[FaultKind, frozenset[str]] = {
    "status": frozenset({"status", "retry_after", "message", "gemini_retry_info"}),
    "slow": frozenset({"chunk_delay_s"}),
    "stall": frozenset({"stall_after_chunks"}),
    "disconnect": frozenset({"disconnect_after_chunks"}),
    "malformed": frozenset(),
    "tool_call": frozenset({"tool_name", "tool_input"}),
}
_OPTIONAL_FIELDS = frozenset().union(*_FIELDS_OF_KIND.values())


class Fault(BaseModel):
    """One injected failure. Only the fields of its `kind` may be set (see the module table).

    For example ``Fault(kind="status", status=429, retry_after=20)`` or, in a rules file,
    ``{"kind": "stall", "stall_after_chunks": 2}``. A non-streamed reply has no chunks: a slow
    one waits ``chunk_delay_s`` per chunk before the body, a stalled or disconnected one sends
    half of its body first.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    status: int | None = Field(
        default=None, ge=400, le=599, description="HTTP status (kind=status)"
    )
    retry_after: float | None = Field(
        default=None, ge=0, description="seconds; retry-after header and message (kind=status)"
    )
    message: str | None = Field(default=None, description="error message (kind=status)")
    gemini_retry_info: bool | None = Field(
        default=None,
        description="gemini only: add google.rpc.RetryInfo with retry_after to the error details, "
        "as the real API does for quota errors (kind=status)",
    )
    chunk_delay_s: float | None = Field(
        default=None, ge=0, le=3600, description="seconds before each chunk (kind=slow; 1 s)"
    )
    stall_after_chunks: int | None = Field(
        default=None, ge=0, description="chunks sent before going silent (kind=stall)"
    )
    disconnect_after_chunks: int | None = Field(
        default=None, ge=0, description="chunks sent before closing (kind=disconnect)"
    )

    tool_name: str | None = Field(
        default=None, min_length=1, description="the tool the model asks for (kind=tool_call)"
    )
    tool_input: dict[str, JsonValue] | None = Field(
        default=None, description="the tool's input object (kind=tool_call; {} when unset)"
    )

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Self:
        allowed = _FIELDS_OF_KIND[self.kind]
        for name in sorted(_OPTIONAL_FIELDS - allowed):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} does not apply to kind {self.kind!r}")
        if self.kind == "status" and self.status is None:
            raise ValueError("kind 'status' needs a status, e.g. 429")
        if self.kind == "tool_call" and self.tool_name is None:
            raise ValueError("kind 'tool_call' needs a tool_name, e.g. 'Read'")
        return self

    @property
    def delay_s(self) -> float:
        """Seconds to wait before each chunk: `chunk_delay_s` (default 1) for "slow", else 0."""
        if self.kind != "slow":
            return 0.0
        return self.chunk_delay_s if self.chunk_delay_s is not None else DEFAULT_CHUNK_DELAY_S

    @property
    def tool_arguments(self) -> dict[str, JsonValue]:
        """The input of a tool call: `tool_input`, or ``{}`` when unset."""
        return dict(self.tool_input) if self.tool_input is not None else {}


class EmulatorRule(BaseModel):
    """Which requests to answer how. All conditions must hold; unset ones always do.

    `reply` may contain ``{prompt}``, replaced by the latest user message's text; None means
    `DEFAULT_REPLY` (echo). The reply is split into `chunks` text deltas of near-equal length
    (fewer if the text is shorter). With a ``status`` or ``malformed`` fault there is no reply.

    When the request offers a tool named ``StructuredOutput`` (claude with ``--json-schema``)
    and the rendered reply is a JSON object, the model calls that tool with the object as its
    input (`structured` ``"tool"``, the default); ``"prose"`` answers the text instead, so a
    test can see the CLI ask again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: str | None = Field(default=None, description="substring of the latest user message")
    provider: Provider | None = None
    reply: str | None = Field(default=None, description="answer text; {prompt} is substituted")
    times: int | None = Field(default=None, ge=1, description="expire after this many uses")
    fault: Fault | None = None
    chunks: int = Field(default=1, ge=1, le=10_000)
    structured: StructuredMode = Field(
        default="tool",
        description="with a StructuredOutput tool offered: call it with a JSON reply (tool), "
        "or answer prose",
    )

    def applies_to(self, provider: Provider, prompt: str) -> bool:
        """Whether `provider` and `prompt` satisfy `provider` and `match` (not `times`)."""
        if self.provider is not None and self.provider != provider:
            return False
        return self.match is None or self.match in prompt

    def reply_text(self, prompt: str) -> str:
        """The reply with ``{prompt}`` filled in (no other braces are interpreted)."""
        return (self.reply if self.reply is not None else DEFAULT_REPLY).replace("{prompt}", prompt)


ECHO_RULE = EmulatorRule()

_RULES_ADAPTER = TypeAdapter(list[EmulatorRule])


class RulesFileError(ValueError):
    """A rules file that cannot be read, parsed or validated; the message names the field."""


def parse_rules(data: object) -> list[EmulatorRule]:
    """Rules from decoded JSON: a list of rule objects, or ``{"rules": [...]}``.

    Raises `RulesFileError` naming the offending field, e.g.
    ``rules.0.fault.status: Input should be less than or equal to 599``.
    """
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    try:
        return _RULES_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise RulesFileError(errors_in_one_line(exc, "rules")) from None


def load_rules(path: str | os.PathLike[str]) -> list[EmulatorRule]:
    """Read and validate a JSON rules file (see `parse_rules` for its shape)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise RulesFileError(f"cannot read rules file {os.fspath(path)!r}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RulesFileError(f"{os.fspath(path)!r} is not valid JSON: {exc}") from None
    try:
        return parse_rules(data)
    except RulesFileError as exc:
        raise RulesFileError(f"{os.fspath(path)!r}: {exc}") from None


def split_chunks(text: str, chunks: int) -> list[str]:
    """`text` cut into at most `chunks` non-empty pieces of near-equal length.

    An empty text gives ``[""]``, so that there is always at least one delta to send.
    """
    if not text:
        return [""]
    count = min(chunks, len(text))
    size, extra = divmod(len(text), count)
    pieces = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def validate_rules(rules: Sequence[EmulatorRule]) -> tuple[EmulatorRule, ...]:
    """Rules as an immutable tuple, type-checked at the boundary."""
    for index, rule in enumerate(rules):
        if not isinstance(rule, EmulatorRule):
            raise TypeError(f"rules[{index}] is {type(rule).__name__}, not EmulatorRule")
    return tuple(rules)
