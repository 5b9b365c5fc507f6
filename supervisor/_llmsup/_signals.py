"""Stop signals: SIGINT, SIGTERM and SIGHUP cancel a command's run.

Python's default for SIGTERM and SIGHUP is to die on the spot, which leaves every CLI
process (each in its own process group) running with PPID 1. Received through trio
instead, the first one cancels the run, so the supervisors' stop sequences end every CLI
process tree, and the command exits with 128+signal, as a shell reports a process killed
by it. A repeated signal only says that the stop is under way.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TextIO

import attrs
import trio

from actors.lowlevel import unwrap_group

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
INTERRUPTED = "llmsup: interrupted; every CLI process was stopped"


def signal_status(signum: int) -> int:
    """The exit status of a command a signal stopped: 128+signal (130 for SIGINT)."""
    return 128 + int(signum)


@attrs.define
class StopRequest:
    """The first stop signal received (a pure state machine, no I/O)."""

    signum: int | None = None

    def take(self, signum: int) -> bool:
        """Record ``signum``; True when it is the first, the one that starts the stop."""
        if self.signum is not None:
            return False
        self.signum = signum
        return True


async def watch_stop_signals(
    signals: AsyncIterator[int],
    work: trio.CancelScope,
    request: StopRequest,
    stream: TextIO,
    repeat: str,
) -> None:
    """Cancel ``work`` on the first signal; print ``repeat`` on every later one."""
    async for signum in signals:
        if request.take(signum):
            work.cancel()
        else:
            print(repeat, file=stream, flush=True)


async def run_stoppable(work: Callable[[], Awaitable[int]], stream: TextIO | None = None) -> int:
    """Run ``work`` (returns an exit status) until a stop signal cancels it.

    Cancelled, ``work`` has stopped its CLI processes on the way out; this prints
    `INTERRUPTED` and returns `signal_status`. A signal that comes after ``work`` finished
    changes nothing.
    """
    out = sys.stderr if stream is None else stream
    request = StopRequest()
    status = None
    try:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with trio.open_nursery() as guard:
                scope = trio.CancelScope()
                repeat = "llmsup: still stopping..."
                guard.start_soon(watch_stop_signals, signals, scope, request, out, repeat)
                with scope:
                    status = await work()
                guard.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # work's own error (BadUsage...), not wrapped
        raise unwrap_group(group) from None
    if status is None:
        assert request.signum is not None  # only a signal cancels the scope
        print(INTERRUPTED, file=out, flush=True)
        return signal_status(request.signum)
    return status
