"""The property test of examples/testing_pipeline.py, three ways: same plans, same count.

    python bench/testing.py [--examples 100] [--fake-examples N] [--real-examples N] [--skip-real]

Draws ``--examples`` fault plans once (prompt-matching plans from
`supervisor.testing.fault_plans`, derandomized, so every run draws the same ones) and runs
the fixed pipeline's property (five prompts, every prompt gets an outcome) on each plan:

- on the simulated backend (``actors.simulated``, under an autojump clock);
- on fake processes (``actors.fake``), the first ``--fake-examples`` plans (default: all;
  they run on the real clock, so a rate limit's hint is really waited);
- on the real claude against the provider emulator, each plan translated into emulator
  rules (rate_limit: a 429 with its hint, auth: 401, retryable: 500, crash: a disconnect,
  malformed: an undecodable stream). The real CLI takes seconds a call, so it runs the
  first ``--real-examples`` plans (default: all) and its rate is per example all the same.

Prints examples per second for each and the ratios (the issue's target: >= 200 examples/s
simulated, >= 50 times the fake-process rate). A benchmark, not a test: the figures depend
on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from hypothesis import given, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import actors  # noqa: E402
from examples import testing_pipeline as example  # noqa: E402
from supervisor.testing import fault_plans  # noqa: E402


def draw_plans(count: int) -> list[dict[str, Any]]:
    plans: list[dict[str, Any]] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None)
    @given(plan=fault_plans(kinds=example.KINDS, prompts=list(example.PROMPTS)))
    def collect(plan: dict[str, Any]) -> None:
        plans.append(plan)

    collect()
    return plans[:count]


def emulator_rules(plan: dict[str, Any]) -> list[Any]:
    """The plan's faults as emulator rules, for the real CLI."""
    rules = []
    for rule in plan.get("rules", []):
        if "rate_limit_retry_after_s" in rule:
            fault = actors.Fault(
                kind="status", status=429, retry_after=rule["rate_limit_retry_after_s"]
            )
        elif "auth_failure" in rule:
            fault = actors.Fault(kind="status", status=401)
        elif "exit_code" in rule:
            fault = actors.Fault(kind="status", status=500)
        elif "crash_after_chunks" in rule:
            fault = actors.Fault(kind="disconnect", disconnect_after_chunks=0)
        else:
            fault = actors.Fault(kind="malformed")
        rules.append(actors.EmulatorRule(match=rule["match"], fault=fault))
    return rules


def timed(label: str, plans: list[dict[str, Any]], run_one: Any) -> float:
    start = time.perf_counter()
    for plan in plans:
        run_one(plan)
    elapsed = time.perf_counter() - start
    rate = len(plans) / elapsed
    print(f"{label:<34} {len(plans):>4} examples in {elapsed:8.2f} s: {rate:9.1f} examples/s")
    return rate


async def real_claude(executable: str, plans: list[dict[str, Any]]) -> float:
    async with actors.open_emulator() as emulator:
        with tempfile.TemporaryDirectory() as home:
            env = actors.cli_environment("claude", emulator.base_url, home, inherit=os.environ)
            env["CLAUDE_CODE_MAX_RETRIES"] = "0"
            spec = actors.claude(executable, env=env)
            start = time.perf_counter()
            for plan in plans:
                emulator.set_rules(emulator_rules(plan))
                answers = await example.run_batch(spec, example.answer_all)
                assert list(answers) == list(example.PROMPTS)
            elapsed = time.perf_counter() - start
    rate = len(plans) / elapsed
    print(
        f"{'real claude + emulator':<34} {len(plans):>4} examples in {elapsed:8.2f} s:"
        f" {rate:9.1f} examples/s"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--fake-examples", type=int, default=None)
    parser.add_argument("--real-examples", type=int, default=None)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    plans = draw_plans(args.examples)
    print(f"{len(plans)} plans, {len(example.PROMPTS)} prompts each, the fixed pipeline")
    simulated = timed(
        "simulated backend",
        plans,
        lambda p: example.check_batch(example.simulated(p), example.answer_all),
    )
    fake = timed(
        "fake processes",
        plans[: args.fake_examples],
        lambda p: example.check_batch(example.fake(p), example.answer_all),
    )
    print(f"simulated / fake processes: {simulated / fake:.1f}x")
    executable = actors.find_executable("claude")
    if args.skip_real or os.sep not in executable:
        print("real claude: skipped (not installed, or --skip-real)")
        return
    real = trio.run(real_claude, executable, plans[: args.real_examples])
    print(
        f"simulated / real claude: {simulated / real:.0f}x; fake / real claude: {fake / real:.1f}x"
    )


if __name__ == "__main__":
    main()
