"""Counting and showing: the tally, start lines, a rich bar or plain lines, the summary."""

from __future__ import annotations

import array
import math
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import attrs
import trio

from ._job import _Job
from ._memory import _mib
from ._stages import _Stage

if TYPE_CHECKING:
    from ._run import _Run

PLAIN_EVERY_S = 2.0


@attrs.define
class _Tally:
    total: int
    ok: int = 0
    failed: Counter[str] = attrs.Factory(Counter)
    moved: int = 0
    by_cli: Counter[str] = attrs.Factory(Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    latencies: array.array[float] = attrs.Factory(lambda: array.array("d"))

    @property
    def done(self) -> int:
        return self.ok + self.failed.total()

    def failures(self) -> str:
        count = self.failed.total()
        if not count:
            return "0 failed"
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items()))
        return f"{count} failed ({parts})"

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


class _Progress(Protocol):
    def update(self, now: float) -> None: ...

    def close(self) -> None: ...


def _breakers(stages: list[_Stage]) -> str:
    if len(stages) == 1:
        state = stages[0].breaker_state()
        return "no breaker" if state == "off" else f"breaker {state}"
    return "breakers " + ", ".join(f"{s.name} {s.breaker_state()}" for s in stages)


def _rate(tally: _Tally, elapsed: float) -> float:
    return tally.done / elapsed if elapsed > 0 else 0.0


class _PlainProgress:
    """A line every `PLAIN_EVERY_S` seconds or every 10 % of the items, whichever first."""

    def __init__(self, tally: _Tally, stages: list[_Stage], started: float, stream: TextIO) -> None:
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
            f"{_rate(tally, now - self._started):.1f}/s, {_breakers(self._stages)}",
            file=self._stream,
            flush=True,
        )

    def close(self) -> None:
        return None


class _RichProgress:
    """A live progress bar (done/total, rate, ETA, failures, breakers) on a terminal."""

    def __init__(
        self, tally: _Tally, stages: list[_Stage], started: float, console: Any = None
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
            rate=f"{_rate(tally, now - self._started):.1f}/s",
            status=f"{tally.failures()}{moved} · {_breakers(self._stages)}",
        )

    def close(self) -> None:
        self._progress.stop()


def _progress(tally: _Tally, stages: list[_Stage], started: float) -> _Progress:
    if sys.stderr.isatty():
        try:
            return _RichProgress(tally, stages, started)
        except ImportError:
            pass
    return _PlainProgress(tally, stages, started, sys.stderr)


async def _tick(progress: _Progress) -> None:
    while True:
        await trio.sleep(0.5)
        progress.update(trio.current_time())


def _start_lines(job: _Job, stages: list[_Stage], stream: TextIO) -> None:
    kept = len(job.previous.done)
    resumed = f" ({kept} already in {job.output}, skipped)" if kept else ""
    print(
        f"map: {job.total} items from {job.source.describe()}{resumed} -> {job.output}",
        file=stream,
    )
    budget = (
        f"memory budget {_mib(job.budget)} ({job.budget_note})"
        if job.budget is not None
        else "no memory budget (MemAvailable unknown)"
    )
    for stage in stages:
        role = "cli" if stage.index == 0 else "fallback"
        print(
            f"map: {role} {stage.name}: concurrency {stage.concurrency} "
            f"(--concurrency {stage.limit}; {budget}, "
            f"{_mib(stage.default_estimate)} per process estimated)",
            file=stream,
        )
    stream.flush()


def _summary(run: _Run, elapsed: float, interrupted: bool, stream: TextIO) -> None:
    tally = run.tally
    job = run.job
    head = "interrupted after" if interrupted else "finished"
    print(
        f"map: {head} {tally.done}/{tally.total} in {elapsed:.1f}s "
        f"({_rate(tally, elapsed):.1f}/s): {tally.ok} ok, {tally.failures()}",
        file=stream,
    )
    if job.previous.done:
        print(
            f"map: kept from before: {len(job.previous.done)} "
            f"({job.previous.failed} of them failed)",
            file=stream,
        )
    if tally.by_cli:
        clis = ", ".join(f"{name} {count}" for name, count in tally.by_cli.most_common())
        moved = f"; {tally.moved} moved to a fallback" if len(run.stages) > 1 else ""
        print(f"map: by cli: {clis}{moved}", file=stream)
    cost = f"${tally.cost:.4f}" if tally.cost is not None else "unknown"
    print(f"map: tokens in {tally.tokens_in}, out {tally.tokens_out}; cost {cost}", file=stream)
    p50, p95 = tally.percentile(0.5), tally.percentile(0.95)
    if p50 is not None and p95 is not None:
        print(f"map: latency p50 {p50:.2f}s, p95 {p95:.2f}s; wall {elapsed:.1f}s", file=stream)
    else:
        print(f"map: latency p50 -, p95 -; wall {elapsed:.1f}s", file=stream)
    budget = _mib(job.budget) if job.budget is not None else "none"
    for stage in run.stages:
        peak = _mib(stage.peak) if stage.observed else "not observed"
        change = (
            f"{stage.start_concurrency} -> {stage.concurrency}"
            if stage.concurrency != stage.start_concurrency
            else str(stage.concurrency)
        )
        print(
            f"map: memory {stage.name}: budget {budget}, per-process peak {peak} "
            f"({stage.observed} processes sampled), estimate {_mib(stage.estimate())}, "
            f"concurrency {change}",
            file=stream,
        )
    if interrupted:
        print(
            f"map: every CLI process was stopped; {run.out.lines} lines written; "
            "run again with --resume to finish",
            file=stream,
        )
    stream.flush()
