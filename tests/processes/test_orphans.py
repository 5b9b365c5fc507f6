"""A supervisor killed with SIGKILL leaks nothing: the next one sweeps its CLI trees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from actors._registry import OWNER_PREFIX, record_group, start_time, sweep_orphaned_groups
from supervisor import open_supervisor

from ..helpers import fake, live_processes_with, marker, wait_until_gone

TREE = {"hang": True, "grandchild_holds_stdout_s": 300, "grandchild_ignores_sigterm": True}


def _spawn_doomed_supervisor(token: str, runtime_dir: Path) -> subprocess.Popen[str]:
    script = textwrap.dedent(
        f"""
        import sys, trio
        sys.path.insert(0, {os.getcwd()!r})
        import actors
        from supervisor import open_supervisor

        async def main():
            async with open_supervisor(actors.fake({TREE!r})) as sup:
                async with trio.open_nursery() as nursery:
                    for _ in range(2):
                        nursery.start_soon(sup.ask, "{token}")
                    print("started", flush=True)
        trio.run(main)
        """
    )
    env = {**os.environ, "LLMSUP_RUNTIME_DIR": str(runtime_dir)}
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )


def _cli_processes(token: str, supervisor_pid: int) -> list[int]:
    # The supervisor's own command line carries the marker too (in its script).
    return [pid for pid in live_processes_with(token) if pid != supervisor_pid]


def _recorded_groups(directory: Path) -> int:
    """Groups recorded and not forgotten, over every owner's record file."""
    live: set[int] = set()
    for path in directory.iterdir():
        if path.name.isdigit():
            live.add(int(path.name))
        elif path.name.startswith(OWNER_PREFIX):
            for line in path.read_text().splitlines():
                if line.startswith("+"):
                    live.add(int(line[1:].split()[0]))
                elif line.startswith("-"):
                    live.discard(int(line[1:]))
    return len(live)


def _wait_for(token: str, supervisor_pid: int, count: int) -> None:
    for _ in range(500):
        if len(_cli_processes(token, supervisor_pid)) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"expected {count} processes with the marker")


async def test_next_supervisor_sweeps_trees_of_a_sigkilled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = marker()
    doomed = _spawn_doomed_supervisor(token, tmp_path)
    try:
        assert doomed.stdout is not None
        assert doomed.stdout.readline().strip() == "started"
        _wait_for(token, doomed.pid, 4)  # two CLIs, two grandchildren
        with trio.fail_after(30):  # recorded as soon as each spawn returns
            while _recorded_groups(tmp_path) < 2:  # noqa: ASYNC110 - a file, not an event
                await trio.sleep(0.01)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        # No cleanup ran: the trees outlive their supervisor...
        assert len(_cli_processes(token, doomed.pid)) == 4
        assert _recorded_groups(tmp_path) == 2
        # ...until the next supervisor opens.
        monkeypatch.setenv("LLMSUP_RUNTIME_DIR", str(tmp_path))
        async with open_supervisor(fake()) as sup:
            assert (await sup.ask("fresh")).text == "echo: fresh"
        assert await wait_until_gone(token, 5) == []
        assert os.listdir(tmp_path) == []
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        sweep_orphaned_groups(str(tmp_path))  # even when an assertion failed above


async def test_records_are_removed_after_normal_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMSUP_RUNTIME_DIR", str(tmp_path))
    async with open_supervisor(fake()) as sup:
        await sup.map(["a", "b", "c"])
    assert os.listdir(tmp_path) == []


def test_live_owner_and_reused_pids_are_left_alone(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A group owned by this (live) process: not an orphan.
        record_group(sleeper.pid, str(tmp_path))
        assert sweep_orphaned_groups(str(tmp_path)) == []
        assert sleeper.poll() is None
        # A record from a dead owner whose pgid now names an unrelated process
        # (different start time): the record is dropped, the process spared.
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        stale = tmp_path / str(sleeper.pid)
        leader_start = start_time(sleeper.pid)
        assert leader_start is not None
        stale.write_text(f"{int(dead.stdout)} 1 {leader_start - 1}\n")
        assert sweep_orphaned_groups(str(tmp_path)) == []
        assert sleeper.poll() is None
        assert not stale.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_garbage_records_are_discarded(tmp_path: Path) -> None:
    (tmp_path / "12345").write_text("not a record")
    (tmp_path / "README").write_text("ignored: not a pgid")
    assert sweep_orphaned_groups(str(tmp_path)) == []
    assert sorted(os.listdir(tmp_path)) == ["README"]
