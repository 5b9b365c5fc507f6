"""Showing a run while it goes: a rich progress bar on a terminal, else plain lines."""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

import trio

from ._stages import CliStage
from ._tally import Tally

PLAIN_EVERY_S = 2.0


class ProgressDisplay(Protocol):
    def update(self, now: float) -> None: ...

    def close(self) -> None: ...


def _breaker_states(stages: list[CliStage]) -> str:
    if len(stages) == 1:
        state = stages[0].breaker_state()
        return "no breaker" if state == "off" else f"breaker {state}"
    return "breakers " + ", ".join(f"{s.name} {s.breaker_state()}" for s in stages)


class PlainProgress:
    """A line every `PLAIN_EVERY_S` seconds or every 10 % of the items, whichever first."""

    def __init__(
        self, tally: Tally, stages: list[CliStage], started: float, stream: TextIO
    ) -> None:
        self._tally = tally
        self._stages = stages
        self._started = started
        self._stream = stream
        self._last_time = started
        self._last_tenth = 0

    def update(self, now: float) -> None:
        tally = self._tally
        tenth = tally.done * 10 // tally.total if tally.total else 10
        if tenth <= self._last_tenth and now - self._last_time < PLAIN_EVERY_S:
            return
        self._last_tenth = max(tenth, self._last_tenth)
        self._last_time = now
        moved = f", {tally.moved} moved" if tally.moved else ""
        print(
            f"map: {tally.done}/{tally.total} done, {tally.failures()}{moved}, "
            f"{tally.rate(now - self._started):.1f}/s, {_breaker_states(self._stages)}",
            file=self._stream,
            flush=True,
        )

    def close(self) -> None:
        return None


class RichProgress:
    """A live progress bar (done/total, rate, ETA, failures, breakers) on a terminal."""

    def __init__(
        self, tally: Tally, stages: list[CliStage], started: float, console: Any = None
    ) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._tally = tally
        self._stages = stages
        self._started = started
        self._progress = Progress(
            TextColumn("map"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("map", total=tally.total, rate="", status="")
        self._progress.start()

    def update(self, now: float) -> None:
        tally = self._tally
        moved = f" · {tally.moved} moved" if tally.moved else ""
        self._progress.update(
            self._task,
            completed=tally.done,
            rate=f"{tally.rate(now - self._started):.1f}/s",
            status=f"{tally.failures()}{moved} · {_breaker_states(self._stages)}",
        )

    def close(self) -> None:
        self._progress.stop()


def open_progress(tally: Tally, stages: list[CliStage], started: float) -> ProgressDisplay:
    if sys.stderr.isatty():
        try:
            return RichProgress(tally, stages, started)
        except ImportError:
            pass
    return PlainProgress(tally, stages, started, sys.stderr)


async def tick_progress(progress: ProgressDisplay) -> None:
    while True:
        await trio.sleep(0.5)
        progress.update(trio.current_time())
