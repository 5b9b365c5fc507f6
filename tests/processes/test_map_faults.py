"""Nothing lost: `map` over random fault plans, on the simulated backend and with real processes.

Each prompt names its fault; whatever the mix, the concurrency and the interleaving, every
prompt gets exactly one outcome, in input order, of the category its fault implies, and no
process survives the map. The simulated backend (`actors.simulated`, the fake's own script run
in process on trio's clock, here an autojumping `MockClock`) runs the property on hundreds of
examples; a few run on real fake-CLI processes, which add what only processes have (pipes,
signals, the stop sequence).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors
from supervisor import (
    ErrorCategory,
    LLMError,
    Result,
    RetryConfig,
    SupervisorStatistics,
    TimeoutConfig,
    open_supervisor,
)

from ..helpers import fake, live_processes_with, marker

# fault name -> (fault-plan rule, expected outcome: None for success, else the category)
FAULTS: dict[str, tuple[dict[str, object], ErrorCategory | None]] = {
    "ok": ({}, None),
    "slow": ({"latency_s": 0.1, "chunks": 6, "chunk_gap_s": 0.02}, None),
    "noisy": ({"stderr_bytes": 200_000}, None),
    "bytes": ({"invalid_utf8": True}, None),
    "garbage": ({"malformed_line": True}, None),
    "exit": ({"exit_code": 2}, ErrorCategory.RETRYABLE),
    "crash": ({"crash_after_chunks": 1}, ErrorCategory.RETRYABLE),
    "auth": ({"auth_failure": True}, ErrorCategory.AUTH_FAILURE),
    "rate": ({"rate_limit_retry_after_s": 0.01}, ErrorCategory.RATE_LIMIT),
    "huge": ({"oversized_line_bytes": 100_000}, ErrorCategory.MALFORMED_OUTPUT),
    "hang": ({"hang_after_chunks": 1}, ErrorCategory.TIMEOUT),
}

PLAN = {
    "rules": [{"match": f"[{name}]", **rule} for name, (rule, _) in FAULTS.items() if rule],
}


# At most one stall per example: it costs chunk_receive per attempt.
FAULT_MIXES = st.lists(st.sampled_from(sorted(FAULTS)), min_size=1, max_size=14).filter(
    lambda kinds: kinds.count("hang") <= 1
)
# Only "hang" may time out. A loaded machine can take seconds to start a process
# (first_output, not chunk_receive, bounds that: it used to be 1.5 s too) or to run one whole
# attempt; chunk_receive is the cost of each "hang" attempt, so it stays short, yet well above
# a healthy gap between chunks.
TIMEOUTS = TimeoutConfig(
    total_execution=120, chunk_receive=3, first_output=60, graceful_shutdown=0.2
)


def _retry(attempts: int) -> RetryConfig:
    return RetryConfig(max_attempts=attempts, initial_delay_ms=1, max_delay_ms=5)


def _check_outcomes(
    kinds: list[str],
    prompts: list[str],
    outcomes: Sequence[Result | LLMError],
    stats: SupervisorStatistics,
    attempts: int,
) -> None:
    assert len(outcomes) == len(prompts), "map lost or added outcomes"
    for kind, prompt, outcome in zip(kinds, prompts, outcomes, strict=True):
        expected = FAULTS[kind][1]
        if expected is None:
            assert isinstance(outcome, Result), f"{prompt}: {outcome}"
            assert outcome.text == f"echo: {prompt}"  # this prompt's own answer
        else:
            assert isinstance(outcome, LLMError), f"{prompt}: {outcome}"
            assert outcome.category is expected, f"{prompt}: {outcome}"
            retried = expected in (ErrorCategory.RETRYABLE, ErrorCategory.TIMEOUT)
            retried = retried or expected is ErrorCategory.RATE_LIMIT
            assert outcome.attempts == (attempts if retried else 1)
    assert stats.succeeded + stats.failed == len(prompts)
    assert stats.in_flight == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=FAULT_MIXES,
    concurrency=st.integers(min_value=1, max_value=8),
    attempts=st.integers(min_value=1, max_value=2),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_simulated_map_gives_exactly_one_outcome_per_prompt_in_order(
    kinds: list[str], concurrency: int, attempts: int, seed: int
) -> None:
    prompts = [f"[{kind}] {index}" for index, kind in enumerate(kinds)]

    async def run() -> None:
        async with open_supervisor(
            actors.simulated(PLAN, seed=seed, max_line_bytes=50_000),
            retry=_retry(attempts),
            timeouts=TIMEOUTS,
            concurrency=concurrency,
            sweep_orphans=False,  # nothing here spawns a process
        ) as sup:
            outcomes = await sup.map(prompts)
            stats = sup.statistics()
        _check_outcomes(kinds, prompts, outcomes, stats, attempts)

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kinds=FAULT_MIXES,
    concurrency=st.integers(min_value=1, max_value=8),
    attempts=st.integers(min_value=1, max_value=2),
)
async def test_map_gives_exactly_one_outcome_per_prompt_in_order(
    kinds: list[str], concurrency: int, attempts: int
) -> None:
    token = marker()
    prompts = [f"[{kind}] {index} {token}" for index, kind in enumerate(kinds)]
    async with open_supervisor(
        fake(PLAN, max_line_bytes=50_000),
        retry=_retry(attempts),
        timeouts=TIMEOUTS,
        concurrency=concurrency,
    ) as sup:
        outcomes = await sup.map(prompts)
        stats = sup.statistics()
    _check_outcomes(kinds, prompts, outcomes, stats, attempts)
    assert live_processes_with(token) == []
