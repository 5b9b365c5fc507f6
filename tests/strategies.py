"""Shared Hypothesis strategies (one place, as in attrs' own test suite)."""

from __future__ import annotations

from hypothesis import strategies as st

from actors._errors import ErrorCategory, LLMError
from supervisor._policy._backoff import DEFAULT_RETRY_ON, RetryConfig
from supervisor._policy._intensity import RestartBackoff

PERMANENT_CATEGORIES: frozenset[ErrorCategory] = frozenset(
    {ErrorCategory.PERMANENT, ErrorCategory.AUTH_FAILURE, ErrorCategory.MALFORMED_OUTPUT}
)
"""Categories that trying again cannot fix."""


def categories() -> st.SearchStrategy[ErrorCategory]:
    """Any error category."""
    return st.sampled_from(list(ErrorCategory))


def _delays_ms(max_value: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.just(0.0),
        st.floats(min_value=0.0, max_value=max_value, allow_nan=False, allow_infinity=False),
    )


def _retry_on_pool(any_retry_on: bool) -> frozenset[ErrorCategory]:
    return frozenset(ErrorCategory) if any_retry_on else DEFAULT_RETRY_ON


@st.composite
def retry_configs(
    draw: st.DrawFn, *, jitter: bool | None = None, any_retry_on: bool = False
) -> RetryConfig:
    """Valid `RetryConfig`s. `jitter` fixes the flag; None draws it.

    `retry_on` is a subset of the default (so never holds a permanent category) unless
    `any_retry_on`, which draws it from every category, permanent ones included (a user may
    opt in to retrying anything).
    """
    initial = draw(_delays_ms(10_000.0))
    return RetryConfig(
        max_attempts=draw(st.integers(min_value=1, max_value=10)),
        initial_delay_ms=initial,
        exponential_base=draw(
            st.one_of(st.just(1.0), st.just(2.0), st.floats(min_value=1.0, max_value=10.0))
        ),
        max_delay_ms=initial + draw(_delays_ms(100_000.0)),
        jitter=draw(st.booleans()) if jitter is None else jitter,
        max_retry_after_s=draw(st.floats(min_value=0.0, max_value=3600.0)),
        retry_on=draw(
            st.frozensets(st.sampled_from(sorted(_retry_on_pool(any_retry_on), key=str)))
        ),
    )


def retry_afters() -> st.SearchStrategy[float | None]:
    """A server's retry-after hint in seconds, or none."""
    return st.one_of(st.none(), st.floats(min_value=0.0, max_value=100_000.0))


@st.composite
def llm_errors(
    draw: st.DrawFn,
    category: st.SearchStrategy[ErrorCategory] | None = None,
    retry_after: st.SearchStrategy[float | None] | None = None,
) -> LLMError:
    """`LLMError`s of any (or the given) category, with or without a retry-after hint."""
    return LLMError(
        draw(st.text(max_size=40)),
        draw(category if category is not None else categories()),
        retry_after=draw(retry_after if retry_after is not None else retry_afters()),
        cli=draw(st.sampled_from(["claude", "codex", "gemini"])),
    )


@st.composite
def restart_backoffs(draw: st.DrawFn) -> RestartBackoff:
    """Valid `RestartBackoff`s."""
    min_backoff = draw(st.floats(min_value=0.0, max_value=60.0))
    return RestartBackoff(
        min_backoff_s=min_backoff,
        max_backoff_s=min_backoff + draw(st.floats(min_value=0.0, max_value=600.0)),
        random_factor=draw(st.floats(min_value=0.0, max_value=2.0)),
        reset_after_s=draw(st.floats(min_value=0.0, max_value=600.0)),
    )
