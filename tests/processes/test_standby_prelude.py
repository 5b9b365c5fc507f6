"""A standby process of a CLI that, like gemini, writes to stderr while it starts and gives
stdin only a short window: ``CliSpec.standby_prelude`` keeps it waiting, and with
``standby_writes_stderr`` its start-up stderr does not discard it.

The CLI is a tiny Python program: it writes a warning to stderr, then waits at most
``WINDOW_S`` for stdin to turn readable (else exits 42, "No input provided via stdin", as
gemini does); once a byte came it reads to EOF and prints what it got. Real processes;
``fail_after`` only guards against a hang.
"""

from __future__ import annotations

import sys

import attrs
import trio

import actors
from supervisor import Result, RetryConfig, Supervisor, open_supervisor

WINDOW_S = 2.0
IDLE_S = WINDOW_S + 1.5  # past the window: the call comes after it would have closed
HANG_GUARD_S = 60
CODE = f"""
import select, sys
sys.stderr.write("Warning: a start-up warning\\n"); sys.stderr.flush()
ready, _, _ = select.select([sys.stdin], [], [], {WINDOW_S})
if not ready:
    sys.stderr.write("No input provided via stdin.\\n"); sys.exit(42)
print(repr(sys.stdin.read()))
"""


def _spec() -> actors.CliSpec:
    return actors.command([sys.executable, "-S", "-c", CODE], prompt_via="stdin", name="windowed")


async def _settled(sup: Supervisor) -> None:
    """Until the pool holds a process, or has discarded one."""
    while True:
        stats = sup.statistics()
        if stats.standby_ready >= 1 or stats.standby_discarded > 0:
            return
        await trio.sleep(0.02)


async def test_the_prelude_keeps_a_windowed_cli_waiting_past_its_window() -> None:
    spec = attrs.evolve(_spec(), standby_prelude=b"\n", standby_writes_stderr=True)
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, retry=RetryConfig(max_attempts=1), standby=1) as sup:
            await _settled(sup)
            await trio.sleep(IDLE_S)
            result = await sup.ask("hello")
            stats = sup.statistics()
    assert isinstance(result, Result)
    assert result.text.strip() == repr("\nhello")  # the prelude, then the prompt
    assert (stats.standby_taken, stats.standby_discarded) == (1, 0)


async def test_without_them_such_a_standby_process_is_discarded() -> None:
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(_spec(), retry=RetryConfig(max_attempts=1), standby=1) as sup:
            await _settled(sup)
            with trio.fail_after(HANG_GUARD_S):
                while sup.statistics().standby_discarded == 0:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            result = await sup.ask("hello")  # a call still works: a fresh process
            stats = sup.statistics()
    assert isinstance(result, Result)
    assert result.text.strip() == repr("hello")  # a cold call gets no prelude
    assert stats.standby_discarded >= 1


async def test_stderr_kept_but_no_prelude_loses_the_window() -> None:
    spec = attrs.evolve(_spec(), standby_writes_stderr=True)
    with trio.fail_after(HANG_GUARD_S):
        async with open_supervisor(spec, retry=RetryConfig(max_attempts=1), standby=1) as sup:
            await _settled(sup)
            with trio.fail_after(HANG_GUARD_S):
                while sup.statistics().standby_discarded == 0:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            stats = sup.statistics()
    assert stats.standby_discarded >= 1  # it exited 42 before any prompt came
    assert stats.standby_taken == 0
