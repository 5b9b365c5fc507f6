"""The public API against real processes: ask, stream, map, errors, policies, statistics."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import attrs
import pytest
import trio

import actors
from actors import RawEvent, TextDelta
from supervisor import (
    CircuitBreaker,
    CircuitState,
    ErrorCategory,
    LLMError,
    Result,
    RetryConfig,
    TimeoutConfig,
    open_supervisor,
)

from ..helpers import ARGV_ECHO, argv_list, fake, live_processes_with, marker, python_cli

ONE_ATTEMPT = RetryConfig(max_attempts=1)
FAST_RETRY = RetryConfig(max_attempts=3, initial_delay_ms=10, max_delay_ms=50)

TRICKY_PROMPTS = [
    "--help",
    "-p",
    "--",
    "; rm -rf x",
    "$(touch y)",
    "`touch z`",
    "a b\tc\nd",
    "'quoted' \"double\"",
    "ünïcödé ✓",
    "",
    "*",
]


async def test_ask_returns_text_session_and_usage() -> None:
    async with open_supervisor(fake()) as sup:
        result = await sup.ask("hello there world")
    assert result.text == "echo: hello there world"
    assert result.session_id
    assert result.usage is not None and result.usage.input_tokens == 3
    assert result.attempts == 1
    assert result.duration_s > 0
    assert result.cli == "fake"
    assert result.raw_events[0].type == "session_started"
    assert result.raw_events[-1].type == "result"


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
async def test_prompts_reach_the_program_verbatim_as_one_argument(
    prompt: str, tmp_path: Path
) -> None:
    spec = python_cli(ARGV_ECHO, cwd=str(tmp_path))
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        result = await sup.ask(prompt)
    assert argv_list(result.text) == [prompt]
    assert os.listdir(tmp_path) == []  # nothing was run by a shell


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
async def test_prompts_via_stdin_arrive_verbatim(prompt: str) -> None:
    spec = python_cli("import sys, json; print(json.dumps(sys.stdin.read()))", prompt_via="stdin")
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        result = await sup.ask(prompt)
    assert json.loads(result.text) == prompt


async def test_prompt_that_looks_like_a_flag_stays_a_prompt_for_the_fake_cli() -> None:
    async with open_supervisor(fake()) as sup:
        result = await sup.ask("--help")
    assert result.text == "echo: --help"


async def test_missing_binary_is_permanent_names_the_binary_and_is_not_retried() -> None:
    async with open_supervisor(actors.command(["no-such-llm-cli-xyz"]), retry=FAST_RETRY) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
        stats = sup.statistics()
    assert info.value.category is ErrorCategory.PERMANENT
    assert "no-such-llm-cli-xyz" in info.value.message
    assert "not found" in info.value.message
    assert info.value.attempts == 1
    assert stats.retries == 0


async def test_non_executable_file_is_a_clear_permanent_error(tmp_path: Path) -> None:
    script = tmp_path / "not-exec"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    async with open_supervisor(actors.command([str(script)]), retry=FAST_RETRY) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
    assert info.value.category is ErrorCategory.PERMANENT
    assert "not executable" in info.value.message


async def test_nonzero_exit_is_retryable_and_retried_up_to_max_attempts() -> None:
    async with open_supervisor(fake({"exit_code": 7}), retry=FAST_RETRY) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
        stats = sup.statistics()
    error = info.value
    assert error.category is ErrorCategory.RETRYABLE
    assert error.exit_code == 7
    assert error.attempts == 3
    assert "fake: failing with exit code 7" in error.stderr
    assert stats.retries == 2
    assert stats.processes_spawned == 3
    assert stats.failures_by_category == {"retryable": 1}


async def test_transient_failures_heal_with_retries(tmp_path: Path) -> None:
    plan = {"fail_first": 2, "fail_with": "retryable", "state_dir": str(tmp_path)}
    async with open_supervisor(fake(plan), retry=FAST_RETRY) as sup:
        result = await sup.ask("eventually")
        stats = sup.statistics()
    assert result.text == "echo: eventually"
    assert result.attempts == 3
    assert (stats.succeeded, stats.failed, stats.retries) == (1, 0, 2)


async def test_rate_limit_is_classified_with_its_retry_after_hint() -> None:
    async with open_supervisor(fake({"rate_limit_retry_after_s": 7}), retry=ONE_ATTEMPT) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
    assert info.value.category is ErrorCategory.RATE_LIMIT
    assert info.value.retry_after == 7
    assert info.value.is_retryable


async def test_retry_after_hint_is_honoured_before_the_next_attempt(tmp_path: Path) -> None:
    plan = {
        "fail_first": 1,
        "fail_with": "rate_limit",
        "fail_retry_after_s": 0.6,
        "state_dir": str(tmp_path),
    }
    async with open_supervisor(fake(plan), retry=FAST_RETRY) as sup:
        result = await sup.ask("patience")
    assert result.attempts == 2
    assert result.duration_s >= 0.6  # the hint replaced the 10-50 ms backoff


async def test_auth_failure_is_not_retried() -> None:
    async with open_supervisor(fake({"auth_failure": True}), retry=FAST_RETRY) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
    assert info.value.category is ErrorCategory.AUTH_FAILURE
    assert info.value.attempts == 1
    assert not info.value.is_retryable


async def test_garbage_line_is_kept_raw_and_the_answer_still_arrives() -> None:
    async with open_supervisor(fake({"malformed_line": True})) as sup:
        result = await sup.ask("hi")
    assert result.text == "echo: hi"
    raw = [e for e in result.raw_events if isinstance(e, RawEvent)]
    assert [e.line for e in raw] == ["<<this is not json>>"]


async def test_invalid_utf8_is_replaced_not_fatal() -> None:
    async with open_supervisor(fake({"invalid_utf8": True, "chunks": 2})) as sup:
        result = await sup.ask("bytes")
    deltas = "".join(e.text for e in result.raw_events if isinstance(e, TextDelta))
    assert "\ufffd" in deltas
    assert result.text == "echo: bytes"


async def test_megabytes_of_stderr_neither_deadlock_nor_grow_the_error() -> None:
    async with open_supervisor(fake({"stderr_bytes": 8 * 1024 * 1024}), retry=ONE_ATTEMPT) as sup:
        result = await sup.ask("loud")
        assert result.text == "echo: loud"
    plan = {"stderr_bytes": 4 * 1024 * 1024, "exit_code": 1}
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("loud")
    assert len(info.value.stderr.encode()) <= 64 * 1024
    assert info.value.stderr.rstrip().endswith("fake: failing with exit code 1")


async def test_text_cli_answer_is_its_stdout() -> None:
    spec = python_cli("import sys; print('line one'); print('line two:', sys.argv[1])")
    async with open_supervisor(spec) as sup:
        result = await sup.ask("x")
    assert result.text == "line one\nline two: x"
    deltas = "".join(e.text for e in result.raw_events if isinstance(e, TextDelta))
    assert deltas == result.text


async def test_stream_yields_deltas_first_then_the_result() -> None:
    spec = fake({"chunks": 4, "chunk_gap_s": 0.02})
    async with open_supervisor(spec) as sup, sup.stream("stream this answer") as events:
        seen = [event async for event in events]
        result = events.result
    kinds = [e.type for e in seen]
    assert kinds == ["session_started", *["text_delta"] * 4, "result"]
    assert isinstance(result, Result)
    assert "".join(e.text for e in seen if isinstance(e, TextDelta)) == result.text


async def test_stream_failure_raises_llmerror_itself() -> None:
    async with open_supervisor(fake({"auth_failure": True})) as sup:
        with pytest.raises(LLMError) as info:
            async with sup.stream("x") as events:
                async for _event in events:
                    pass
    assert info.value.category is ErrorCategory.AUTH_FAILURE


async def test_errors_come_out_of_the_supervisor_block_unwrapped() -> None:
    with pytest.raises(LLMError) as info:
        async with open_supervisor(fake({"auth_failure": True})) as sup:
            await sup.ask("x")
    assert type(info.value) is LLMError
    with pytest.raises(ZeroDivisionError):
        async with open_supervisor(fake()) as sup:
            _ = 1 / 0


async def test_breaker_opens_and_then_rejects_at_once_without_spawning() -> None:
    breaker = CircuitBreaker(failure_threshold=2, success_threshold=1, timeout_seconds=30)
    async with open_supervisor(fake({"exit_code": 1}), retry=ONE_ATTEMPT, breaker=breaker) as sup:
        for _ in range(2):
            with pytest.raises(LLMError):
                await sup.ask("x")
        assert breaker.state is CircuitState.OPEN
        spawned = sup.statistics().processes_spawned
        # "At once": no spawn (below), and no waiting out the breaker's 30 s; the fail_after
        # is a hang guard shorter than that wait, not a timing bound.
        with trio.fail_after(20), pytest.raises(LLMError) as info:
            await sup.ask("x")
        stats = sup.statistics()
    assert info.value.category is ErrorCategory.CIRCUIT_OPEN
    assert "will try again in" in info.value.message
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 30
    assert stats.processes_spawned == spawned
    assert stats.breaker_state is CircuitState.OPEN
    assert stats.breaker_rejections == 1


async def test_rate_limit_opens_the_breaker_until_the_announced_time(tmp_path: Path) -> None:
    breaker = CircuitBreaker(failure_threshold=5, success_threshold=1, timeout_seconds=30)
    plan = {
        "rules": [
            {
                "match": "limited",
                "fail_first": 1,
                "fail_with": "rate_limit",
                "fail_retry_after_s": 0.5,
            }
        ],
        "state_dir": str(tmp_path),
    }
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT, breaker=breaker) as sup:
        with pytest.raises(LLMError) as first:
            await sup.ask("limited")
        assert first.value.category is ErrorCategory.RATE_LIMIT
        with pytest.raises(LLMError) as rejected:
            await sup.ask("other")
        assert rejected.value.category is ErrorCategory.CIRCUIT_OPEN
        assert rejected.value.retry_after is not None and rejected.value.retry_after <= 0.5
        await trio.sleep(0.5)
        assert (await sup.ask("other")).text == "echo: other"  # the half-open trial
    assert breaker.state is CircuitState.CLOSED


async def test_breaker_wait_pauses_calls_instead_of_failing_them(tmp_path: Path) -> None:
    breaker = CircuitBreaker(failure_threshold=5, success_threshold=1, timeout_seconds=30)
    plan = {
        "rules": [{"match": "limited", "fail_first": 1, "fail_with": "rate_limit"}],
        "fail_retry_after_s": 0.4,
        "state_dir": str(tmp_path),
    }
    async with open_supervisor(
        fake(plan), retry=FAST_RETRY, breaker=breaker, breaker_wait=5.0
    ) as sup:
        results = await sup.map(["limited", *[f"q{i}" for i in range(6)]])
    assert all(isinstance(r, Result) for r in results)
    assert breaker.opened_count >= 1
    assert breaker.state is CircuitState.CLOSED


async def test_map_keeps_input_order_and_isolates_failures() -> None:
    plan = {
        "latency_s": 0.05,
        "rules": [
            {"match": "slow", "latency_s": 0.4},
            {"match": "bad", "auth_failure": True},
        ],
    }
    prompts = ["slow 1", "fast 2", "bad 3", "fast 4", "slow 5"]
    async with open_supervisor(fake(plan), retry=FAST_RETRY, concurrency=5) as sup:
        outcomes = await sup.map(prompts)
        stats = sup.statistics()
    assert len(outcomes) == len(prompts)
    for prompt, outcome in zip(prompts, outcomes, strict=True):
        if "bad" in prompt:
            assert isinstance(outcome, LLMError)
            assert outcome.category is ErrorCategory.AUTH_FAILURE
        else:
            assert isinstance(outcome, Result)
            assert outcome.text == f"echo: {prompt}"
    assert (stats.started, stats.succeeded, stats.failed, stats.in_flight) == (5, 4, 1, 0)


async def test_map_respects_the_concurrency_limit(tmp_path: Path) -> None:
    # Each call records how many calls were running when it started.
    log = tmp_path / "running"
    code = (
        "import os, sys, time, fcntl\n"
        f"p = {str(log)!r}\n"
        "fd = os.open(p, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); n = len(os.read(fd, 10000)) + 1; "
        "os.write(fd, b'x'); fcntl.flock(fd, fcntl.LOCK_UN)\n"
        "print(n); time.sleep(0.15)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.lseek(fd, 0, 0); d = os.read(fd, 10000); "
        "os.ftruncate(fd, 0); os.lseek(fd, 0, 0); os.write(fd, d[1:]); "
        "fcntl.flock(fd, fcntl.LOCK_UN)\n"
    )
    async with open_supervisor(python_cli(code), concurrency=3) as sup:
        outcomes = await sup.map([str(i) for i in range(12)])
    peaks = [int(o.text) for o in outcomes if isinstance(o, Result)]
    assert len(peaks) == 12
    assert max(peaks) <= 3
    assert max(peaks) >= 2  # it did run calls side by side


async def test_map_cancelled_midway_leaves_no_process() -> None:
    token = marker()
    async with open_supervisor(fake({"latency_s": 30}), concurrency=4) as sup:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.map, [f"{token} {i}" for i in range(10)])
            # Cancel only once the calls are really running (under load that takes a while),
            # so the check below is about live processes, not about calls never started.
            with trio.fail_after(60):  # a hang guard, not a timing assertion
                while len(live_processes_with(token)) < 4:  # noqa: ASYNC110 - /proc offers nothing to await
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        assert live_processes_with(token) == []
        assert sup.statistics().in_flight == 0


async def test_statistics_is_a_frozen_snapshot() -> None:
    async with open_supervisor(fake()) as sup:
        before = sup.statistics()
        await sup.ask("x")
        after = sup.statistics()
    assert (before.started, after.started, after.succeeded) == (0, 1, 1)
    with pytest.raises(AttributeError):
        after.started = 5  # type: ignore[misc]


async def test_secrets_are_redacted_from_errors() -> None:
    secret = "supersecretvalue-1234567"
    code = (
        "import os, sys; "
        "sys.stderr.write('Invalid API key sk-ant-api03-abcdefghijklmnop given; env '"
        " + os.environ['MY_SERVICE_API_KEY'] + '\\n'); sys.exit(1)"
    )
    spec = actors.command([sys.executable, "-S", "-c", code], env={"MY_SERVICE_API_KEY": secret})
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("x")
    error = info.value
    assert error.category is ErrorCategory.AUTH_FAILURE
    for text in (error.message, error.stderr, str(error), error.one_line()):
        assert secret not in text
        assert "sk-ant-api03-abcdefghijklmnop" not in text
        assert "[REDACTED]" in text


async def test_environment_is_built_explicitly() -> None:
    code = "import os, json; print(json.dumps([os.environ.get('A'), os.environ.get('HOME')]))"
    inherited = actors.command([sys.executable, "-S", "-c", code], env={"A": "1"})
    async with open_supervisor(inherited) as sup:
        a, home = json.loads((await sup.ask("x")).text)
    assert (a, home) == ("1", os.environ.get("HOME"))


async def test_nul_in_prompt_is_a_clear_permanent_error() -> None:
    async with open_supervisor(fake()) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("a\0b")
    assert info.value.category is ErrorCategory.PERMANENT
    assert "NUL" in info.value.message


def test_bad_configuration_fails_where_it_is_built_and_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"RetryConfig\.max_attempts"):
        RetryConfig(max_attempts=0)
    with pytest.raises(ValueError, match=r"TimeoutConfig\.total_execution"):
        TimeoutConfig(total_execution=-1)
    with pytest.raises(ValueError, match=r"TimeoutConfig\.graceful_shutdown"):
        TimeoutConfig(graceful_shutdown=-1)
    with pytest.raises(TypeError, match="argv list"):
        actors.command("claude -p")  # a str is a Sequence[str]: caught at run time
    with pytest.raises(ValueError, match="argv"):
        actors.command([])
    with pytest.raises(ValueError, match="output_format"):
        actors.command(["x"], output_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunks"):
        actors.fake({"chunks": -1})


async def test_bad_supervisor_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        async with open_supervisor(fake(), concurrency=0):
            pass
    with pytest.raises(TypeError, match="CliSpec"):
        async with open_supervisor("claude"):  # type: ignore[arg-type]
            pass


async def test_terminal_error_event_stops_the_cli_at_once() -> None:
    token = marker()
    code = (
        "import json, sys, time\n"
        "print(json.dumps({'type': 'error', 'message': 'Invalid API key', 'status': 401,"
        " 'terminal': True}), flush=True)\n"
        "time.sleep(30)\n"
    )
    spec = actors.command([sys.executable, "-S", "-c", code, token], output_format="jsonl")
    async with open_supervisor(spec, retry=FAST_RETRY) as sup:
        # Not the CLI's 30 s: the guard is shorter, and only there to catch that hang.
        with trio.fail_after(20), pytest.raises(LLMError) as info:
            await sup.ask("x")
    assert info.value.category is ErrorCategory.AUTH_FAILURE
    assert "stopped early" in info.value.message
    assert info.value.attempts == 1
    assert live_processes_with(token) == []


async def test_stderr_watch_turns_retry_chatter_into_an_early_typed_error() -> None:
    token = marker()
    code = (
        "import sys, time\n"
        "sys.stderr.write('Attempt 1 failed with status 429. Retrying with backoff... "
        "Please try again in 20s.\\n'); sys.stderr.flush()\n"
        "time.sleep(30)\n"
    )

    def watch(line: str) -> actors.ErrorReport | None:
        if "failed with status" in line:
            return actors.ErrorReport(message=line, terminal=True)
        return None

    spec = attrs.evolve(python_cli(code + f"# {token}"), stderr_watch=watch)
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("x")
    assert info.value.category is ErrorCategory.RATE_LIMIT
    assert info.value.retry_after == 20
    assert live_processes_with(token) == []


async def test_prompt_too_long_for_an_argument_says_to_use_stdin() -> None:
    prompt = "x" * 200_000
    async with open_supervisor(python_cli(ARGV_ECHO), retry=FAST_RETRY) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask(prompt)
        assert sup.statistics().processes_spawned == 0
    assert info.value.category is ErrorCategory.PERMANENT
    assert "prompt_via='stdin'" in info.value.message
    spec = python_cli("import sys; print(len(sys.stdin.read()))", prompt_via="stdin")
    async with open_supervisor(spec) as sup:
        assert (await sup.ask(prompt)).text == "200000"


async def test_prompt_with_a_lone_surrogate_is_a_clear_permanent_error() -> None:
    for via in ("arg", "stdin"):
        spec = python_cli(ARGV_ECHO, prompt_via=via)
        async with open_supervisor(spec, retry=FAST_RETRY) as sup:
            with pytest.raises(LLMError) as info:
                await sup.ask("bad \ud800 text")
            assert sup.statistics().processes_spawned == 0
        assert info.value.category is ErrorCategory.PERMANENT
        assert "lone surrogate" in info.value.message
