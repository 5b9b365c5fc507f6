"""A supervisor killed by SIGKILL with standby processes of the real CLIs: they end on their own.

A daemon killed by SIGKILL (the OOM killer, ``kill -9``) runs no clean-up. Its standby
processes are waiting for their prompt on stdin; the kernel closes their pipes, and each
real CLI then exits without asking the model anything, before any later supervisor's start
sweeps them (measured here: within 1-4 s; gemini dies of its closed output pipes even when
its stdin still holds a prompt). The test proves the three facts a daemon's owner relies
on: the standby process existed, it ended with no supervisor left, and the emulator saw no
model request. ``fail_after``/``move_on_after`` only guard against a hang.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from actors._fakes._emulator import open_emulator
from actors._registry import sweep_orphaned_groups

from ..helpers import live_processes_with_env, marker
from .test_real_clis import SKIP_REASON, CliName, _installed

HANG_GUARD_S = 180
# Far above the 1-4 s the CLIs take to exit once their stdin closes.
EXIT_GUARD_S = 60

# The supervisor that will be killed: one standby process of the CLI, then "ready" in a file.
DOOMED = textwrap.dedent(
    """
    import os, sys, trio
    from pathlib import Path
    from actors._fakes._emulator._homes import cli_environment
    from supervisor import TimeoutConfig, open_supervisor
    from tests.helpers import MARKER_ENV
    from tests.real_clis.test_real_clis import _spec

    async def main(name, url, folder, token):
        env = cli_environment(name, url, Path(folder) / "home", inherit=os.environ)
        env[MARKER_ENV] = token
        spec = _spec(name, env, cwd=folder)
        timeouts = TimeoutConfig(total_execution=90, chunk_receive=60, first_output=60)
        async with open_supervisor(spec, timeouts=timeouts, standby=1) as sup:
            while sup.statistics().standby_ready < 1:
                if sup.statistics().standby_discarded:
                    raise SystemExit("the standby process was discarded")
                await trio.sleep(0.05)
            (Path(folder) / "ready").write_text("ready")
            await trio.sleep_forever()

    trio.run(main, *sys.argv[1:])
    """
)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.skipif(not _installed(n), reason=SKIP_REASON))
        for n in ("claude", "codex", "gemini")
    ],
)
async def test_a_killed_supervisors_standby_cli_exits_without_a_model_call(
    name: CliName, tmp_path: Path
) -> None:
    token = marker()  # in the CLI's environment only, not the supervisor's
    runtime = tmp_path / "runtime"  # a private process registry, swept at the end
    runtime.mkdir()
    env = {**os.environ, "LLMSUP_RUNTIME_DIR": str(runtime)}
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            argv = [sys.executable, "-c", DOOMED, name, emulator.base_url, str(tmp_path), token]
            doomed = await trio.lowlevel.open_process(argv, env=env, cwd=os.getcwd())
            try:
                while not (tmp_path / "ready").exists():
                    assert doomed.poll() is None, f"the supervisor exited ({doomed.returncode})"
                    await trio.sleep(0.05)
                standby = live_processes_with_env(token)
                assert standby, f"no standby {name} process is running"
                doomed.send_signal(signal.SIGKILL)
                await doomed.wait()
                with trio.move_on_after(EXIT_GUARD_S):
                    while live_processes_with_env(token):  # noqa: ASYNC110 - /proc only
                        await trio.sleep(0.1)
                left = live_processes_with_env(token)
                model_calls = [r.prompt for r in emulator.requests if r.operation == "generate"]
            finally:
                if doomed.poll() is None:
                    doomed.kill()
                sweep_orphaned_groups(str(runtime))
                with trio.CancelScope(shield=True):  # reap it even when the guard fired
                    await doomed.wait()
    assert left == [], f"{name} standby processes outlived their supervisor: {left}"
    assert model_calls == [], f"a {name} standby process asked the model: {model_calls}"
