"""Retry policy: backoff bounds, full jitter, retry-after hints, which errors retry."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._errors import ErrorCategory, LLMError
from supervisor._policy._backoff import RetryConfig, backoff_delay, retry_delay, should_retry
from tests.strategies import PERMANENT_CATEGORIES, categories, llm_errors, retry_configs

retry_numbers = st.integers(min_value=0, max_value=200)


def _attempts_made(config: RetryConfig, error: LLMError) -> int:
    """How many attempts a retry loop driven by `should_retry` makes when every one fails."""
    attempt = 1
    while should_retry(config, error, attempt):
        attempt += 1
    return attempt


# -- configuration ---------------------------------------------------------------------


def test_defaults() -> None:
    config = RetryConfig()
    assert (config.max_attempts, config.initial_delay_ms, config.max_delay_ms) == (3, 100, 30_000)
    assert config.jitter
    assert ErrorCategory.CIRCUIT_OPEN not in config.retry_on  # an open breaker fails fast
    assert not config.retry_on & PERMANENT_CATEGORIES


def test_fields_are_positional_in_documented_order() -> None:
    config = RetryConfig(5, 10, 3.0, 1000, False)
    assert config == RetryConfig(
        max_attempts=5, initial_delay_ms=10, exponential_base=3.0, max_delay_ms=1000, jitter=False
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "RetryConfig.max_attempts must be >= 1, got 0"),
        ({"initial_delay_ms": -1}, "RetryConfig.initial_delay_ms must be >= 0"),
        ({"max_delay_ms": -1, "initial_delay_ms": 0}, "RetryConfig.max_delay_ms must be >= 0"),
        ({"initial_delay_ms": 500, "max_delay_ms": 100}, "RetryConfig.max_delay_ms must be >="),
        ({"exponential_base": 0.5}, "RetryConfig.exponential_base must be >= 1"),
        ({"initial_delay_ms": math.nan}, "RetryConfig.initial_delay_ms"),
        ({"max_delay_ms": math.inf}, "RetryConfig.max_delay_ms must be finite"),
        ({"max_retry_after_s": -1.0}, "RetryConfig.max_retry_after_s must be >= 0"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        RetryConfig(**kwargs)  # type: ignore[arg-type]


def test_retry_on_must_be_categories() -> None:
    with pytest.raises(TypeError, match=r"RetryConfig\.retry_on"):
        RetryConfig(retry_on=frozenset({"timeout"}))  # type: ignore[arg-type]


# -- backoff_delay -----------------------------------------------------------------------


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    config = RetryConfig(initial_delay_ms=100, max_delay_ms=1000, jitter=False)
    delays = [backoff_delay(config, n) for n in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@settings(max_examples=100)
@given(config=retry_configs(), retry_number=retry_numbers, seed=st.integers())
def test_backoff_is_between_zero_and_the_cap(
    config: RetryConfig, retry_number: int, seed: int
) -> None:
    delay = backoff_delay(config, retry_number, random.Random(seed))
    assert 0 <= delay <= config.max_delay_ms / 1000


@settings(max_examples=100)
@given(config=retry_configs(jitter=False), retry_number=retry_numbers)
def test_backoff_without_jitter_grows_by_the_base_until_capped(
    config: RetryConfig, retry_number: int
) -> None:
    current = backoff_delay(config, retry_number)
    following = backoff_delay(config, retry_number + 1)
    assert following >= current
    assert following == pytest.approx(
        min(config.max_delay_ms / 1000, current * config.exponential_base)
    )


@settings(max_examples=100)
@given(config=retry_configs(jitter=False))
def test_first_backoff_is_the_initial_delay(config: RetryConfig) -> None:
    assert backoff_delay(config, 0) == pytest.approx(config.initial_delay_ms / 1000)


@pytest.mark.parametrize("retry_number", [1_100, 10**6, 10**30])
@pytest.mark.parametrize("jitter", [False, True])
def test_huge_retry_numbers_do_not_overflow(retry_number: int, jitter: bool) -> None:
    config = RetryConfig(initial_delay_ms=100, max_delay_ms=5_000, jitter=jitter)
    delay = backoff_delay(config, retry_number, random.Random(0))
    assert 0 <= delay <= 5.0
    if not jitter:
        assert delay == 5.0
    zero = RetryConfig(initial_delay_ms=0, max_delay_ms=0, jitter=jitter)
    assert backoff_delay(zero, retry_number) == 0.0


def test_full_jitter_spreads_over_the_whole_range() -> None:
    config = RetryConfig(initial_delay_ms=1000, max_delay_ms=1000, jitter=True)
    rng = random.Random(1234)
    samples = [backoff_delay(config, 0, rng) for _ in range(2000)]
    assert all(0 <= s <= 1.0 for s in samples)
    # Full jitter: uniform on [0, 1], so the mean is near 0.5 and both ends are reached.
    assert 0.45 < sum(samples) / len(samples) < 0.55
    assert min(samples) < 0.05
    assert max(samples) > 0.95


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    config = RetryConfig()
    first = [backoff_delay(config, n, random.Random(7)) for n in range(5)]
    second = [backoff_delay(config, n, random.Random(7)) for n in range(5)]
    assert first == second


def test_negative_retry_number_is_rejected() -> None:
    with pytest.raises(ValueError, match="retry_number"):
        backoff_delay(RetryConfig(), -1)


# -- retry_delay -------------------------------------------------------------------------


def test_retry_after_replaces_the_computed_delay() -> None:
    config = RetryConfig(initial_delay_ms=100, max_delay_ms=200, jitter=True)
    error = LLMError("slow down", ErrorCategory.RATE_LIMIT, retry_after=42.0)
    # 42 s is far above max_delay_ms and is honoured exactly, without jitter.
    assert retry_delay(config, error, 0, random.Random(0)) == 42.0


def test_retry_after_is_capped() -> None:
    config = RetryConfig(max_retry_after_s=60.0)
    error = LLMError("usage limit", ErrorCategory.RATE_LIMIT, retry_after=18_000.0)
    assert retry_delay(config, error, 0) == 60.0


@settings(max_examples=100)
@given(
    config=retry_configs(),
    hint=st.floats(min_value=-10.0, max_value=100_000.0),
    retry_number=retry_numbers,
)
def test_retry_after_is_honoured_within_the_cap(
    config: RetryConfig, hint: float, retry_number: int
) -> None:
    error = LLMError("rate limited", ErrorCategory.RATE_LIMIT, retry_after=hint)
    delay = retry_delay(config, error, retry_number, random.Random(0))
    assert 0 <= delay <= config.max_retry_after_s
    if 0 <= hint <= config.max_retry_after_s:
        assert delay == hint


@settings(max_examples=100)
@given(config=retry_configs(), retry_number=retry_numbers, seed=st.integers())
def test_without_a_hint_retry_delay_is_the_backoff(
    config: RetryConfig, retry_number: int, seed: int
) -> None:
    error = LLMError("flaky", ErrorCategory.TIMEOUT)
    assert retry_delay(config, error, retry_number, random.Random(seed)) == backoff_delay(
        config, retry_number, random.Random(seed)
    )


def test_nan_retry_after_falls_back_to_backoff() -> None:
    config = RetryConfig(jitter=False)
    error = LLMError("weird header", ErrorCategory.RATE_LIMIT, retry_after=math.nan)
    assert retry_delay(config, error, 2) == pytest.approx(0.4)


# -- should_retry ------------------------------------------------------------------------


@settings(max_examples=100)
@given(
    error=llm_errors(category=st.sampled_from(sorted(PERMANENT_CATEGORIES, key=str))),
    attempt=st.integers(min_value=1, max_value=20),
    max_attempts=st.integers(min_value=1, max_value=30),
)
def test_permanent_errors_are_never_retried_by_default(
    error: LLMError, attempt: int, max_attempts: int
) -> None:
    # The promise is about the default `retry_on`: nothing keeps a user from opting in.
    config = RetryConfig(max_attempts=max_attempts)
    assert not should_retry(config, error, attempt)


@settings(max_examples=300)
@given(
    config=retry_configs(any_retry_on=True),
    error=llm_errors(),
    attempt=st.integers(min_value=1, max_value=20),
)
def test_should_retry_is_retry_on_membership_with_attempts_left(
    config: RetryConfig, error: LLMError, attempt: int
) -> None:
    # The policy as written: `retry_on` alone decides, for permanent categories too.
    expected = attempt < config.max_attempts and error.category in config.retry_on
    assert should_retry(config, error, attempt) is expected


@pytest.mark.parametrize("category", sorted(PERMANENT_CATEGORIES, key=str))
def test_a_permanent_category_put_in_retry_on_is_retried(category: ErrorCategory) -> None:
    config = RetryConfig(max_attempts=3, retry_on=frozenset({category}))
    error = LLMError("opted in", category)
    assert should_retry(config, error, 1)
    assert _attempts_made(config, error) == 3


@settings(max_examples=100)
@given(
    config=retry_configs(any_retry_on=True),
    error=llm_errors(),
    extra=st.integers(min_value=0, max_value=20),
)
def test_no_retry_once_attempts_are_used_up(
    config: RetryConfig, error: LLMError, extra: int
) -> None:
    assert not should_retry(config, error, config.max_attempts + extra)


@settings(max_examples=100)
@given(config=retry_configs(any_retry_on=True), error=llm_errors())
def test_a_retry_loop_makes_max_attempts_for_retryable_errors_and_one_otherwise(
    config: RetryConfig, error: LLMError
) -> None:
    expected = config.max_attempts if error.category in config.retry_on else 1
    assert _attempts_made(config, error) == expected


@pytest.mark.parametrize(
    ("category", "retried"),
    [
        (ErrorCategory.RETRYABLE, True),
        (ErrorCategory.TIMEOUT, True),
        (ErrorCategory.RATE_LIMIT, True),
        (ErrorCategory.CIRCUIT_OPEN, False),  # an open breaker fails fast by default
        (ErrorCategory.AUTH_FAILURE, False),
        (ErrorCategory.MALFORMED_OUTPUT, False),
        (ErrorCategory.PERMANENT, False),
    ],
)
def test_default_config_retries_transient_categories_only(
    category: ErrorCategory, retried: bool
) -> None:
    config = RetryConfig()
    error = LLMError("x", category)
    assert should_retry(config, error, 1) is retried
    assert _attempts_made(config, error) == (3 if retried else 1)


@given(category=categories())
def test_retry_on_can_be_narrowed(category: ErrorCategory) -> None:
    config = RetryConfig(retry_on=frozenset({ErrorCategory.TIMEOUT}))
    assert should_retry(config, LLMError("x", category), 1) is (category is ErrorCategory.TIMEOUT)


def test_single_attempt_config_never_retries() -> None:
    config = RetryConfig(max_attempts=1)
    assert not should_retry(config, LLMError("x", ErrorCategory.TIMEOUT), 1)
