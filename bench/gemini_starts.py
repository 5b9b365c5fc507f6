"""gemini fan-out: time to first output with one shared home against a home per process.

    bash .ci/install-clis.sh && python bench/gemini_starts.py [--concurrency 6] [--rounds 4]

Every gemini start takes a lock on ``~/.gemini/projects.json`` whose retries back off
exponentially, so concurrent starts that share a home can queue for seconds. Each round
starts ``concurrency`` gemini calls at once through one supervisor, against the emulator,
first all sharing one home, then each with its own (alternating which goes first), and
records how long each call took to print its first line. It prints p50, p95 and the worst
start of each side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _clis import CLI_DIR

import actors
from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import RetryConfig, TimeoutConfig
from supervisor._engine import open_engine


async def one_round(base_url: str, concurrency: int, shared: bool, scratch: Path) -> list[float]:
    starts: list[float] = []
    binary = str(CLI_DIR / "gemini")
    spec = actors.gemini(binary, cwd=str(scratch))
    timeouts = TimeoutConfig(total_execution=120, chunk_receive=120)
    # The engine: each call runs its own spec (its own home).
    async with open_engine(spec, retry=RetryConfig(max_attempts=1), timeouts=timeouts) as engine:

        async def call(index: int) -> None:
            home = scratch / ("home" if shared else f"home-{index}")
            env = cli_environment("gemini", base_url, home, inherit=os.environ)
            own = actors.gemini(binary, env=env, cwd=str(scratch))
            began = trio.current_time()
            first: list[float] = []

            async def on_event(_event: object) -> None:
                if not first:
                    first.append(trio.current_time() - began)

            await engine.run_call(f"start {index}", on_event, spec=own)
            starts.append(first[0])

        async with trio.open_nursery() as nursery:
            for index in range(concurrency):
                nursery.start_soon(call, index)
    return starts


def summary(label: str, starts: list[float]) -> str:
    ordered = sorted(starts)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{label:>18}: p50 {statistics.median(ordered):5.2f} s   p95 {p95:5.2f} s   "
        f"worst {ordered[-1]:5.2f} s   ({len(ordered)} starts)"
    )


async def main(concurrency: int, rounds: int) -> None:
    if not (CLI_DIR / "gemini").exists():
        raise SystemExit(f"gemini not installed in {CLI_DIR}: run .ci/install-clis.sh")
    results: dict[bool, list[float]] = {True: [], False: []}
    async with open_emulator([]) as emulator:
        for round_number in range(rounds):
            order = (True, False) if round_number % 2 == 0 else (False, True)
            for shared in order:
                with tempfile.TemporaryDirectory() as scratch:
                    starts = await one_round(emulator.base_url, concurrency, shared, Path(scratch))
                results[shared] += starts
    print(f"gemini, {concurrency} concurrent starts x {rounds} rounds, time to first output")
    print(summary("one shared home", results[True]))
    print(summary("a home each", results[False]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4)
    options = parser.parse_args()
    trio.run(main, options.concurrency, options.rounds)
