"""`RetryHandler`: the one retry loop of the project.

Retry lives in exactly one layer. The supervisor runs every call through this loop (with
the circuit breaker inside each attempt); adapters switch the CLIs' own retries off. Do not
wrap supervisor calls in another `RetryHandler`: layered retries multiply.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec, TypeVar

import attrs
import trio

from actors import LLMError

from ._policy._backoff import RetryConfig
from ._policy._budget import RetryBudgetTracker
from ._policy._retry_verdict import RetryAfter, retry_verdict

P = ParamSpec("P")
T = TypeVar("T")

RetryListener = Callable[[LLMError, int, float], None]


@attrs.frozen
class Attempted(Generic[T]):
    """What a successful `RetryHandler.run_counted` returns: the value, and after how many
    attempts it came."""

    value: T
    attempts: int


class RetryHandler:
    """Retries an async callable on retryable `LLMError`s, with backoff and full jitter.

    Only `LLMError`s whose category is in ``config.retry_on`` are retried; any other
    exception, and `trio.Cancelled`, propagates at once. A ``retry_after`` hint replaces the
    computed delay, capped by ``config.max_retry_after_s``. The final error says how many
    attempts were made (``attempts``): it is a copy of the last attempt's error when that
    one said otherwise, never the caught error changed.

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
        return (await self.run_counted(attempt_fn, may_retry=may_retry)).value

    async def run_counted(
        self,
        attempt_fn: Callable[[int], Awaitable[T]],
        *,
        may_retry: Callable[[LLMError], bool] | None = None,
        on_retry: RetryListener | None = None,
    ) -> Attempted[T]:
        """`run`, returning the attempt count with the value; ``on_retry`` (instead of the
        handler's listener) hears of each retry as ``(error, attempt, delay)``."""
        listener = on_retry or self._on_retry
        attempt = 0
        while True:
            attempt += 1
            try:
                return Attempted(await attempt_fn(attempt), attempt)
            except LLMError as error:
                verdict = retry_verdict(
                    self.config,
                    error,
                    attempt,
                    rng=self._rng,
                    budget=self._budget,
                    may_retry=may_retry,
                )
                if not isinstance(verdict, RetryAfter):
                    if verdict.error is error:
                        raise
                    # The complete error replaces the caught one, keeping its cause and
                    # traceback; the caught one (the same, less complete) is not context.
                    raise verdict.error.with_traceback(error.__traceback__) from error.__cause__
                if listener is not None:
                    listener(error, attempt, verdict.delay)
            await trio.sleep(verdict.delay)
