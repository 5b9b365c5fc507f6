"""Standby processes (``open_supervisor(standby=N)``) with real processes of the fake CLI.

The fake's ``startup_s`` is its start-up cost and ``startup_marker`` a file where it notes
``ready PID`` (start-up done) and ``prompt PID`` (prompt read); the tests note their own
``ask`` there before a call, so the order of the lines shows whether the call paid the
start-up, without timing anything.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

import actors
from actors._registry import sweep_orphaned_groups
from supervisor import RestartIntensity, Supervisor, open_supervisor

from ..helpers import live_processes_with, marker, python_cli, wait_until_gone

HANG_GUARD_S = 60


def standby_fake(folder: Path, token: str, **plan: object) -> tuple[actors.CliSpec, Path]:
    """The fake reading its prompt from stdin, with a start-up cost and a marker file
    whose path (in its argv) carries ``token`` for /proc checks."""
    notes = folder / f"{token}.log"
    spec = actors.fake({"startup_s": 0.2, "startup_marker": str(notes), **plan}, prompt_via="stdin")
    return spec, notes


def notes_of(path: Path) -> list[tuple[str, int]]:
    lines = path.read_text().split("\n") if path.exists() else []
    return [(word, int(pid)) for word, _, pid in (line.partition(" ") for line in lines) if pid]


def note(path: Path, what: str) -> None:
    with path.open("a") as handle:
        handle.write(f"{what} 0\n")


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (statistics, /proc); the caller's fail_after guards a hang."""
    while not condition():  # noqa: ASYNC110 - polling state that has no event
        await trio.sleep(0.01)


def ready(sup: Supervisor, count: int = 1) -> Callable[[], bool]:
    return lambda: sup.statistics().standby_ready >= count


async def test_a_call_takes_a_standby_process_and_it_is_replaced(tmp_path: Path) -> None:
    token = marker()
    spec, notes = standby_fake(tmp_path, token)
    spawned: list[int] = []
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=1) as sup:
            sup.add_spawn_listener(spawned.append)
            await until(lambda: ("ready", spawned[0]) in notes_of(notes) if spawned else False)
            note(notes, "ask")
            result = await sup.ask("hello")
            assert result.text == "echo: hello"
            await until(lambda: len(spawned) == 2 and ready(sup)())
            stats = sup.statistics()
    first, second = spawned
    lines = notes_of(notes)
    # The call's process was started, and done starting up, before the call was made; it
    # read the call's prompt; a new standby process replaced it.
    assert lines.index(("ready", first)) < lines.index(("ask", 0)) < lines.index(("prompt", first))
    assert ("prompt", second) not in lines
    assert (stats.standby_taken, stats.standby_ready, stats.processes_spawned) == (1, 1, 2)
    assert (stats.standby_discarded, stats.standby_recycled) == (0, 0)
    assert await wait_until_gone(token, 5) == []


async def test_without_standby_a_call_pays_the_start_up(tmp_path: Path) -> None:
    token = marker()
    spec, notes = standby_fake(tmp_path, token)
    async with open_supervisor(spec) as sup:
        note(notes, "ask")
        await sup.ask("hello")
        stats = sup.statistics()
    (_, pid) = notes_of(notes)[1]
    assert notes_of(notes) == [("ask", 0), ("ready", pid), ("prompt", pid)]
    assert (stats.processes_spawned, stats.standby_taken, stats.standby_ready) == (1, 0, 0)


async def test_calls_in_a_row_each_get_their_own_process(tmp_path: Path) -> None:
    token = marker()
    spec, notes = standby_fake(tmp_path, token)
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=2) as sup:
            await until(ready(sup, 2))
            results = await sup.map([f"p{index}" for index in range(5)])
            stats = sup.statistics()
    assert [r.text for r in results if not isinstance(r, Exception)] == [
        f"echo: p{index}" for index in range(5)
    ]
    prompted = [pid for word, pid in notes_of(notes) if word == "prompt"]
    assert len(prompted) == len(set(prompted)) == 5
    assert stats.standby_taken >= 1
    assert stats.processes_spawned >= 5
    assert await wait_until_gone(token, 5) == []


async def test_a_standby_process_that_dies_while_idle_is_never_handed_out(
    tmp_path: Path,
) -> None:
    token = marker()
    spec, notes = standby_fake(tmp_path, token)
    spawned: list[int] = []
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=1) as sup:
            sup.add_spawn_listener(spawned.append)
            await until(lambda: bool(spawned) and ready(sup)())
            victim = spawned[0]
            os.kill(victim, signal.SIGKILL)
            await until(lambda: sup.statistics().standby_discarded == 1 and len(spawned) == 2)
            await until(ready(sup))
            result = await sup.ask("after")
            stats = sup.statistics()
    assert result.text == "echo: after"
    prompted = [pid for word, pid in notes_of(notes) if word == "prompt"]
    assert victim not in prompted
    assert prompted == [spawned[1]]
    assert (stats.standby_discarded, stats.standby_taken, stats.restarts) == (1, 1, 1)
    assert await wait_until_gone(token, 5) == []


CHATTY = textwrap.dedent(
    """
    import sys
    sys.stderr.write("warning: something changed\\n")
    sys.stderr.flush()
    print(sys.stdin.read())
    """
)


async def test_a_cli_that_writes_before_its_prompt_stops_refilling() -> None:
    token = marker()
    spec = python_cli(CHATTY + f"# {token}", prompt_via="stdin")
    intensity = RestartIntensity(max_restarts=2, period_s=3600)
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=1, restart_intensity=intensity) as sup:
            await until(lambda: sup.statistics().standby_discarded == 3)
            # Past the intensity no more are started; calls spawn as usual.
            result = await sup.ask("cold")
            stats = sup.statistics()
    assert result.text.strip() == "cold"
    assert (stats.standby_discarded, stats.standby_ready, stats.standby_taken) == (3, 0, 0)
    assert stats.restarts == 2  # the third exceeded the intensity
    assert stats.processes_spawned == 4
    assert await wait_until_gone(token, 5) == []


async def test_an_old_standby_process_is_recycled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    token = marker()
    spec, notes = standby_fake(tmp_path, token, startup_s=0.0)
    with trio.fail_after(100_000):  # virtual seconds: the clock jumps
        async with open_supervisor(spec, standby=1, standby_max_age=60) as sup:
            await until(lambda: sup.statistics().standby_recycled >= 3)
            started = trio.current_time()
            await until(ready(sup))
            stats = sup.statistics()
    assert started >= 3 * 60  # each lived its max age, on the injected clock
    assert stats.standby_taken == stats.standby_discarded == 0
    assert stats.processes_spawned >= 4
    assert not [word for word, _ in notes_of(notes) if word == "prompt"]
    # Back to real time for the /proc check (the stop sequence's waits jumped).
    autojump_clock.autojump_threshold = math.inf
    autojump_clock.rate = 1.0
    assert await wait_until_gone(token, 10) == []


async def test_close_and_cancel_leave_no_standby_process(tmp_path: Path) -> None:
    token = marker()
    spec, _notes = standby_fake(tmp_path, token, startup_s=30)
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=3) as sup:
            await until(lambda: len(live_processes_with(token)) == 3)
        assert await wait_until_gone(token, 5) == []
        with trio.CancelScope() as scope:
            async with open_supervisor(spec, standby=2) as sup:
                await until(lambda: len(live_processes_with(token)) == 2)
                scope.cancel()
                await sup.ask("never answered")  # cancelled: the process is stopped too
        assert scope.cancelled_caught
        assert await wait_until_gone(token, 5) == []


def _standby_child(
    plan: dict[str, object], runtime_dir: Path | None = None
) -> subprocess.Popen[str]:
    """A supervisor with two standby processes of the fake, in a child process: it prints
    "ready" once both wait for their prompt, and "interrupted" when Ctrl+C ends it."""
    script = textwrap.dedent(
        f"""
        import sys, trio
        sys.path.insert(0, {os.getcwd()!r})
        import actors
        from supervisor import open_supervisor

        async def main():
            spec = actors.fake({plan!r}, prompt_via="stdin")
            async with open_supervisor(spec, standby=2) as sup:
                while sup.statistics().standby_ready < 2:
                    await trio.sleep(0.01)
                print("ready", flush=True)
                await trio.sleep_forever()
        try:
            trio.run(main)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    env = dict(os.environ)
    if runtime_dir is not None:
        env["LLMSUP_RUNTIME_DIR"] = str(runtime_dir)
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )


async def test_sigkill_then_the_next_start_sweeps_standby_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = marker()
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    # A long start-up: they do not see their stdin close (and exit) when the supervisor
    # dies, so only the supervisor's own clean-up, or the sweep, can end them.
    plan: dict[str, object] = {"startup_marker": str(tmp_path / f"{token}.log"), "startup_s": 60}
    doomed = _standby_child(plan, runtime)
    try:
        assert doomed.stdout is not None
        assert doomed.stdout.readline().strip() == "ready"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        left = [pid for pid in live_processes_with(token) if pid != doomed.pid]
        assert len(left) == 2  # no clean-up ran: they outlive their supervisor...
        monkeypatch.setenv("LLMSUP_RUNTIME_DIR", str(runtime))
        async with open_supervisor(actors.fake()):  # ...until the next one starts
            pass
        assert await wait_until_gone(token, 5) == []
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        sweep_orphaned_groups(str(runtime))


async def test_the_process_limit_counts_standby_processes(tmp_path: Path) -> None:
    token = marker()
    spec, _notes = standby_fake(tmp_path, token, startup_s=0.05)
    limit = 3
    over: list[int] = []  # processes alive at a spawn, when more than the limit

    def on_spawn(_pid: int) -> None:
        alive = len(live_processes_with(token))
        if alive > limit:
            over.append(alive)

    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=2, concurrency=4) as sup:
            sup.set_process_limit(limit)
            sup.add_spawn_listener(on_spawn)
            await until(ready(sup, 2))
            results = await sup.map([f"p{index}" for index in range(12)])
            await until(ready(sup, 2))
            limit = 2
            sup.set_process_limit(limit)  # full: both slots hold standby processes
            # A call of another argv (here: another folder) makes room by stopping one.
            other = await sup.ask("elsewhere", cwd=str(tmp_path))
            stats = sup.statistics()
    assert all(not isinstance(r, Exception) for r in results)
    assert other.text == "echo: elsewhere"
    assert over == []
    assert stats.standby_taken >= 1
    assert await wait_until_gone(token, 5) == []


async def test_ctrl_c_leaves_no_standby_process(tmp_path: Path) -> None:
    token = marker()
    # A long start-up: they do not see their stdin close (and exit) when the supervisor
    # dies, so only the supervisor's own clean-up, or the sweep, can end them.
    plan: dict[str, object] = {"startup_marker": str(tmp_path / f"{token}.log"), "startup_s": 60}
    proc = _standby_child(plan)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert len([pid for pid in live_processes_with(token) if pid != proc.pid]) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "interrupted"
        proc.wait()
        assert await wait_until_gone(token, 5) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_scratch_standby_processes_run_in_their_own_folder(tmp_path: Path) -> None:
    spec = python_cli("import os, sys; sys.stdin.read(); print(os.getcwd())", prompt_via="stdin")
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=1, standby_scratch=True) as sup:
            await until(ready(sup))
            first = (await sup.ask("a", scratch=True)).text.strip()
            await until(ready(sup))
            second = (await sup.ask("b", scratch=True)).text.strip()
            plain = (await sup.ask("c")).text.strip()
            stats = sup.statistics()
    assert first != second
    assert os.path.basename(first).startswith("llmsup-standby-")
    assert not Path(first).exists() and not Path(second).exists()  # noqa: ASYNC240
    assert plain == os.getcwd()
    assert stats.standby_taken == 2


async def test_bad_standby_arguments_are_value_errors_naming_them() -> None:
    stdin_fake = actors.fake(prompt_via="stdin")
    for kwargs, needle in [
        ({"standby": -1}, "standby must be"),
        ({"standby": 1, "standby_max_age": math.inf}, "standby_max_age must be"),
        ({"standby": 1, "standby_max_age": 0}, "standby_max_age must be"),
    ]:
        with pytest.raises(ValueError, match=needle):
            async with open_supervisor(stdin_fake, **kwargs):  # type: ignore[arg-type]
                pass
    with pytest.raises(ValueError, match=r"standby is not possible for fake: the prompt is"):
        async with open_supervisor(actors.fake(), standby=1):
            pass
    async with open_supervisor(actors.fake(), standby=0) as sup:  # 0: fine for any spec
        assert sup.standby == 0
    with pytest.raises(ValueError, match="cwd= or scratch=True"):
        async with open_supervisor(stdin_fake) as sup:
            await sup.ask("x", cwd="/", scratch=True)


async def test_standby_processes_are_registered_like_any_actor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMSUP_RUNTIME_DIR", str(tmp_path))
    token = marker()
    spec, _notes = standby_fake(tmp_path, token)
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, standby=2) as sup:
            await until(ready(sup, 2))
            recorded = [name for name in os.listdir(tmp_path) if not name.endswith(".log")]
            assert recorded  # the registry holds their groups while they wait
    assert [name for name in os.listdir(tmp_path) if not name.endswith(".log")] == []


async def test_the_simulated_fake_pays_its_start_up_on_trios_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spec = actors.simulated({"startup_s": 5.0}, prompt_via="stdin")
    async with open_supervisor(spec) as sup:
        cold = await sup.ask("cold")
    async with open_supervisor(spec, standby=1) as sup:
        while sup.statistics().standby_ready < 1:  # noqa: ASYNC110 - statistics, no event
            await trio.sleep(0.01)
        await trio.sleep(5.0)  # the standby process is done starting up
        warm = await sup.ask("warm")
        stats = sup.statistics()
    assert cold.text == "echo: cold" and warm.text == "echo: warm"
    assert cold.duration_s >= 5.0  # virtual seconds: the start-up, paid by the call
    assert warm.duration_s < 5.0  # paid ahead, by the standby process
    assert stats.standby_taken == 1
