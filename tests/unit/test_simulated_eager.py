"""The simulated backend's per-call costs: a short call's script runs at its spawn.

A one-shot call whose prompt is in its argv plays its script at once, up to its exit or
to the first action that must wait; only then does a system task play the rest. These
tests pin that down by behaviour (which tasks exist, what the pipes hold right after the
spawn, what a call returns), never by timing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import trio

import actors
from actors import ErrorCategory, LLMError
from actors._fakes import _script, _simulated
from actors._fakes._simulated import SIMULATED_ARGV0, SimulatedCli
from supervisor import Result, RetryConfig, open_supervisor

NO_RETRY = RetryConfig(max_attempts=1)


class _TaskNames(trio.abc.Instrument):
    """Counts the tasks spawned, by name."""

    def __init__(self) -> None:
        self.spawned: Counter[str] = Counter()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned[task.name] += 1


def _script_tasks(names: _TaskNames) -> int:
    return sum(n for name, n in names.spawned.items() if name.startswith(SIMULATED_ARGV0))


async def test_a_short_call_exits_at_its_spawn_without_a_task(autojump_clock: object) -> None:
    spec = actors.simulated({"text": "hello", "chunks": 2})
    assert spec.backend is not None
    names = _TaskNames()
    trio.lowlevel.add_instrument(names)
    try:
        cli = await spec.backend.spawn(spec, spec.build_argv("x"), stdin_pipe=False)
    finally:
        trio.lowlevel.remove_instrument(names)
    assert isinstance(cli, SimulatedCli)
    assert cli.returncode == 0  # exited already, with its output in the "pipe"
    assert not cli.tree_alive()
    assert _script_tasks(names) == 0
    out = b""
    while chunk := cli.stdout.receive_ready(1 << 16):
        out += chunk
    assert out.count(b"\n") >= 3  # start, two deltas, result...
    assert cli.stdout.receive_ready(1 << 16) == b""  # ...then EOF
    assert await cli.wait() == 0


async def test_many_calls_start_no_script_task(autojump_clock: object) -> None:
    names = _TaskNames()
    trio.lowlevel.add_instrument(names)
    try:
        async with open_supervisor(actors.simulated({"chunks": 3}), retry=NO_RETRY) as sup:
            outcomes = await sup.map([f"p{i}" for i in range(20)])
    finally:
        trio.lowlevel.remove_instrument(names)
    assert [o.text for o in outcomes if isinstance(o, Result)] == [f"echo: p{i}" for i in range(20)]
    assert _script_tasks(names) == 0


async def test_a_call_that_must_wait_hands_the_rest_to_a_task(autojump_clock: object) -> None:
    spec = actors.simulated({"text": "slow answer", "chunks": 3, "chunk_gap_s": 5.0})
    assert spec.backend is not None
    names = _TaskNames()
    trio.lowlevel.add_instrument(names)
    try:
        cli = await spec.backend.spawn(spec, spec.build_argv("x"), stdin_pipe=False)
        assert cli.returncode is None  # waiting between two chunks
        start = trio.current_time()
        with trio.fail_after(600):  # virtual seconds: only guards against a hang
            assert await cli.wait() == 0
    finally:
        trio.lowlevel.remove_instrument(names)
    assert trio.current_time() - start >= 10.0  # both gaps were slept, virtually
    assert _script_tasks(names) == 1
    async with open_supervisor(spec, retry=NO_RETRY) as sup:
        assert (await sup.ask("y")).text == "slow answer"


async def test_a_full_pipe_hands_the_rest_to_a_task(autojump_clock: object) -> None:
    chunks = _simulated.PIPE_CHUNKS * 3
    spec = actors.simulated({"text": "z" * chunks, "chunks": chunks})
    async with open_supervisor(spec, retry=NO_RETRY) as sup:
        with trio.fail_after(600):
            assert (await sup.ask("y")).text == "z" * chunks


async def test_a_script_bug_at_the_spawn_is_a_crashed_cli(
    autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> Iterator[object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(_script, "script", broken)
    spec = actors.simulated({})
    async with open_supervisor(spec, retry=NO_RETRY) as sup:
        with trio.fail_after(600):
            with pytest.raises(LLMError) as caught:
                await sup.ask("x")
    assert caught.value.exit_code == 70
    assert "internal error: boom" in caught.value.message
    assert caught.value.category is ErrorCategory.RETRYABLE  # as a crashed process's


async def test_a_kill_right_after_the_spawn_of_a_waiting_script(autojump_clock: object) -> None:
    spec = actors.simulated({"latency_s": 30.0})
    assert spec.backend is not None
    cli = await spec.backend.spawn(spec, spec.build_argv("x"), stdin_pipe=False)
    assert isinstance(cli, SimulatedCli)
    cli.kill()  # before its task ever ran
    with trio.fail_after(600):
        assert await cli.wait() == -9
    assert cli.stdout.receive_ready(1 << 16) == b""  # it printed nothing
