"""Fan-out: run many prompts through one supervisor, bounded in memory and in processes.

`map_stream` takes an iterable or async iterable of any length and yields each outcome as
it completes. The input is pulled only as fast as work finishes (at most a small multiple
of the concurrency is in flight), and results wait in a bounded channel for the reader, so
100k prompts stream through in constant memory. `map` is `map_stream` collected back into
input order.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager

import attrs
import trio
from pydantic import BaseModel

from actors import ErrorCategory, LLMError
from actors.lowlevel import send_soon

from ._engine import Engine
from ._result import Result
from ._structured import ask

Prompts = Iterable[str] | AsyncIterable[str]
# Prompts read ahead of the workers, per concurrency slot: enough to keep every slot busy
# while retries back off, little enough that memory does not grow with the input.
READ_AHEAD_PER_SLOT = 2


@attrs.frozen
class Completed:
    """One finished item of a fan-out: its position in the input, the prompt, the outcome."""

    index: int
    prompt: str
    outcome: Result | LLMError

    @property
    def ok(self) -> bool:
        return isinstance(self.outcome, Result)


@attrs.frozen
class _Failed:
    error: BaseException


async def _each(prompts: Prompts) -> AsyncIterator[str]:
    if isinstance(prompts, AsyncIterable):
        async for prompt in prompts:
            yield prompt
    else:
        for prompt in prompts:
            yield prompt


class MapStream:
    """The reader side of `map_stream`: ``async for done in results``."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Completed | _Failed]) -> None:
        self._receive = receive

    def __aiter__(self) -> MapStream:
        return self

    async def __anext__(self) -> Completed:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, _Failed):
            # The input iterable itself failed: that is the caller's error, not an LLM one.
            raise item.error
        return item


@asynccontextmanager
async def map_stream(
    engine: Engine,
    prompts: Prompts,
    output: type[BaseModel] | None = None,
    system: str | None = None,
) -> AsyncIterator[MapStream]:
    """``async with sup.map_stream(prompts) as results: async for done in results: ...``."""
    send, receive = trio.open_memory_channel[Completed | _Failed](engine.concurrency)
    handle = await engine.host(_pump, engine, prompts, output, send, system)
    try:
        yield MapStream(receive)
    finally:
        await handle.cancel_and_wait()
        receive.close()


async def _pump(
    engine: Engine,
    prompts: Prompts,
    output: type[BaseModel] | None,
    send: trio.MemorySendChannel[Completed | _Failed],
    system: str | None = None,
) -> None:
    slots = trio.Semaphore(engine.concurrency * READ_AHEAD_PER_SLOT)

    async def one(index: int, prompt: str) -> None:
        try:
            try:
                outcome: Result | LLMError = await ask(engine, prompt, output, system=system)
            except LLMError as error:
                outcome = error
            # The reader may have left early; then the outcome has nowhere to go.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send_soon(send, Completed(index, prompt, outcome))
        finally:
            slots.release()

    input_error: Exception | None = None
    async with send:
        async with trio.open_nursery() as nursery:
            try:
                index = 0
                async for prompt in _each(prompts):
                    if not isinstance(prompt, str):
                        error = LLMError(
                            f"prompt {index} is a {type(prompt).__name__}, not a str",
                            ErrorCategory.PERMANENT,
                        )
                        await send.send(Completed(index, repr(prompt), error))
                        index += 1
                        continue
                    await slots.acquire()
                    nursery.start_soon(one, index, prompt)
                    index += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                nursery.cancel_scope.cancel()  # the reader left: stop the rest
            except Exception as exc:  # the input iterable raised: hand it to the reader
                input_error = exc
        if input_error is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send.send(_Failed(input_error))


async def map_in_order(
    engine: Engine,
    prompts: Iterable[str],
    output: type[BaseModel] | None = None,
    system: str | None = None,
) -> list[Result | LLMError]:
    """Every prompt's outcome, in input order (see `Supervisor.map`)."""
    items = list(prompts)
    outcomes: list[Result | LLMError | None] = [None] * len(items)
    async with map_stream(engine, items, output, system) as results:
        async for done in results:
            outcomes[done.index] = done.outcome
    missing = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert not missing, f"map lost the outcomes of items {missing}"
    return [o for o in outcomes if o is not None]
