"""A helper that leaves the CLI's process group but not its session (codex's bubblewrap
sandbox helper does) is stopped with the CLI when the spec sweeps the whole session."""

from __future__ import annotations

import contextlib
import os
import signal

import attrs
import trio

from supervisor import open_supervisor

from ..helpers import live_processes_with, python_cli, wait_until_gone

# The CLI forks a helper that moves to a group of its own (same session) and sleeps with
# the marker (the prompt) in its argv and an empty environment (as bubblewrap's helper
# has: so it carries no supervisor mark either); the CLI answers and exits.
LEAVES_THE_GROUP = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setpgid(0, 0)\n"
    "    fd = os.open(os.devnull, os.O_RDWR)\n"
    "    for i in (0, 1, 2): os.dup2(fd, i)\n"
    "    os.execve(sys.executable, [sys.executable, '-S', '-c',"
    " 'import time; time.sleep(300)', sys.argv[1]], {})\n"
    "time.sleep(0.2)\n"
    "print('answered')\n"
)


def _kill_all(token: str) -> None:
    for pid in live_processes_with(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_a_helper_in_another_group_of_the_session_is_stopped() -> None:
    token = f"llmsup-test-session-{os.getpid()}-a"
    spec = attrs.evolve(python_cli(LEAVES_THE_GROUP), sweep_session=True)
    try:
        async with open_supervisor(spec) as sup:
            result = await sup.ask(token)
            assert result.text.strip() == "answered"
            # The call has returned: its whole session is gone already, not eventually.
            assert live_processes_with(token) == []
    finally:
        _kill_all(token)


async def test_without_the_session_sweep_the_helper_would_be_left() -> None:
    # The counterpart that shows the check above can fail: the group alone misses it.
    token = f"llmsup-test-session-{os.getpid()}-b"
    try:
        async with open_supervisor(python_cli(LEAVES_THE_GROUP)) as sup:
            await sup.ask(token)
        with trio.fail_after(30):  # a guard against a hang only
            while not live_processes_with(token):  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert live_processes_with(token) != []
    finally:
        _kill_all(token)
        assert await wait_until_gone(token, 10) == []
