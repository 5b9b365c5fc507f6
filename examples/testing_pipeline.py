"""Testing your pipeline: a property test finds a rate-limit bug, then proves the fix.

The pipeline asks one question per prompt of a batch. Its bug: it treats a rate limit as
fatal and drops the rest of the batch. The property "every prompt of the batch gets an
outcome" is tested over drawn fault plans (`supervisor.testing.fault_plans`):

1. on the simulated backend (``actors.simulated``: in process, on trio's clock), where
   Hypothesis finds the bug and prints the shrunk plan;
2. the fixed pipeline (wait the server's hint, try again, then record the failure and go
   on) passes the same test;
3. the same test on real fake processes (``actors.fake``): one line changed;
4. once against the real claude, under the provider emulator (when it is installed).

Run it: ``python examples/testing_pipeline.py`` (add ``--skip-real`` without claude).
The pytest versions of these tests are in ``tests/processes/test_testing_example.py``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio
from hypothesis import given, settings

import actors
from actors import CliSpec, ErrorCategory, LLMError
from supervisor import RetryConfig, Supervisor, TimeoutConfig, open_supervisor
from supervisor.testing import fault_plans, run

PROMPTS = ("summarize a", "summarize b", "summarize c", "summarize d", "summarize e")
# The faults this pipeline must survive (cheap on real processes too: no hangs, no sleeps).
KINDS = ["crash", "retryable", "rate_limit", "auth", "malformed"]
MAX_WAIT_S = 1.0  # the longest server retry hint the pipeline honours

Batch = Callable[[Supervisor, Sequence[str]], Awaitable[dict[str, str]]]


async def answer_all_buggy(sup: Supervisor, prompts: Sequence[str]) -> dict[str, str]:
    """The pipeline as first written: a rate limit ends the batch."""
    answers: dict[str, str] = {}
    for prompt in prompts:
        try:
            answers[prompt] = (await sup.ask(prompt)).text
        except LLMError as error:
            if error.category is ErrorCategory.RATE_LIMIT:
                break  # BUG: "we are rate limited, stop" drops every prompt after this one
            answers[prompt] = f"failed: {error.category.value}"
    return answers


async def answer_all(sup: Supervisor, prompts: Sequence[str], tries: int = 3) -> dict[str, str]:
    """The fix: a rate limit waits the server's hint and tries again; a prompt that still
    fails is recorded as failed, and the batch goes on."""
    answers: dict[str, str] = {}
    for prompt in prompts:
        for attempt in range(1, tries + 1):
            try:
                answers[prompt] = (await sup.ask(prompt)).text
                break
            except LLMError as error:
                answers[prompt] = f"failed: {error.category.value}"
                if error.category is not ErrorCategory.RATE_LIMIT or attempt == tries:
                    break
                await trio.sleep(min(error.retry_after or 0.1, MAX_WAIT_S))
    return answers


async def run_batch(spec: CliSpec, batch: Batch) -> dict[str, str]:
    """The pipeline's supervisor: one retry of its own, short limits."""
    async with open_supervisor(
        spec,
        retry=RetryConfig(
            max_attempts=2, initial_delay_ms=0, jitter=False, max_retry_after_s=MAX_WAIT_S
        ),
        timeouts=TimeoutConfig(total_execution=30, chunk_receive=10, graceful_shutdown=2),
    ) as sup:
        return await batch(sup, PROMPTS)


def check_batch(spec: CliSpec, batch: Batch) -> None:
    """The property: every prompt of the batch has an outcome, in order."""
    answers = run(spec, run_batch, spec, batch)
    assert list(answers) == list(PROMPTS), f"lost: {[p for p in PROMPTS if p not in answers]}"


def property_test(
    batch: Batch, make_spec: Callable[[Mapping[str, Any]], CliSpec], examples: int = 100
) -> Callable[[], None]:
    """The property test, as one writes it with pytest (see the README)."""

    @settings(max_examples=examples, deadline=None, database=None)
    @given(plan=fault_plans(kinds=KINDS))
    def test_no_prompt_is_lost(plan: dict[str, Any]) -> None:
        check_batch(make_spec(plan), batch)

    return test_no_prompt_is_lost


def simulated(plan: Mapping[str, Any]) -> CliSpec:
    return actors.simulated(plan)


def fake(plan: Mapping[str, Any]) -> CliSpec:
    return actors.fake(plan)  # the one line that differs: real processes


async def against_real_claude(executable: str, home: Path) -> dict[str, str]:
    """The fixed pipeline once against the real claude: the emulator rate-limits one prompt."""
    rule = actors.EmulatorRule(
        match="summarize c", times=2, fault=actors.Fault(kind="status", status=429, retry_after=0)
    )
    async with actors.open_emulator([rule]) as emulator:
        env = actors.cli_environment("claude", emulator.base_url, home, inherit=os.environ)
        env["CLAUDE_CODE_MAX_RETRIES"] = "0"  # let the pipeline see the rate limit
        return await run_batch(actors.claude(executable, env=env), answer_all)


def _show(title: str, test: Callable[[], None]) -> bool:
    print(f"== {title}", flush=True)
    try:
        test()
    except AssertionError as error:
        print(f"   FAILED: {error}", flush=True)
        for note in getattr(error, "__notes__", []):  # Hypothesis' falsifying (shrunk) example
            print(f"   {note}", flush=True)
        return False
    print("   passed", flush=True)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per property test")
    parser.add_argument("--skip-real", action="store_true", help="do not run the real claude")
    args = parser.parse_args()
    found = _show(
        "the buggy pipeline on the simulated backend",
        property_test(answer_all_buggy, simulated, args.examples),
    )
    assert not found, "the property test should have found the rate-limit bug"
    assert _show("the fix, simulated", property_test(answer_all, simulated, args.examples))
    assert _show("the fix, on fake processes", property_test(answer_all, fake, args.examples))
    executable = actors.find_executable("claude")
    if args.skip_real or os.sep not in executable:
        print("== the real claude: skipped (not installed, or --skip-real)")
        return
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        answers = trio.run(against_real_claude, executable, Path(home))
    print("== the fix, once against the real claude under the emulator")
    for prompt, answer in answers.items():
        print(f"   {prompt!r}: {answer}")
    assert list(answers) == list(PROMPTS)


if __name__ == "__main__":
    main()
