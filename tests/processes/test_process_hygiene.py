"""Process hygiene, verified through /proc with real processes.

Every test puts a unique marker in the CLI's argv; the fake CLI's grandchild is a fork and
carries the same argv, so "no process with the marker" means the whole tree is gone.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import trio
import trio.testing

from actors._spawn import FAST_READS_IN_A_ROW, PipeReads
from supervisor import (
    ErrorCategory,
    LLMError,
    RetryConfig,
    TimeoutConfig,
    open_supervisor,
)

from ..helpers import (
    fake,
    live_processes_with,
    marker,
    open_fds,
    wait_until_gone,
)
from ..rss_probe import peak_growth_of_one_huge_line_call

ONE_ATTEMPT = RetryConfig(max_attempts=1)
# Only a guard against a hang, never a timing bound: far longer than any stop sequence on a
# loaded machine, far shorter than the 120 s the stubborn grandchild would hold out.
HANG_GUARD_S = 60.0

STUBBORN_TREE = {
    "hang": True,
    "ignore_sigterm": True,
    "grandchild_holds_stdout_s": 120,
    "grandchild_ignores_sigterm": True,
}


async def _wait_for_processes(token: str, count: int) -> None:
    with trio.fail_after(10):
        while len(live_processes_with(token)) < count:  # noqa: ASYNC110 - polling /proc
            await trio.sleep(0.02)


async def test_cancel_stops_a_sigterm_ignoring_cli_and_its_sigterm_ignoring_grandchild() -> None:
    token = marker()
    grace = 0.5
    async with open_supervisor(
        fake(STUBBORN_TREE), retry=ONE_ATTEMPT, timeouts=TimeoutConfig(graceful_shutdown=grace)
    ) as sup:
        with trio.CancelScope() as scope:

            async def cancel_when_running() -> None:
                await _wait_for_processes(token, 2)  # the CLI and its grandchild
                scope.cancel()

            with trio.fail_after(HANG_GUARD_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(cancel_when_running)
                    await sup.ask(token)
        assert scope.cancelled_caught
        # The cancelled call returned only after the whole tree was gone.
        assert live_processes_with(token) == []


@pytest.mark.parametrize(
    ("plan", "timeouts", "named"),
    [
        pytest.param(
            STUBBORN_TREE,
            TimeoutConfig(total_execution=0.5, chunk_receive=None, graceful_shutdown=0.3),
            "total_execution=0.5s",
            id="total_execution",
        ),
        pytest.param(
            {"latency_s": 60},  # silent from the start: not chunk_receive's 10 s
            TimeoutConfig(
                total_execution=30, chunk_receive=10, first_output=0.5, graceful_shutdown=0.3
            ),
            "first_output=0.5s",
            id="first_output",
        ),
    ],
)
async def test_a_timeout_is_named_comes_on_time_and_leaves_no_tree(
    plan: dict[str, object], timeouts: TimeoutConfig, named: str
) -> None:
    token = marker()
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT, timeouts=timeouts) as sup:
        # The named timeout is what fired (not the CLI's own end, nor another timeout);
        # the guard is shorter than every other way out (total_execution=30, latency 60 s).
        with trio.fail_after(25), pytest.raises(LLMError) as info:
            await sup.ask(token)
    assert info.value.category is ErrorCategory.TIMEOUT
    assert named in info.value.message
    assert live_processes_with(token) == []


async def test_silence_on_stdout_is_a_chunk_timeout() -> None:
    token = marker()
    timeouts = TimeoutConfig(total_execution=30, chunk_receive=0.4, graceful_shutdown=0.2)
    plan = {"hang_after_chunks": 1, "chunks": 3}
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT, timeouts=timeouts) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask(token)
    assert info.value.category is ErrorCategory.TIMEOUT
    assert "chunk_receive=0.4s" in info.value.message
    assert live_processes_with(token) == []


async def test_a_slow_start_is_held_to_first_output_not_chunk_receive() -> None:
    # Silent for 1 s before the first byte, then gaps of 0.1 s: chunk_receive=0.4 alone
    # would have killed it; first_output=5 lets it start.
    timeouts = TimeoutConfig(total_execution=30, chunk_receive=0.4, first_output=5)
    plan = {"latency_s": 1.0, "chunks": 3, "chunk_gap_s": 0.1, "text": "abc"}
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT, timeouts=timeouts) as sup:
        result = await sup.ask("slow start")
    assert result.text == "abc"


async def test_steady_output_is_not_a_chunk_timeout() -> None:
    # Ten chunks 0.15 s apart: 1.5 s in all, each gap well under chunk_receive.
    timeouts = TimeoutConfig(total_execution=30, chunk_receive=0.6)
    plan = {"chunks": 10, "chunk_gap_s": 0.15, "text": "0123456789"}
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT, timeouts=timeouts) as sup:
        result = await sup.ask("steady")
    assert result.text == "0123456789"


async def test_exit_while_grandchild_holds_stdout_ends_the_call_and_removes_the_grandchild() -> (
    None
):
    token = marker()
    plan = {"grandchild_holds_stdout_s": 120, "grandchild_ignores_sigterm": True}
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT) as sup:
        # A bounded drain after the CLI's exit, not the grandchild's 120 s (a hang guard).
        with trio.fail_after(HANG_GUARD_S):
            result = await sup.ask(token)
    assert result.text == f"echo: {token}"
    assert live_processes_with(token) == []


async def test_cancelled_while_spawning_still_reaps() -> None:
    token = marker()
    async with open_supervisor(fake({"hang": True}), retry=ONE_ATTEMPT) as sup:
        for step in range(30):
            # Cancel at many points: before, during and just after the spawn.
            with trio.move_on_after(step * 0.002):
                await sup.ask(token)
            assert live_processes_with(token) == [], f"leftover after cancel at step {step}"


async def test_no_file_descriptor_leaks_across_every_kind_of_ending() -> None:
    token = marker()
    timeouts = TimeoutConfig(total_execution=0.4, graceful_shutdown=0.2)
    plans: list[dict[str, object]] = [
        {},
        {"exit_code": 1},
        {"hang": True},
        {"auth_failure": True},
        {"stderr_bytes": 300_000},
        {"oversized_line_bytes": 200_000},
    ]
    # Warm up lazily created trio resources (wakeup fds, thread pool) before the baseline.
    async with open_supervisor(fake(), retry=ONE_ATTEMPT) as sup:
        await sup.ask("warm-up")
    before = open_fds()
    for plan in plans:
        async with open_supervisor(
            fake(plan, max_line_bytes=100_000), retry=ONE_ATTEMPT, timeouts=timeouts
        ) as sup:
            for cancel_after in (None, 0.05):  # run to the end, then cancelled midway
                with trio.move_on_after(cancel_after or 60), contextlib.suppress(LLMError):
                    await sup.ask(token)
            try:
                async with sup.stream(token) as events:
                    async for _event in events:
                        break  # abandoned early
            except LLMError:
                pass  # plans that fail before any event
    with pytest.raises(LLMError):
        async with open_supervisor(fake(), retry=ONE_ATTEMPT) as sup:
            await sup.ask("\0 cannot be an argument")
    assert open_fds() == before
    assert live_processes_with(token) == []


async def test_stream_left_early_stops_the_process() -> None:
    token = marker()
    plan = {"chunks": 5, "hang_after_chunks": 2}
    async with open_supervisor(fake(plan), retry=ONE_ATTEMPT) as sup:
        async with sup.stream(token) as events:
            async for event in events:
                if event.type == "text_delta":
                    break
        assert live_processes_with(token) == []


async def test_huge_line_is_malformed_output_and_memory_stays_bounded() -> None:
    token = marker()
    plan = {"oversized_line_bytes": 20 * 1024 * 1024}
    async with open_supervisor(fake(plan, max_line_bytes=1024 * 1024), retry=ONE_ATTEMPT) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask(token)
    assert info.value.category is ErrorCategory.MALFORMED_OUTPUT
    assert "max_line_bytes=1048576" in info.value.message
    assert live_processes_with(token) == []
    # The 20 MiB line was never held. Measured in a fresh interpreter against a baseline
    # taken just before the call (this session's own peak says nothing about one call).
    probe = peak_growth_of_one_huge_line_call(20 * 1024 * 1024, 1024 * 1024)
    assert probe["ok"] and probe["reset"], probe
    assert probe["peak"] - probe["base"] < 10 * 1024, probe


def test_ctrl_c_stops_every_cli_process() -> None:
    token = marker()
    script = textwrap.dedent(
        f"""
        import signal, sys, trio
        sys.path.insert(0, {os.getcwd()!r})
        import actors
        from supervisor import open_supervisor, TimeoutConfig

        # As from a terminal, whatever the runner's SIGINT disposition was.
        signal.signal(signal.SIGINT, signal.default_int_handler)

        async def main():
            spec = actors.fake({STUBBORN_TREE!r})
            async with open_supervisor(
                spec, timeouts=TimeoutConfig(graceful_shutdown=0.3)
            ) as sup:
                async with trio.open_nursery() as nursery:
                    for i in range(3):
                        nursery.start_soon(sup.ask, "{token}")
                    print("started", flush=True)

        try:
            trio.run(main)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"

        def tree() -> list[int]:  # the script's own command line carries the marker too
            return [pid for pid in live_processes_with(token) if pid != proc.pid]

        for _ in range(500):
            if len(tree()) >= 6:  # 3 CLIs and 3 grandchildren
                break
            time.sleep(0.02)
        assert len(tree()) == 6
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "interrupted" in out
        assert live_processes_with(token) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_wait_helper_reports_leftovers() -> None:
    # The check itself can fail: a process we leave running is seen.
    token = marker()
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", "import time; time.sleep(30)", token]
    )
    try:
        await _wait_for_processes(token, 1)
        assert await wait_until_gone(token, 0.2) == [proc.pid]
    finally:
        proc.kill()
        await proc.wait()
    assert await wait_until_gone(token, 2) == []


async def test_ready_output_is_read_without_yielding_but_a_flood_still_yields() -> None:
    # Output already in the pipe costs no trip through the scheduler; after
    # FAST_READS_IN_A_ROW such reads one read waits (and yields), so a CLI that keeps its
    # pipe full cannot starve the supervisor's other tasks.
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    stream = trio.lowlevel.FdStream(read_fd)
    reads = PipeReads()
    try:
        with trio.testing.assert_no_checkpoints():
            for index in range(FAST_READS_IN_A_ROW):
                os.write(write_fd, f"line {index}\n".encode())
                assert await reads.receive(stream, math.inf) == f"line {index}\n".encode()
        os.write(write_fd, b"one more\n")
        with trio.testing.assert_checkpoints():
            assert await reads.receive(stream, math.inf) == b"one more\n"
        # Nothing in the pipe: the read waits, and the deadline ends it.
        assert await reads.receive(stream, trio.current_time() + 0.05) is None
    finally:
        await stream.aclose()
        os.close(write_fd)
