"""Google Gemini API (``generativelanguage``), as much as the Gemini CLI needs.

Routes (matched on the path suffix ``/models/MODEL:METHOD``, any API version prefix):

- ``POST .../v1beta/models/MODEL:streamGenerateContent?alt=sse``: SSE ``data: {...}`` frames,
  one per text chunk, each ``{"candidates":[{"content":{"parts":[{"text":...}],"role":"model"},
  "index":0}],"usageMetadata":{...},"modelVersion":MODEL,"responseId":...}``, then a last frame
  with ``"finishReason":"STOP"``.
- ``POST .../models/MODEL:generateContent``: the same as one JSON object.
- ``POST .../models/MODEL:countTokens``: ``{"totalTokens": N}``.

A tool call is a part ``{"functionCall": {"name", "args"}}`` (one frame, ``finishReason:
"STOP"``); its result comes back as a ``{"functionResponse": {"name", "response"}}`` part.

Errors use Google's shape ``{"error":{"code":429,"message":"... Please try again in 20s.",
"status":"RESOURCE_EXHAUSTED"}}``. With ``Fault.gemini_retry_info`` (and a `retry_after`) the
error also carries ``"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",
"retryDelay":"20s"}]``, as the real API does for quota errors; the Gemini CLI then waits that
long between its retries and words its stderr differently (see the package docstring).
"""

from __future__ import annotations

import re
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

_ROUTE = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")

# status -> (google.rpc status name, default message)
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. API key not valid.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline exceeded."),
    529: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


def _messages(body: Mapping[str, object]) -> tuple[RecordedMessage, ...]:
    found = []
    system = json_object(body.get("systemInstruction") or body.get("system_instruction"))
    system_text = text_of_parts(system.get("parts"))
    if system_text:
        found.append(RecordedMessage(role="system", text=system_text))
    contents = body.get("contents")
    for raw in contents if isinstance(contents, list) else ():
        content = json_object(raw)
        role = content.get("role")
        role = role if isinstance(role, str) else "user"
        found.append(RecordedMessage(role=role, text=text_of_parts(content.get("parts"))))
    return tuple(found)


def _response_text(response: object) -> str:
    """A ``functionResponse.response`` as text: its ``output`` (or ``error``), else its JSON."""
    fields = json_object(response)
    for key in ("output", "error"):
        if isinstance(fields.get(key), str):
            return str(fields[key])
    return result_text(response)


def _tool_events(body: Mapping[str, object]) -> tuple[ToolStep, ...]:
    """Prompts, ``functionCall`` parts and ``functionResponse`` parts, in order."""
    events: list[ToolStep] = []
    contents = body.get("contents")
    for raw in contents if isinstance(contents, list) else ():
        content = json_object(raw)
        parts = content.get("parts")
        texts = []
        for part in map(json_object, parts if isinstance(parts, list) else ()):
            called = json_object(part.get("functionCall") or part.get("function_call"))
            answered = json_object(part.get("functionResponse") or part.get("function_response"))
            if isinstance(called.get("name"), str):
                events.append(ToolStep("call", str(called["name"])))
            elif answered:
                events.append(ToolStep("result", _response_text(answered.get("response"))))
            elif isinstance(part.get("text"), str):
                texts.append(str(part["text"]))
        if content.get("role", "user") == "user":
            events.extend(prompt_event("\n".join(texts)))
    return tuple(events)


def _system_text(body: Mapping[str, object]) -> str:
    system = json_object(body.get("systemInstruction") or body.get("system_instruction"))
    return text_of_parts(system.get("parts"))


class GeminiWire:
    """The Gemini ``generativelanguage`` API (see the module docstring)."""

    name: Provider = "gemini"

    def read_call(
        self, method: str, path: str, query: Mapping[str, str], body: object
    ) -> Call | None:
        route = _ROUTE.search(path)
        if method != "POST" or route is None:
            return None
        model = route["model"]
        fields = json_object(body)
        messages = _messages(fields)
        match route["method"]:
            case "streamGenerateContent" | "generateContent" as method:
                return Call(
                    provider=self.name,
                    operation="generate",
                    stream=method == "streamGenerateContent",
                    model=model,
                    messages=messages,
                    tools=tool_names(fields.get("tools")),
                    system=_system_text(fields),
                    tool_events=_tool_events(fields),
                )
            case "countTokens":
                return Call(
                    provider=self.name,
                    operation="static",
                    stream=False,
                    model=model,
                    messages=messages,
                    static_body={"totalTokens": count_message_tokens(messages)},
                )
        return None

    def _chunk(
        self,
        call: Call,
        response_id: str,
        text: str,
        output_tokens: int,
        *,
        last: bool,
        tool: EmulatedToolCall | None = None,
    ) -> dict[str, object]:
        part: dict[str, object] = {"text": text}
        if tool is not None:
            part = {"functionCall": {"name": tool.name, "args": dict(tool.arguments)}}
        candidate: dict[str, object] = {
            "content": {"parts": [part], "role": "model"},
            "index": 0,
        }
        if last:
            candidate["finishReason"] = "STOP"
        prompt_tokens = count_message_tokens(call.messages)
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
            },
            "modelVersion": call.model,
            "responseId": response_id,
        }

    def stream_plan(self, call: Call, pieces: Sequence[str]) -> StreamPlan:
        response_id = new_id("")
        output_tokens = estimate_tokens("".join(pieces))
        *body, last = pieces
        chunks = [
            sse_event(None, self._chunk(call, response_id, p, output_tokens, last=False))
            for p in body
        ]
        # finishReason travels with the last text: the CLI drops chunks whose text is empty.
        chunks.append(
            sse_event(None, self._chunk(call, response_id, last, output_tokens, last=True))
        )
        return StreamPlan(head=(), chunks=tuple(chunks), tail=())

    def message_body(self, call: Call, text: str) -> object:
        return self._chunk(call, new_id(""), text, estimate_tokens(text), last=True)

    def tool_stream_plan(
        self, call: Call, tool: EmulatedToolCall, pieces: Sequence[str]
    ) -> StreamPlan:
        # A functionCall part is never split: one frame, whatever the chunk count.
        tokens = estimate_tokens(tool.arguments_json)
        frame = self._chunk(call, new_id(""), "", tokens, last=True, tool=tool)
        return StreamPlan(head=(), chunks=(sse_event(None, frame),), tail=())

    def tool_message_body(self, call: Call, tool: EmulatedToolCall) -> object:
        tokens = estimate_tokens(tool.arguments_json)
        return self._chunk(call, new_id(""), "", tokens, last=True, tool=tool)

    def error_body(self, status: int, message: str, fault: Fault) -> object:
        name, _ = _ERRORS.get(status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", ""))
        error: dict[str, object] = {"code": status, "message": message, "status": name}
        if fault.gemini_retry_info and fault.retry_after is not None:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{fault.retry_after:g}s",
                }
            ]
        return {"error": error}

    def default_error_message(self, status: int, retry_after: float | None) -> str:
        _, message = _ERRORS.get(status, ("", f"Emulated error {status}."))
        return message + retry_hint(retry_after)


GEMINI = GeminiWire()
