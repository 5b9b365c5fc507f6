"""The same plan on `actors.fake` (real processes) and `actors.simulated` (in process) gives
the same outcomes: category, text, retry-after and attempts, through the same adapter,
classifier, timeouts and retries (native dialect).

The fake side runs on the real clock, the simulated side under a MockClock (autojump), so
each plan keeps its waits short enough for the real side; nothing asserts on elapsed time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

import actors
from actors import LLMError, TimeoutConfig
from supervisor import Result, RetryConfig, open_supervisor

from ..helpers import marker, wait_until_gone

TIMEOUTS = TimeoutConfig(total_execution=20.0, chunk_receive=1.0, graceful_shutdown=1.0)
RETRY = RetryConfig(max_attempts=3, initial_delay_ms=10.0, max_retry_after_s=0.2)

PLANS: dict[str, dict[str, Any]] = {
    "clean": {},
    "text": {"text": "the answer", "chunks": 2},
    "format_text": {"format": "text", "text": "plain words"},
    "rate_limit": {"rate_limit_retry_after_s": 7.0},
    "auth": {"auth_failure": True},
    "crash": {"crash_after_chunks": 1},
    "exit_code": {"exit_code": 4},
    "malformed": {"malformed_line": True},
    "invalid_utf8": {"invalid_utf8": True},
    "oversized": {"oversized_line_bytes": 300_000},
    "stderr_flood": {"stderr_bytes": 200_000},
    "hang_mid_stream": {"hang_after_chunks": 1},
    "ignore_sigterm_hang": {"hang_after_chunks": 1, "ignore_sigterm": True},
    "fail_first_retryable": {"fail_first": 2},
    "fail_first_rate_limit": {"fail_first": 1, "fail_with": "rate_limit"},
    "calls_rule": {"rules": [{"calls": [2, None], "auth_failure": True}]},
    "prompt_rule": {"rules": [{"match": "b", "crash_after_chunks": 0}]},
    "grandchild": {"grandchild_holds_stdout_s": 0.2},
}
PROMPTS = ["alpha", "bravo", "charlie"]


def _outcome(outcome: Result | LLMError) -> tuple[object, ...]:
    if isinstance(outcome, Result):
        return ("ok", outcome.text, outcome.attempts, outcome.exit_code)
    return (outcome.category.value, outcome.retry_after, outcome.exit_code)


async def _outcomes(spec: actors.CliSpec) -> list[tuple[object, ...]]:
    with trio.fail_after(120):  # guards against a hang only
        async with open_supervisor(spec, retry=RETRY, timeouts=TIMEOUTS, concurrency=1) as sup:
            return [_outcome((await sup.map([prompt]))[0]) for prompt in PROMPTS]


@pytest.mark.parametrize("name", sorted(PLANS))
def test_fake_and_simulated_give_the_same_outcomes(name: str) -> None:
    plan: Mapping[str, object] = PLANS[name]
    real = trio.run(_outcomes, actors.fake(plan, max_line_bytes=100_000))
    clock = trio.testing.MockClock(autojump_threshold=0)
    simulated = trio.run(_outcomes, actors.simulated(plan, max_line_bytes=100_000), clock=clock)
    assert simulated == real


async def test_stop_process_tree_still_takes_a_trio_process() -> None:
    """The public stop sequence runs on the backend interface and still accepts a bare
    `trio.Process` (a real group: SIGTERM ignored, so it escalates to SIGKILL)."""
    token = marker()
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\ntime.sleep(600)\n"
    )
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-S", "-c", code, token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(60):  # a hang guard only
            assert (await proc.stdout.receive_some(100)).startswith(b"up")
            with trio.CancelScope(shield=True):
                await actors.stop_process_tree(proc, grace=0.5, name="sleeper")
        assert proc.returncode == -signal.SIGKILL
        assert await wait_until_gone(token, 10) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
