"""Embedding the supervisor in your own long-running trio daemon.

    python examples/daemon.py [--cli fake|claude|codex|gemini] [--interval 1.0]
                              [--duration S] [--job NAME]

A periodic job fans out a few prompts every ``--interval`` seconds through one supervisor
with a circuit breaker, and logs the supervisor's `statistics()` after each round. The
daemon runs until SIGTERM or SIGINT (or for ``--duration`` seconds), then shuts down
cleanly: the round in flight is cancelled, which stops every CLI process it started, and
the process exits 0. If a round is still running when the next one is due, that tick is
skipped rather than piling work up.

With the fake CLI, the deploy check of round 2 crashes mid-answer on every attempt, round 3 is
rate limited by the "provider" for 2 s (the breaker opens until then, the round's calls
wait for it, and the first trial call closes it again) and a ``--job``
name containing ``stuck`` makes every call hang until the 3 s attempt timeout, which is
handy to watch a shutdown stop processes in flight.
"""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from examples._common import cli_spec, make_parser, run
from supervisor import (
    CircuitBreaker,
    LLMError,
    RetryConfig,
    Supervisor,
    SupervisorStatistics,
    TimeoutConfig,
    open_supervisor,
)

logger = logging.getLogger("daemon")


def fake_plan(state_dir: str) -> dict[str, object]:
    """The fake CLI's script: 0.1 s per answer, and the faults described above."""
    return {
        "latency_s": 0.1,
        "chunks": 3,
        "chunk_gap_s": 0.02,
        "state_dir": state_dir,  # where fail_first keeps its counters
        "rules": [
            {"match": "stuck", "hang": True},
            {"match": "deploy status (round 2)", "crash_after_chunks": 1},
            {
                "match": "(round 3)",
                "fail_first": 1,
                "fail_with": "rate_limit",
                "fail_retry_after_s": 2,
            },
        ],
    }


TASKS = [
    "summarize the new entries of the error log",
    "triage the open tickets",
    "check the deploy status",
    "draft the status report",
]


def format_statistics(stats: SupervisorStatistics) -> str:
    failures = ", ".join(f"{k}={v}" for k, v in sorted(stats.failures_by_category.items()))
    breaker = stats.breaker_state.value if stats.breaker_state else "none"
    return (
        f"statistics: started={stats.started} succeeded={stats.succeeded} "
        f"failed={stats.failed} ({failures or 'no failures'}) retries={stats.retries} "
        f"in_flight={stats.in_flight} processes={stats.processes_spawned} "
        f"breaker={breaker} opened={stats.breaker_opened} rejected={stats.breaker_rejections}"
    )


async def run_round(sup: Supervisor, job: str, number: int) -> None:
    """One round of the periodic job: every task, one outcome each."""
    prompts = [f"[{job}] {task} (round {number})" for task in TASKS]
    outcomes = await sup.map(prompts)
    failed = [o for o in outcomes if isinstance(o, LLMError)]
    categories = ", ".join(sorted({e.category.value for e in failed}))
    logger.info(
        "round %d: %d ok, %d failed%s",
        number,
        len(outcomes) - len(failed),
        len(failed),
        f" ({categories})" if failed else "",
    )
    logger.info("%s", format_statistics(sup.statistics()))


async def periodic_job(sup: Supervisor, job: str, interval: float) -> None:
    """Start a round every ``interval`` seconds; skip a tick while one is still running."""
    async with trio.open_nursery() as nursery:
        running = False
        number = 0

        async def one_round(n: int) -> None:
            nonlocal running
            try:
                await run_round(sup, job, n)
            finally:
                running = False

        while True:
            number += 1
            if running:
                logger.info("round %d skipped: the previous one is still running", number)
            else:
                running = True
                nursery.start_soon(one_round, number)
            await trio.sleep(interval)


async def main(
    cli: str = "fake", interval: float = 1.0, duration: float | None = None, job: str = "nightly"
) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout
    )
    logging.getLogger("llmsup").setLevel(logging.WARNING)  # the library: failures only
    breaker = CircuitBreaker(failure_threshold=5, success_threshold=1, timeout_seconds=10)
    timeouts = TimeoutConfig(
        total_execution=3 if cli == "fake" else 300, chunk_receive=120, graceful_shutdown=2
    )
    # Signals first: from here on SIGINT and SIGTERM are events, not exceptions.
    with (
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        tempfile.TemporaryDirectory(prefix="llmsup-daemon-") as state_dir,
    ):
        spec = cli_spec(cli, fake_plan(state_dir))
        async with open_supervisor(
            spec,
            breaker=breaker,
            # Background work may wait for an open breaker (here up to 30 s) instead of
            # failing fast as a request handler should; waiting holds no process slot.
            breaker_wait=30,
            concurrency=4,
            retry=RetryConfig(max_attempts=2, initial_delay_ms=100),
            timeouts=timeouts,
        ) as sup:
            logger.info("daemon started: cli=%s job=%s interval=%ss", spec.name, job, interval)
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for signum in signals:
                        logger.info("%s received: shutting down", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                nursery.start_soon(periodic_job, sup, job, interval)
                if duration is not None:
                    nursery.cancel_scope.deadline = trio.current_time() + duration
            # The job is cancelled: every call it had in flight has stopped its CLI.
            logger.info("final %s", format_statistics(sup.statistics()))
    logger.info("daemon stopped cleanly")


if __name__ == "__main__":
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--duration", type=float, default=None, help="exit after S seconds")
    parser.add_argument("--job", default="nightly", help="the job's name, part of each prompt")
    args = parser.parse_args()
    run(main, args.cli, args.interval, args.duration, args.job)
