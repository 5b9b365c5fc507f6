"""A CLI's setsid() daemon does not outlive the call: the supervisor is its subreaper."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from functools import partial

import trio

from supervisor import open_supervisor

from ..helpers import live_processes_with, python_cli, wait_until_gone

# The daemon sleeps with the marker (the prompt) in its argv, detached from every pipe.
_DAEMON = (
    "def daemon():\n"
    "    fd = os.open(os.devnull, os.O_RDWR)\n"
    "    for i in (0, 1, 2): os.dup2(fd, i)\n"
    "    os.execv(sys.executable, [sys.executable, '-S', '-c',"
    " 'import time; time.sleep(300)', sys.argv[1]])\n"
)
# The classic daemon: fork, setsid, fork again, the middle process exits at once.
DOUBLE_FORK = (
    "import os, sys\n" + _DAEMON + "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0: daemon()\n"
    "    os._exit(0)\n"
    "os.wait()\n"
    "print('daemon started')\n"
)
# Node's spawn({detached: true}): the child calls setsid and execs; the CLI exits.
DETACHED = (
    "import os, sys\n" + _DAEMON + "if os.fork() == 0:\n"
    "    os.setsid(); daemon()\n"
    "print('daemon started')\n"
)


def _kill_all(token: str) -> None:
    for pid in live_processes_with(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _run_and_check(code: str, token: str) -> None:
    try:
        async with open_supervisor(python_cli(code)) as sup:
            assert (await sup.ask(token)).text.strip() == "daemon started"
            # Gone once the call is over, while the supervisor is still open.
            assert await wait_until_gone(token, 10) == []
        assert await wait_until_gone(token, 1) == []
        # ...and reaped: no zombie child of ours carries the marker either.
        assert _zombie_children() == []
    finally:
        _kill_all(token)


def _zombie_children() -> list[int]:
    me = str(os.getpid()).encode()
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[0] == b"Z" and rest[1] == me:
            out.append(int(entry))
    return out


async def test_a_double_forked_setsid_daemon_is_killed_and_reaped() -> None:
    await _run_and_check(DOUBLE_FORK, f"llmsup-test-escapee-{os.getpid()}-a")


async def test_a_detached_child_is_killed_and_reaped() -> None:
    await _run_and_check(DETACHED, f"llmsup-test-escapee-{os.getpid()}-b")


async def test_our_own_children_are_left_alone() -> None:
    # A child of the application in its own session, waited for by trio (a pidfd), and a
    # plain child in our session: neither is an escapee, even while CLIs come and go.
    token = f"llmsup-test-escapee-{os.getpid()}-c"
    sleep = [sys.executable, "-S", "-c", "import time; time.sleep(60)", token]
    plain = subprocess.Popen(sleep)  # noqa: ASYNC220 - a plain child, as an app makes one
    # A child in a session of its own that no pidfd watches (subprocess.Popen, as a daemon
    # embedding us may start): only the supervisor's mark in its environment could tell it
    # from an escapee, and it has none.
    detached = subprocess.Popen(sleep, start_new_session=True)  # noqa: ASYNC220
    try:
        async with trio.open_nursery() as nursery:
            own = await nursery.start(
                partial(trio.run_process, sleep, start_new_session=True, check=False)
            )
            async with open_supervisor(python_cli(DOUBLE_FORK)) as sup:
                for _ in range(3):
                    await sup.ask(token + "-cli")
            assert plain.poll() is None and own.returncode is None
            assert detached.poll() is None
            assert await wait_until_gone(token + "-cli", 10) == []
            nursery.cancel_scope.cancel()
    finally:
        for child in (plain, detached):
            child.kill()
            child.wait()
        _kill_all(token)
