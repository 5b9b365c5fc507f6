"""``Supervisor.stream``: the task that runs the call (`pump_stream`) and the reader side
(`ResponseStream`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import attrs
import trio

from actors import CliSpec, Event, LLMError, TextDelta

from ._engine import Engine
from ._result import Result


@attrs.frozen
class StreamEnd:
    result: Result | None = None
    error: LLMError | None = None


class ResponseStream:
    """Events of one streamed call, as they arrive.

    Iterating yields typed events (text deltas first, the CLI's final result event last);
    when the call fails, iteration raises `LLMError`. After iteration `result` is the
    `Result`.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[Event | StreamEnd]) -> None:
        self._receive = receive
        self._done = False
        self._result: Result | None = None
        self._error: LLMError | None = None

    @property
    def result(self) -> Result:
        """The call's `Result`, once the stream has ended.

        Raises:
            LLMError: the call failed (the error iteration raised).
            RuntimeError: the stream has not ended yet (iterate it to the end first).
        """
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        raise RuntimeError(
            "ResponseStream.result was read before the stream ended; iterate it to the end "
            "(async for event in events) or call await events.text() first"
        )

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            self._done = True
            self._error = LLMError("the stream ended without a result (supervisor closed)")
            raise self._error from None
        if isinstance(item, StreamEnd):
            self._done = True
            if item.error is not None:
                self._error = item.error
                raise item.error
            self._result = item.result
            raise StopAsyncIteration
        return item

    async def text(self) -> str:
        """Consume the rest of the stream and return the final answer text."""
        async for _event in self:
            pass
        return self.result.text


async def pump_stream(
    engine: Engine,
    prompt: str,
    send: trio.MemorySendChannel[Event | StreamEnd],
    system: str | None = None,
    cwd: str | None = None,
    adapt: Callable[[CliSpec], CliSpec] | None = None,
) -> None:
    """Run one call, sending its events and then its `StreamEnd` to the reader.

    A failed attempt is retried (or moved to a fallback CLI) only while no text has
    reached the reader.
    """
    forward = _Forward(send)
    async with send:
        try:
            result = await engine.run_call(
                prompt, forward, may_retry=forward.may_retry, system=system, cwd=cwd, adapt=adapt
            )
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
