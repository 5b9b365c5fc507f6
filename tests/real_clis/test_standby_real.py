"""Standby processes of the real CLIs, against the emulator: one call through one each.

Each CLI keeps a process started and waiting for its prompt (``standby=1``): the call takes
it (``standby_taken == 1``), nothing is discarded, the answer is the emulator's echo of the
exact prompt, and nothing is left once the supervisor is closed. The process first waits
well past claude's 3 s text-mode stdin window (a standby claude did not survive it before
claude read its prompt as stream-json) and gemini's 500 ms one (held by its newline
prelude; its start-up warnings on stderr do not discard it). ``fail_after`` only guards
against a hang.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import Result, RetryConfig, Supervisor, TimeoutConfig, open_supervisor

from ..helpers import MARKER_ENV, live_processes_with_env, marker
from .test_real_clis import SKIP_REASON, CliName, _installed, _spec

HANG_GUARD_S = 180
TIMEOUTS = TimeoutConfig(total_execution=90, chunk_receive=60, first_output=60)
# Longer than claude's text-mode stdin window (3 s) and gemini's (500 ms) after their
# start-up: the standby process must still be waiting for its prompt when the call comes.
IDLE_S = 6.0
PROMPT = '--help me with $(touch x) "quoted"\nsecond line'


async def _ready(sup: Supervisor) -> None:
    """Until the pool holds a process, or has discarded one (which the test then reports)."""
    while True:
        stats = sup.statistics()
        if stats.standby_ready >= 1 or stats.standby_discarded > 0:
            return
        await trio.sleep(0.05)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.skipif(not _installed(n), reason=SKIP_REASON))
        for n in ("claude", "codex", "gemini")
    ],
)
async def test_one_call_through_a_standby_process(name: CliName, tmp_path: Path) -> None:
    token = marker()
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            env = cli_environment(name, emulator.base_url, tmp_path / "home", inherit=os.environ)
            env[MARKER_ENV] = token
            spec = _spec(name, env, cwd=str(tmp_path))
            async with open_supervisor(
                spec, retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS, standby=1
            ) as sup:
                await _ready(sup)
                await trio.sleep(IDLE_S)  # the standby process waits, prompt not yet written
                before = sup.statistics()
                result = await sup.ask(PROMPT)
                await _ready(sup)  # the taken process is replaced
                after = sup.statistics()
            # Model calls only (claude also sends a bare ``HEAD /`` to warm its connection).
            prompts = [r.prompt for r in emulator.requests if r.operation == "generate"]
        with trio.move_on_after(10):  # closed: the stop sequence has ended every process
            while live_processes_with_env(token):  # noqa: ASYNC110 - /proc offers nothing to await
                await trio.sleep(0.05)
    assert isinstance(result, Result)
    assert (before.standby_discarded, before.processes_spawned) == (0, 1)
    assert after.standby_taken == 1
    assert after.standby_discarded == 0
    assert after.processes_spawned == 2  # the taken one and its replacement, nothing else
    assert prompts == [PROMPT]
    assert result.text == f"echo: {PROMPT}"
    assert live_processes_with_env(token) == []
