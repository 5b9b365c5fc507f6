"""Fan-out: 10k fake-CLI calls at concurrency 64, ours against the reference document's design.

    python bench/fanout.py [--calls 10000] [--concurrency 64] [--rounds 1]

Reports, for the same workload (N calls of the embedded fake CLI, a tiny plan, no latency):

- throughput of each side (calls/s) and the ratio ours/asyncio;
- peak RSS (VmHWM) of each side's process, and its RSS after imports, before the work;
- Python-side memory per in-flight actor (tracemalloc): 64 calls that hang until cancelled,
  traced memory with them in flight minus the baseline, divided by 64; the same is
  measured for the asyncio design.

Ours: ``sup.map_stream`` over a generator of prompts with
``open_supervisor(actors.fake(plan), concurrency=64)``: at most 64 processes, and only a
small multiple of that in prompts and tasks at any time. The reference document's design:
``asyncio.create_subprocess_exec`` with piped stdout/stderr, ``communicate()`` under
``asyncio.wait_for``, an ``asyncio.Semaphore(64)`` and ``asyncio.gather`` over all N tasks
created up front, as its "Batch Processing with Concurrency Control" example does. Both
parse the CLI's JSON lines into the final text and check it.

Each side runs in its own subprocess (``--side trio``, ``--side asyncio``, ``--side
memory``), so each peak RSS is that side's alone. With ``--rounds R`` the sides alternate
and medians are reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLAN: dict[str, object] = {"chunks": 1}  # a clean, instant answer: two events and a result
HANG_RULE: dict[str, object] = {"match": "hang", "hang": True}
TIMEOUT_S = 300.0  # TimeoutConfig().total_execution, the per-call limit on both sides


def fake_cli_argv(plan: dict[str, object]) -> list[str]:
    from actors._fakes._plan import fake_argv

    return list(fake_argv(plan))


def rss_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def prompt(index: int) -> str:
    return f"prompt {index}"


def expected(index: int) -> str:
    return f"echo: {prompt(index)}"


# ------------------------------------------------------------------------ ours (trio)


async def ours(calls: int, concurrency: int) -> dict[str, Any]:
    import trio

    import actors
    from supervisor import LLMError, open_supervisor

    def prompts(count: int) -> Iterator[str]:
        for index in range(count):
            yield prompt(index)

    errors: Counter[str] = Counter()

    async def run(count: int) -> tuple[int, float]:
        ok = 0
        start = trio.current_time()
        async with (
            open_supervisor(actors.fake(PLAN), concurrency=concurrency) as sup,
            sup.map_stream(prompts(count)) as results,
        ):
            async for done in results:
                outcome = done.outcome
                if isinstance(outcome, LLMError):
                    errors[f"{outcome.category.value}: {outcome.message[:200]}"] += 1
                elif outcome.text == expected(done.index):
                    ok += 1
                else:
                    errors[f"wrong answer: {outcome.text[:100]!r}"] += 1
        return ok, trio.current_time() - start

    await run(concurrency)  # warm up: thread cache, page cache
    rss_before = rss_kib("VmRSS")
    ok, seconds = await run(calls)
    return {"ok": ok, "seconds": seconds, "rss_before_kib": rss_before, "errors": errors}


# -------------------------------------------------------- the reference design (asyncio)


async def reference_call(argv: list[str], text: str, limit_s: float) -> str:
    """One call as the reference's wrapper makes it: spawn, communicate, parse."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *argv, "--", text, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"timed out after {limit_s}s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"exit code {proc.returncode}: {stderr.decode(errors='replace')}")
    answer = ""
    for line in stdout.decode().splitlines():
        event = json.loads(line)
        if event.get("type") == "result":
            answer = event["text"]
    return answer


async def reference_batch(argv: list[str], calls: int, concurrency: int) -> list[dict[str, Any]]:
    """The reference's batch: a semaphore, every task created up front, one gather."""
    import asyncio

    semaphore = asyncio.Semaphore(concurrency)

    async def analyze_one(index: int) -> dict[str, Any]:
        async with semaphore:
            try:
                result = await reference_call(argv, prompt(index), TIMEOUT_S)
                return {"file": index, "result": result}
            except Exception as e:
                return {"file": index, "error": str(e)}

    tasks = [analyze_one(index) for index in range(calls)]
    return await asyncio.gather(*tasks)


async def theirs(argv: list[str], calls: int, concurrency: int) -> dict[str, Any]:
    import asyncio

    loop = asyncio.get_running_loop()
    await reference_batch(argv, concurrency, concurrency)  # warm up, as ours does
    rss_before = rss_kib("VmRSS")
    start = loop.time()
    results = await reference_batch(argv, calls, concurrency)
    seconds = loop.time() - start
    ok = sum(r.get("result") == expected(r["file"]) for r in results)
    errors = Counter(str(r.get("error", "wrong answer"))[:200] for r in results if "error" in r)
    return {"ok": ok, "seconds": seconds, "rss_before_kib": rss_before, "errors": errors}


# ------------------------------------------------------------ memory per in-flight call


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def ours_in_flight_bytes(concurrency: int) -> float:
    """tracemalloc growth per call while ``concurrency`` calls hang in flight."""
    import trio

    import actors
    from supervisor import open_supervisor

    plan = {**PLAN, "rules": [HANG_RULE]}
    async with open_supervisor(actors.fake(plan), concurrency=concurrency) as sup:
        await sup.map([prompt(i) for i in range(concurrency)])  # warm up
        spawned = sup.statistics().processes_spawned
        tracemalloc.start()
        baseline = traced_now()
        async with trio.open_nursery() as nursery:
            for index in range(concurrency):
                nursery.start_soon(sup.ask, f"hang {index}")
            while sup.statistics().processes_spawned < spawned + concurrency:  # noqa: ASYNC110
                await trio.sleep(0.05)
            await trio.sleep(1.0)  # each has read its CLI's first event by now
            in_flight = sup.statistics().in_flight
            current = traced_now()
            nursery.cancel_scope.cancel()
        tracemalloc.stop()
    assert in_flight == concurrency, in_flight
    return (current - baseline) / concurrency


async def theirs_in_flight_bytes(argv: list[str], concurrency: int) -> float:
    """The same for the reference design (processes are killed by hand afterwards: its
    calls leave them running when cancelled)."""
    import asyncio

    procs: list[asyncio.subprocess.Process] = []
    original = asyncio.create_subprocess_exec

    async def tracked(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await original(*args, **kwargs)
        procs.append(proc)
        return proc

    await reference_batch(argv, concurrency, concurrency)  # warm up
    tracemalloc.start()
    baseline = traced_now()
    asyncio.create_subprocess_exec = tracked
    tasks: list[asyncio.Future[str]] = []
    try:
        tasks = [
            asyncio.ensure_future(reference_call(argv, f"hang {index}", TIMEOUT_S))
            for index in range(concurrency)
        ]
        while len(procs) < concurrency:  # noqa: ASYNC110 - polling is fine in a bench
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        current = traced_now()
    finally:
        asyncio.create_subprocess_exec = original
        tracemalloc.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    return (current - baseline) / concurrency


def measure_memory(concurrency: int) -> dict[str, Any]:
    import asyncio

    import trio

    theirs_argv = fake_cli_argv({**PLAN, "rules": [HANG_RULE]})
    return {
        "ours_bytes": trio.run(ours_in_flight_bytes, concurrency),
        "theirs_bytes": asyncio.run(theirs_in_flight_bytes(theirs_argv, concurrency)),
    }


# ------------------------------------------------------------------------ the driver


def run_side(side: str, calls: int, concurrency: int) -> dict[str, Any]:
    """Run one side in a fresh interpreter; return its JSON report."""
    argv = [sys.executable, __file__, "--side", side]
    argv += ["--calls", str(calls), "--concurrency", str(concurrency)]
    done = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    if done.returncode != 0:
        raise SystemExit(f"--side {side} failed ({done.returncode}):\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if "ok" in report and report["ok"] != calls:
        print(f"  --side {side}: {calls - report['ok']} of {calls} calls failed:")
        for message, count in sorted(report["errors"].items(), key=lambda item: -item[1]):
            print(f"    {count} x {message}")
    return report


def child(side: str, calls: int, concurrency: int) -> None:
    if side == "trio":
        import trio

        report = trio.run(ours, calls, concurrency)
    elif side == "asyncio":
        import asyncio

        # The argv comes from the parent, so this process imports nothing of ours.
        argv = json.loads(os.environ["FANOUT_CLI_ARGV"])
        report = asyncio.run(theirs(argv, calls, concurrency))
    else:
        report = measure_memory(concurrency)
    report["peak_rss_kib"] = rss_kib("VmHWM")
    print(json.dumps(report))


def mib(kib: float) -> str:
    return f"{kib / 1024:6.1f} MB"


def main(calls: int, concurrency: int, rounds: int) -> None:
    os.environ["FANOUT_CLI_ARGV"] = json.dumps(fake_cli_argv(PLAN))
    print(
        f"{calls} calls of the fake CLI at concurrency {concurrency}, each side in its own process"
    )
    reports: dict[str, list[dict[str, Any]]] = {"trio": [], "asyncio": []}
    started = time.monotonic()
    for number in range(rounds):
        order = ["trio", "asyncio"] if number % 2 == 0 else ["asyncio", "trio"]
        for side in order:
            report = run_side(side, calls, concurrency)
            reports[side].append(report)
            print(
                f"  round {number + 1} {side:>7}: {calls / report['seconds']:6.0f} calls/s, "
                f"peak RSS {mib(report['peak_rss_kib'])}, {report['ok']}/{calls} ok",
                flush=True,
            )
    memory = run_side("memory", calls, concurrency)

    def rate(side: str) -> float:
        return float(statistics.median(calls / r["seconds"] for r in reports[side]))

    def median_kib(side: str, key: str) -> float:
        return float(statistics.median(r[key] for r in reports[side]))

    labels = {"trio": "ours (trio, sup.map_stream)", "asyncio": "reference (asyncio, gather)"}
    print()
    for side in ("trio", "asyncio"):
        peak, before = median_kib(side, "peak_rss_kib"), median_kib(side, "rss_before_kib")
        print(
            f"{labels[side]:<28} {rate(side):6.0f} calls/s   peak RSS {mib(peak)} "
            f"(after imports {mib(before)}, growth {mib(peak - before)})"
        )
    print(f"throughput ratio ours/asyncio: {rate('trio') / rate('asyncio'):.2f}x")
    peak_ratio = median_kib("trio", "peak_rss_kib") / median_kib("asyncio", "peak_rss_kib")
    print(f"peak RSS ratio ours/asyncio:   {peak_ratio:.2f}x")
    print(
        f"Python-side memory per in-flight call (tracemalloc, {concurrency} hung calls): "
        f"ours {memory['ours_bytes'] / 1024:.1f} KiB per actor, "
        f"asyncio {memory['theirs_bytes'] / 1024:.1f} KiB per call"
    )
    print(f"({rounds} round(s), {time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per side")
    parser.add_argument("--side", choices=["trio", "asyncio", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.calls, args.concurrency)
    else:
        main(args.calls, args.concurrency, args.rounds)
