"""Shared Hypothesis strategies (one place, as in attrs' own test suite).

The public ones (`retry_configs`, `timeout_configs`, `emulator_faults`, `fault_plans`) live in
`supervisor.testing`, where users import them; the rest are the suite's own.
"""

from __future__ import annotations

from hypothesis import strategies as st

from actors._errors import ErrorCategory, LLMError
from supervisor._policy._intensity import RestartBackoff
from supervisor.testing import emulator_faults as emulator_faults
from supervisor.testing import fault_plans as fault_plans
from supervisor.testing import retry_configs as retry_configs
from supervisor.testing import timeout_configs as timeout_configs

PERMANENT_CATEGORIES: frozenset[ErrorCategory] = frozenset(
    {ErrorCategory.PERMANENT, ErrorCategory.AUTH_FAILURE, ErrorCategory.MALFORMED_OUTPUT}
)
"""Categories that trying again cannot fix."""


def categories() -> st.SearchStrategy[ErrorCategory]:
    """Any error category."""
    return st.sampled_from(list(ErrorCategory))


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
