"""The command: its arguments, and run_map with Ctrl+C/SIGTERM handling and exit status."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator
from typing import TextIO

import trio

from .._options import add_cli_options
from ._job import prepare_job
from ._output import OutputFile
from ._report import start_lines, summary_lines
from ._run import MapRun, run_stages
from ._stages import build_stages
from ._tally import Tally

INTERRUPT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def add_map_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``map`` subcommand's own arguments plus the shared CLI and policy options."""
    parser.add_argument(
        "input", nargs="?", metavar="INPUT", help='JSON lines: {"id": ..., "prompt": ...}'
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT", help="JSON lines out, one per input"
    )
    parser.add_argument(
        "--template",
        help=r"prompt template for --files: {path} and {content} are substituted; \n is a newline",
    )
    parser.add_argument(
        "--files", metavar="GLOB", help="one prompt per matching file (** is recursive); id = path"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip the ids already in OUTPUT (answered or failed) and append the rest",
    )
    parser.add_argument(
        "--output-schema",
        metavar="module:Model|FILE",
        help="answers must be JSON of this pydantic model or JSON Schema file; written as data",
    )
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="memory for CLI processes, e.g. 2G or 500M (default: half of MemAvailable)",
    )
    add_cli_options(parser, concurrency=8)


async def _watch_signals(
    signals: AsyncIterator[int], work: trio.CancelScope, interrupted: list[int], stream: TextIO
) -> None:
    async for signum in signals:
        if not interrupted:
            interrupted.append(signum)
            work.cancel()
        else:
            print("map: still stopping the CLI processes...", file=stream, flush=True)


async def run_map(args: argparse.Namespace) -> int:
    """``llmsup map``; returns the exit status (see the package docstring)."""
    job = prepare_job(args)
    stream = sys.stderr
    stages = build_stages(job, job.policies.concurrency)
    _print_lines(start_lines(job, stages), stream)
    out = OutputFile(job.output)
    run = MapRun(job, stages, out, Tally(job.total))
    interrupted: list[int] = []
    started = trio.current_time()
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as guard:
                work = trio.CancelScope()
                guard.start_soon(_watch_signals, signals, work, interrupted, stream)
                with work:
                    await run_stages(run, started)
                guard.cancel_scope.cancel()
    finally:
        if run.progress is not None:
            run.progress.close()
        out.close()
    summary = summary_lines(
        job,
        stages,
        run.tally,
        lines_written=out.lines,
        elapsed=trio.current_time() - started,
        interrupted=bool(interrupted),
    )
    _print_lines(summary, stream)
    failed = bool(run.tally.failed) or job.previous.failed > 0
    return exit_status(interrupted[0] if interrupted else None, failed=failed)


def exit_status(signum: int | None, *, failed: bool) -> int:
    """130/143 when a signal stopped the run, else 1 when any item failed (now or before)."""
    if signum is not None:
        return INTERRUPT_STATUS.get(signal.Signals(signum), 130)
    return 1 if failed else 0


def _print_lines(lines: list[str], stream: TextIO) -> None:
    for line in lines:
        print(line, file=stream)
    stream.flush()
