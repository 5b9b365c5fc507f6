"""The engine's decisions, without processes: breaker admission, the retry verdict, a
conversation's recovery after a failed session turn, and the statistics of the counters."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors._errors import ErrorCategory, LLMError
from supervisor._policy._admission import Admitted, Rejected, WaitForBreaker, admit
from supervisor._policy._backoff import RetryConfig
from supervisor._policy._breaker import CircuitBreaker, CircuitState
from supervisor._policy._budget import RetryBudget, RetryBudgetTracker
from supervisor._policy._fallback import FALLBACK_ON, next_cli
from supervisor._policy._retry_verdict import (
    GiveUp,
    RefusedByBudget,
    RetryAfter,
    retry_verdict,
)
from supervisor._policy._session import TurnRecovery, recover_turn, session_lost
from supervisor._stats import Counters
from tests.helpers import FakeClock
from tests.strategies import llm_errors, retry_configs


def opened(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=30, clock=clock, **kwargs)  # type: ignore[arg-type]
    breaker.acquire()
    breaker.record_failure(LLMError("down", ErrorCategory.TIMEOUT))
    assert breaker.state is CircuitState.OPEN
    return breaker


# --------------------------------------------------------------------------- admission


def test_no_breaker_admits_without_a_permit() -> None:
    assert admit(None, "fake", now=0.0, deadline=0.0) == Admitted(None)


def test_a_closed_breaker_admits_with_its_permit() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock)
    admission = admit(breaker, "fake", now=clock(), deadline=clock())
    assert isinstance(admission, Admitted)
    assert admission.permit is not None and not admission.permit.trial


def test_an_open_breaker_rejects_at_once_without_a_wait_budget() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.now += 10.0
    admission = admit(breaker, "claude", now=clock(), deadline=clock())
    assert isinstance(admission, Rejected)
    error = admission.error
    assert error.category is ErrorCategory.CIRCUIT_OPEN
    assert error.cli == "claude"
    # A breaker that kept its default name is called after the CLI; it is not renamed.
    assert error.message.startswith("circuit breaker 'claude' is open")
    assert breaker.name == "breaker"
    assert str(error).startswith("[circuit_open] claude: circuit breaker 'claude' is open")


def test_a_named_breaker_keeps_its_name_in_the_rejection() -> None:
    clock = FakeClock()
    breaker = opened(clock, name="shared")
    admission = admit(breaker, "codex", now=clock(), deadline=clock())
    assert isinstance(admission, Rejected)
    assert admission.error.message.startswith("circuit breaker 'shared' is open")
    assert admission.error.cli == "codex"


def test_with_a_wait_budget_the_wait_is_the_shorter_of_retry_after_and_the_budget() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.now += 20.0  # 10 s until the breaker tries again
    long_budget = admit(breaker, "fake", now=clock(), deadline=clock() + 60)
    assert isinstance(long_budget, WaitForBreaker)
    assert long_budget.seconds == pytest.approx(10.0)
    short_budget = admit(breaker, "fake", now=clock(), deadline=clock() + 2)
    assert isinstance(short_budget, WaitForBreaker)
    assert short_budget.seconds == pytest.approx(2.0)


def test_once_the_wait_is_over_the_trial_call_is_admitted() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.now += 30.0
    admission = admit(breaker, "fake", now=clock(), deadline=clock())
    assert isinstance(admission, Admitted)
    assert admission.permit is not None and admission.permit.trial
    # Its trial slot is taken: the next caller waits (or is rejected) until it ends.
    assert isinstance(admit(breaker, "fake", now=clock(), deadline=clock()), Rejected)


# ----------------------------------------------------------------------- retry verdict

RNG = random.Random(0)


def error_of(category: ErrorCategory, **kwargs: object) -> LLMError:
    return LLMError("it failed", category, cli="fake", **kwargs)  # type: ignore[arg-type]


def test_a_retryable_failure_with_attempts_left_is_retried_after_the_backoff() -> None:
    config = RetryConfig(max_attempts=3, initial_delay_ms=100, jitter=False)
    verdict = retry_verdict(config, error_of(ErrorCategory.TIMEOUT), 2, rng=RNG)
    assert verdict == RetryAfter(0.2)


def test_a_server_hint_replaces_the_backoff() -> None:
    config = RetryConfig(max_attempts=3, initial_delay_ms=100, jitter=False)
    error = error_of(ErrorCategory.RATE_LIMIT, retry_after=7.0)
    assert retry_verdict(config, error, 1, rng=RNG) == RetryAfter(7.0)


def test_giving_up_returns_a_complete_copy_and_leaves_the_caught_error_alone() -> None:
    config = RetryConfig(max_attempts=3, jitter=False)
    error = error_of(ErrorCategory.TIMEOUT)
    verdict = retry_verdict(config, error, 3, rng=RNG)
    assert isinstance(verdict, GiveUp)
    assert verdict.error.attempts == 3
    assert error.attempts == 1  # never mutated
    assert str(verdict.error) == str(error)
    assert verdict.error.category is ErrorCategory.TIMEOUT and verdict.error.cli == "fake"


def test_a_first_attempt_that_gives_up_keeps_its_error() -> None:
    error = error_of(ErrorCategory.PERMANENT)
    verdict = retry_verdict(RetryConfig(), error, 1, rng=RNG)
    assert isinstance(verdict, GiveUp) and verdict.error is error


def test_the_caller_can_veto_a_retry() -> None:
    error = error_of(ErrorCategory.TIMEOUT)
    verdict = retry_verdict(
        RetryConfig(max_attempts=5), error, 2, rng=RNG, may_retry=lambda _e: False
    )
    assert isinstance(verdict, GiveUp) and verdict.error.attempts == 2


def test_a_spent_budget_refuses_and_says_so_in_the_message() -> None:
    clock = FakeClock()
    budget = RetryBudgetTracker(RetryBudget(ratio=0.1, min_per_s=0.0, window_s=10), clock)
    error = error_of(ErrorCategory.TIMEOUT)
    verdict = retry_verdict(RetryConfig(max_attempts=5), error, 2, rng=RNG, budget=budget)
    assert isinstance(verdict, RefusedByBudget)
    assert verdict.error.attempts == 2
    assert verdict.error.message == (
        f"it failed [not retried: the retry budget ({budget.budget.describe()}) is spent]"
    )
    assert error.message == "it failed"
    assert budget.refused == 1


def test_the_budget_is_not_asked_when_the_policy_gives_up_anyway() -> None:
    clock = FakeClock()
    budget = RetryBudgetTracker(RetryBudget(ratio=0.1, min_per_s=0.0, window_s=10), clock)
    verdict = retry_verdict(
        RetryConfig(max_attempts=1), error_of(ErrorCategory.TIMEOUT), 1, rng=RNG, budget=budget
    )
    assert isinstance(verdict, GiveUp)
    assert budget.refused == 0


@given(config=retry_configs(), error=llm_errors(), attempt=st.integers(min_value=1, max_value=12))
def test_the_verdict_agrees_with_should_retry(
    config: RetryConfig, error: LLMError, attempt: int
) -> None:
    verdict = retry_verdict(config, error, attempt, rng=random.Random(1))
    retrying = attempt < config.max_attempts and error.category in config.retry_on
    assert isinstance(verdict, RetryAfter) == retrying
    if isinstance(verdict, GiveUp):
        assert verdict.error.attempts == attempt


# -------------------------------------------------------------- conversation recovery

LOST = LLMError("No conversation found with session ID abc", ErrorCategory.PERMANENT)


def test_a_lost_session_starts_a_new_one() -> None:
    assert session_lost(LOST)
    assert recover_turn(LOST, session_id="abc", restarted=False) is TurnRecovery.NEW_SESSION


def test_a_turn_without_a_session_has_nothing_to_lose() -> None:
    assert recover_turn(LOST, session_id=None, restarted=False) is TurnRecovery.FAIL


def test_a_new_session_is_started_once_per_turn() -> None:
    assert recover_turn(LOST, session_id="abc", restarted=True) is TurnRecovery.FAIL


def test_other_failures_are_the_turns_outcome() -> None:
    # A warm process that died is retried by the engine; its final error is the answer.
    died = LLMError("the warm process exited", ErrorCategory.RETRYABLE)
    assert recover_turn(died, session_id="abc", restarted=False) is TurnRecovery.FAIL


# ------------------------------------------------------------------------- statistics


def test_a_rejected_answer_counts_as_a_malformed_failure_not_a_success() -> None:
    counters = Counters(started=3, succeeded=3, answers_rejected=1)
    counters.call_failed(ErrorCategory.TIMEOUT)
    stats = counters.snapshot("fake", 4, None, None)
    assert (stats.started, stats.succeeded, stats.failed) == (3, 2, 2)
    assert stats.failures_by_category == {"timeout": 1, "malformed_output": 1}
    assert counters.succeeded == 3  # the counters themselves only ever grow


def test_re_asked_calls_are_part_of_one_structured_call() -> None:
    # Two calls of one structured ask: the first answer was re-asked, the second rejected.
    counters = Counters(started=2, succeeded=2, answers_rejected=1, reasked_calls=1)
    stats = counters.snapshot("fake", 1, None, None)
    assert (stats.started, stats.succeeded, stats.failed) == (1, 0, 1)


# ------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    "category", [ErrorCategory(v) for v in sorted(c.value for c in FALLBACK_ON)]
)
def test_refusals_move_to_the_next_cli(category: ErrorCategory) -> None:
    error = LLMError("refused", category)
    assert next_cli(error, 0, 2)
    assert next_cli(error, 1, 3)
    assert not next_cli(error, 1, 2)  # the last CLI: nothing to move to
    assert not next_cli(error, 0, 1)  # no fallback at all
    assert not next_cli(error, 0, 2, may_move=False)  # a stream that delivered text


@given(error=llm_errors())
def test_only_refusals_move_to_the_next_cli(error: LLMError) -> None:
    assert next_cli(error, 0, 2) is (error.category in FALLBACK_ON)
