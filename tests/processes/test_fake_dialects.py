"""The fake CLI as real processes: call-order rules counted across processes, and each
dialect going through that CLI's own adapter and classifier."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import trio

import actors
from actors._fakes._plan import fake_argv
from supervisor import ErrorCategory, LLMError, Result, RetryConfig, open_supervisor

DIALECTS = ("native", "claude", "codex", "gemini")


async def ask_all(spec: actors.CliSpec, prompts: list[str], *, together: bool = False) -> list[Any]:
    outcomes: list[Any] = [None] * len(prompts)
    async with open_supervisor(spec, retry=RetryConfig(max_attempts=1), concurrency=8) as sup:

        async def one(index: int) -> None:
            try:
                outcomes[index] = await sup.ask(prompts[index])
            except LLMError as error:
                outcomes[index] = error

        with trio.fail_after(120):  # only a guard against a hang
            if together:
                async with trio.open_nursery() as nursery:
                    for index in range(len(prompts)):
                        nursery.start_soon(one, index)
            else:
                for index in range(len(prompts)):
                    await one(index)
    return outcomes


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_calls_rules_count_across_processes_without_set_up(dialect: str) -> None:
    plan = {
        "rules": [
            {"calls": [2, 3], "rate_limit_retry_after_s": 4},
            {"calls": [5, None], "text": "late"},
        ]
    }
    spec = actors.fake(plan, dialect=dialect)  # type: ignore[arg-type]
    outcomes = await ask_all(spec, [f"p{i}" for i in range(1, 7)])
    failed = [i for i, o in enumerate(outcomes, 1) if isinstance(o, LLMError)]
    assert failed == [2, 3], outcomes
    assert all(o.category is ErrorCategory.RATE_LIMIT for o in outcomes if isinstance(o, LLMError))
    assert [o.text for o in outcomes if isinstance(o, Result)] == [
        "echo: p1",
        "echo: p4",
        "late",
        "late",
    ]


async def test_the_count_is_atomic_under_concurrency() -> None:
    spec = actors.fake({"rules": [{"calls": [1, 5], "auth_failure": True}]})
    outcomes = await ask_all(spec, [f"p{i}" for i in range(16)], together=True)
    assert sum(isinstance(o, LLMError) for o in outcomes) == 5, outcomes
    assert sum(isinstance(o, Result) for o in outcomes) == 11


async def test_fail_first_needs_no_state_dir() -> None:
    spec = actors.fake({"fail_first": 2})
    outcomes = await ask_all(spec, ["same", "same", "same", "other"])
    assert [isinstance(o, LLMError) for o in outcomes] == [True, True, False, True]


def test_the_raw_script_counts_calls_in_state_dir(tmp_path: Any) -> None:
    plan = {"state_dir": str(tmp_path), "rules": [{"calls": [2, 2], "exit_code": 9}]}
    codes = [
        subprocess.run([*fake_argv(plan), "--", "x"], capture_output=True, timeout=10).returncode
        for _ in range(3)
    ]
    assert codes == [0, 9, 0]
    assert len((tmp_path / "calls").read_bytes().splitlines()) == 3


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_each_dialect_through_its_own_adapter(dialect: str) -> None:
    fakes = {
        "ok": {
            "text": "one two three four",
            "chunks": 3,
            "session_id": "5f0c3a52-9c2d-4c1e-9d7a-2b1e0d9f8a77",
        },
        "rate": {"rate_limit_retry_after_s": 7},
        "auth": {"auth_failure": True},
        "server": {"server_error": True},
        "crash": {"crash_after_chunks": 1},
    }
    outcomes: dict[str, Any] = {}
    for label, plan in fakes.items():
        [outcomes[label]] = await ask_all(actors.fake(plan, dialect=dialect), ["hello"])  # type: ignore[arg-type]
    ok = outcomes["ok"]
    assert isinstance(ok, Result), ok
    assert ok.text == "one two three four"
    assert ok.session_id == "5f0c3a52-9c2d-4c1e-9d7a-2b1e0d9f8a77"
    assert outcomes["rate"].category is ErrorCategory.RATE_LIMIT
    assert outcomes["rate"].retry_after == (None if dialect == "codex" else 7.0)  # codex drops it
    assert outcomes["auth"].category is ErrorCategory.AUTH_FAILURE
    assert outcomes["server"].category is ErrorCategory.RETRYABLE
    assert outcomes["crash"].category is ErrorCategory.RETRYABLE


@pytest.mark.parametrize("dialect", ["claude", "codex", "gemini"])
async def test_lost_session_names_the_session(dialect: str) -> None:
    spec = actors.fake({"lost_session": True}, dialect=dialect)  # type: ignore[arg-type]
    assert spec.session is not None
    [error] = await ask_all(spec.session.resume("0b3c9d2e-1111-4222-8333-444455556666"), ["hi"])
    assert isinstance(error, LLMError)
    assert error.lost_session == "0b3c9d2e-1111-4222-8333-444455556666"


@pytest.mark.parametrize("dialect", ["claude", "codex", "gemini"])
def test_dialect_output_is_what_the_cli_prints(dialect: str) -> None:
    argv = [*fake_argv({"chunks": 2}, dialect=dialect), "--prompt-stdin"]
    done = subprocess.run(argv, input=b"hi", capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout.splitlines()[0])
    assert (
        first["type"] == {"claude": "system", "codex": "thread.started", "gemini": "init"}[dialect]
    )


def test_fake_refuses_a_bad_dialect_or_text_format() -> None:
    with pytest.raises(ValueError, match="dialect"):
        actors.fake({}, dialect="cobol")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="native"):
        actors.fake({"format": "text"}, dialect="claude")


def run_claude_fake(plan: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
    argv = [*fake_argv(plan, dialect="claude"), "--prompt-stdin"]
    return subprocess.run(argv, input=b"hi", capture_output=True, timeout=10)


async def test_claude_exit_0_with_an_error_result_is_still_a_failure() -> None:
    plan = {"rate_limit_retry_after_s": 3, "error_exit_code": 0}
    done = run_claude_fake(plan)
    assert done.returncode == 0
    assert json.loads(done.stdout.splitlines()[-1])["is_error"] is True
    [error] = await ask_all(actors.fake(plan, dialect="claude"), ["hi"])
    assert isinstance(error, LLMError) and error.category is ErrorCategory.RATE_LIMIT


async def test_claude_rate_limit_event_lines_are_information() -> None:
    plan = {"rate_limit_events": True, "text": "fine"}
    done = run_claude_fake(plan)
    kinds = [json.loads(line)["type"] for line in done.stdout.splitlines()]
    assert kinds[:2] == ["system", "rate_limit_event"]
    [result] = await ask_all(actors.fake(plan, dialect="claude"), ["hi"])
    assert isinstance(result, Result) and result.text == "fine"


async def test_a_crash_after_an_allowed_rate_limit_event_is_retryable() -> None:
    plan = {"rate_limit_events": True, "crash_after_chunks": 1}
    [error] = await ask_all(actors.fake(plan, dialect="claude"), ["hi"])
    assert isinstance(error, LLMError)
    assert error.category is ErrorCategory.RETRYABLE


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_warm_conversation_in_each_dialect(dialect: str) -> None:
    plan = {"rules": [{"calls": [3, 3], "server_error": True}]}
    spec = actors.fake(plan, dialect=dialect)  # type: ignore[arg-type]
    async with (
        open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup,
        sup.conversation() as conv,
    ):
        with trio.fail_after(60):  # only a guard against a hang
            first = await conv.send("turn 1")
            second = await conv.send("turn 2")
            with pytest.raises(LLMError) as failed:
                await conv.send("turn 3")
            fourth = await conv.send("turn 4")
    assert [first.text, second.text, fourth.text] == [
        "echo: turn 1",
        "echo: turn 2",
        "echo: turn 4",
    ]
    assert first.session_id and first.session_id == second.session_id
    assert failed.value.category is ErrorCategory.RETRYABLE


async def test_an_injected_error_ends_a_warm_native_turn() -> None:
    # Before: the in-band error event of serve mode was not terminal and no result followed,
    # so the warm turn waited for a result that never came (until a timeout).
    plan = {"rules": [{"match": "turn 2", "auth_failure": True}]}
    async with (
        open_supervisor(actors.fake(plan), retry=RetryConfig(max_attempts=1)) as sup,
        sup.conversation(mode="warm") as conv,
    ):
        with trio.fail_after(60):  # only a guard against a hang
            first = await conv.send("turn 1")
            with pytest.raises(LLMError) as failed:
                await conv.send("turn 2")
            third = await conv.send("turn 3")
    assert (first.text, third.text) == ("echo: turn 1", "echo: turn 3")
    assert failed.value.category is ErrorCategory.AUTH_FAILURE
