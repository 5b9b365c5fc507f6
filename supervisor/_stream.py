"""``Supervisor.stream``: the task that runs the call (`pump_stream`) and the reader side
(`ResponseStream`)."""

from __future__ import annotations

import contextlib

import attrs
import trio

from actors import Event, LLMError, TextDelta

from ._engine import Engine
from ._result import Result


@attrs.frozen
class StreamEnd:
    result: Result | None = None
    error: LLMError | None = None


class ResponseStream:
    """Events of one streamed call, as they arrive.

    Iterating yields typed events (text deltas first, the CLI's final result event last);
    when the call fails, iteration raises `LLMError`. After iteration `result` holds the
    `Result`.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[Event | StreamEnd]) -> None:
        self._receive = receive
        self._done = False
        self.result: Result | None = None

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            self._done = True
            raise LLMError("the stream ended without a result (supervisor closed)") from None
        if isinstance(item, StreamEnd):
            self._done = True
            if item.error is not None:
                raise item.error
            self.result = item.result
            raise StopAsyncIteration
        return item

    async def text(self) -> str:
        """Consume the rest of the stream and return the final answer text."""
        async for _event in self:
            pass
        assert self.result is not None
        return self.result.text


async def pump_stream(
    engine: Engine, prompt: str, send: trio.MemorySendChannel[Event | StreamEnd]
) -> None:
    """Run one call, sending its events and then its `StreamEnd` to the reader.

    A failed attempt is retried only while no text has reached the reader.
    """
    forward = _Forward(send)
    async with send:
        try:
            result = await engine.run_call(prompt, forward, may_retry=forward.may_retry)
        except LLMError as error:
            end = StreamEnd(error=error)
        else:
            end = StreamEnd(result=result)
        # The reader may have left early; then there is nobody to tell.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await send.send(end)


class _Forward:
    """Sends events on to the reader and remembers whether any text went out."""

    def __init__(self, send: trio.MemorySendChannel[Event | StreamEnd]) -> None:
        self._send = send
        self._delivered_text = False

    async def __call__(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._delivered_text = True
        await self._send.send(event)

    def may_retry(self, _error: LLMError) -> bool:
        return not self._delivered_text
