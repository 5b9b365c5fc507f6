"""Request size of the real CLIs per tool level, with and without a system prompt.

    bash .ci/install-clis.sh && python bench/request_size.py [--runs 3] [--cli claude codex gemini]

For each CLI (the real binary in .clis/, against the provider emulator on 127.0.0.1, with a
scratch home and working folder per table cell), each tool level ("none", "read", "edit",
"full") and each of "no system prompt" / a one-line system prompt (`CliSpec.with_system`),
it runs a one-line prompt ``--runs`` times, one call at a time, and prints the median size
of the first model request of each call (`RecordedRequest.body_bytes`) and the number of
tools that request offered (``len(tools)``). A level the CLI refuses (claude's "full" as
root: its factory raises, or claude itself exits) is skipped, with the reason.
At the end it checks through /proc that no process it started is left.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _clis import CLI_DIR, FACTORIES, CliName

import actors
from supervisor import LLMError, Result, RetryConfig, TimeoutConfig, open_supervisor

LEVELS: tuple[actors.ToolPolicy, ...] = ("none", "read", "edit", "full")
PROMPT = "Reply with one short greeting."
SYSTEM = "You are a terse assistant; answer in one line."
MARK_ENV = "LLMSUP_BENCH_MARK"  # every child carries it, so a leftover is found in /proc
CALL_TIMEOUT_S = 180  # only against a hang: a call takes a few seconds


@attrs.frozen
class Cell:
    """One table cell: the median first-request size and the tools it offered."""

    median_bytes: int
    tools: int


@attrs.frozen
class Skipped:
    reason: str


async def one_call(
    name: CliName,
    level: actors.ToolPolicy,
    system: str | None,
    base: Path,
    emulator: actors.Emulator,
) -> int | Skipped:
    """Index into ``emulator.requests`` of this call's first model request (or a skip)."""
    home_env = actors.cli_environment(name, emulator.base_url, base / "home", inherit=os.environ)
    work = base / "work"
    work.mkdir(parents=True, exist_ok=True)
    try:
        spec = FACTORIES[name](
            str(CLI_DIR / name),
            env={**home_env, MARK_ENV: str(os.getpid())},
            cwd=str(work),
            tools=level,
        )
    except ValueError as refused:
        return Skipped(str(refused))
    if system is not None:
        if spec.with_system is None:
            return Skipped(f"{name} has no native system prompt")
        spec = spec.with_system(system)
    start = len(emulator.requests)
    async with open_supervisor(
        spec,
        retry=RetryConfig(max_attempts=1),
        timeouts=TimeoutConfig(total_execution=CALL_TIMEOUT_S),
    ) as sup:
        try:
            result = await sup.ask(PROMPT)
        except LLMError as error:  # e.g. claude refusing "full" as root despite IS_SANDBOX
            return Skipped(f"{name} refused the call: {error.message}")
    if not isinstance(result, Result):
        raise SystemExit(f"{name} tools={level!r}: the call failed: {result!r}")
    for index in range(start, len(emulator.requests)):
        request = emulator.requests[index]
        if request.operation == "generate" and PROMPT in request.prompt:
            return index
    raise SystemExit(f"{name} tools={level!r}: the emulator saw no request carrying the prompt")


async def measure(
    name: CliName, level: actors.ToolPolicy, system: str | None, runs: int
) -> Cell | Skipped:
    sizes: list[int] = []
    tools: set[int] = set()
    with tempfile.TemporaryDirectory(prefix=f"llmsup-bench-size-{name}-") as scratch:
        async with actors.open_emulator() as emulator:
            host = urlsplit(emulator.base_url).hostname
            if host != "127.0.0.1":
                raise SystemExit(f"the emulator serves on {host}, not 127.0.0.1")
            for run in range(runs):
                found = await one_call(name, level, system, Path(scratch) / f"run{run}", emulator)
                if isinstance(found, Skipped):
                    return found
                request = emulator.requests[found]
                sizes.append(request.body_bytes)
                tools.add(len(request.tools))
    if len(tools) != 1:
        raise SystemExit(f"{name} tools={level!r}: the tool count varied between runs: {tools}")
    return Cell(round(statistics.median(sizes)), tools.pop())


def leftovers() -> list[int]:
    """Live (non-zombie) processes whose environment carries this run's mark."""
    needle = f"{MARK_ENV}={os.getpid()}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                marked = needle in environ.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as stat:
                zombie = stat.read().rpartition(b")")[2].split()[0] == b"Z"
        except (OSError, IndexError):
            continue
        if marked and not zombie:
            found.append(int(entry))
    return found


def show(cell: Cell | Skipped) -> str:
    if isinstance(cell, Skipped):
        return f"{'skipped':>10} {'':>5}"
    return f"{cell.median_bytes:>10,} {cell.tools:>5}"


async def main(names: list[CliName], runs: int) -> None:
    print(f"first request of a call: median body bytes of {runs} runs, and tools offered")
    print(f"prompt {PROMPT!r}; system prompt {SYSTEM!r}")
    columns = f"{'bytes':>10} {'tools':>5}"
    header = f"{'cli':<7} {'level':<5} | {columns} | {columns}"
    print(f"{'':<13} | {'no system prompt':>16} | {'system prompt':>16}")
    print(header)
    print("-" * len(header))
    skips: list[str] = []
    for name in names:
        if not (CLI_DIR / name).exists():
            skips.append(f"{name}: not installed (run .ci/install-clis.sh)")
            continue
        for level in LEVELS:
            plain = await measure(name, level, None, runs)
            with_system = await measure(name, level, SYSTEM, runs)
            print(f"{name:<7} {level:<5} | {show(plain)} | {show(with_system)}")
            for cell in (plain, with_system):
                if isinstance(cell, Skipped) and f"{name} {level}" not in " ".join(skips):
                    skips.append(f"{name} {level}: {cell.reason}")
    for skip in skips:
        print(f"skipped {skip}")
    left = leftovers()
    if left:
        raise SystemExit(f"processes left behind: {left}")
    print("no process left behind")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cli", nargs="+", default=sorted(FACTORIES), choices=sorted(FACTORIES))
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    trio.run(main, args.cli, args.runs)
