"""A supervisor SIGKILLed right after a spawn leaves nothing the next supervisor misses.

Groups used to be recorded only once they had lived 50 ms; a supervisor killed inside that
window left its trees unswept. Now a group is recorded before the spawning task yields.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from actors._registry import (
    OWNER_PREFIX,
    GroupRecord,
    live_recorded_pids,
    start_time,
    sweep_orphaned_groups,
)
from supervisor import open_supervisor

from ..helpers import fake, live_processes_with, marker, wait_until_gone

CLIS = 4
TREE = {"hang": True, "grandchild_holds_stdout_s": 300, "grandchild_ignores_sigterm": True}


def _doomed_supervisor(token: str, runtime_dir: Path, delay_s: float) -> subprocess.Popen[str]:
    """A supervisor that starts CLIS hanging trees and SIGKILLs itself ``delay_s`` after
    its last spawn listener fires (0: inside the listener, before the call goes on)."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time, trio
        sys.path.insert(0, {os.getcwd()!r})
        import actors
        from supervisor import open_supervisor

        spawned = []

        def listener(pid):
            spawned.append(pid)
            if len(spawned) == {CLIS}:
                time.sleep({delay_s!r})
                os.kill(os.getpid(), signal.SIGKILL)

        async def main():
            spec = actors.fake({TREE!r})
            async with open_supervisor(spec, concurrency={CLIS}) as sup:
                sup.add_spawn_listener(listener)
                async with trio.open_nursery() as nursery:
                    for _ in range({CLIS}):
                        nursery.start_soon(sup.ask, "{token}")
        trio.run(main)
        """
    )
    env = {**os.environ, "LLMSUP_RUNTIME_DIR": str(runtime_dir)}
    return subprocess.Popen([sys.executable, "-c", script], env=env, text=True)


def _kill_all(token: str) -> None:
    for pid in live_processes_with(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("delay_s", [0.0, 0.002, 0.01, 0.03])
async def test_a_supervisor_killed_right_after_spawning_is_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delay_s: float
) -> None:
    token = marker()
    doomed = _doomed_supervisor(token, tmp_path, delay_s)
    try:
        with trio.fail_after(60):
            assert await trio.to_thread.run_sync(doomed.wait) == -signal.SIGKILL
        # Its trees outlive it (nothing ran to clean up; a CLI that writes to its dead
        # reader may die of EPIPE at once, but grandchildren that ignore SIGTERM stay)...
        assert [p for p in live_processes_with(token) if p != doomed.pid] != []
        # ...until the next supervisor opens and sweeps them, whole trees included.
        monkeypatch.setenv("LLMSUP_RUNTIME_DIR", str(tmp_path))
        async with open_supervisor(fake()) as sup:
            assert (await sup.ask("fresh")).text == "echo: fresh"
        assert await wait_until_gone(token, 10) == []
        assert os.listdir(tmp_path) == []
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        sweep_orphaned_groups(str(tmp_path))
        _kill_all(token)  # even when an assertion failed above


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_pid_reused_after_the_record_is_spared(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(
        [sys.executable, "-S", "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        started = start_time(sleeper.pid)
        assert started is not None
        owner = tmp_path / f"{OWNER_PREFIX}{_dead_pid()}-1"
        # Recorded well before this process started: the pid was reused since.
        owner.write_text(f"+{sleeper.pid} {started - 10}\n")
        assert sweep_orphaned_groups(str(tmp_path)) == []
        assert sleeper.poll() is None
        assert os.listdir(tmp_path) == []
        # Recorded after it started, and never forgotten: it is the dead owner's.
        owner.write_text(f"+{sleeper.pid} {started}\n+999999 {started}\n-999999\n+12")
        assert sweep_orphaned_groups(str(tmp_path)) == [sleeper.pid]
        assert sleeper.wait(timeout=30) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_record_file_stays_small_and_goes_when_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMSUP_RUNTIME_DIR", str(tmp_path))
    kept = GroupRecord(4_000_000)  # pgids that name no process: only the file matters
    for pgid in range(4_000_001, 4_002_001):
        GroupRecord(pgid).forget()
    (path,) = tmp_path.iterdir()
    lines = path.read_text().splitlines()
    assert len(lines) < 2 * 256 + 10  # compacted as it grew
    assert lines[0].startswith("+4000000 ")
    assert 4_000_000 in live_recorded_pids()
    kept.forget()
    assert os.listdir(tmp_path) == []
    assert 4_000_000 not in live_recorded_pids()
