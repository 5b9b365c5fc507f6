"""Retry policy: when to try again, and how long to wait first.

Pure functions over a frozen `RetryConfig`: no sleeping and no clock here. The caller
(the retry loop) sleeps for what `retry_delay` returns, so tests need no time at all.

The wait is exponential backoff with *full jitter* (``uniform(0, min(cap, base * 2**n))``),
which AWS measured as doing the least work among contending clients, and a server's
``retry-after`` hint replaces the computed delay, within `RetryConfig.max_retry_after_s`.
"""

from __future__ import annotations

import math
import random

import attrs

from actors import ErrorCategory, LLMError
from actors.lowlevel import RETRYABLE_CATEGORIES
from actors.lowlevel import at_least as _at_least
from actors.lowlevel import category_set as _check_retry_on
from actors.lowlevel import finite as _finite

from ._budget import RetryBudget

DEFAULT_RETRY_ON: frozenset[ErrorCategory] = RETRYABLE_CATEGORIES
"""Transient failures. CIRCUIT_OPEN is left out: an open breaker fails fast (see
open_supervisor's ``breaker_wait`` for waiting on it instead of burning attempts)."""


@attrs.frozen(kw_only=False)
class RetryConfig:
    """How often, and how patiently, a failed call is tried again.

    Attributes:
        max_attempts: attempts in total, the first one included (1 = never retry).
        initial_delay_ms: the backoff cap before the first retry.
        exponential_base: growth factor of the cap per retry.
        max_delay_ms: the backoff cap never grows past this.
        jitter: full jitter (a uniform draw in ``[0, cap]``) instead of the cap itself.
        max_retry_after_s: the longest server ``retry-after`` hint that is honoured;
            longer hints are cut to this.
        retry_on: the error categories worth another attempt. Permanent errors (auth,
            bad input, malformed output) are never in the default set.
        budget: a `RetryBudget` shared by all calls of the supervisor, so a failing fan-out
            retries a share of its calls instead of all of them (None: no budget).
    """

    max_attempts: int = attrs.field(default=3, validator=_at_least(1))
    initial_delay_ms: float = attrs.field(default=100.0, validator=[_at_least(0), _finite])
    exponential_base: float = attrs.field(default=2.0, validator=[_at_least(1), _finite])
    max_delay_ms: float = attrs.field(default=30_000.0, validator=[_at_least(0), _finite])
    jitter: bool = True
    max_retry_after_s: float = attrs.field(default=300.0, validator=[_at_least(0), _finite])
    retry_on: frozenset[ErrorCategory] = attrs.field(
        default=DEFAULT_RETRY_ON, validator=_check_retry_on
    )
    budget: RetryBudget | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(RetryBudget))
    )

    @max_delay_ms.validator
    def _check_max_delay(self, attribute: attrs.Attribute[float], value: float) -> None:
        if value < self.initial_delay_ms:
            raise ValueError(
                f"RetryConfig.max_delay_ms must be >= initial_delay_ms "
                f"({self.initial_delay_ms!r}), got {value!r}"
            )


def _capped_delay_ms(config: RetryConfig, retry_number: int) -> float:
    """``min(max_delay_ms, initial_delay_ms * exponential_base**retry_number)``, overflow-safe."""
    if config.initial_delay_ms == 0:
        # 0 * inf would be NaN; zero stays zero however many retries.
        return 0.0
    try:
        grown = config.initial_delay_ms * config.exponential_base**retry_number
    except OverflowError:
        # float ** huge int raises instead of returning inf. The product may still be
        # finite for a tiny initial delay, so retry in log space (exp raises past the cap).
        try:
            grown = math.exp(
                math.log(config.initial_delay_ms) + retry_number * math.log(config.exponential_base)
            )
        except OverflowError:
            return config.max_delay_ms
    return min(config.max_delay_ms, grown)


def backoff_delay(
    config: RetryConfig, retry_number: int, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry `retry_number` (0 = before the second attempt).

    Without jitter this is ``min(max_delay_ms, initial_delay_ms * exponential_base**n) / 1000``;
    with jitter it is a uniform draw between 0 and that. `rng` makes the draw reproducible;
    without it the `random` module's shared generator is used.
    """
    if retry_number < 0:
        raise ValueError(f"retry_number must be >= 0, got {retry_number}")
    cap_s = _capped_delay_ms(config, retry_number) / 1000
    if not config.jitter:
        return cap_s
    uniform = rng.uniform if rng is not None else random.uniform
    # uniform(a, b) may round to just past b; the cap is a promise to the caller.
    return min(cap_s, uniform(0.0, cap_s))


def retry_delay(
    config: RetryConfig, error: LLMError, retry_number: int, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry `retry_number` after `error`.

    A server hint (``error.retry_after``) replaces the computed backoff, cut to
    `RetryConfig.max_retry_after_s`; a negative hint means "now" and a NaN hint is ignored.
    Otherwise this is `backoff_delay`.
    """
    hint = error.retry_after
    if hint is not None and not math.isnan(hint):
        return min(max(hint, 0.0), config.max_retry_after_s)
    return backoff_delay(config, retry_number, rng)


def should_retry(config: RetryConfig, error: LLMError, attempt: int) -> bool:
    """True when another attempt is allowed after `error`.

    `attempt` is how many attempts have been made so far (1 after the first failure).
    Retrying needs both a budget left (``attempt < max_attempts``) and a category in
    `RetryConfig.retry_on`.
    """
    return attempt < config.max_attempts and error.category in config.retry_on
