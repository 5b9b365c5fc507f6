"""The reference document's names work as its examples use them.

`LLMCliWrapper` (call_api_async, stream_response), `RetryHandler.async_call_with_retry` and
`ProgressiveTimeoutManager`, against the fake CLI run as a real program and trio's clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from pydantic import BaseModel

import actors
from actors._fakes._plan import FAKE_CLI_PATH
from supervisor import (
    CircuitBreaker,
    CircuitState,
    ErrorCategory,
    LLMError,
    ProgressiveTimeoutManager,
    RetryConfig,
    RetryHandler,
    TimeoutConfig,
)
from supervisor._compat import LLMCliWrapper

from ..helpers import FakeClock, live_processes_with, marker, wait_until_gone

FAST_RETRY = RetryConfig(max_attempts=3, initial_delay_ms=10, max_delay_ms=50)
ONE_ATTEMPT = RetryConfig(max_attempts=1)


def fake_args(plan: dict[str, object] | None = None, *, stdin: bool = True) -> list[str]:
    """``cmd_args`` that make ``sys.executable`` run the fake CLI as a plain-text program.

    `LLMCliWrapper(binary)` treats stdout as the answer text, as the reference document
    does for ``claude``; ``format: text`` makes the fake print just the answer.
    """
    args = ["-S", FAKE_CLI_PATH, "--plan", json.dumps({"format": "text", **(plan or {})})]
    args.append("--prompt-stdin" if stdin else "--")
    return args


class CodeAnalysis(BaseModel):
    issues: list[str]
    score: float


# -- LLMCliWrapper.call_api_async --------------------------------------------------------


async def test_call_api_async_returns_the_answer() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    result = await wrapper.call_api_async(cmd_args=fake_args(), input_data="hello")
    assert result == "echo: hello"


async def test_call_api_async_with_a_spec_speaks_the_native_dialect() -> None:
    # The fake's JSON-lines output is decoded when the wrapper is given the fake's spec.
    wrapper = LLMCliWrapper(actors.fake(prompt_via="stdin"))
    assert await wrapper.call_api_async(input_data="hello") == "echo: hello"


async def test_call_api_async_with_the_fake_cli_path_and_prompt_stdin() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    plan = '{"format": "text", "text": "multi\\nline answer"}'
    result = await wrapper.call_api_async(
        cmd_args=["-S", FAKE_CLI_PATH, "--plan", plan, "--prompt-stdin"], input_data="ignored"
    )
    assert result == "multi\nline answer"


async def test_output_model_returns_a_dict_that_validates() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    answer = json.dumps({"issues": ["x"], "score": 0.5})
    result = await wrapper.call_api_async(
        cmd_args=fake_args({"text": answer}),
        input_data=json.dumps({"messages": [{"role": "user", "content": "analyze"}]}),
        output_model=CodeAnalysis,
    )
    assert isinstance(result, dict)
    analysis = CodeAnalysis(**result)
    assert analysis.issues == ["x"]
    assert analysis.score == 0.5


async def test_output_model_finds_json_inside_prose() -> None:
    answer = 'Sure! Here it is:\n```json\n{"issues": [], "score": 1}\n```\nAnything else?'
    result = await LLMCliWrapper(sys.executable).call_api_async(
        cmd_args=fake_args({"text": answer}), input_data="x", output_model=CodeAnalysis
    )
    assert CodeAnalysis(**result) == CodeAnalysis(issues=[], score=1.0)


@pytest.mark.parametrize(
    "answer", ['{"issues": "not a list", "score": "high"}', "I cannot analyze this code."]
)
async def test_output_model_mismatch_is_malformed_output(answer: str) -> None:
    wrapper = LLMCliWrapper(sys.executable)
    with pytest.raises(LLMError) as info:
        await wrapper.call_api_async(
            cmd_args=fake_args({"text": answer}), input_data="x", output_model=CodeAnalysis
        )
    assert info.value.category is ErrorCategory.MALFORMED_OUTPUT
    assert not info.value.is_retryable
    assert info.value.message


async def test_call_api_async_error_is_typed_and_not_retried_when_permanent(
    tmp_path: Path,
) -> None:
    log = tmp_path / "runs"
    code = (
        "import sys; open(sys.argv[1], 'a').write('x'); "
        "print('HTTP 403 Forbidden', file=sys.stderr); sys.exit(1)"
    )
    wrapper = LLMCliWrapper(sys.executable, retry_config=FAST_RETRY)
    with pytest.raises(LLMError) as info:
        await wrapper.call_api_async(cmd_args=["-S", "-c", code, str(log)], input_data="x")
    assert info.value.category is ErrorCategory.AUTH_FAILURE
    assert not info.value.is_retryable
    assert info.value.exit_code == 1
    assert log.read_text() == "x"  # one process: auth failures are never retried


async def test_call_api_async_retries_transient_failures(tmp_path: Path) -> None:
    wrapper = LLMCliWrapper(sys.executable, retry_config=FAST_RETRY)
    plan = {"fail_first": 2, "state_dir": str(tmp_path)}
    assert await wrapper.call_api_async(cmd_args=fake_args(plan), input_data="hi") == "echo: hi"


async def test_wrapper_as_context_manager_serves_several_calls() -> None:
    results: dict[str, str] = {}
    async with LLMCliWrapper(sys.executable, concurrency=4) as wrapper:
        assert await wrapper.call_api_async(fake_args(), input_data="first") == "echo: first"

        async def ask(prompt: str) -> None:
            results[prompt] = await wrapper.call_api_async(fake_args(), input_data=prompt)

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(ask, f"prompt {i}")
        assert await wrapper.call_api_async(fake_args(), input_data="last") == "echo: last"
    assert results == {f"prompt {i}": f"echo: prompt {i}" for i in range(6)}


async def test_wrapper_works_again_after_its_context_closes() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    async with wrapper:
        pass
    # A closed wrapper still works: each call opens its own supervisor.
    assert await wrapper.call_api_async(fake_args(), input_data="closed") == "echo: closed"


async def test_shared_circuit_breaker_opens_across_calls(tmp_path: Path) -> None:
    log = tmp_path / "runs"
    code = "import sys; open(sys.argv[1], 'a').write('x'); sys.exit(1)"
    cmd_args = ["-S", "-c", code, str(log)]
    breaker = CircuitBreaker(failure_threshold=2, timeout_seconds=60)
    wrapper = LLMCliWrapper(sys.executable, retry_config=ONE_ATTEMPT, circuit_breaker=breaker)
    for _ in range(2):
        with pytest.raises(LLMError) as info:
            await wrapper.call_api_async(cmd_args, input_data="x")
        assert info.value.category is ErrorCategory.RETRYABLE
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(LLMError) as info:
        await wrapper.call_api_async(cmd_args, input_data="x")
    assert info.value.category is ErrorCategory.CIRCUIT_OPEN
    # Another wrapper sharing the breaker is rejected too, and neither ran the program.
    other = LLMCliWrapper(sys.executable, retry_config=ONE_ATTEMPT, circuit_breaker=breaker)
    with pytest.raises(LLMError) as info:
        await other.call_api_async(cmd_args, input_data="x")
    assert info.value.category is ErrorCategory.CIRCUIT_OPEN
    assert log.read_text() == "xx"


# -- LLMCliWrapper.stream_response -----------------------------------------------------------


async def test_stream_response_yields_chunks_that_join_to_the_answer() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    text = "first line\nsecond line\nthird line"
    chunks = [
        chunk
        async for chunk in wrapper.stream_response(
            "ignored", cmd_args=fake_args({"text": text}, stdin=False)
        )
    ]
    assert "".join(chunks) == text
    assert len(chunks) == 3


async def test_stream_response_passes_the_prompt_as_last_argument() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    prompt = "--help; $(touch x)"
    chunks = [c async for c in wrapper.stream_response(prompt, cmd_args=fake_args(stdin=False))]
    assert "".join(chunks) == f"echo: {prompt}"


async def test_stream_response_delivers_chunks_as_they_are_printed() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    plan = {"text": "a\nb\nc", "chunks": 3, "chunk_gap_s": 0.3}
    arrivals: list[float] = []
    async for _chunk in wrapper.stream_response("x", cmd_args=fake_args(plan, stdin=False)):
        arrivals.append(trio.current_time())
    assert len(arrivals) == 3
    assert arrivals[-1] - arrivals[0] >= 0.5  # the first came before the CLI finished


async def test_stream_response_error_is_raised_to_the_reader() -> None:
    wrapper = LLMCliWrapper(sys.executable, retry_config=ONE_ATTEMPT)
    with pytest.raises(LLMError) as info:
        async for _chunk in wrapper.stream_response(
            "x", cmd_args=fake_args({"auth_failure": True}, stdin=False)
        ):
            pass
    assert info.value.category is ErrorCategory.AUTH_FAILURE


async def test_abandoned_stream_leaves_no_process_behind() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    token = marker()
    lines = "\n".join(f"line {i}" for i in range(20))
    plan = {"text": lines, "chunks": 20, "chunk_gap_s": 0.5}  # ~10 s if left alone
    agen = wrapper.stream_response(token, cmd_args=fake_args(plan, stdin=False))
    assert isinstance(agen, AsyncGenerator)  # typed as AsyncIterator, but closable
    async for chunk in agen:
        assert chunk == "line 0"
        assert live_processes_with(token)
        break
    await agen.aclose()
    assert await wait_until_gone(token, 3.0) == []


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_abandoned_stream_of_a_stalled_cli_leaves_no_process_behind() -> None:
    wrapper = LLMCliWrapper(sys.executable)
    token = marker()
    plan = {"text": "first\nnever sent", "chunks": 2, "hang_after_chunks": 1}
    agen = wrapper.stream_response(token, cmd_args=fake_args(plan, stdin=False))
    assert isinstance(agen, AsyncGenerator)  # typed as AsyncIterator, but closable
    async for chunk in agen:
        assert chunk == "first"
        break
    await agen.aclose()
    left = await wait_until_gone(token, 2.0)
    _kill_all(left)  # do not leave the stalled fake running if the bug is present
    assert left == []


# -- RetryHandler.async_call_with_retry -------------------------------------------------------


def _failing(
    errors: list[LLMError], result: str = "ok"
) -> tuple[Callable[..., Awaitable[str]], list[tuple[object, ...]]]:
    calls: list[tuple[object, ...]] = []

    async def fn(*args: object, **kwargs: object) -> str:
        calls.append((*args, *sorted(kwargs.items())))
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


async def test_retry_handler_retries_until_success(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def flaky(prompt: str, *, suffix: str) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise LLMError("transient", ErrorCategory.RETRYABLE)
        return prompt + suffix

    handler = RetryHandler(RetryConfig(max_attempts=5))
    assert await handler.async_call_with_retry(flaky, "hello", suffix="!") == "hello!"
    assert calls == 3


async def test_retry_handler_stops_at_max_attempts(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def always_fails() -> str:
        nonlocal calls
        calls += 1
        raise LLMError(f"timeout {calls}", ErrorCategory.TIMEOUT)

    with pytest.raises(LLMError) as info:
        await RetryHandler(RetryConfig(max_attempts=4)).async_call_with_retry(always_fails)
    assert calls == 4
    assert info.value.attempts == 4
    assert info.value.message == "timeout 4"  # the last error is the one raised


@pytest.mark.parametrize(
    "category",
    [ErrorCategory.PERMANENT, ErrorCategory.AUTH_FAILURE, ErrorCategory.MALFORMED_OUTPUT],
)
async def test_retry_handler_never_retries_permanent_errors(
    category: ErrorCategory, autojump_clock: trio.testing.MockClock
) -> None:
    calls = 0

    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise LLMError("no", category)

    started = trio.current_time()
    with pytest.raises(LLMError) as info:
        await RetryHandler(RetryConfig(max_attempts=10)).async_call_with_retry(fails)
    assert calls == 1
    assert info.value.attempts == 1
    assert trio.current_time() == started  # no backoff sleep either


async def test_retry_handler_does_not_catch_other_exceptions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not an LLM failure")

    with pytest.raises(ValueError, match="a bug"):
        await RetryHandler(RetryConfig(max_attempts=5)).async_call_with_retry(broken)
    assert calls == 1


async def test_retry_handler_honours_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def rate_limited() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise LLMError("429", ErrorCategory.RATE_LIMIT, retry_after=7.0)
        return "done"

    config = RetryConfig(max_attempts=2, initial_delay_ms=1, max_delay_ms=1)
    started = trio.current_time()
    assert await RetryHandler(config).async_call_with_retry(rate_limited) == "done"
    waited = trio.current_time() - started
    assert 7.0 <= waited < 7.5


async def test_retry_handler_caps_a_huge_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors = [LLMError("429", ErrorCategory.RATE_LIMIT, retry_after=86_400.0)]
    fn, calls = _failing(errors)
    config = RetryConfig(max_attempts=2, max_retry_after_s=30)
    started = trio.current_time()
    assert await RetryHandler(config).async_call_with_retry(fn) == "ok"
    assert 30.0 <= trio.current_time() - started < 31.0
    assert len(calls) == 2


async def test_on_retry_sees_error_attempt_and_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors = [
        LLMError("first", ErrorCategory.RETRYABLE),
        LLMError("second", ErrorCategory.TIMEOUT),
        LLMError("third", ErrorCategory.RATE_LIMIT, retry_after=2.5),
    ]
    fn, calls = _failing(errors)
    seen: list[tuple[LLMError, int, float]] = []
    config = RetryConfig(max_attempts=5, initial_delay_ms=100, max_delay_ms=10_000, jitter=False)
    handler = RetryHandler(config, on_retry=lambda e, n, d: seen.append((e, n, d)))
    started = trio.current_time()
    assert await handler.async_call_with_retry(fn, "arg", key="value") == "ok"
    assert calls == [("arg", ("key", "value"))] * 4
    assert [(e, n) for e, n, _d in seen] == [(errors[0], 1), (errors[1], 2), (errors[2], 3)]
    assert [d for _e, _n, d in seen] == pytest.approx([0.1, 0.2, 2.5])
    assert trio.current_time() - started == pytest.approx(2.8)


async def test_cancelling_a_retry_loop_stops_it(autojump_clock: trio.testing.MockClock) -> None:
    errors = [LLMError("x", ErrorCategory.RETRYABLE, retry_after=60.0)] * 3
    fn, calls = _failing(errors)
    with trio.move_on_after(10) as scope:
        await RetryHandler(RetryConfig(max_attempts=5)).async_call_with_retry(fn)
    assert scope.cancelled_caught
    assert len(calls) == 1


# -- ProgressiveTimeoutManager ---------------------------------------------------------------


def test_progressive_timeout_reference_usage() -> None:
    clock = FakeClock(100.0)
    manager = ProgressiveTimeoutManager(
        TimeoutConfig(total_execution=10.0, chunk_receive=3.0), clock=clock
    )
    assert not manager.started
    manager.start()
    assert manager.started
    clock.now += 2.0
    assert manager.check_chunk_timeout() == pytest.approx(1.0)
    manager.activity()  # output arrived: the inactivity deadline moves
    clock.now += 2.5
    assert manager.check_chunk_timeout() == pytest.approx(0.5)
    clock.now += 1.0  # 3.5 s of silence
    assert manager.check_chunk_timeout() <= 0
    assert manager.check_total_timeout() == pytest.approx(4.5)
    assert manager.elapsed() == pytest.approx(5.5)


def test_total_deadline_dominates_steady_output() -> None:
    clock = FakeClock(100.0)
    manager = ProgressiveTimeoutManager(
        TimeoutConfig(total_execution=10.0, chunk_receive=3.0), clock=clock
    )
    manager.start()
    for _ in range(9):  # output every second: never silent for long
        clock.now += 1.0
        manager.activity()
        assert manager.check_chunk_timeout() > 0
    assert manager.check_chunk_timeout() == pytest.approx(1.0)  # the total deadline's time
    clock.now += 1.0
    manager.activity()
    assert manager.check_chunk_timeout() <= 0
    assert manager.check_total_timeout() <= 0
    assert manager.next_deadline() == manager.total_deadline == pytest.approx(110.0)


def test_timeouts_can_be_unlimited() -> None:
    clock = FakeClock(100.0)
    manager = ProgressiveTimeoutManager(
        TimeoutConfig(total_execution=None, chunk_receive=None), clock=clock
    )
    manager.start()
    clock.now += 1e6
    assert manager.check_chunk_timeout() == float("inf")
    assert manager.check_total_timeout() == float("inf")
    only_chunk = ProgressiveTimeoutManager(
        TimeoutConfig(total_execution=None, chunk_receive=5.0), clock=clock
    )
    only_chunk.start()
    clock.now += 6.0
    assert only_chunk.check_chunk_timeout() == pytest.approx(-1.0)


def test_first_output_gets_its_own_limit_then_chunk_receive_applies() -> None:
    clock = FakeClock(100.0)
    config = TimeoutConfig(total_execution=60.0, chunk_receive=2.0, first_output=10.0)
    manager = ProgressiveTimeoutManager(config, clock=clock)
    manager.start()
    clock.now += 9.0  # a slow start: longer than chunk_receive, within first_output
    assert manager.check_chunk_timeout() == pytest.approx(1.0)
    assert manager.silence_limit == ("first_output", 10.0)
    manager.activity()  # the first output: from now on gaps are held to chunk_receive
    assert manager.silence_limit == ("chunk_receive", 2.0)
    clock.now += 2.5
    assert manager.check_chunk_timeout() == pytest.approx(-0.5)
    assert manager.silence_message("gemini") == "gemini sent no output for chunk_receive=2s"
    manager.start()  # a new attempt starts in the startup phase again
    assert manager.silence_message("gemini") == "gemini printed nothing within first_output=10s"


def test_first_output_defaults_to_chunk_receive_and_can_be_unlimited() -> None:
    assert TimeoutConfig(chunk_receive=7.0).first_output == 7.0
    assert TimeoutConfig(chunk_receive=None).first_output is None
    clock = FakeClock(100.0)
    manager = ProgressiveTimeoutManager(
        TimeoutConfig(total_execution=None, chunk_receive=1.0, first_output=None), clock=clock
    )
    manager.start()
    clock.now += 1e6  # no limit on the first output
    assert manager.check_chunk_timeout() == float("inf")
    manager.activity()
    clock.now += 1.5
    assert manager.check_chunk_timeout() == pytest.approx(-0.5)
    with pytest.raises(ValueError, match=r"TimeoutConfig\.first_output must be > 0"):
        TimeoutConfig(first_output=0)


def test_before_start_nothing_expires() -> None:
    manager = ProgressiveTimeoutManager(TimeoutConfig(), clock=FakeClock(100.0))
    assert manager.elapsed() == 0.0
    assert manager.check_chunk_timeout() == float("inf")


async def test_default_clock_is_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    manager = ProgressiveTimeoutManager(TimeoutConfig(total_execution=30.0, chunk_receive=5.0))
    manager.start()
    await trio.sleep(10)
    assert manager.elapsed() == pytest.approx(10.0)
    assert manager.check_chunk_timeout() == pytest.approx(-5.0)
    assert manager.check_total_timeout() == pytest.approx(20.0)
