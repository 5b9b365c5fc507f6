"""How fast the real CLIs fail: a bad key (401 from the emulator) and a closed port.

    bash .ci/install-clis.sh && python bench/fast_failures.py [--rounds 3] [--cli claude ...]

The README says a bad key fails "in about a second". The tests do not time it (the suite
runs on a shared, loaded machine); they hold each failure to ten times the figure measured
here, as a guard against a hang (tests/real_clis/test_fast_failures.py, test_real_clis.py).
Prints the median seconds per CLI and case; asserts nothing.
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

from _clis import CLI_DIR, FACTORIES, CliName

import actors
from actors._fakes._emulator import EmulatorRule, Fault, open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import LLMError, RetryConfig, TimeoutConfig, open_supervisor

CLOSED = "http://127.0.0.1:9"


def closed_port_spec(cli: CliName, home: Path) -> actors.CliSpec:
    """The CLI pointed at a closed port (as tests/real_clis/test_fast_failures.py does)."""
    binary = str(CLI_DIR / cli)
    if cli == "claude":
        env = {"HOME": str(home), "ANTHROPIC_BASE_URL": CLOSED, "ANTHROPIC_API_KEY": "sk-test"}
        return actors.claude(binary, env=env, cwd=str(home))
    if cli == "codex":
        (home / "config.toml").write_text(
            'model = "gpt-test"\nmodel_provider = "local"\n[model_providers.local]\n'
            f'name = "local"\nbase_url = "{CLOSED}/v1"\nenv_key = "LLMSUP_TEST_KEY"\n'
            'wire_api = "responses"\nsupports_websockets = false\n'
            "request_max_retries = 0\nstream_max_retries = 0\n"
        )
        env = {"HOME": str(home), "CODEX_HOME": str(home), "LLMSUP_TEST_KEY": "x"}
        return actors.codex(binary, env=env, cwd=str(home))
    (home / ".gemini").mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(
        '{"security":{"auth":{"selectedType":"gemini-api-key"}}}'
    )
    env = {
        "HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": CLOSED,
        "GEMINI_API_KEY": "test-key",
        "TMPDIR": str(home),
    }
    return actors.gemini(binary, env=env, cwd=str(home))


async def seconds_to_fail(spec: actors.CliSpec) -> float:
    async with open_supervisor(
        spec, retry=RetryConfig(max_attempts=1), timeouts=TimeoutConfig(total_execution=120)
    ) as sup:
        start = trio.current_time()
        try:
            await sup.ask("hi")
        except LLMError:
            return trio.current_time() - start
    raise AssertionError(f"{spec.name} did not fail")


async def bad_key(cli: CliName) -> float:
    rule = EmulatorRule(fault=Fault(kind="status", status=401))
    with tempfile.TemporaryDirectory() as tmp:
        async with open_emulator([rule]) as emulator:
            env = cli_environment(cli, emulator.base_url, Path(tmp) / "home", inherit=os.environ)
            spec = FACTORIES[cli](str(CLI_DIR / cli), env=env, cwd=tmp)
            return await seconds_to_fail(spec)


async def closed_port(cli: CliName) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return await seconds_to_fail(closed_port_spec(cli, Path(tmp)))


async def main(clis: list[CliName], rounds: int) -> None:
    print(f"{'cli':8} {'case':12} {'median s':>9} {'max s':>7}")
    for cli in clis:
        if not os.access(CLI_DIR / cli, os.X_OK):
            print(f"{cli:8} not installed in {CLI_DIR}")
            continue
        for case, measure in (("bad key", bad_key), ("closed port", closed_port)):
            runs = [await measure(cli) for _ in range(rounds)]
            print(f"{cli:8} {case:12} {statistics.median(runs):9.2f} {max(runs):7.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cli", nargs="+", default=list(FACTORIES), choices=list(FACTORIES))
    args = parser.parse_args()
    trio.run(main, args.cli, args.rounds)
