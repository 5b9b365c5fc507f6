"""The command: its arguments, and run_map with Ctrl+C/SIGTERM handling and exit status."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator
from typing import TextIO

import trio

from .._options import add_cli_options
from ._job import _prepare
from ._output import _Output
from ._progress import _start_lines, _summary, _Tally
from ._run import _Run, _run_stages
from ._stages import _stages

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
    job = _prepare(args)
    stream = sys.stderr
    stages = _stages(job, job.policies.concurrency)
    _start_lines(job, stages, stream)
    out = _Output(job.output)
    run = _Run(job, stages, out, _Tally(job.total))
    interrupted: list[int] = []
    started = trio.current_time()
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as guard:
                work = trio.CancelScope()
                guard.start_soon(_watch_signals, signals, work, interrupted, stream)
                with work:
                    await _run_stages(run, job, stages, started)
                guard.cancel_scope.cancel()
    finally:
        if run.progress is not None:
            run.progress.close()
        out.close()
    _summary(run, trio.current_time() - started, bool(interrupted), stream)
    if interrupted:
        return INTERRUPT_STATUS.get(signal.Signals(interrupted[0]), 130)
    return 1 if run.tally.failed or job.previous.failed else 0
