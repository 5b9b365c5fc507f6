"""Supervisor overhead against a bare trio.run_process loop, side by side in one run.

    python bench/overhead.py [--calls 2000] [--concurrency 16] [--rounds 5]

Both sides run the same trivial native command (/bin/echo PROMPT) N times at the same
concurrency: ours through ``sup.map`` (actor per process, framing, classification, retry
and breaker bookkeeping, /proc-checked cleanup), the baseline through ``trio.run_process``
under a ``CapacityLimiter``. Rounds alternate to spread machine noise over both sides; the
ratio compares the median throughputs. Target: ours >= 0.85x the bare throughput.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actors
from supervisor import CircuitBreaker, Result, open_supervisor

ECHO = "/bin/echo"


async def bare(calls: int, concurrency: int) -> int:
    limiter = trio.CapacityLimiter(concurrency)
    ok = 0

    async def one(index: int) -> None:
        nonlocal ok
        async with limiter:
            done = await trio.run_process(
                [ECHO, f"prompt {index}"], capture_stdout=True, capture_stderr=True
            )
        ok += done.returncode == 0

    async with trio.open_nursery() as nursery:
        for index in range(calls):
            nursery.start_soon(one, index)
    return ok


async def supervised(calls: int, concurrency: int) -> int:
    async with open_supervisor(
        actors.command([ECHO]), concurrency=concurrency, breaker=CircuitBreaker()
    ) as sup:
        outcomes = await sup.map([f"prompt {index}" for index in range(calls)])
    return sum(isinstance(o, Result) for o in outcomes)


async def timed(fn: Callable[[int, int], Awaitable[int]], calls: int, concurrency: int) -> float:
    start = trio.current_time()
    ok = await fn(calls, concurrency)
    elapsed = trio.current_time() - start
    if ok != calls:
        raise SystemExit(f"{fn.__name__}: only {ok} of {calls} calls succeeded")
    return calls / elapsed


async def main(calls: int, concurrency: int, rounds: int) -> None:
    await timed(bare, 50, concurrency)  # warm up the thread pool and page cache
    await timed(supervised, 50, concurrency)
    results: dict[str, list[float]] = {"bare": [], "supervised": []}
    for round_number in range(rounds):
        order = (bare, supervised) if round_number % 2 == 0 else (supervised, bare)
        for fn in order:
            results[fn.__name__].append(await timed(fn, calls, concurrency))
    for name, values in results.items():
        rates = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:>11}: median {statistics.median(values):7.0f} calls/s  ({rates})")
    ratio = statistics.median(results["supervised"]) / statistics.median(results["bare"])
    print(f"ratio supervised/bare throughput: {ratio:.2f}x  (target >= 0.85x)")
    print(f"{calls} calls of {ECHO} per side per round, concurrency {concurrency}, {rounds} rounds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trio.run(main, args.calls, args.concurrency, args.rounds)
