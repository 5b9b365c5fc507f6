"""`ResponseStream`: the reader side of ``Supervisor.stream``."""

from __future__ import annotations

import attrs
import trio

from actors import Event, LLMError

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
