"""`RetryHandler`: the one retry loop of the project.

Retry lives in exactly one layer. The supervisor runs every call through this loop (with
the circuit breaker inside each attempt); adapters switch the CLIs' own retries off. Do not
wrap supervisor calls in another `RetryHandler`: layered retries multiply.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import trio

from actors import LLMError

from ._policy._backoff import RetryConfig, retry_delay, should_retry
from ._policy._budget import RetryBudgetTracker

P = ParamSpec("P")
T = TypeVar("T")

RetryListener = Callable[[LLMError, int, float], None]


class RetryHandler:
    """Retries an async callable on retryable `LLMError`s, with backoff and full jitter.

    Only `LLMError`s whose category is in ``config.retry_on`` are retried; any other
    exception, and `trio.Cancelled`, propagates at once. A ``retry_after`` hint replaces the
    computed delay, capped by ``config.max_retry_after_s``. The final error gets
    ``attempts`` set to the number of attempts made.

    Cancellation: cancelling during a backoff sleep or an attempt stops the loop at once.
    """

    def __init__(
        self,
        config: RetryConfig | None = None,
        *,
        rng: random.Random | None = None,
        on_retry: RetryListener | None = None,
        budget: RetryBudgetTracker | None = None,
    ) -> None:
        self.config = config or RetryConfig()
        self._rng = rng or random.Random()
        self._on_retry = on_retry
        # Shared by every call of a supervisor; the caller counts each call's start.
        self._budget = budget

    async def async_call_with_retry(
        self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call ``fn(*args, **kwargs)`` until it succeeds or retrying is pointless."""

        async def once(_attempt: int) -> T:
            return await fn(*args, **kwargs)

        return await self.run(once)

    async def run(
        self,
        attempt_fn: Callable[[int], Awaitable[T]],
        *,
        may_retry: Callable[[LLMError], bool] | None = None,
    ) -> T:
        """The loop itself: ``attempt_fn(n)`` gets the 1-based attempt number.

        ``may_retry`` can veto a retry the policy would allow (a stream that already
        delivered text to its reader must not start over).
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_fn(attempt)
            except LLMError as error:
                error.attempts = attempt
                if not should_retry(self.config, error, attempt):
                    raise
                if may_retry is not None and not may_retry(error):
                    raise
                if self._budget is not None and not self._budget.try_retry():
                    error.message += (
                        f" [not retried: the retry budget ({self._budget.budget.describe()})"
                        " is spent]"
                    )
                    raise
                delay = retry_delay(self.config, error, attempt - 1, self._rng)
                if self._on_retry is not None:
                    self._on_retry(error, attempt, delay)
                await trio.sleep(delay)
