"""The simulated backend: the fake's plan in process, on trio's clock (no process at all).

Every test runs under ``autojump_clock``: virtual time jumps whenever all tasks wait, so
a 10-minute hang costs no wall time. Assertions are on behaviour and virtual time only.
"""

from __future__ import annotations

import os
import random

import hypothesis
import hypothesis.strategies as st
import pytest
import trio
import trio.testing

import actors
from actors import ErrorCategory, LLMError, TimeoutConfig
from actors._fakes._simulated import SimulatedCli
from supervisor import CircuitBreaker, Result, RetryConfig, open_supervisor

NO_RETRY = RetryConfig(max_attempts=1)


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_a_ten_minute_hang_times_out_on_the_virtual_clock(autojump_clock: object) -> None:
    spec = actors.simulated({"hang": True})
    timeouts = TimeoutConfig(total_execution=600.0, chunk_receive=None, first_output=None)
    start = trio.current_time()
    async with open_supervisor(spec, retry=NO_RETRY, timeouts=timeouts) as sup:
        with trio.fail_after(3600):  # virtual seconds: only guards against a hang
            outcome = (await sup.map(["hello"]))[0]
    assert isinstance(outcome, LLMError)
    assert outcome.category is ErrorCategory.TIMEOUT
    assert trio.current_time() - start >= 600.0  # the deadline really passed (virtually)


async def test_no_process_fd_or_registry_is_touched(autojump_clock: object) -> None:
    before = _fds()
    async with open_supervisor(actors.simulated({"chunks": 5}), sweep_orphans=False) as sup:
        outcomes = await sup.map([f"p{index}" for index in range(50)])
        stats = sup.statistics()
    assert all(isinstance(o, Result) for o in outcomes)
    assert stats.processes_spawned == 50
    assert _fds() == before  # no pipe was ever opened


async def test_retries_follow_the_simulated_rate_limits(autojump_clock: object) -> None:
    plan = {"fail_first": 2, "fail_with": "rate_limit", "fail_retry_after_s": 30.0}
    retry = RetryConfig(max_attempts=3)
    start = trio.current_time()
    async with open_supervisor(actors.simulated(plan), retry=retry) as sup:
        outcome = (await sup.map(["q"]))[0]
        stats = sup.statistics()
    assert isinstance(outcome, Result)
    assert outcome.text == "echo: q"
    assert outcome.attempts == 3
    assert stats.retries == 2
    assert trio.current_time() - start >= 60.0  # both retry-after hints were honoured


async def test_the_breaker_opens_on_simulated_rate_limits(autojump_clock: object) -> None:
    plan = {"rate_limit_retry_after_s": 1.0}
    breaker = CircuitBreaker(failure_threshold=3, timeout_seconds=600.0)
    async with open_supervisor(
        actors.simulated(plan), retry=NO_RETRY, breaker=breaker, concurrency=1
    ) as sup:
        outcomes = await sup.map([f"p{index}" for index in range(10)])
        stats = sup.statistics()
    assert all(isinstance(o, LLMError) for o in outcomes)
    assert stats.failures_by_category["rate_limit"] >= 1
    assert stats.breaker_opened >= 1  # a rate limit opens it for the retry-after
    assert stats.breaker_rejections > 0  # later calls failed fast, no process started
    assert stats.processes_spawned < 10


async def test_calls_rules_count_calls_in_memory(autojump_clock: object) -> None:
    plan = {"rules": [{"calls": [2, 3], "auth_failure": True}]}
    async with open_supervisor(actors.simulated(plan), retry=NO_RETRY, concurrency=1) as sup:
        outcomes = [(await sup.map([f"p{index}"]))[0] for index in range(5)]
    kinds = [o.category if isinstance(o, LLMError) else "ok" for o in outcomes]
    assert kinds == ["ok", ErrorCategory.AUTH_FAILURE, ErrorCategory.AUTH_FAILURE, "ok", "ok"]


async def test_a_replayed_conversation_runs_on_the_simulated_backend(
    autojump_clock: object,
) -> None:
    async with open_supervisor(actors.simulated()) as sup:
        conversation = sup.conversation(mode="replay")
        first = await conversation.send("hello")
        second = await conversation.send("again")
    assert first.text.startswith("echo: ") and "hello" in first.text
    assert "again" in second.text and "hello" in second.text  # the history was replayed


async def test_a_warm_conversation_keeps_one_simulated_process(autojump_clock: object) -> None:
    async with open_supervisor(actors.simulated()) as sup:
        conversation = sup.conversation(mode="warm")
        answers = [await conversation.send(text) for text in ("a", "b", "c")]
        stats = sup.statistics()
    assert [answer.text for answer in answers] == ["echo: a", "echo: b", "echo: c"]
    assert len({answer.session_id for answer in answers}) == 1
    assert stats.processes_spawned == 1


async def _run_once(spec: actors.CliSpec) -> list[tuple[float, str, str]]:
    """(virtual time since start, prompt, outcome) for a fan-out, in completion order."""
    start = trio.current_time()
    seen: list[tuple[float, str, str]] = []
    prompts = [f"prompt {index}" for index in range(40)]
    async with (
        open_supervisor(
            spec, retry=RetryConfig(max_attempts=3), rng=random.Random(7), concurrency=8
        ) as sup,
        sup.map_stream(prompts) as stream,
    ):
        async for done in stream:
            seen.append(_shown(start, done.prompt, done.outcome))
    return seen


def _shown(start: float, prompt: str, outcome: Result | LLMError) -> tuple[float, str, str]:
    shown = (
        f"{outcome.text}|{outcome.session_id}|{outcome.attempts}"
        if isinstance(outcome, Result)
        else f"{outcome.category.value}|{outcome.message}"
    )
    return (round(trio.current_time() - start, 6), prompt, shown)


PLAN = {
    "latency_s": 0.25,
    "chunk_gap_s": 0.1,
    "rules": [
        {"match": "1", "fail_first": 1, "fail_with": "rate_limit", "fail_retry_after_s": 2.0},
        {"match": "3", "hang_after_chunks": 1},
        {"match": "5", "malformed_line": True, "latency_s": 1.5},
        {"match": "7", "auth_failure": True},
    ],
}


def _fan_out_twice(seed: int) -> list[list[tuple[float, str, str]]]:
    """Two runs of the same fan-out, each as one Hypothesis example.

    Hypothesis seeds trio's scheduler at the start of each example (trio's Hypothesis
    plugin), so the interleaving of concurrent calls is replayed too, not only each call's
    output: the whole sequence of events must repeat.
    """
    runs: list[list[tuple[float, str, str]]] = []

    @hypothesis.settings(database=None, phases=[hypothesis.Phase.explicit], deadline=None)
    @hypothesis.example(0)
    @hypothesis.example(1)
    @hypothesis.given(st.integers())
    def one_run(_run: int) -> None:
        clock = trio.testing.MockClock(autojump_threshold=0)
        runs.append(trio.run(_run_once, actors.simulated(PLAN, seed=seed), clock=clock))

    one_run()
    return runs


def test_the_same_plan_and_seed_give_the_same_run() -> None:
    first, second = _fan_out_twice(11)
    assert first == second  # the same events, in the same order, at the same times
    assert len(first) == 40
    categories = {shown.split("|")[0] for _, _, shown in first}
    assert {"auth_failure", "timeout"} <= categories
    assert any(shown.endswith("|2") for _, _, shown in first)  # a rate limit was retried
    # The seed draws the session ids: another seed, other ids, the same answers.
    other, _ = _fan_out_twice(12)
    assert other != first
    assert sorted(o.split("|")[0] for _, _, o in other) == sorted(
        o.split("|")[0] for _, _, o in first
    )


async def test_ignore_sigterm_makes_the_stop_sequence_escalate_to_kill(
    autojump_clock: object,
) -> None:
    spec = actors.simulated({"ignore_sigterm": True, "hang": True})
    assert spec.backend is not None
    cli = await spec.backend.spawn(spec, spec.build_argv("x"), stdin_pipe=False)
    assert isinstance(cli, SimulatedCli)
    await trio.sleep(1)
    cli.terminate()
    await trio.sleep(10)
    assert cli.returncode is None  # SIGTERM was ignored
    with trio.fail_after(60):
        await actors.stop_process_tree(cli, grace=5.0, name="fake")
    assert cli.returncode == -9
    assert not cli.tree_alive()


async def test_a_hanging_cli_is_stopped_by_sigterm(autojump_clock: object) -> None:
    spec = actors.simulated({"hang": True})
    assert spec.backend is not None
    cli = await spec.backend.spawn(spec, spec.build_argv("x"), stdin_pipe=False)
    with trio.fail_after(60):
        await actors.stop_process_tree(cli, grace=5.0, name="fake")
    assert cli.returncode == -15


async def test_a_simulated_grandchild_holds_stdout_past_the_exit(autojump_clock: object) -> None:
    plan = {"grandchild_holds_stdout_s": 100.0, "grandchild_ignores_sigterm": True}
    spec = actors.simulated(plan)
    assert spec.backend is not None
    cli = await spec.backend.spawn(spec, spec.build_argv("x"), stdin_pipe=False)
    assert await cli.wait() == 0
    assert cli.tree_alive()  # the grandchild still holds the pipes
    with trio.fail_after(60):
        await actors.stop_process_tree(cli, grace=1.0, name="fake")
    assert not cli.tree_alive()
    # And a call on it still ends (the drain gives up on the held pipe) with its answer.
    async with open_supervisor(spec) as sup:
        with trio.fail_after(60):
            outcome = (await sup.map(["y"]))[0]
    assert isinstance(outcome, Result) and outcome.text == "echo: y"


async def test_prompt_on_stdin_and_dialect_adapters(autojump_clock: object) -> None:
    spec = actors.simulated({"text": "hi there"}, prompt_via="stdin")
    async with open_supervisor(spec) as sup:
        assert (await sup.ask("anything")).text == "hi there"


def test_a_bad_plan_or_dialect_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="dialect"):
        actors.simulated({}, dialect="klingon")
    with pytest.raises(ValueError, match="latency_s"):
        actors.simulated({"latency_s": -1})
