"""The command: its arguments, and run_map with Ctrl+C/SIGTERM handling and exit status."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import trio

from .._options import add_cli_options
from .._signals import STOP_SIGNALS, StopRequest, signal_status, watch_stop_signals
from ._job import prepare_job
from ._output import OutputFile
from ._report import start_lines, summary_lines
from ._run import MapRun, run_stages
from ._stages import build_stages
from ._tally import Tally

INTERRUPT_STATUS = {signum: signal_status(signum) for signum in STOP_SIGNALS}
"""130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP: 128+signal."""


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


async def run_map(args: argparse.Namespace) -> int:
    """``llmsup map``; returns the exit status (see the package docstring)."""
    job = prepare_job(args)
    stream = sys.stderr
    stages = build_stages(job, job.policies.concurrency)
    _print_lines(start_lines(job, stages), stream)
    out = OutputFile(job.output)
    run = MapRun(job, stages, out, Tally(job.total))
    interrupted = StopRequest()
    started = trio.current_time()
    try:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with trio.open_nursery() as guard:
                work = trio.CancelScope()
                repeat = "map: still stopping the CLI processes..."
                guard.start_soon(watch_stop_signals, signals, work, interrupted, stream, repeat)
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
        interrupted=interrupted.signum is not None,
    )
    _print_lines(summary, stream)
    failed = bool(run.tally.failed) or job.previous.failed > 0
    return exit_status(interrupted.signum, failed=failed)


def exit_status(signum: int | None, *, failed: bool) -> int:
    """128+signal (130, 143, 129) when a signal stopped the run, else 1 when any item failed
    (now or before)."""
    if signum is not None:
        return signal_status(signum)
    return 1 if failed else 0


def _print_lines(lines: list[str], stream: TextIO) -> None:
    for line in lines:
        print(line, file=stream)
    stream.flush()
