"""The retry verdict: after a failed attempt, retry after a delay, give up, or be refused.

A pure decision: the retry loop (`supervisor._retry.RetryHandler`) does the sleeping and
the raising. The error a verdict gives up with is complete: it carries the attempt count
(and, when the budget refused, says so in its message); the caught error is never changed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from actors import LLMError

from ._backoff import RetryConfig, retry_delay, should_retry
from ._budget import RetryBudgetTracker


@attrs.frozen
class RetryAfter:
    """Try again after ``delay`` seconds."""

    delay: float


@attrs.frozen
class GiveUp:
    """Stop: the policy (or the caller's veto) allows no further attempt."""

    error: LLMError


@attrs.frozen
class RefusedByBudget:
    """Stop: the policy would retry, but the shared retry budget is spent."""

    error: LLMError


RetryVerdict = RetryAfter | GiveUp | RefusedByBudget


def retry_verdict(
    config: RetryConfig,
    error: LLMError,
    attempt: int,
    *,
    rng: random.Random,
    budget: RetryBudgetTracker | None = None,
    may_retry: Callable[[LLMError], bool] | None = None,
) -> RetryVerdict:
    """What to do after attempt number ``attempt`` (1-based) failed with ``error``.

    ``may_retry`` can veto a retry the policy allows (a stream that already delivered
    text must not start over). The budget is asked last, so a refusal spends nothing
    and is only reported when a retry was otherwise due.
    """
    if not should_retry(config, error, attempt) or (may_retry is not None and not may_retry(error)):
        return GiveUp(_with_attempts(error, attempt))
    if budget is not None and not budget.try_retry():
        spent = f" [not retried: the retry budget ({budget.budget.describe()}) is spent]"
        return RefusedByBudget(error.evolve(attempts=attempt, message=error.message + spent))
    return RetryAfter(retry_delay(config, error, attempt - 1, rng))


def _with_attempts(error: LLMError, attempts: int) -> LLMError:
    # The first attempt's error already says 1: keep it as it is (no copy on the hot path).
    return error if error.attempts == attempts else error.evolve(attempts=attempts)
