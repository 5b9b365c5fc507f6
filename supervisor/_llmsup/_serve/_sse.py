"""The ``/stream`` response: one call's events as server-sent events, then its end."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from actors import ErrorCategory, ErrorReport, Event, FinalResult, LLMError, RawEvent
from supervisor import JSONExtractor, Result, Supervisor, schema_instructions

from ._calls import result_response, wait_for_disconnect
from ._errors import (
    DEFAULT_RETRY_AFTER_S,
    ClientError,
    error_body,
    llm_error_body,
    llm_error_response,
    unavailable,
)
from ._metrics import ServeMetrics, TrackedCall
from ._per_call import CallOptions, request_deadline
from ._state import ABORTED, ServeState

SSE_PING_S = 15.0
"""A comment line is sent on an open event stream after this much silence."""


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def event_frame(event: Event, *, raw: bool) -> bytes | None:
    """One event as SSE, or None when it is not sent: by default the typed events only
    (an in-band CLI ``error`` named ``cli_error``); with ``raw`` also `RawEvent` (the
    CLI's own events the typed model has no type for), and every event's original CLI
    object as its ``raw`` field."""
    if isinstance(event, FinalResult):
        return None  # folded into the final "result"
    if isinstance(event, RawEvent) and not raw:
        return None
    name = "cli_error" if isinstance(event, ErrorReport) else event.type
    if not raw:
        return _sse(name, event.model_dump_json())
    data = event.model_dump(mode="json")
    data["raw"] = event.raw
    return _sse(name, json.dumps(data, separators=(",", ":")))


@attrs.define
class _End:
    result: Result | None = None
    error: LLMError | None = None


class EventStreamResponse(Response):
    """The ``/stream`` response: runs the call while the client listens, stops it if it leaves."""

    media_type = "text/event-stream"

    def __init__(
        self,
        state: ServeState,
        metrics: ServeMetrics,
        prompt: str,
        model: type[BaseModel] | None,
        options: CallOptions,
        *,
        raw: bool = False,
    ) -> None:
        super().__init__(status_code=200)
        self._options = options
        self._raw = raw
        self._state = state
        self._metrics = metrics
        self._prompt = prompt
        self._model = model
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with self._state.call_slot() as slot:
                async with trio.open_nursery() as nursery:

                    async def watch() -> None:
                        await wait_for_disconnect(receive)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch)
                    try:
                        with slot.abort, self._metrics.track() as tracked:
                            await self._run(slot.supervisor, tracked, scope, receive, send)
                    finally:
                        nursery.cancel_scope.cancel()
                if slot.abort.cancelled_caught:
                    await self._aborted(scope, receive, send)
        except ClientError as refused:
            await refused.response()(scope, receive, send)

    async def _aborted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tell the client that the shutdown cut the call short."""
        if not self._started:
            await unavailable(ABORTED).response()(scope, receive, send)
            return
        body = error_body("unavailable", ABORTED, DEFAULT_RETRY_AFTER_S)
        last = _sse("error", body.model_dump_json())
        await send({"type": "http.response.body", "body": last, "more_body": False})

    async def _run(
        self, sup: Supervisor, tracked: TrackedCall, scope: Scope, receive: Receive, send: Send
    ) -> None:
        prompt = self._prompt
        if self._model is not None:
            prompt += schema_instructions(self._model)

        async def start() -> None:
            self._started = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )

        async def emit(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        end = await self._relay(sup, prompt, start, emit)
        final: tuple[str, BaseModel] | None = None
        if end.result is not None:
            tracked.cli = end.result.cli
            response_or_error = self._checked(end.result)
            if isinstance(response_or_error, LLMError):
                end = _End(error=response_or_error)
            else:
                tracked.outcome = "ok"  # before the last send, which may see the disconnect
                final = ("result", response_or_error)
        if final is None:
            error = end.error or LLMError("the stream ended without a result", cli=sup.cli.name)
            tracked.outcome = error.category.value
            if not self._started:
                response = llm_error_response(error)
                await response(scope, receive, send)
                return
            final = ("error", llm_error_body(error))
        if not self._started:
            await start()
        await send(
            {
                "type": "http.response.body",
                "body": _sse(final[0], final[1].model_dump_json()),
                "more_body": False,
            }
        )

    def _checked(self, result: Result) -> BaseModel | LLMError:
        """The final ``result`` body, or the error of an answer not matching the schema."""
        data: Any = None
        if self._model is not None:
            data, problem = JSONExtractor().extract_json(result.text, self._model)
            if problem is not None:
                return LLMError(
                    f"the answer did not match the output_schema: {problem}",
                    ErrorCategory.MALFORMED_OUTPUT,
                    cli=result.cli,
                    raw_text=result.text,
                )
        return result_response(result, data)

    async def _relay(
        self,
        sup: Supervisor,
        prompt: str,
        start: Callable[[], Awaitable[None]],
        emit: Callable[[bytes], Awaitable[None]],
    ) -> _End:
        """Send the call's events (starting the response at the first one); return its end."""
        options = self._options
        try:
            with request_deadline(options.timeout, sup.cli.name):
                async with sup.stream(
                    prompt, system=options.system, adapt=options.adapt, **self._state.folder
                ) as events:
                    while True:
                        event: Event | None = None
                        with trio.move_on_after(SSE_PING_S if self._started else math.inf):
                            try:
                                event = await anext(events)
                            except StopAsyncIteration:
                                return _End(result=events.result)
                            except LLMError as error:
                                return _End(error=error)
                        if event is None:
                            await emit(b": ping\n\n")  # silence on an open stream
                            continue
                        frame = event_frame(event, raw=self._raw)
                        if frame is not None:
                            if not self._started:
                                await start()
                            await emit(frame)
        except LLMError as error:  # refused by the supervisor, or past the request's timeout
            return _End(error=error)
