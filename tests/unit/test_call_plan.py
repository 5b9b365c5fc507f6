"""The engine's pure helpers: system prompts per spec, fallback breakers, the call's error."""

from __future__ import annotations

import attrs

from actors import CliSpec, ErrorCategory, LLMError
from supervisor._engine import _CallFailures, fallback_breaker, with_system_prompt
from supervisor._policy._breaker import CircuitBreaker
from tests.helpers import python_cli

PLAIN = python_cli("print(1)", name="plain")


def _native(spec: CliSpec) -> CliSpec:
    def with_system(system: str) -> CliSpec:
        return attrs.evolve(spec, argv=(*spec.argv, "--system", system))

    return attrs.evolve(spec, with_system=with_system)


def test_a_native_system_prompt_goes_through_the_spec_not_the_text() -> None:
    spec, text = with_system_prompt(_native(PLAIN), "hello", "be brief")
    assert spec.argv[-2:] == ("--system", "be brief")
    assert text == "hello"


def test_without_with_system_the_system_prompt_is_replayed_into_the_text() -> None:
    spec, text = with_system_prompt(PLAIN, "hello", "be brief")
    assert spec is PLAIN
    assert text == "System: be brief\n\nUser: hello"


def test_no_system_prompt_changes_nothing() -> None:
    assert with_system_prompt(PLAIN, "hello", None) == (PLAIN, "hello")
    assert with_system_prompt(PLAIN, "hello", "") == (PLAIN, "hello")


def test_a_fallback_gets_a_fresh_breaker_with_the_primarys_configuration() -> None:
    primary = CircuitBreaker(failure_threshold=3, success_threshold=1, timeout_seconds=9)
    primary.record_failure(LLMError("x", ErrorCategory.RETRYABLE), primary.acquire())
    copy = fallback_breaker(primary, "second")
    assert copy is not None and copy is not primary
    assert (copy.failure_threshold, copy.success_threshold, copy.timeout_seconds) == (3, 1, 9)
    assert copy.name == "second"
    assert fallback_breaker(None, "second") is None


def test_the_calls_own_failure_comes_before_the_breaker_it_opened() -> None:
    failures = _CallFailures()
    opened = LLMError("breaker open", ErrorCategory.CIRCUIT_OPEN, attempts=2)
    assert failures.call_error(opened) is opened  # no attempt failed before: it stands
    failures.last = LLMError("exit 1", ErrorCategory.RETRYABLE, cli="x")
    shown = failures.call_error(opened)
    assert shown.category is ErrorCategory.RETRYABLE
    assert shown.message == "exit 1 (not retried: the circuit breaker opened)"
    assert shown.attempts == 2
    other = LLMError("timeout", ErrorCategory.TIMEOUT)
    assert failures.call_error(other) is other
