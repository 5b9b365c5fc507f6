"""examples/testing_pipeline.py, run as the README shows it: the property test finds the
rate-limit bug on the simulated backend and prints a small plan, the fix passes there and on
real fake processes without leaks, and once against the real claude under the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import actors
from examples import testing_pipeline as example

ROOT = Path(__file__).resolve().parents[2]


def test_the_property_test_finds_the_rate_limit_bug_and_prints_a_small_plan() -> None:
    with pytest.raises(AssertionError) as raised:
        example.property_test(example.answer_all_buggy, example.simulated)()
    notes = "\n".join(getattr(raised.value, "__notes__", []))
    assert "rate_limit_retry_after_s" in notes
    assert "plan={'rules': [" in notes  # a plain dict, to paste into actors.fake(...)
    assert notes.count("'calls'") <= 2  # shrunk: at most one rule besides the rate limit


def test_the_fixed_pipeline_passes_on_the_simulated_backend(llmsup_seed: int) -> None:
    def spec(plan: Any) -> actors.CliSpec:
        return actors.simulated(plan, seed=llmsup_seed)

    example.property_test(example.answer_all, spec)()


@pytest.mark.usefixtures("llmsup_no_leaks")
def test_the_fixed_pipeline_passes_on_fake_processes_and_leaves_nothing() -> None:
    example.property_test(example.answer_all, example.fake, examples=15)()


@pytest.mark.llmsup_cli("claude")
def test_the_fixed_pipeline_once_against_the_real_claude(llmsup_emulator: Any) -> None:
    llmsup_emulator.set_rules(
        [
            actors.EmulatorRule(
                match="summarize c", times=3, fault=actors.Fault(kind="status", status=429)
            )
        ]
    )
    env = llmsup_emulator.cli_environment() | {"CLAUDE_CODE_MAX_RETRIES": "0"}
    spec = actors.claude(llmsup_emulator.executable, env=env)
    answers = trio.run(example.run_batch, spec, example.answer_all)
    assert list(answers) == list(example.PROMPTS)
    assert answers["summarize e"] == "echo: summarize e"
    statuses = [r.status for r in llmsup_emulator.requests() if r.prompt == "summarize c"]
    assert statuses[:3] == [429, 429, 429]  # the rate limit reached the pipeline, which waited


def test_the_example_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "examples/testing_pipeline.py", "--examples", "20", "--skip-real"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only
    )
    assert done.returncode == 0, done.stderr
    assert "FAILED: lost:" in done.stdout
    assert "Failing test case: test_no_prompt_is_lost(" in done.stdout
    assert done.stdout.count("   passed") == 2
