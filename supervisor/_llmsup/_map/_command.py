"""The command: its arguments, and run_map with Ctrl+C/SIGTERM handling and exit status."""

from __future__ import annotations

import argparse
import os
import sys

import trio

from .._options import BadUsage, add_cli_options
from .._signals import STOP_SIGNALS, StopRequest, signal_status, watch_stop_signals
from ._job import MapJob, prepare_job
from ._output import OutputFile, ReplacingOutput
from ._report import print_lines, start_lines, summary_lines
from ._run import MapRun, run_stages
from ._stages import build_stages
from ._tally import Tally

INTERRUPT_STATUS = {signum: signal_status(signum) for signum in STOP_SIGNALS}
"""130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP: 128+signal."""


def add_map_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``map`` subcommand's own arguments plus the shared CLI and policy options."""
    parser.add_argument(
        "input",
        nargs="?",
        metavar="INPUT",
        help='JSON lines: {"id": ..., "prompt": ..., other fields come back in the output}; '
        "- reads standard input",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="JSON lines out, one per input, in completion order; - writes them to standard "
        "output (progress and summary stay on stderr) (required)",
    )
    parser.add_argument(
        "--template",
        help=r"prompt template for --files: {path} and {content} are substituted; \n is a "
        "newline (default: none, prompts come from INPUT)",
    )
    parser.add_argument(
        "--files",
        metavar="GLOB",
        help="one prompt per matching file (** is recursive); id = path (default: none)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip the ids already in OUTPUT (answered or failed) and append the rest",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="as --resume, and also run again the ids whose line in OUTPUT says ok: false; "
        "their new lines replace the old ones (a new file renamed over OUTPUT at the end)",
    )
    parser.add_argument(
        "--output-schema",
        metavar="module:Model|FILE",
        help="answers must be JSON of this pydantic model or JSON Schema file; written as "
        "data (default: none, answers are text)",
    )
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="memory for CLI processes (standby ones included), e.g. 2G or 500M "
        "(default: half of MemAvailable)",
    )
    parser.add_argument(
        "--standby",
        type=int,
        default=0,
        metavar="N",
        help="keep N processes of each CLI started and waiting for their prompt, to hide "
        "start-up time (default: 0, none)",
    )
    _add_ray_argument(parser)
    add_cli_options(parser, concurrency=8)


def _add_ray_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the items on a Ray cluster: auto (as Ray means it), local (start one "
        "here) or an address; --concurrency is per node (needs the [ray] extra) "
        "(default: none, run on this machine)",
    )


async def run_map(args: argparse.Namespace) -> int:
    """``llmsup map``; returns the exit status (see the package docstring)."""
    if getattr(args, "ray", None) is not None:
        _require_ray()
    job = prepare_job(args)
    try:
        return await _run_job(job, getattr(args, "ray", None))
    finally:
        job.source.close()


async def _run_job(job: MapJob, ray: str | None = None) -> int:
    stream = sys.stderr
    stages = build_stages(job, job.policies.concurrency)
    print_lines(start_lines(job, stages), stream)
    out = open_output(job)
    run = MapRun(job, stages, out, Tally(job.total))
    interrupted = StopRequest()
    started = trio.current_time()
    complete = True
    try:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with trio.open_nursery() as guard:
                work = trio.CancelScope()
                run.stop = work.cancel
                repeat = "map: still stopping the CLI processes..."
                guard.start_soon(watch_stop_signals, signals, work, interrupted, stream, repeat)
                with work:
                    if ray is not None:
                        from ._on_ray import run_on_ray  # imports ray: only when asked

                        complete = await run_on_ray(run, ray, stream)
                    else:
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
        reader_gone=out.closed_reader,
    )
    print_lines(summary, stream)
    failed = bool(run.tally.failed) or job.previous.failed > 0 or not complete or out.closed_reader
    return exit_status(interrupted.signum, failed=failed)


def open_output(job: MapJob) -> OutputFile:
    """Where the lines go: appended to OUTPUT (or stdout), or, for --retry-failed over an
    existing OUTPUT, a new file renamed over it when the run ends."""
    if job.retry_failed and os.path.exists(job.output):
        return ReplacingOutput(job.output, job.previous.retry)
    return OutputFile(job.output)


def _require_ray() -> None:
    from supervisor.ray import RayNotInstalled, require_ray

    try:
        require_ray()
    except RayNotInstalled as exc:
        raise BadUsage(f"--ray: {exc}") from None


def exit_status(signum: int | None, *, failed: bool) -> int:
    """128+signal (130, 143, 129) when a signal stopped the run, else 1 when any item failed
    (now or before)."""
    if signum is not None:
        return signal_status(signum)
    return 1 if failed else 0
