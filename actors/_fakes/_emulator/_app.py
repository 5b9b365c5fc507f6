"""The emulator's ASGI application: routing, rule matching, fault execution, the request log.

`EmulatorApp` is a plain ASGI callable (served by Hypercorn's trio worker in `_server`). For
every HTTP request it:

1. reads the body (JSON when it parses, else kept as text),
2. finds the provider whose route matches the path suffix (`_anthropic`, `_openai`,
   `_gemini`; anything else is answered 404 and still logged),
3. for a generation call, picks the first rule that applies and is not used up (`times`), else
   the echo rule, and decides between a text reply and a tool call (`decide_reply`),
4. records a `RecordedRequest` (secrets redacted) in memory and, optionally, as one JSON line,
5. answers: the reply as SSE or JSON, or the rule's fault.

A streamed response whose client hangs up is abandoned at once; a stalled one is released when
the client hangs up or the emulator closes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ..._redact import REDACTED, redact
from ._anthropic import ANTHROPIC
from ._gemini import GEMINI
from ._openai import OPENAI
from ._rules import ECHO_RULE, EmulatorRule, Fault, FaultKind, Provider, split_chunks
from ._wire import (
    STRUCTURED_OUTPUT_TOOL,
    Call,
    EmulatedToolCall,
    Operation,
    ProviderWire,
    RecordedMessage,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PROVIDERS: tuple[ProviderWire, ...] = (ANTHROPIC, OPENAI, GEMINI)

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "proxy-authorization"})
SECRET_QUERY_KEYS = frozenset({"key", "api_key", "access_token"})
MAX_BODY_BYTES = 64 * 1024 * 1024

# Sent instead of valid JSON by the "malformed" fault.
MALFORMED_FRAME = b'data: {"type": "content_block_delta", "delta": {"text": "trunc\n\n'
MALFORMED_BODY = b'{"id": "emulated-malformed", "content": [{"text": "trunc'

# The answer to the request that carries the result of the model's StructuredOutput call.
STRUCTURED_DONE_REPLY = "Done."


class RecordedRequest(BaseModel):
    """One request as the emulator saw it, with credentials redacted.

    `prompt` is the latest user message's text; `messages` is the whole conversation the
    request carried (``system`` first when there is one), so a test can check that a resumed
    session re-sent its first turn. `tools` are the names of the tools the request offered
    the model, `system` its system text (Anthropic ``system``, OpenAI ``instructions``,
    Gemini ``systemInstruction``), `tool_results` the text of the tool results it carried and
    `tool_call` the tool the emulator's answer asked for (None for a text answer).
    `rule_index` is the position of the rule that answered (None for the echo default and for
    calls rules do not apply to), `status` the HTTP status the emulator answered (200 also for
    streams that then stall or disconnect).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: datetime
    provider: Provider | None
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: JsonValue
    operation: Operation | None = Field(
        default=None,
        description="generate (a model reply) or static (e.g. token count); None: unknown route",
    )
    model: str | None = None
    stream: bool = False
    prompt: str = ""
    messages: tuple[RecordedMessage, ...] = ()
    rule_index: int | None = None
    fault: FaultKind | None = None
    status: int = 200
    texts: tuple[str, ...] = Field(default=(), description="the text chunks answered")
    tools: tuple[str, ...] = Field(default=(), description="names of the tools offered")
    system: str = Field(default="", description="the system / instructions text")
    tool_results: tuple[str, ...] = Field(
        default=(), description="text of each tool result the request carried, oldest first"
    )
    body_bytes: int = Field(default=0, description="length of the raw request body")
    tool_call: str | None = Field(
        default=None, description="the tool the emulator asked for in its answer"
    )

    def roles_and_texts(self) -> list[tuple[str, str]]:
        """``(role, text)`` of every message, for compact assertions."""
        return [(m.role, m.text) for m in self.messages]


@attrs.define
class EmulatorState:
    """Mutable state shared by the app and its `Emulator` handle (one trio thread only)."""

    rules: tuple[EmulatorRule, ...] = ()
    uses: list[int] = attrs.Factory(list)
    requests: list[RecordedRequest] = attrs.Factory(list)
    write_line: Callable[[str], Awaitable[object]] | None = None
    log_lock: trio.Lock = attrs.Factory(trio.Lock)
    closing: trio.Event = attrs.Factory(trio.Event)
    arrivals: trio.lowlevel.ParkingLot = attrs.Factory(trio.lowlevel.ParkingLot)

    def set_rules(self, rules: Iterable[EmulatorRule]) -> None:
        """Replace the rules and forget how often the old ones were used."""
        self.rules = tuple(rules)
        self.uses = [0] * len(self.rules)

    def choose_rule(self, provider: Provider, prompt: str) -> tuple[int | None, EmulatorRule]:
        """The first applicable rule that is not used up (and count its use), else echo."""
        for index, rule in enumerate(self.rules):
            if not rule.applies_to(provider, prompt):
                continue
            if rule.times is not None and self.uses[index] >= rule.times:
                continue
            self.uses[index] += 1
            return index, rule
        return None, ECHO_RULE

    async def record(self, request: RecordedRequest) -> None:
        """Append to the in-memory log (and the JSONL file), then wake `wait_requests`."""
        self.requests.append(request)
        self.arrivals.unpark_all()
        if self.write_line is not None:
            line = request.model_dump_json() + "\n"
            async with self.log_lock:
                await self.write_line(line)


def redacted_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers as a dict (lower-case names, repeats joined by ", "), secrets replaced."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        value = REDACTED if name in SECRET_HEADERS else redact(value)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def redacted_query(query_string: bytes) -> dict[str, str]:
    """The query as a dict, with ``key=`` style credentials replaced."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return {k: REDACTED if k.lower() in SECRET_QUERY_KEYS else v for k, v in pairs}


def decode_body(raw: bytes) -> JsonValue:
    """The body as JSON when it parses, else as text (None when empty)."""
    if not raw:
        return None
    try:
        value: JsonValue = json.loads(raw)
    except ValueError:
        return redact(raw.decode("utf-8", errors="replace"))
    return value


def find_call(method: str, path: str, query: Mapping[str, str], body: object) -> Call | None:
    """The first provider route that serves ``method path``."""
    for wire in PROVIDERS:
        call = wire.read_call(method, path, query, body)
        if call is not None:
            return call
    return None


def wire_of(provider: Provider) -> ProviderWire:
    """The wire implementation of `provider`."""
    return next(w for w in PROVIDERS if w.name == provider)


class BodyTooLarge(Exception):
    """A request body over `MAX_BODY_BYTES`; answered 413."""


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client left before sending all of it."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body.extend(message.get("body", b""))
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return bytes(body)


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON, as the providers send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def _start(
    send: Send, status: int, content_type: str, extra: Sequence[tuple[str, str]] = ()
) -> None:
    headers = [(b"content-type", content_type.encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _send_json(
    send: Send, status: int, value: object, extra: Sequence[tuple[str, str]] = ()
) -> None:
    await _start(send, status, "application/json", extra)
    body = json_bytes(value)
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _body(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


def _json_object_of(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def decide_reply(call: Call, rule: EmulatorRule) -> str | EmulatedToolCall:
    """What the emulated model answers `call` with under `rule`: a text or a tool call.

    - The result of its own ``StructuredOutput`` call is answered `STRUCTURED_DONE_REPLY`.
    - A ``tool_call`` fault asks for its tool on a fresh turn (no tool result after the
      latest prompt); a request carrying that tool's result gets the rule's reply.
    - When the request offers ``StructuredOutput`` and the rendered reply is a JSON object,
      the reply is a call of that tool with the object as input (unless the rule says
      ``structured="prose"``).
    """
    answered = call.answered_tool
    if answered == STRUCTURED_OUTPUT_TOOL:
        return STRUCTURED_DONE_REPLY
    fault = rule.fault
    if answered is None and fault is not None and fault.kind == "tool_call":
        return EmulatedToolCall(name=fault.tool_name or "", arguments=fault.tool_arguments)
    text = rule.reply_text(call.prompt)
    if call.offers_structured_output and rule.structured == "tool":
        data = _json_object_of(text)
        if data is not None:
            return EmulatedToolCall(name=STRUCTURED_OUTPUT_TOOL, arguments=data)
    return text


@attrs.frozen
class _Answer:
    """What to send for one generation call (decided before the request is recorded).

    `pieces` are the reply's text chunks, or for a `tool` call its input JSON's chunks.
    """

    rule_index: int | None
    rule: EmulatorRule
    pieces: tuple[str, ...]
    tool: EmulatedToolCall | None = None

    @classmethod
    def of(cls, call: Call, rule_index: int | None, rule: EmulatorRule) -> _Answer:
        reply = decide_reply(call, rule)
        if isinstance(reply, EmulatedToolCall):
            pieces = split_chunks(reply.arguments_json, rule.chunks)
            return cls(rule_index, rule, tuple(pieces), reply)
        return cls(rule_index, rule, tuple(split_chunks(reply, rule.chunks)))

    @property
    def texts(self) -> tuple[str, ...]:
        """The text chunks answered (none for an error or a tool call)."""
        return self.pieces if self.status == 200 and self.tool is None else ()

    @property
    def fault(self) -> Fault | None:
        return self.rule.fault

    @property
    def status(self) -> int:
        fault = self.fault
        if fault is not None and fault.kind == "status" and fault.status is not None:
            return fault.status
        return 200


def _status(method: str, call: Call | None, answer: _Answer | None) -> int:
    if method == "HEAD":
        return 200
    if call is None:
        return 404
    return answer.status if answer is not None else 200


class EmulatorApp:
    """The ASGI application. Its state is shared with the `Emulator` handle."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            # Codex can use websockets; the emulator refuses them, so it falls back to HTTP.
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            raw_body = await _read_body(receive)
        except BodyTooLarge:
            await _send_json(send, 413, {"error": {"message": "request body over 64 MiB"}})
            return
        if raw_body is None:
            return
        method = str(scope["method"])
        path = str(scope["path"])
        query_string = bytes(scope.get("query_string", b""))
        query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        body = decode_body(raw_body)
        call = None if method == "HEAD" else find_call(method, path, query, body)
        answer: _Answer | None = None
        if call is not None and call.operation == "generate":
            answer = _Answer.of(call, *self.state.choose_rule(call.provider, call.prompt))
        await self.state.record(
            RecordedRequest(
                time=datetime.now(UTC),
                provider=call.provider if call else None,
                method=method,
                path=path,
                query=redacted_query(query_string),
                headers=redacted_headers(scope.get("headers", ())),
                body=body,
                operation=call.operation if call else None,
                model=call.model if call else None,
                stream=call.stream if call else False,
                prompt=call.prompt if call else "",
                messages=call.messages if call else (),
                rule_index=answer.rule_index if answer else None,
                fault=answer.fault.kind if answer and answer.fault else None,
                status=_status(method, call, answer),
                texts=answer.texts if answer else (),
                tools=call.tools if call else (),
                system=call.system if call else "",
                tool_results=call.tool_results if call else (),
                body_bytes=len(raw_body),
                tool_call=answer.tool.name if answer and answer.tool else None,
            )
        )
        if method == "HEAD":
            # claude probes ``HEAD /`` before its first call (to warm up the connection).
            await _start(send, 200, "text/plain", [("content-length", "0")])
            await _body(send, b"", more=False)
            return
        if call is None:
            await _send_json(
                send, 404, {"error": {"message": f"the emulator does not serve {method} {path}"}}
            )
            return
        if answer is None:
            await _send_json(send, 200, call.static_body)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._cancel_on_disconnect, receive, nursery.cancel_scope)
            await self._answer(call, answer, send)
            nursery.cancel_scope.cancel()

    @staticmethod
    async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _answer(self, call: Call, answer: _Answer, send: Send) -> None:
        wire = wire_of(call.provider)
        fault = answer.fault
        kind = fault.kind if fault else None
        if fault is not None and fault.kind == "status":
            status = answer.status
            message = fault.message or wire.default_error_message(status, fault.retry_after)
            extra = []
            if fault.retry_after is not None:
                extra.append(("retry-after", f"{fault.retry_after:g}"))
            await _send_json(send, status, wire.error_body(status, message, fault), extra)
            return
        if not call.stream:
            await self._answer_json(call, answer, send)
            return
        if answer.tool is not None:
            plan = wire.tool_stream_plan(call, answer.tool, answer.pieces)
        else:
            plan = wire.stream_plan(call, answer.pieces)
        await _start(send, 200, "text/event-stream", [("cache-control", "no-cache")])
        if plan.head:
            await _body(send, b"".join(plan.head))
        if kind == "malformed":
            await _body(send, MALFORMED_FRAME, more=False)
            return
        limit = self._chunk_limit(fault)
        delay = fault.delay_s if fault is not None else 0.0
        for frame in plan.chunks if limit is None else plan.chunks[:limit]:
            if delay:
                await trio.sleep(delay)
            await _body(send, frame)
        if limit is None:
            await _body(send, b"".join(plan.tail), more=False)
        else:
            await self._stop_short(kind)

    @staticmethod
    def _chunk_limit(fault: Fault | None) -> int | None:
        """How many chunks a stall or disconnect lets through (None: all, then the tail)."""
        if fault is None:
            return None
        if fault.kind == "stall":
            return fault.stall_after_chunks or 0
        if fault.kind == "disconnect":
            return fault.disconnect_after_chunks or 0
        return None

    async def _stop_short(self, kind: FaultKind | None) -> None:
        """End a response early: stall until the emulator closes, or disconnect now.

        Returning without the final body message makes Hypercorn close the connection, so the
        client sees a truncated response.
        """
        if kind == "stall":
            await self.state.closing.wait()

    async def _answer_json(self, call: Call, answer: _Answer, send: Send) -> None:
        """A non-streamed reply; stall and disconnect act on the body, slow delays it."""
        wire = wire_of(call.provider)
        fault = answer.fault
        if fault is not None and fault.kind == "malformed":
            await _start(send, 200, "application/json")
            await _body(send, MALFORMED_BODY, more=False)
            return
        if fault is not None and fault.delay_s:
            await trio.sleep(fault.delay_s * len(answer.pieces))
        if answer.tool is not None:
            body = json_bytes(wire.tool_message_body(call, answer.tool))
        else:
            body = json_bytes(wire.message_body(call, "".join(answer.pieces)))
        if fault is not None and fault.kind in ("stall", "disconnect"):
            await _start(send, 200, "application/json", [("content-length", str(len(body)))])
            await _body(send, body[: len(body) // 2])
            await self._stop_short(fault.kind)
            return
        await _start(send, 200, "application/json")
        await _body(send, body, more=False)
