"""Speed trick: memory-channel hand-offs without a scheduler round trip when none is needed.

One of the measured tricks listed in `actors._spawn` (``bench/overhead.py``).
``await channel.send(x)`` always yields to the scheduler, even when the buffer has room;
with three or four messages per call that is a measurable share of a short call's cost.
These try the non-blocking form first and block (with its checkpoint) only when they must,
so back-pressure is unchanged. Callers checkpoint elsewhere (every pipe read does).
"""

from __future__ import annotations

from typing import TypeVar

import trio

T = TypeVar("T")


async def send_soon(channel: trio.MemorySendChannel[T], item: T) -> None:
    """``channel.send(item)``, skipping the yield when the buffer has room."""
    try:
        channel.send_nowait(item)
    except trio.WouldBlock:
        await channel.send(item)


async def receive_soon(channel: trio.MemoryReceiveChannel[T]) -> T:
    """``channel.receive()``, skipping the yield when an item is waiting."""
    try:
        return channel.receive_nowait()
    except trio.WouldBlock:
        return await channel.receive()
