"""``open_supervisor(retry_budget=...)``: an injected tracker is the one retries spend."""

from __future__ import annotations

from collections.abc import Sequence

from actors import fake
from supervisor import (
    ErrorCategory,
    LLMError,
    RetryBudget,
    RetryBudgetTracker,
    RetryConfig,
    open_supervisor,
)


def _refused(outcomes: Sequence[object]) -> list[LLMError]:
    return [o for o in outcomes if isinstance(o, LLMError) and "retry budget" in o.message]


async def test_an_injected_tracker_is_the_one_the_retries_consult() -> None:
    # The config's own budget is generous (it would allow every retry); the injected
    # tracker allows 0.1/s x 20 s = 2 retries in all, and that is what happens.
    generous = RetryBudget(ratio=1.0, min_per_s=10.0, window_s=10)
    retry = RetryConfig(max_attempts=2, initial_delay_ms=1, max_delay_ms=5, budget=generous)
    tracker = RetryBudgetTracker(RetryBudget(ratio=0.0, min_per_s=0.1, window_s=20))
    async with open_supervisor(
        fake({"exit_code": 9}), retry=retry, concurrency=4, retry_budget=tracker
    ) as sup:
        assert sup.retry_budget is tracker
        outcomes = await sup.map([f"item {i}" for i in range(6)])
        stats = sup.statistics()
    assert all(isinstance(o, LLMError) and o.category is ErrorCategory.RETRYABLE for o in outcomes)
    assert stats.retries == 2
    assert stats.processes_spawned == 6 + 2  # real processes: the refused retries never ran
    assert tracker.refused == 4 == stats.retries_refused  # the other four items' retries
    assert len(_refused(outcomes)) == stats.retries_refused
    assert "0.1/s over 20s" in _refused(outcomes)[0].message  # the injected budget's words


async def test_supervisors_given_one_tracker_share_one_budget() -> None:
    retry = RetryConfig(max_attempts=2, initial_delay_ms=1, max_delay_ms=5)  # no budget
    tracker = RetryBudgetTracker(RetryBudget(ratio=0.0, min_per_s=0.1, window_s=30))  # 3
    spec = fake({"exit_code": 9})
    async with (
        open_supervisor(spec, retry=retry, concurrency=2, retry_budget=tracker) as one,
        open_supervisor(spec, retry=retry, concurrency=2, retry_budget=tracker) as two,
    ):
        first = await one.map([f"a {i}" for i in range(4)])
        second = await two.map([f"b {i}" for i in range(4)])
        retries = (one.statistics().retries, two.statistics().retries)
    assert retries == (3, 0)  # one budget for both, not 3 each: the first spent it
    assert len(_refused([*first, *second])) == tracker.refused == 8 - 3


async def test_without_an_injected_tracker_the_config_builds_one() -> None:
    retry = RetryConfig(budget=RetryBudget(ratio=0.5))
    async with open_supervisor(fake(), retry=retry) as sup:
        assert sup.retry_budget is not None and sup.retry_budget.budget == retry.budget
    async with open_supervisor(fake()) as sup:
        assert sup.retry_budget is None
