"""Wall time per call of the real CLIs: through the supervisor vs a bare trio.run_process.

    bash .ci/install-clis.sh && python bench/real_clis.py [--calls 8] [--cli claude codex gemini]

For each CLI both sides run the exact same argv, environment and stdin (taken from the
CLI's spec) against the provider emulator on loopback, one call at a time, alternating
sides so machine noise lands on both. It prints the median wall time per call and the
ratio supervised/bare (1.00 means the supervisor adds nothing measurable).

``--claude-flags``: bare claude calls side by side, alternating, with claude's argv as
``actors.claude()`` builds it ("now": the prompt as a stream-json user message), the same
without ``--input-format stream-json`` (the prompt as plain text, as before), and with the
Claude Agent SDK's other choices on top (``--system-prompt ""``,
``CLAUDE_CODE_ENTRYPOINT=sdk-py``). It prints median wall and CPU time per call (the CLI's
own, from its rusage) and each as a ratio to "now".
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _clis import CLI_DIR, FACTORIES, CliName

import actors
from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import Result, RetryConfig, open_supervisor


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


async def timed_bare(argv: list[str], env: dict[str, str], cwd: str, payload: bytes) -> float:
    """CPU seconds of one bare call (wall time goes to the caller's clock)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = await trio.run_process(
        argv, stdin=payload, capture_stdout=True, capture_stderr=True, env=env, cwd=cwd, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or b'"subtype":"success"' not in done.stdout:
        raise SystemExit(f"claude failed: {done.stderr.decode()[-500:]}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


async def bench_claude_flags(calls: int) -> None:
    if not (CLI_DIR / "claude").exists():
        raise SystemExit(f"claude not installed in {CLI_DIR}: run .ci/install-clis.sh")
    with tempfile.TemporaryDirectory(prefix="llmsup-bench-flags-") as home:
        async with open_emulator() as emulator:
            env = cli_environment(
                "claude", emulator.base_url, Path(home) / "home", inherit=os.environ
            )
            spec = actors.claude(str(CLI_DIR / "claude"), env=env, cwd=home)
            now = list(spec.argv)
            at = now.index("--input-format")
            text = now[:at] + now[at + 2 :]
            base_env = spec.build_env()
            sdk_env = {**base_env, "CLAUDE_CODE_ENTRYPOINT": "sdk-py"}
            variants = {
                "now": (now, base_env, True),
                "text stdin (before)": (text, base_env, False),
                "the SDK's argv": ([*now, "--system-prompt="], sdk_env, True),
            }
            wall: dict[str, list[float]] = {name: [] for name in variants}
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            await timed_bare(now, base_env, home, spec.stdin_payload("warm up") or b"")
            for index in range(calls):
                order = list(variants) if index % 2 == 0 else list(variants)[::-1]
                for name in order:
                    argv, child_env, as_json = variants[name]
                    prompt = f"flags call {index}"
                    payload = (spec.stdin_payload(prompt) or b"") if as_json else prompt.encode()
                    start = trio.current_time()
                    cpu[name].append(await timed_bare(argv, child_env, home, payload))
                    wall[name].append(trio.current_time() - start)
    print(f"claude, bare calls, {calls} per variant, median wall and CPU time per call")
    ref_wall, ref_cpu = statistics.median(wall["now"]), statistics.median(cpu["now"])
    for name in variants:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:>20}: wall {w * 1000:6.0f} ms ({w / ref_wall:.2f}x)   "
            f"cpu {c * 1000:6.0f} ms ({c / ref_cpu:.2f}x)"
        )


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
    parser.add_argument("--claude-flags", action="store_true", help="claude argv variants")
    args = parser.parse_args()
    if args.claude_flags:
        trio.run(bench_claude_flags, args.calls)
    else:
        trio.run(main, args.cli, args.calls)
