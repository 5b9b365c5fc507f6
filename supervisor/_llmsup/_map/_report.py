"""What a run says before it starts and after it ends, as lines (printed by the command)."""

from __future__ import annotations

from ._job import MapJob
from ._memory import mib
from ._stages import CliStage
from ._tally import Tally


def start_lines(job: MapJob, stages: list[CliStage]) -> list[str]:
    """The input, the output, and each CLI's concurrency and memory estimate."""
    kept = len(job.previous.done)
    resumed = f" ({kept} already in {job.output}, skipped)" if kept else ""
    lines = [f"map: {job.total} items from {job.source.describe()}{resumed} -> {job.output}"]
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
            f"{mib(stage.default_estimate)} per process estimated)"
        )
    return lines


def summary_lines(
    job: MapJob,
    stages: list[CliStage],
    tally: Tally,
    *,
    lines_written: int,
    elapsed: float,
    interrupted: bool,
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
    cost = f"${tally.cost:.4f}" if tally.cost is not None else "unknown"
    lines.append(f"map: tokens in {tally.tokens_in}, out {tally.tokens_out}; cost {cost}")
    p50, p95 = tally.percentile(0.5), tally.percentile(0.95)
    if p50 is not None and p95 is not None:
        lines.append(f"map: latency p50 {p50:.2f}s, p95 {p95:.2f}s; wall {elapsed:.1f}s")
    else:
        lines.append(f"map: latency p50 -, p95 -; wall {elapsed:.1f}s")
    lines += _memory_lines(job, stages)
    if interrupted:
        lines.append(
            f"map: every CLI process was stopped; {lines_written} lines written; "
            "run again with --resume to finish"
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
