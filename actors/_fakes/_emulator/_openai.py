"""OpenAI Responses API, as much as the Codex CLI needs.

Routes (matched on the path suffix):

- ``POST .../v1/responses``: a streamed reply (``"stream": true``: ``response.created``,
  ``response.output_item.added``, ``response.content_part.added``,
  ``response.output_text.delta`` × chunks, ``response.output_text.done``,
  ``response.content_part.done``, ``response.output_item.done``, ``response.completed`` with
  ``usage``) or one JSON response object.
- ``GET .../v1/models``: a one-model list (the requested model is unknown, so ``gpt-emulated``).

A tool call is an output item ``{"type": "function_call", "id", "call_id", "name",
"arguments"}`` (``arguments`` a JSON string; streamed as ``response.output_item.added``,
``response.function_call_arguments.delta`` × chunks, ``response.function_call_arguments.done``,
``response.output_item.done``, ``response.completed``); its result comes back as a
``function_call_output`` input item (``custom_tool_call_output`` for custom tools).

Errors use OpenAI's shape ``{"error":{"message":...,"type":...,"param":null,"code":...}}``.
"""

from __future__ import annotations

import time
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
    tool_names,
)

_CALL_ITEMS = frozenset({"function_call", "custom_tool_call"})
_RESULT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})

# status -> (error.type, error.code, default message)
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    529: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def _messages(body: Mapping[str, object]) -> tuple[RecordedMessage, ...]:
    found = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        found.append(RecordedMessage(role="system", text=instructions))
    items = body.get("input")
    if isinstance(items, str):
        return (*found, RecordedMessage(role="user", text=items))
    for raw in items if isinstance(items, list) else ():
        item = json_object(raw)
        role = item.get("role")
        if item.get("type", "message") != "message" or not isinstance(role, str):
            continue
        content = item.get("content")
        if isinstance(content, str):
            text = content
        else:
            parts = content if isinstance(content, list) else []
            text = "\n".join(
                str(part["text"])
                for part in map(json_object, parts)
                if part.get("type") in ("input_text", "output_text", "text")
                and isinstance(part.get("text"), str)
            )
        found.append(RecordedMessage(role=role, text=text))
    return tuple(found)


def _tool_events(
    body: Mapping[str, object], messages: Sequence[RecordedMessage]
) -> tuple[ToolStep, ...]:
    """Prompts, ``function_call`` items and their outputs, in input order."""
    items = body.get("input")
    if isinstance(items, str):
        return prompt_event(items)
    events: list[ToolStep] = []
    user_texts = iter(m.text for m in messages if m.role == "user")
    for raw in items if isinstance(items, list) else ():
        item = json_object(raw)
        kind = item.get("type", "message")
        if kind in _CALL_ITEMS and isinstance(item.get("name"), str):
            events.append(ToolStep("call", str(item["name"])))
        elif kind in _RESULT_ITEMS:
            events.append(ToolStep("result", result_text(item.get("output"))))
        elif kind == "message" and item.get("role") == "user":
            events.extend(prompt_event(next(user_texts, "")))
    return tuple(events)


class OpenAIWire:
    """The OpenAI Responses API (see the module docstring)."""

    name: Provider = "openai"

    def read_call(
        self, method: str, path: str, query: Mapping[str, str], body: object
    ) -> Call | None:
        fields = json_object(body)
        model = fields.get("model")
        model = model if isinstance(model, str) else "gpt-emulated"
        if method == "POST" and path.endswith("/v1/responses"):
            messages = _messages(fields)
            instructions = fields.get("instructions")
            return Call(
                provider=self.name,
                operation="generate",
                stream=fields.get("stream") is True,
                model=model,
                messages=messages,
                tools=tool_names(fields.get("tools")),
                # codex 0.169 sends its instructions as `developer` messages, not `instructions`.
                system=instructions
                if isinstance(instructions, str) and instructions
                else "\n\n".join(m.text for m in messages if m.role in ("developer", "system")),
                tool_events=_tool_events(fields, messages),
            )
        if method == "GET" and path.endswith("/v1/models"):
            listing = {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "emulator"}],
            }
            return Call(
                provider=self.name,
                operation="static",
                stream=False,
                model=model,
                messages=(),
                static_body=listing,
            )
        return None

    def _response(
        self, call: Call, response_id: str, status: str, output: list[object], text: str
    ) -> dict[str, object]:
        usage: object = None
        if status == "completed":
            input_tokens = count_message_tokens(call.messages)
            output_tokens = estimate_tokens(text)
            usage = {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            }
        return {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": call.model,
            "output": output,
            "usage": usage,
        }

    def _item(self, item_id: str, text: str | None) -> dict[str, object]:
        if text is None:
            return {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        return {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    def stream_plan(self, call: Call, pieces: Sequence[str]) -> StreamPlan:
        response_id = new_id("resp_emu_")
        item_id = new_id("msg_emu_")
        text = "".join(pieces)
        sequence = iter(range(1_000_000))

        def frame(kind: str, **fields: object) -> bytes:
            return sse_event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        head = (
            frame(
                "response.created",
                response=self._response(call, response_id, "in_progress", [], ""),
            ),
            frame("response.output_item.added", output_index=0, item=self._item(item_id, None)),
            frame(
                "response.content_part.added",
                **where,
                part={"type": "output_text", "text": "", "annotations": []},
            ),
        )
        chunks = tuple(frame("response.output_text.delta", **where, delta=p) for p in pieces)
        done_item = self._item(item_id, text)
        tail = (
            frame("response.output_text.done", **where, text=text),
            frame(
                "response.content_part.done",
                **where,
                part={"type": "output_text", "text": text, "annotations": []},
            ),
            frame("response.output_item.done", output_index=0, item=done_item),
            frame(
                "response.completed",
                response=self._response(call, response_id, "completed", [done_item], text),
            ),
        )
        return StreamPlan(head=head, chunks=chunks, tail=tail)

    def message_body(self, call: Call, text: str) -> object:
        item = self._item(new_id("msg_emu_"), text)
        return self._response(call, new_id("resp_emu_"), "completed", [item], text)

    def _function_call(
        self, item_id: str, call_id: str, tool: EmulatedToolCall, *, done: bool
    ) -> dict[str, object]:
        return {
            "id": item_id,
            "type": "function_call",
            "status": "completed" if done else "in_progress",
            "call_id": call_id,
            "name": tool.name,
            "arguments": tool.arguments_json if done else "",
        }

    def tool_stream_plan(
        self, call: Call, tool: EmulatedToolCall, pieces: Sequence[str]
    ) -> StreamPlan:
        response_id = new_id("resp_emu_")
        item_id = new_id("fc_emu_")
        call_id = new_id("call_emu_")
        sequence = iter(range(1_000_000))

        def frame(kind: str, **fields: object) -> bytes:
            return sse_event(kind, {"type": kind, "sequence_number": next(sequence), **fields})

        where = {"item_id": item_id, "output_index": 0}
        added = self._function_call(item_id, call_id, tool, done=False)
        done_item = self._function_call(item_id, call_id, tool, done=True)
        head = (
            frame(
                "response.created",
                response=self._response(call, response_id, "in_progress", [], ""),
            ),
            frame("response.output_item.added", output_index=0, item=added),
        )
        chunks = tuple(
            frame("response.function_call_arguments.delta", **where, delta=p) for p in pieces
        )
        tail = (
            frame("response.function_call_arguments.done", **where, arguments=tool.arguments_json),
            frame("response.output_item.done", output_index=0, item=done_item),
            frame(
                "response.completed",
                response=self._response(
                    call, response_id, "completed", [done_item], tool.arguments_json
                ),
            ),
        )
        return StreamPlan(head=head, chunks=chunks, tail=tail)

    def tool_message_body(self, call: Call, tool: EmulatedToolCall) -> object:
        item = self._function_call(new_id("fc_emu_"), new_id("call_emu_"), tool, done=True)
        return self._response(call, new_id("resp_emu_"), "completed", [item], tool.arguments_json)

    def error_body(self, status: int, message: str, fault: Fault) -> object:
        error_type, code, _ = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "")
        )
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}

    def default_error_message(self, status: int, retry_after: float | None) -> str:
        _, _, message = _ERRORS.get(status, ("", None, f"Emulated error {status}."))
        return message + retry_hint(retry_after)


OPENAI = OpenAIWire()
