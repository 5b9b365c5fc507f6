"""Output integrity at the edges of the deadlines, with real processes.

A call whose CLI wrote its whole answer and exited returns that answer or a typed error,
never a success with truncated text, even when the event loop is stalled (another task
blocking it) just as a deadline and the CLI's exit meet.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping

import trio
import trio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors._spawn import EXIT_DRAIN_S, FAST_READS_IN_A_ROW, PipeReads
from supervisor import ErrorCategory, LLMError, RetryConfig, TimeoutConfig, open_supervisor
from tests.helpers import fake, live_processes_with, marker

ONE_ATTEMPT = RetryConfig(max_attempts=1)


async def _stall_the_loop(stall_s: float) -> None:
    """A badly behaved neighbour: blocks the whole trio run ``stall_s`` at a time."""
    while True:
        time.sleep(stall_s)  # noqa: ASYNC251 - blocking the loop is the point
        await trio.lowlevel.checkpoint()


async def _ask_all(
    plan: Mapping[str, object], timeouts: TimeoutConfig, prompts: list[str], stall_s: float
) -> list[str | LLMError]:
    results: list[str | LLMError] = [""] * len(prompts)
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT, timeouts=timeouts) as sup:

        async def one(index: int) -> None:
            try:
                results[index] = (await sup.ask(prompts[index])).text
            except LLMError as error:
                results[index] = error

        with trio.fail_after(120):  # guards against a hang only
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stall_the_loop, stall_s)
                async with trio.open_nursery() as calls:
                    for index in range(len(prompts)):
                        calls.start_soon(one, index)
                nursery.cancel_scope.cancel()
    return results


TIGHT = TimeoutConfig(first_output=0.5, chunk_receive=0.5, total_execution=30)


async def test_an_answer_written_before_exit_survives_a_stalled_loop() -> None:
    token = marker()
    prompts = [f"{token} call {index}" for index in range(24)]
    results = await _ask_all({"latency_s": 0.4}, TIGHT, prompts, stall_s=0.15)
    for prompt, result in zip(prompts, results, strict=True):
        if isinstance(result, LLMError):
            # Allowed: a typed error (the loop may really have missed the deadline).
            assert result.category is ErrorCategory.TIMEOUT, result
        else:
            assert result == f"echo: {prompt}"
    assert live_processes_with(token) == []


async def test_stderr_written_before_exit_survives_a_stalled_loop() -> None:
    token = marker()
    prompts = [f"{token} call {index}" for index in range(24)]
    plan = {"latency_s": 0.4, "auth_failure": True}
    results = await _ask_all(plan, TIGHT, prompts, stall_s=0.15)
    for result in results:
        assert isinstance(result, LLMError)
        # The auth failure is on stderr: losing it would make this RETRYABLE "exited 1".
        assert result.category in (ErrorCategory.AUTH_FAILURE, ErrorCategory.TIMEOUT), result
    assert live_processes_with(token) == []


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    deadline_s=st.sampled_from([0.2, 0.3, 0.5]),
    # Latencies from well before to just after the deadline, and stalls around it.
    latency_share=st.floats(0.3, 1.1),
    stall_share=st.floats(0.1, 0.8),
    chunks=st.integers(1, 4),
    auth=st.booleans(),
)
def test_a_finished_answer_is_never_a_truncated_success(
    deadline_s: float, latency_share: float, stall_share: float, chunks: int, auth: bool
) -> None:
    token = marker()
    prompts = [f"{token} call {index}" for index in range(6)]
    plan: dict[str, object] = {"latency_s": deadline_s * latency_share, "chunks": chunks}
    if auth:
        plan["auth_failure"] = True
    timeouts = TimeoutConfig(first_output=deadline_s, chunk_receive=deadline_s, total_execution=30)
    results = trio.run(_ask_all, plan, timeouts, prompts, deadline_s * stall_share)
    for prompt, result in zip(prompts, results, strict=True):
        if auth:
            assert isinstance(result, LLMError)
            assert result.category in (ErrorCategory.AUTH_FAILURE, ErrorCategory.TIMEOUT), result
        elif isinstance(result, LLMError):
            assert result.category is ErrorCategory.TIMEOUT, result
        else:
            assert result == f"echo: {prompt}"
    assert live_processes_with(token) == []


# --- PipeReads on a bare pipe: the mechanism under the tests above -------------------


def _pipe() -> tuple[trio.lowlevel.FdStream, int]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    return trio.lowlevel.FdStream(read_fd), write_fd


async def _use_up_fast_reads(reads: PipeReads, stream: trio.lowlevel.FdStream, fd: int) -> None:
    for _ in range(FAST_READS_IN_A_ROW):
        os.write(fd, b"x")
        assert await reads.receive(stream, math.inf) == b"x"


async def test_output_in_the_pipe_is_read_even_after_the_deadline_passed() -> None:
    stream, write_fd = _pipe()
    reads = PipeReads()
    try:
        await _use_up_fast_reads(reads, stream, write_fd)  # so the next read must wait
        os.write(write_fd, b"written in time\n")
        # The loop woke late: the deadline is already past, but the output is there.
        assert await reads.receive(stream, trio.current_time() - 1) == b"written in time\n"
        os.close(write_fd)
        write_fd = -1
        await _use_up_fast_reads_after_eof(reads, stream)
    finally:
        await stream.aclose()
        if write_fd >= 0:
            os.close(write_fd)


async def _use_up_fast_reads_after_eof(reads: PipeReads, stream: trio.lowlevel.FdStream) -> None:
    # EOF is output too: a passed deadline still reports it as EOF, not as silence.
    for _ in range(FAST_READS_IN_A_ROW + 1):
        assert await reads.receive(stream, trio.current_time() - 1) == b""


async def test_after_the_exit_only_the_drain_deadline_bounds_a_read(
    autojump_clock: trio.abc.Clock,
) -> None:
    stream, write_fd = _pipe()
    reads = PipeReads()
    try:
        reads.process_exited()
        drain_at = reads.drain_deadline

        async def write_late() -> None:
            await trio.sleep(EXIT_DRAIN_S / 2)
            os.write(write_fd, b"late but within the drain\n")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_late)
            # A chunk deadline from before the exit, long past: it no longer applies.
            got = await reads.receive(stream, trio.current_time() + EXIT_DRAIN_S / 10)
        assert got == b"late but within the drain\n"
        # Nothing more and the pipe still open (a grandchild holds it): the drain ends.
        assert await reads.receive(stream, math.inf) is None
        assert trio.current_time() >= drain_at
    finally:
        await stream.aclose()
        os.close(write_fd)
