"""Anthropic Messages API, as much as Claude Code needs.

Routes (matched on the path *suffix*, so a base URL with a path prefix works, and any query
such as ``?beta=true`` is accepted):

- ``POST .../v1/messages``: a streamed reply (``"stream": true``: ``message_start``,
  ``content_block_start``, ``content_block_delta`` × chunks, ``content_block_stop``,
  ``message_delta`` with ``stop_reason`` and ``usage``, ``message_stop``) or one JSON message.
- ``POST .../v1/messages/count_tokens``: ``{"input_tokens": N}``.

A tool call is a ``tool_use`` content block (``content_block_start`` with ``{"type":
"tool_use", "id", "name", "input": {}}``, one ``input_json_delta`` per chunk of the input's
JSON, ``stop_reason: "tool_use"``); its result comes back as a user ``tool_result`` block.

Errors use Anthropic's shape ``{"type":"error","error":{"type":...,"message":...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._rules import Fault, Provider
from ._wire import (
    Call,
    EmulatedToolCall,
    RecordedMessage,
    StreamPlan,
    ToolStep,
    count_message_tokens,
    estimate_tokens,
    json_object,
    new_id,
    prompt_event,
    result_text,
    retry_hint,
    sse_event,
    text_of_parts,
    tool_names,
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error",
    529: "Overloaded",
}


def _messages(body: Mapping[str, object]) -> tuple[RecordedMessage, ...]:
    found = []
    system = text_of_parts(body.get("system"))
    if system:
        found.append(RecordedMessage(role="system", text=system))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        item = json_object(message)
        role = item.get("role")
        if isinstance(role, str):
            found.append(RecordedMessage(role=role, text=text_of_parts(item.get("content"))))
    return tuple(found)


def _tool_events(body: Mapping[str, object]) -> tuple[ToolStep, ...]:
    """Prompts, ``tool_use`` blocks and ``tool_result`` blocks of the conversation, in order."""
    events: list[ToolStep] = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        item = json_object(message)
        content = item.get("content")
        if item.get("role") == "user" and isinstance(content, str):
            events.extend(prompt_event(content))
            continue
        texts = []
        for block in map(json_object, content if isinstance(content, list) else ()):
            kind = block.get("type")
            if kind == "tool_use" and isinstance(block.get("name"), str):
                events.append(ToolStep("call", str(block["name"])))
            elif kind == "tool_result":
                events.append(ToolStep("result", result_text(block.get("content"))))
            elif kind == "text" and isinstance(block.get("text"), str):
                texts.append(str(block["text"]))
        if item.get("role") == "user":
            events.extend(prompt_event("\n".join(texts)))
    return tuple(events)


class AnthropicWire:
    """The Anthropic Messages API (see the module docstring)."""

    name: Provider = "anthropic"

    def read_call(
        self, method: str, path: str, query: Mapping[str, str], body: object
    ) -> Call | None:
        if method != "POST":
            return None
        fields = json_object(body)
        model = fields.get("model")
        model = model if isinstance(model, str) else "claude-emulated"
        messages = _messages(fields)
        if path.endswith("/v1/messages"):
            return Call(
                provider=self.name,
                operation="generate",
                stream=fields.get("stream") is True,
                model=model,
                messages=messages,
                tools=tool_names(fields.get("tools")),
                system=text_of_parts(fields.get("system")),
                tool_events=_tool_events(fields),
            )
        if path.endswith("/v1/messages/count_tokens"):
            return Call(
                provider=self.name,
                operation="static",
                stream=False,
                model=model,
                messages=messages,
                static_body={"input_tokens": count_message_tokens(messages)},
            )
        return None

    def _message(self, call: Call, message_id: str) -> dict[str, object]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": count_message_tokens(call.messages), "output_tokens": 1},
        }

    def stream_plan(self, call: Call, pieces: Sequence[str]) -> StreamPlan:
        message_id = new_id("msg_emu_")
        output_tokens = estimate_tokens("".join(pieces))
        return StreamPlan(
            head=(
                sse_event(
                    "message_start",
                    {"type": "message_start", "message": self._message(call, message_id)},
                ),
                sse_event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
            ),
            chunks=tuple(
                sse_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
                for piece in pieces
            ),
            tail=(
                sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                sse_event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": output_tokens},
                    },
                ),
                sse_event("message_stop", {"type": "message_stop"}),
            ),
        )

    def message_body(self, call: Call, text: str) -> object:
        message = self._message(call, new_id("msg_emu_"))
        message["content"] = [{"type": "text", "text": text}]
        message["stop_reason"] = "end_turn"
        message["usage"] = {
            "input_tokens": count_message_tokens(call.messages),
            "output_tokens": estimate_tokens(text),
        }
        return message

    def tool_stream_plan(
        self, call: Call, tool: EmulatedToolCall, pieces: Sequence[str]
    ) -> StreamPlan:
        message_id = new_id("msg_emu_")
        block = {"type": "tool_use", "id": new_id("toolu_emu_"), "name": tool.name, "input": {}}
        return StreamPlan(
            head=(
                sse_event(
                    "message_start",
                    {"type": "message_start", "message": self._message(call, message_id)},
                ),
                sse_event(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": block},
                ),
            ),
            chunks=tuple(
                sse_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
                for piece in pieces
            ),
            tail=(
                sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                sse_event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                        "usage": {"output_tokens": estimate_tokens(tool.arguments_json)},
                    },
                ),
                sse_event("message_stop", {"type": "message_stop"}),
            ),
        )

    def tool_message_body(self, call: Call, tool: EmulatedToolCall) -> object:
        message = self._message(call, new_id("msg_emu_"))
        block = {
            "type": "tool_use",
            "id": new_id("toolu_emu_"),
            "name": tool.name,
            "input": dict(tool.arguments),
        }
        message["content"] = [block]
        message["stop_reason"] = "tool_use"
        message["usage"] = {
            "input_tokens": count_message_tokens(call.messages),
            "output_tokens": estimate_tokens(tool.arguments_json),
        }
        return message

    def error_body(self, status: int, message: str, fault: Fault) -> object:
        error_type = _ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": new_id("req_emu_"),
        }

    def default_error_message(self, status: int, retry_after: float | None) -> str:
        base = _DEFAULT_MESSAGES.get(status, f"Emulated error {status}.")
        return base + retry_hint(retry_after)


ANTHROPIC = AnthropicWire()
