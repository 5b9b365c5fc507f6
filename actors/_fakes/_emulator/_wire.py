"""What the three provider modules share: the parsed call, stream plans and SSE framing.

Each provider module (`_anthropic`, `_openai`, `_gemini`) turns its API's request into a
`Call`, and a reply text (or an `EmulatedToolCall`) into a `StreamPlan` (head events, one
event per text chunk, tail events) or a JSON body. `_app` executes faults on top of that plan,
the same way for all three.

Besides the messages, a `Call` keeps the tool names the request offers, its system text and
the conversation's tool traffic as `ToolStep`s (prompts, tool calls, tool results, in order),
so that the app can tell a fresh turn from a request that carries a tool's result.
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
ToolStepKind = Literal["prompt", "call", "result"]

# The tool claude offers with --json-schema; the model is to call it with the data as input.
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"
# How claude starts the user message it sends when the model answered prose instead.
STRUCTURED_ENFORCE_PREFIX = "[structured-output-enforce]"


class RecordedMessage(BaseModel):
    """One message of a request's conversation, reduced to its role and text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str
    text: str


@attrs.frozen
class ToolStep:
    """One step of a conversation's tool traffic: a user prompt, a tool call, a tool result.

    `text` is the prompt's text, the called tool's name, or the result's text content.
    """

    kind: ToolStepKind
    text: str


@attrs.frozen
class EmulatedToolCall:
    """A tool call the emulated model makes: the tool's name and its input object."""

    name: str
    arguments: Mapping[str, object]

    @property
    def arguments_json(self) -> str:
        """The input as compact JSON (the text streamed as argument deltas)."""
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


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
    tools: tuple[str, ...] = ()
    system: str = ""
    tool_events: tuple[ToolStep, ...] = ()

    @property
    def prompt(self) -> str:
        """The latest user prompt's text without CLI-injected context ("" if there is none).

        A user message that holds only context blocks (or claude's structured-output
        reminder) is skipped when an earlier one holds a real prompt: a tool result's turn is
        still answered for the prompt that started it.
        """
        for message in reversed(self.messages):
            if message.role == "user" and is_prompt_text(message.text):
                return without_context_blocks(message.text)
        for message in reversed(self.messages):
            if message.role == "user" and message.text.strip():
                return without_context_blocks(message.text)
        return ""

    @property
    def tool_results(self) -> tuple[str, ...]:
        """The text of every tool result the request carries, oldest first."""
        return tuple(event.text for event in self.tool_events if event.kind == "result")

    @property
    def answered_tool(self) -> str | None:
        """The tool whose result ends the conversation ("" if its call is not in it).

        None when the latest turn is a prompt (or there is no tool traffic): the model is to
        answer the prompt, not a tool's result.
        """
        last_call = ""
        pending: str | None = None
        for event in self.tool_events:
            if event.kind == "prompt":
                pending = None
            elif event.kind == "call":
                last_call = event.text
            else:
                pending = last_call
        return pending

    @property
    def offers_structured_output(self) -> bool:
        """Whether the request offers claude's ``StructuredOutput`` tool."""
        return STRUCTURED_OUTPUT_TOOL in self.tools


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

    def tool_stream_plan(
        self, call: Call, tool: EmulatedToolCall, pieces: Sequence[str]
    ) -> StreamPlan:
        """The SSE frames of a tool call; `pieces` is its input JSON, chunked."""
        ...

    def tool_message_body(self, call: Call, tool: EmulatedToolCall) -> object:
        """A non-streamed tool call as JSON."""
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


def is_prompt_text(text: str) -> bool:
    """Whether a user message's text is a prompt: more than context blocks, not a reminder."""
    remainder = _CONTEXT_BLOCK.sub("", text).strip()
    return bool(remainder) and not remainder.startswith(STRUCTURED_ENFORCE_PREFIX)


def prompt_event(text: str) -> tuple[ToolStep, ...]:
    """A ``prompt`` event for a user text that is a prompt (see `is_prompt_text`), else none."""
    return (ToolStep("prompt", text),) if is_prompt_text(text) else ()


def tool_names(tools: object) -> tuple[str, ...]:
    """The names of the tools in a request's ``tools`` array, in order, without repeats.

    Reads ``name`` (Anthropic, OpenAI), ``function.name`` (OpenAI chat style),
    ``functionDeclarations[].name`` (Gemini, also snake case), nested ``tools`` (OpenAI
    namespaces); a tool with none of these (e.g. OpenAI's ``{"type": "web_search"}``) is named
    by its ``type``.
    """
    names: list[str] = []
    for raw in tools if isinstance(tools, list) else ():
        tool = json_object(raw)
        declarations = tool.get("functionDeclarations", tool.get("function_declarations"))
        nested = tool.get("tools")
        function = json_object(tool.get("function"))
        if isinstance(declarations, list):
            names.extend(tool_names(declarations))
        elif isinstance(nested, list):
            names.extend(tool_names(nested))
        elif isinstance(tool.get("name"), str):
            names.append(str(tool["name"]))
        elif isinstance(function.get("name"), str):
            names.append(str(function["name"]))
        elif isinstance(tool.get("type"), str):
            names.append(str(tool["type"]))
    return tuple(dict.fromkeys(names))


def result_text(value: object) -> str:
    """A tool result's content as text: a string, text parts, or else its JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        text = text_of_parts(value)
        if text:
            return text
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


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
