"""What a run says before it starts and after it ends, as lines (printed by the command)."""

from __future__ import annotations

from typing import TextIO

from ._job import MapJob
from ._memory import mib
from ._stages import CliStage
from ._tally import Tally


def start_lines(job: MapJob, stages: list[CliStage]) -> list[str]:
    """The input, the output, and each CLI's concurrency and memory estimate."""
    kept = len(job.previous.done)
    resumed = f" ({kept} already in {job.output}, skipped)" if kept else ""
    if job.previous.retry:
        resumed += f" ({len(job.previous.retry)} failed before, run again)"
    where = job.describe_output()
    lines = [f"map: {job.total} items from {job.source.describe()}{resumed} -> {where}"]
    budget = (
        f"memory budget {mib(job.budget)} ({job.budget_note})"
        if job.budget is not None
        else "no memory budget (MemAvailable unknown)"
    )
    for stage in stages:
        role = "cli" if stage.index == 0 else "fallback"
        lines.append(
            f"map: {role} {stage.name}: concurrency {stage.concurrency} "
            f"(--concurrency {stage.limit}; {budget}, "
            f"{mib(stage.default_estimate)} per process estimated)" + _standby_note(job, stage)
        )
    return lines


def _standby_note(job: MapJob, stage: CliStage) -> str:
    if stage.standby:
        return f"; standby {stage.standby} (counted in the memory budget)"
    if job.standby:
        return f"; no standby: {stage.spec.standby_refusal_reason()}"
    return ""


def summary_lines(
    job: MapJob,
    stages: list[CliStage],
    tally: Tally,
    *,
    lines_written: int,
    elapsed: float,
    interrupted: bool,
    reader_gone: bool = False,
) -> list[str]:
    """The end of a run: counts, CLIs, tokens and cost, latency, memory, how to resume."""
    head = "interrupted after" if interrupted else "finished"
    lines = [
        f"map: {head} {tally.done}/{tally.total} in {elapsed:.1f}s "
        f"({tally.rate(elapsed):.1f}/s): {tally.ok} ok, {tally.failures()}"
    ]
    if job.previous.done:
        lines.append(
            f"map: kept from before: {len(job.previous.done)} "
            f"({job.previous.failed} of them failed)"
        )
    if tally.by_cli:
        clis = ", ".join(f"{name} {count}" for name, count in tally.by_cli.most_common())
        moved = f"; {tally.moved} moved to a fallback" if len(stages) > 1 else ""
        lines.append(f"map: by cli: {clis}{moved}")
    lines.append(f"map: tokens in {tally.tokens_in}, out {tally.tokens_out}; {cost_text(tally)}")
    p50, p95 = tally.percentile(0.5), tally.percentile(0.95)
    if p50 is not None and p95 is not None:
        lines.append(f"map: latency p50 {p50:.2f}s, p95 {p95:.2f}s; wall {elapsed:.1f}s")
    else:
        lines.append(f"map: latency p50 -, p95 -; wall {elapsed:.1f}s")
    lines += _memory_lines(job, stages)
    lines += _standby_lines(stages)
    if reader_gone:
        lines.append(
            f"map: standard output was closed by its reader; stopped after {lines_written} "
            "lines (the rest were not written)"
        )
    if interrupted:
        again = (
            "run again with --resume to finish"
            if not job.to_stdout
            else "with -o - there is nothing to resume from (the ids written are on stdout)"
        )
        lines.append(f"map: every CLI process was stopped; {lines_written} lines written; {again}")
    return lines


COST_NOTE = "the CLI's own estimate from its token counts and price list, not a bill"
"""What a CLI's cost is: claude prices the token counts the provider (or an emulator, whose
counts are its own estimates) sent back with its price list for the model; codex and gemini
report none; the fake CLI reports 0."""


def cost_text(tally: Tally) -> str:
    """``cost $1.5200 as reported by the CLI for 98 of 98 items (...)``."""
    if tally.cost is None:
        return "cost not reported by the CLI"
    share = f"{tally.cost_items} of {tally.done} items"
    return f"cost ${tally.cost:.4f} as reported by the CLI for {share} ({COST_NOTE})"


def _standby_lines(stages: list[CliStage]) -> list[str]:
    lines = []
    for stage in stages:
        if stage.standby and stage.sup is not None:
            stats = stage.sup.statistics()
            lines.append(
                f"map: standby {stage.name}: {stats.standby_taken} calls took a standby "
                f"process, {stats.standby_discarded} discarded, {stats.standby_recycled} "
                "recycled"
            )
    return lines


def _memory_lines(job: MapJob, stages: list[CliStage]) -> list[str]:
    budget = mib(job.budget) if job.budget is not None else "none"
    lines = []
    for stage in stages:
        peak = mib(stage.peak) if stage.observed else "not observed"
        change = (
            f"{stage.start_concurrency} -> {stage.concurrency}"
            if stage.concurrency != stage.start_concurrency
            else str(stage.concurrency)
        )
        lines.append(
            f"map: memory {stage.name}: budget {budget}, per-process peak {peak} "
            f"({stage.observed} processes sampled), estimate {mib(stage.estimate())}, "
            f"concurrency {change}"
        )
    return lines


def print_lines(lines: list[str], stream: TextIO) -> None:
    """Print the report ``lines`` on ``stream`` at once (flushed: a progress line is seen)."""
    for line in lines:
        print(line, file=stream)
    stream.flush()
