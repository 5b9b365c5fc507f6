"""Retry budget: retries capped at a share of recent calls, across a whole supervisor."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import fake
from supervisor import (
    ErrorCategory,
    LLMError,
    RetryBudget,
    RetryBudgetTracker,
    RetryConfig,
    open_supervisor,
)
from tests.helpers import FakeClock


def test_a_quiet_supervisor_still_has_its_reserve() -> None:
    clock = FakeClock()
    tracker = RetryBudgetTracker(RetryBudget(ratio=0.2, min_per_s=1.0, window_s=10), clock)
    granted = sum(tracker.try_retry() for _ in range(15))
    assert granted == 10  # min_per_s * window_s
    assert tracker.refused == 5


def test_calls_earn_retries_at_the_ratio() -> None:
    clock = FakeClock()
    tracker = RetryBudgetTracker(RetryBudget(ratio=0.2, min_per_s=0.0, window_s=10), clock)
    for _ in range(50):
        tracker.call_started()
    assert sum(tracker.try_retry() for _ in range(30)) == 10  # 0.2 * 50


def test_the_budget_refills_as_the_window_moves_on() -> None:
    clock = FakeClock()
    tracker = RetryBudgetTracker(RetryBudget(ratio=0.0, min_per_s=0.5, window_s=4), clock)
    assert [tracker.try_retry() for _ in range(3)] == [True, True, False]
    clock.now += 4.0  # the two retries are out of the window
    assert [tracker.try_retry() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"min_per_s": math.nan}, "min_per_s"),
        ({"window_s": 0}, "window_s"),
    ],
)
def test_bad_budgets_name_the_field(fields: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=f"RetryBudget.{named}"):
        RetryBudget(**fields)


# One step: wait some seconds, then start calls or ask for retries.
steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.3, 1.0, 2.5, 7.0]),
        st.sampled_from(["call", "retry"]),
        st.integers(min_value=1, max_value=6),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=steps,
    ratio=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    min_per_s=st.sampled_from([0.0, 0.2, 1.0]),
    window_s=st.sampled_from([1.0, 3.0, 10.0]),
)
def test_a_retry_is_granted_exactly_when_the_window_has_room_for_it(
    steps: list[tuple[float, str, int]], ratio: float, min_per_s: float, window_s: float
) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=ratio, min_per_s=min_per_s, window_s=window_s)
    tracker = RetryBudgetTracker(budget, clock)
    log: list[tuple[int, str]] = []  # the reference model: (whole second, what happened)

    def in_window(kind: str) -> int:
        now = math.floor(clock.now)
        return sum(1 for second, k in log if k == kind and second > now - math.ceil(window_s))

    for wait, kind, count in steps:
        clock.now += wait
        for _ in range(count):
            if kind == "call":
                tracker.call_started()
                log.append((math.floor(clock.now), "call"))
                continue
            allowance = ratio * in_window("call") + min_per_s * window_s
            room = in_window("retry") + 1 <= allowance
            assert tracker.try_retry() is room
            if room:
                log.append((math.floor(clock.now), "retry"))


async def test_a_failing_fan_out_retries_only_its_budget() -> None:
    # Every call fails (exit 9: retryable). Without a budget, 40 calls x 5 attempts would
    # start 200 processes; the budget allows 0.1 x 40 + 0.5/s x 10 s = 9 retries in all.
    budget = RetryBudget(ratio=0.1, min_per_s=0.5, window_s=10)
    retry = RetryConfig(max_attempts=5, initial_delay_ms=1, max_delay_ms=5, budget=budget)
    async with open_supervisor(fake({"exit_code": 9}), retry=retry, concurrency=8) as sup:
        outcomes = await sup.map([f"item {i}" for i in range(40)])
        stats = sup.statistics()
    assert all(isinstance(o, LLMError) and o.category is ErrorCategory.RETRYABLE for o in outcomes)
    assert stats.retries <= 9
    assert stats.processes_spawned == 40 + stats.retries  # real processes, counted
    assert stats.retries_refused > 0
    refused = [o for o in outcomes if isinstance(o, LLMError) and "retry budget" in o.message]
    assert len(refused) == stats.retries_refused
    assert "0.1 of calls + 0.5/s over 10s" in refused[0].message
