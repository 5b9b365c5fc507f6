"""Wall time per call of the real CLIs: through the supervisor vs a bare trio.run_process.

    bash .ci/install-clis.sh && python bench/real_clis.py [--calls 8] [--cli claude codex gemini]

For each CLI both sides run the exact same argv, environment and stdin (taken from the
CLI's spec) against the provider emulator on loopback, one call at a time, alternating
sides so machine noise lands on both. It prints the median wall time per call and the
ratio supervised/bare (1.00 means the supervisor adds nothing measurable).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import actors
from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import Result, RetryConfig, open_supervisor

ROOT = Path(__file__).resolve().parent.parent
CLI_DIR = Path(os.environ.get("LLMSUP_CLI_DIR") or ROOT / ".clis" / "node_modules" / ".bin")
CliName = Literal["claude", "codex", "gemini"]
FACTORIES: dict[CliName, Callable[..., actors.CliSpec]] = {
    "claude": actors.claude,
    "codex": actors.codex,
    "gemini": actors.gemini,
}


async def bare_call(spec: actors.CliSpec, prompt: str) -> float:
    start = trio.current_time()
    payload = spec.stdin_payload(prompt)
    done = await trio.run_process(
        spec.build_argv(prompt),
        stdin=payload if payload is not None else b"",
        capture_stdout=True,
        capture_stderr=True,
        env=spec.build_env(),
        cwd=spec.cwd,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bare {spec.name} failed: {done.stderr.decode()[-500:]}")
    return trio.current_time() - start


async def bench_cli(name: CliName, calls: int) -> tuple[float, float] | None:
    binary = CLI_DIR / name
    if not binary.exists():
        print(f"{name:>7}: skipped (not installed; run .ci/install-clis.sh)")
        return None
    with tempfile.TemporaryDirectory(prefix=f"llmsup-bench-{name}-") as home:
        async with open_emulator() as emulator:
            env = cli_environment(name, emulator.base_url, Path(home) / "home", inherit=os.environ)
            spec = FACTORIES[name](str(binary), env=env, cwd=home)
            supervised: list[float] = []
            bare: list[float] = []
            async with open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup:
                await sup.ask("warm up")  # page cache, first-run files in the scratch home
                for index in range(calls):
                    for side in ("sup", "bare") if index % 2 == 0 else ("bare", "sup"):
                        prompt = f"benchmark call {index}"
                        if side == "bare":
                            bare.append(await bare_call(spec, prompt))
                        else:
                            start = trio.current_time()
                            result = await sup.ask(prompt)
                            assert isinstance(result, Result)
                            supervised.append(trio.current_time() - start)
    return statistics.median(supervised), statistics.median(bare)


async def main(names: list[CliName], calls: int) -> None:
    print(f"median wall time per call, {calls} calls per side, against the emulator")
    for name in names:
        measured = await bench_cli(name, calls)
        if measured is None:
            continue
        sup_s, bare_s = measured
        print(
            f"{name:>7}: supervised {sup_s * 1000:7.0f} ms   bare {bare_s * 1000:7.0f} ms   "
            f"ratio {sup_s / bare_s:.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--cli", nargs="+", default=sorted(FACTORIES), choices=sorted(FACTORIES))
    args = parser.parse_args()
    trio.run(main, args.cli, args.calls)
