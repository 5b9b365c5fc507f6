"""Standby processes against cold starts: the real CLIs, and `llmsup serve`, on the emulator.

    bash .ci/install-clis.sh && python bench/standby.py [--calls 20] [--cli claude codex gemini]
    python bench/standby.py --serve [--requests 50] [--rounds 2]

Per CLI: two supervisors of the same spec (same argv, environment, scratch home and folder)
against the provider emulator on loopback, one with ``standby=1`` and one with ``standby=0``.
Calls are sequential and alternate sides (A B, then B A, ...) so machine noise lands on both;
before every call the bench waits until the standby pool holds a process again and then
``--gap`` seconds more, long enough for the refill's start-up to finish (so neither side
competes with a refill). It prints p50 and p95 wall time per call of each side and the ratio
standby/cold; a CLI whose spec refuses standby (``standby_refusal_reason()``) is reported, not
measured.

``--serve``: ``llmsup serve --cli claude --emulator URL --standby N`` for N = 4 and 0
(alternating across rounds), each answering ``--requests`` concurrent ``POST /ask`` once its
standby processes are up; it prints p50 and p95 latency of each.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _clis import CLI_DIR, FACTORIES, ROOT, CliName

from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import Result, RetryConfig, Supervisor, TimeoutConfig, open_supervisor

TIMEOUTS = TimeoutConfig(total_execution=120, chunk_receive=60, first_output=60)
READY_WAIT_S = 60.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(values: Sequence[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 0.95)


async def wait_ready(sup: Supervisor, gap: float) -> None:
    """Until the pool holds a process again, then `gap` s for its start-up to finish."""
    with trio.move_on_after(READY_WAIT_S):
        while sup.statistics().standby_ready < 1:  # noqa: ASYNC110 - a counter, no event
            await trio.sleep(0.05)
    await trio.sleep(gap)


async def timed_ask(sup: Supervisor, prompt: str) -> float:
    start = trio.current_time()
    result = await sup.ask(prompt)
    assert isinstance(result, Result)
    return trio.current_time() - start


async def bench_cli(name: CliName, calls: int, gap: float, show: bool) -> None:
    binary = CLI_DIR / name
    if not binary.exists():
        print(f"{name:>7}: skipped (not installed; run .ci/install-clis.sh)")
        return
    with tempfile.TemporaryDirectory(prefix=f"llmsup-standby-{name}-") as scratch:
        async with open_emulator() as emulator:
            env = cli_environment(
                name, emulator.base_url, Path(scratch) / "home", inherit=os.environ
            )
            spec = FACTORIES[name](str(binary), env=env, cwd=scratch)
            refusal = spec.standby_refusal_reason()
            if refusal is not None:
                print(f"{name:>7}: standby refused: {refusal}")
                return
            retry = RetryConfig(max_attempts=1)
            times: dict[bool, list[float]] = {True: [], False: []}
            async with (
                open_supervisor(spec, retry=retry, timeouts=TIMEOUTS, standby=1) as hot,
                open_supervisor(spec, retry=retry, timeouts=TIMEOUTS, standby=0) as cold,
            ):
                for sup in (hot, cold):  # page cache, first-run files in the scratch home
                    await wait_ready(hot, gap)
                    await sup.ask("warm up")
                for index in range(calls):
                    for standby in (True, False) if index % 2 == 0 else (False, True):
                        await wait_ready(hot, gap)
                        sup = hot if standby else cold
                        times[standby].append(await timed_ask(sup, f"benchmark call {index}"))
                stats = hot.statistics()
    (hot_p50, hot_p95), (cold_p50, cold_p95) = summary(times[True]), summary(times[False])
    if show:
        for label, values in (("standby", times[True]), ("cold", times[False])):
            print(f"{'':>9}{label} (s): " + " ".join(f"{v:.2f}" for v in values))
    print(
        f"{name:>7}: standby p50 {hot_p50 * 1000:6.0f} ms  p95 {hot_p95 * 1000:6.0f} ms   "
        f"cold p50 {cold_p50 * 1000:6.0f} ms  p95 {cold_p95 * 1000:6.0f} ms   "
        f"ratio p50 {hot_p50 / cold_p50:.2f}x  p95 {hot_p95 / cold_p95:.2f}x   "
        f"(taken {stats.standby_taken}, discarded {stats.standby_discarded})"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def serve_round(base_url: str, standby: int, requests: int, gap: float) -> list[float]:
    """One `llmsup serve` with ``--standby standby``: `requests` concurrent /ask."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "supervisor._llmsup",
        "serve",
        "--cli=claude",
        f"--emulator={base_url}",
        f"--standby={standby}",
        f"--port={port}",
        "--max-attempts=1",
    ]
    env = {**os.environ, "LLMSUP_CLI_DIR": str(CLI_DIR)}
    server = await trio.lowlevel.open_process(
        argv, cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            await wait_healthy(client, standby)
            await trio.sleep(gap)  # the standby processes' start-up

            async def one(index: int) -> None:
                start = trio.current_time()
                response = await client.post("/ask", json={"prompt": f"burst call {index}"})
                response.raise_for_status()
                latencies.append(trio.current_time() - start)

            async with trio.open_nursery() as nursery:
                for index in range(requests):
                    nursery.start_soon(one, index)
    finally:
        server.send_signal(signal.SIGTERM)
        with trio.move_on_after(30):
            await server.wait()
        if server.returncode is None:
            server.kill()
            await server.wait()
    return latencies


async def wait_healthy(client: httpx.AsyncClient, standby: int) -> None:
    """Until the server answers and (with standby) its pool is full."""
    with trio.fail_after(READY_WAIT_S):
        while True:
            try:
                health = await client.get("/health")
                metrics = await client.get("/metrics")
            except httpx.TransportError:
                await trio.sleep(0.1)
                continue
            if health.status_code == 200 and _ready(metrics.text) >= standby:
                return
            await trio.sleep(0.1)


def _ready(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("llmsup_standby_ready"):
            return float(line.split()[-1])
    return 0.0


async def bench_serve(requests: int, rounds: int, gap: float) -> None:
    if not (CLI_DIR / "claude").exists():
        raise SystemExit(f"claude not installed in {CLI_DIR}: run .ci/install-clis.sh")
    results: dict[int, list[float]] = {4: [], 0: []}
    async with open_emulator() as emulator:
        for round_number in range(rounds):
            for standby in (4, 0) if round_number % 2 == 0 else (0, 4):
                results[standby] += await serve_round(emulator.base_url, standby, requests, gap)
    print(f"llmsup serve --cli claude, {requests} concurrent /ask x {rounds} rounds, emulator")
    for standby, latencies in results.items():
        p50, p95 = summary(latencies)
        count = len(latencies)
        print(f"  --standby {standby}: p50 {p50:6.2f} s  p95 {p95:6.2f} s  ({count} calls)")
    hot, cold = summary(results[4]), summary(results[0])
    print(f"  ratio standby/cold: p50 {hot[0] / cold[0]:.2f}x  p95 {hot[1] / cold[1]:.2f}x")


async def main(options: argparse.Namespace) -> None:
    if options.serve:
        await bench_serve(options.requests, options.rounds, options.gap)
        return
    print(
        f"wall time per call, {options.calls} sequential calls per side, standby=1 vs "
        f"standby=0, against the emulator"
    )
    for name in options.cli:
        await bench_cli(name, options.calls, options.gap, options.show)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--cli", nargs="+", default=sorted(FACTORIES), choices=sorted(FACTORIES))
    parser.add_argument(
        "--gap", type=float, default=4.0, help="seconds for a refill's start-up (default: 4)"
    )
    parser.add_argument("--show", action="store_true", help="print every call's time too")
    parser.add_argument("--serve", action="store_true", help="llmsup serve --standby 4 vs 0")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    trio.run(main, parser.parse_args())
