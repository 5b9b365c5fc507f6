"""Circuit breaker: a stateful model test with a fake clock, plus worked examples."""

from __future__ import annotations

import math

import attrs
import pytest
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from actors._errors import ErrorCategory, LLMError
from supervisor._policy._breaker import BreakerStatistics, CircuitBreaker, CircuitState
from tests.helpers import FakeClock

COUNTED = [
    ErrorCategory.RETRYABLE,
    ErrorCategory.TIMEOUT,
    ErrorCategory.RATE_LIMIT,
    ErrorCategory.AUTH_FAILURE,
]
IGNORED = [ErrorCategory.PERMANENT, ErrorCategory.MALFORMED_OUTPUT, ErrorCategory.CIRCUIT_OPEN]


class FakeCancelled(BaseException):
    """Stands in for trio.Cancelled / KeyboardInterrupt in synchronous code."""


def failure(
    category: ErrorCategory = ErrorCategory.TIMEOUT, retry_after: float | None = None
) -> LLMError:
    return LLMError("it failed", category, retry_after=retry_after, cli="fake")


def fail_times(
    breaker: CircuitBreaker, n: int, category: ErrorCategory = ErrorCategory.TIMEOUT
) -> None:
    for _ in range(n):
        breaker.acquire()
        breaker.record_failure(failure(category))


def rejection(breaker: CircuitBreaker) -> LLMError:
    with pytest.raises(LLMError) as info:
        breaker.acquire()
    assert info.value.category is ErrorCategory.CIRCUIT_OPEN
    return info.value


def state(breaker: CircuitBreaker) -> CircuitState:
    """`breaker.state`, read through a call so mypy does not narrow it between reads."""
    return breaker.state


# -- the reference model -----------------------------------------------------------------


@attrs.define
class Model:
    """The breaker's documented semantics, written plainly."""

    failure_threshold: int
    success_threshold: int
    timeout: float
    max_trials: int
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    half_open_successes: int = 0
    trials: int = 0
    opened_count: int = 0
    open_until: float = -math.inf

    def advance_to(self, now: float) -> None:
        if self.state is CircuitState.OPEN and now >= self.open_until:
            self.state = CircuitState.HALF_OPEN
            self.half_open_successes = 0
            self.trials = 0

    def admits(self) -> bool:
        if self.state is CircuitState.OPEN:
            return False
        return self.state is CircuitState.CLOSED or self.trials < self.max_trials

    def release(self) -> None:
        if self.state is CircuitState.HALF_OPEN and self.trials > 0:
            self.trials -= 1

    def open(self, until: float) -> None:
        self.state = CircuitState.OPEN
        self.open_until = max(self.open_until, until)
        self.opened_count += 1

    def success(self) -> None:
        self.consecutive_failures = 0
        if self.state is CircuitState.HALF_OPEN:
            self.release()
            self.half_open_successes += 1
            if self.half_open_successes >= self.success_threshold:
                self.state = CircuitState.CLOSED
                self.half_open_successes = 0
                self.trials = 0

    def failure(self, now: float, category: ErrorCategory, retry_after: float | None) -> None:
        if category not in COUNTED:
            self.release()
            return
        hinted = category is ErrorCategory.RATE_LIMIT and retry_after is not None
        limit_until = now + retry_after if hinted and retry_after is not None else -math.inf
        self.consecutive_failures += 1
        if self.state is CircuitState.OPEN:
            self.open_until = max(self.open_until, limit_until)
        elif self.state is CircuitState.HALF_OPEN:
            self.release()
            self.open(max(now + self.timeout, limit_until))
        elif self.consecutive_failures >= self.failure_threshold:
            self.open(max(now + self.timeout, limit_until))
        elif hinted:
            self.open(limit_until)


class BreakerMachine(RuleBasedStateMachine):
    """Random sequences of calls, results and clock moves against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.in_flight = 0  # admitted calls whose result is not recorded yet
        self.rate_limited_until = -math.inf
        self.transitions: list[tuple[CircuitState, CircuitState]] = []

    @initialize(
        failure_threshold=st.integers(min_value=1, max_value=4),
        success_threshold=st.integers(min_value=1, max_value=3),
        timeout=st.one_of(st.sampled_from([0.0, 1.0, 30.0]), st.floats(0.001, 60.0)),
        half_open_max_calls=st.integers(min_value=1, max_value=3),
    )
    def build(
        self,
        failure_threshold: int,
        success_threshold: int,
        timeout: float,
        half_open_max_calls: int,
    ) -> None:
        self.breaker = CircuitBreaker(
            failure_threshold,
            success_threshold,
            timeout,
            half_open_max_calls=half_open_max_calls,
            clock=self.clock,
            name="model",
        )
        self.breaker.add_listener(lambda old, new: self.transitions.append((old, new)))
        self.model = Model(failure_threshold, success_threshold, timeout, half_open_max_calls)

    def _sync_model(self) -> None:
        self.model.advance_to(self.clock.now)

    # -- calls ---------------------------------------------------------------------------

    @rule()
    def acquire(self) -> None:
        self._sync_model()
        if self.model.admits():
            self.breaker.acquire()
            self.in_flight += 1
            if self.model.state is CircuitState.HALF_OPEN:
                self.model.trials += 1
            return
        error = rejection(self.breaker)
        assert error.cli == "model"
        assert error.retry_after is not None
        assert error.retry_after > 0
        assert "try again in" in error.message
        if self.model.state is CircuitState.OPEN:
            assert error.retry_after <= self.model.open_until - self.clock.now

    @precondition(lambda self: self.in_flight > 0)
    @rule()
    def succeed(self) -> None:
        self.in_flight -= 1
        self._sync_model()
        self.breaker.record_success()
        self.model.success()

    @precondition(lambda self: self.in_flight > 0)
    @rule(category=st.sampled_from(COUNTED))
    def fail_counted(self, category: ErrorCategory) -> None:
        self.in_flight -= 1
        self._sync_model()
        self.breaker.record_failure(failure(category))
        self.model.failure(self.clock.now, category, None)

    @precondition(lambda self: self.in_flight > 0)
    @rule(category=st.sampled_from(IGNORED), retry_after=st.none() | st.floats(0.01, 100.0))
    def fail_ignored(self, category: ErrorCategory, retry_after: float | None) -> None:
        self.in_flight -= 1
        self._sync_model()
        before = self.breaker.statistics()
        self.breaker.record_failure(failure(category, retry_after))
        self.model.failure(self.clock.now, category, retry_after)
        self._assert_only_a_slot_was_released(before, self.breaker.statistics())

    @precondition(lambda self: self.in_flight > 0)
    @rule(retry_after=st.floats(0.01, 120.0))
    def rate_limited(self, retry_after: float) -> None:
        self.in_flight -= 1
        self._sync_model()
        self.breaker.record_failure(failure(ErrorCategory.RATE_LIMIT, retry_after))
        self.model.failure(self.clock.now, ErrorCategory.RATE_LIMIT, retry_after)
        self.rate_limited_until = max(self.rate_limited_until, self.clock.now + retry_after)
        assert self.breaker.state is CircuitState.OPEN

    @precondition(lambda self: self.in_flight > 0)
    @rule()
    def cancel(self) -> None:
        self.in_flight -= 1
        self._sync_model()
        before = self.breaker.statistics()
        self.breaker.record_cancelled()
        self.model.release()
        self._assert_only_a_slot_was_released(before, self.breaker.statistics())

    def _assert_only_a_slot_was_released(
        self, before: BreakerStatistics, after: BreakerStatistics
    ) -> None:
        assert attrs.evolve(after, trial_calls_in_flight=before.trial_calls_in_flight) == before
        released = before.state is CircuitState.HALF_OPEN and before.trial_calls_in_flight > 0
        assert after.trial_calls_in_flight == before.trial_calls_in_flight - released

    # -- time ----------------------------------------------------------------------------

    @rule(seconds=st.floats(0.0, 40.0))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @precondition(lambda self: self.model.state is CircuitState.OPEN)
    @rule()
    def advance_to_reopen_time(self) -> None:
        self.clock.now = max(self.clock.now, self.model.open_until)

    @precondition(lambda self: self.model.state is CircuitState.OPEN)
    @rule()
    def advance_to_just_before_reopen_time(self) -> None:
        self.clock.now = max(self.clock.now, math.nextafter(self.model.open_until, -math.inf))

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        self._sync_model()
        stats = self.breaker.statistics()
        assert stats.state is self.model.state
        assert self.breaker.state is self.model.state
        assert stats.consecutive_failures == self.model.consecutive_failures
        assert stats.half_open_successes == self.model.half_open_successes
        assert stats.trial_calls_in_flight == self.model.trials
        assert stats.opened_count == self.breaker.opened_count == self.model.opened_count

    @invariant()
    def trials_are_bounded(self) -> None:
        assert self.breaker.statistics().trial_calls_in_flight <= self.breaker.half_open_max_calls

    @invariant()
    def retry_after_is_the_remaining_open_time(self) -> None:
        remaining = self.breaker.retry_after()
        if self.breaker.state is CircuitState.OPEN:
            assert remaining is not None
            assert 0 < remaining == self.model.open_until - self.clock.now
        else:
            assert remaining is None

    @invariant()
    def rate_limit_is_honoured(self) -> None:
        if self.clock.now < self.rate_limited_until:
            assert self.breaker.state is CircuitState.OPEN

    @invariant()
    def listeners_saw_every_transition(self) -> None:
        state = self.breaker.state
        previous = CircuitState.CLOSED
        for old, new in self.transitions:
            assert old is previous
            assert new is not old
            previous = new
        assert previous is state
        openings = sum(new is CircuitState.OPEN for _, new in self.transitions)
        assert openings == self.breaker.opened_count


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# -- examples ----------------------------------------------------------------------------


def test_trips_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    fail_times(breaker, 2)
    breaker.acquire()
    breaker.record_success()  # resets the run of failures
    fail_times(breaker, 2)
    assert state(breaker) is CircuitState.CLOSED
    fail_times(breaker, 1)
    assert state(breaker) is CircuitState.OPEN
    assert breaker.opened_count == 1
    rejection(breaker)


def test_ignored_categories_count_neither_way() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    fail_times(breaker, 10, ErrorCategory.PERMANENT)
    fail_times(breaker, 10, ErrorCategory.MALFORMED_OUTPUT)
    assert state(breaker) is CircuitState.CLOSED
    fail_times(breaker, 1)
    fail_times(breaker, 1, ErrorCategory.PERMANENT)  # does not reset the run either
    fail_times(breaker, 1)
    assert state(breaker) is CircuitState.OPEN


def test_counted_categories_are_configurable() -> None:
    breaker = CircuitBreaker(
        failure_threshold=1,
        counted_categories=frozenset({ErrorCategory.PERMANENT}),
        clock=FakeClock(),
    )
    fail_times(breaker, 3, ErrorCategory.TIMEOUT)
    assert state(breaker) is CircuitState.CLOSED
    fail_times(breaker, 1, ErrorCategory.PERMANENT)
    assert state(breaker) is CircuitState.OPEN


def test_half_open_closes_after_success_threshold() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, success_threshold=2, timeout_seconds=10, clock=clock
    )
    fail_times(breaker, 1)
    clock.now += 9.999
    assert state(breaker) is CircuitState.OPEN
    clock.now += 0.001
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.acquire()
    breaker.record_success()
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.statistics().half_open_successes == 1
    breaker.acquire()
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED
    breaker.acquire()  # admitted again


def test_half_open_failure_reopens_for_the_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, timeout_seconds=10, clock=clock)
    fail_times(breaker, 3)
    clock.now += 10
    fail_times(breaker, 1)  # the trial call fails
    assert state(breaker) is CircuitState.OPEN
    assert breaker.opened_count == 2
    assert breaker.retry_after() == pytest.approx(10)
    assert "after a failed trial call" in rejection(breaker).message


def test_half_open_admits_a_bounded_number_of_trials() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1,
        success_threshold=3,
        timeout_seconds=5,
        half_open_max_calls=2,
        clock=clock,
    )
    fail_times(breaker, 1)
    clock.now += 5
    breaker.acquire()
    breaker.acquire()
    error = rejection(breaker)
    assert "half-open" in error.message
    assert error.retry_after == 5
    breaker.record_success()  # one trial done: its slot is free again
    breaker.acquire()
    assert breaker.statistics().trial_calls_in_flight == 2


def test_rejection_says_why_and_when_it_will_try_again() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(failure_threshold=5, timeout_seconds=30, clock=clock, name="claude")
    fail_times(breaker, 5)
    clock.now = 17.7
    error = rejection(breaker)
    assert error.message == (
        "circuit breaker 'claude' is open after 5 consecutive failures; will try again in 12.3s"
    )
    assert error.retry_after == pytest.approx(12.3)
    assert error.cli == "claude"
    assert error.is_retryable is False  # CIRCUIT_OPEN is for the retry layer to decide


def test_rate_limit_opens_at_once_until_the_announced_reset() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(failure_threshold=5, timeout_seconds=10, clock=clock, name="codex")
    breaker.acquire()
    breaker.record_failure(failure(ErrorCategory.RATE_LIMIT, retry_after=120))
    assert state(breaker) is CircuitState.OPEN
    clock.now = 119.5
    error = rejection(breaker)
    assert "rate limited by the API" in error.message
    assert error.retry_after == pytest.approx(0.5)
    clock.now = 120
    assert state(breaker) is CircuitState.HALF_OPEN


def test_rate_limit_without_a_hint_is_an_ordinary_failure() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    fail_times(breaker, 1, ErrorCategory.RATE_LIMIT)
    assert state(breaker) is CircuitState.CLOSED


def test_timeout_wins_over_a_shorter_rate_limit_when_tripping() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=60, clock=clock)
    breaker.acquire()
    breaker.record_failure(failure(ErrorCategory.RATE_LIMIT, retry_after=5))
    assert breaker.retry_after() == 60


def test_late_rate_limit_extends_an_open_breaker_but_never_shortens_it() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=30, clock=clock)
    breaker.acquire()
    breaker.acquire()
    breaker.acquire()
    breaker.record_failure(failure())  # opens until 30
    breaker.record_failure(failure(ErrorCategory.RATE_LIMIT, retry_after=10))
    assert breaker.retry_after() == 30
    breaker.record_failure(failure(ErrorCategory.RATE_LIMIT, retry_after=300))
    assert breaker.retry_after() == 300
    assert breaker.opened_count == 1


def test_listeners_hear_every_transition_including_the_lazy_one() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, success_threshold=1, timeout_seconds=1, clock=clock
    )
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker.add_listener(lambda old, new: seen.append((old, new)))
    fail_times(breaker, 1)
    clock.now += 1
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.acquire()
    breaker.record_success()
    assert seen == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "CircuitBreaker.failure_threshold must be >= 1, got 0"),
        ({"success_threshold": 0}, "CircuitBreaker.success_threshold must be >= 1"),
        ({"timeout_seconds": -1.0}, "CircuitBreaker.timeout_seconds must be >= 0"),
        ({"timeout_seconds": math.inf}, "CircuitBreaker.timeout_seconds must be finite"),
        ({"half_open_max_calls": 0}, "CircuitBreaker.half_open_max_calls must be >= 1"),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_default_clock_outside_trio_is_monotonic_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # time.monotonic itself is replaced by a hand-moved clock: no real-time window at all.
    import types

    import actors._timeouts

    clock = FakeClock(5000.0)
    monkeypatch.setattr(actors._timeouts, "time", types.SimpleNamespace(monotonic=clock))
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=60)
    fail_times(breaker, 1)
    assert breaker.retry_after() == 60
    clock.now += 1.5
    assert breaker.retry_after() == 58.5
    clock.now += 58.5
    assert state(breaker) is CircuitState.HALF_OPEN


# -- call() and call_async() -------------------------------------------------------------


def test_call_returns_the_result_and_records_success() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    fail_times(breaker, 1)

    def answer(prompt: str, *, suffix: str) -> str:
        return prompt + suffix

    assert breaker.call(answer, "hi", suffix="!") == "hi!"
    assert breaker.statistics().consecutive_failures == 0


def test_call_records_and_reraises_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    original = failure(ErrorCategory.TIMEOUT)

    def fails_with_llm_error() -> None:
        raise original

    def fails_with_bug() -> None:
        raise ValueError("bug")

    with pytest.raises(LLMError) as info:
        breaker.call(fails_with_llm_error)
    assert info.value is original
    with pytest.raises(ValueError, match="bug"):
        breaker.call(fails_with_bug)  # counted as a RETRYABLE failure
    assert state(breaker) is CircuitState.OPEN
    with pytest.raises(LLMError) as rejected:
        breaker.call(fails_with_bug)
    assert rejected.value.category is ErrorCategory.CIRCUIT_OPEN


def test_call_does_not_count_a_cancellation() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, success_threshold=1, timeout_seconds=5, clock=clock
    )
    fail_times(breaker, 1)
    clock.now += 5
    before = breaker.statistics()

    def interrupted() -> None:
        raise FakeCancelled

    with pytest.raises(FakeCancelled):
        breaker.call(interrupted)
    assert breaker.statistics() == before  # same state and counts, trial slot given back
    assert breaker.call(lambda: 42) == 42
    assert state(breaker) is CircuitState.CLOSED


async def test_call_async_cancelled_counts_neither_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Default clock: trio's, so the autojump clock drives the open timeout too.
    breaker = CircuitBreaker(failure_threshold=2, success_threshold=1, timeout_seconds=30)
    fail_times(breaker, 2)
    assert state(breaker) is CircuitState.OPEN
    await trio.sleep(30)
    assert state(breaker) is CircuitState.HALF_OPEN
    before = breaker.statistics()

    with trio.CancelScope() as scope:
        scope.deadline = trio.current_time() + 10
        await breaker.call_async(trio.sleep_forever)
    assert scope.cancelled_caught
    assert breaker.statistics() == before

    async def answer(prompt: str) -> str:
        await trio.sleep(1)
        return prompt.upper()

    assert await breaker.call_async(answer, "ok") == "OK"
    assert state(breaker) is CircuitState.CLOSED


async def test_call_async_records_failures(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=30)

    async def times_out() -> None:
        await trio.sleep(5)
        raise failure(ErrorCategory.TIMEOUT)

    with pytest.raises(LLMError) as info:
        await breaker.call_async(times_out)
    assert info.value.category is ErrorCategory.TIMEOUT
    with pytest.raises(LLMError) as rejected:
        await breaker.call_async(times_out)
    assert rejected.value.category is ErrorCategory.CIRCUIT_OPEN
    assert rejected.value.retry_after == pytest.approx(30)
