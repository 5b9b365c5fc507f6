"""A CLI that cannot be found: one PERMANENT error that names it, no retries."""

from __future__ import annotations

import pytest

import actors
from actors import ErrorCategory, LLMError
from supervisor import RetryConfig, open_supervisor


async def test_missing_cli_is_a_permanent_error_naming_it() -> None:
    spec = actors.claude("/nonexistent/llmsup/claude")
    async with open_supervisor(spec, retry=RetryConfig(max_attempts=3)) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
    assert info.value.category is ErrorCategory.PERMANENT
    assert "/nonexistent/llmsup/claude" in info.value.message
    assert info.value.attempts == 1
