"""Restart types, restart intensity (sliding window) and Akka-style restart backoff."""

from __future__ import annotations

import random
from fractions import Fraction

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors._errors import ErrorCategory, RestartIntensityExceeded
from supervisor._policy._intensity import (
    RestartBackoff,
    RestartIntensity,
    RestartTracker,
    RestartType,
)
from tests.helpers import FakeClock
from tests.strategies import restart_backoffs

# -- RestartType -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart_type", "after_normal_exit", "after_crash"),
    [
        (RestartType.PERMANENT, True, True),
        (RestartType.TRANSIENT, False, True),
        (RestartType.TEMPORARY, False, False),
    ],
)
def test_restart_type_decides_which_exits_restart(
    restart_type: RestartType, after_normal_exit: bool, after_crash: bool
) -> None:
    assert restart_type.should_restart(abnormal=False) is after_normal_exit
    assert restart_type.should_restart(abnormal=True) is after_crash


# -- RestartIntensity / RestartTracker: examples ------------------------------------------


def test_default_intensity_is_elixirs_three_in_five_seconds() -> None:
    assert RestartIntensity() == RestartIntensity(max_restarts=3, period_s=5.0)


def test_fourth_restart_within_the_period_fails_the_supervisor() -> None:
    clock = FakeClock(0.0)
    tracker = RestartTracker(RestartIntensity(), clock)
    for t in (0.0, 1.0, 2.0):
        clock.now = t
        tracker.record_restart("child a crashed")
    clock.now = 3.0
    with pytest.raises(RestartIntensityExceeded) as info:
        tracker.record_restart("exit code 1")
    error = info.value
    assert str(error.message) == (
        "restart intensity exceeded: 4 restarts within 5s (limit 3 in 5s); "
        "last failure: exit code 1"
    )
    assert (error.restarts, error.period) == (4, 5.0)
    assert error.category is ErrorCategory.PERMANENT
    assert tracker.total_restarts == 4


def test_restarts_older_than_the_period_are_forgotten() -> None:
    clock = FakeClock(0.0)
    tracker = RestartTracker(RestartIntensity(3, 5.0), clock)
    for t in (0.0, 1.0, 2.0, 6.0, 7.5, 8.0):
        clock.now = t
        tracker.record_restart()
    assert tracker.restarts_in_window() == 3
    clock.now = 20.0
    assert tracker.restarts_in_window() == 0
    assert tracker.total_restarts == 6


def test_window_is_closed_as_in_otp() -> None:
    # A restart exactly period_s ago still counts.
    clock = FakeClock(0.0)
    tracker = RestartTracker(RestartIntensity(1, 5.0), clock)
    tracker.record_restart()
    clock.now = 5.0
    with pytest.raises(RestartIntensityExceeded):
        tracker.record_restart()


def test_message_without_a_reason() -> None:
    tracker = RestartTracker(RestartIntensity(0, 2.5), FakeClock(0.0))
    with pytest.raises(RestartIntensityExceeded) as info:
        tracker.record_restart()
    assert info.value.message == (
        "restart intensity exceeded: 1 restarts within 2.5s (limit 0 in 2.5s)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_restarts": -1}, "RestartIntensity.max_restarts must be >= 0, got -1"),
        ({"period_s": 0.0}, "RestartIntensity.period_s must be a finite number > 0"),
        ({"period_s": float("inf")}, "RestartIntensity.period_s must be a finite number > 0"),
    ],
)
def test_invalid_intensity_names_the_field(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        RestartIntensity(**kwargs)  # type: ignore[arg-type]


# -- RestartTracker: stateful model ------------------------------------------------------

# Quarter seconds are exact in binary, so window edges are hit exactly, not by rounding.
quarters = st.integers(min_value=0, max_value=40).map(lambda n: n / 4)


class IntensityMachine(RuleBasedStateMachine):
    """Restarts and clock moves against a plain list of timestamps."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(0.0)
        self.times: list[float] = []

    @initialize(
        max_restarts=st.integers(min_value=0, max_value=4),
        period_s=st.integers(min_value=1, max_value=40).map(lambda n: n / 4),
    )
    def build(self, max_restarts: int, period_s: float) -> None:
        self.intensity = RestartIntensity(max_restarts, period_s)
        self.tracker = RestartTracker(self.intensity, self.clock)

    def _in_window(self) -> int:
        return sum(1 for t in self.times if self.clock.now - t <= self.intensity.period_s)

    @rule(reason=st.sampled_from(["", "exit code 1", "timed out"]))
    def restart(self, reason: str) -> None:
        self.times.append(self.clock.now)
        expected = self._in_window()
        if expected > self.intensity.max_restarts:
            with pytest.raises(RestartIntensityExceeded) as info:
                self.tracker.record_restart(reason)
            assert info.value.restarts == expected
            assert info.value.period == self.intensity.period_s
            assert info.value.message.endswith(f"; last failure: {reason}") == bool(reason)
        else:
            self.tracker.record_restart(reason)

    @rule(seconds=quarters)
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def advance_to_the_window_edge(self) -> None:
        if self.times:
            self.clock.now = max(self.clock.now, self.times[0] + self.intensity.period_s)

    @invariant()
    def counts_match(self) -> None:
        assert self.tracker.restarts_in_window() == self._in_window()
        assert self.tracker.total_restarts == len(self.times)


TestIntensityMachine = IntensityMachine.TestCase
TestIntensityMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# -- RestartBackoff ----------------------------------------------------------------------


def test_backoff_defaults_and_doubling() -> None:
    backoff = RestartBackoff(random_factor=0.0)
    assert [backoff.delay(n) for n in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert backoff.delay(7) == 10.0  # 12.8 capped
    assert backoff.delay(10**6) == 10.0  # no overflow


@settings(max_examples=100)
@given(
    backoff=restart_backoffs(),
    n=st.integers(min_value=0, max_value=2_000),
    seed=st.integers(),
)
def test_backoff_stays_within_the_noisy_cap(backoff: RestartBackoff, n: int, seed: int) -> None:
    delay = backoff.delay(n, random.Random(seed))
    # Exact arithmetic, so huge n (where float powers overflow) is checked too.
    floor = float(min(Fraction(backoff.max_backoff_s), Fraction(backoff.min_backoff_s) * 2**n))
    assert floor <= delay <= floor * (1 + backoff.random_factor)
    assert delay <= backoff.max_backoff_s * (1 + backoff.random_factor)


@settings(max_examples=50)
@given(backoff=restart_backoffs(), n=st.integers(min_value=0, max_value=60))
def test_backoff_never_shrinks_as_restarts_pile_up(backoff: RestartBackoff, n: int) -> None:
    quiet = attrs.evolve(backoff, random_factor=0.0)
    assert quiet.delay(n + 1) >= quiet.delay(n)


def test_backoff_is_stable_after_reset_period() -> None:
    backoff = RestartBackoff(reset_after_s=30.0)
    assert not backoff.is_stable(29.9)
    assert backoff.is_stable(30.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_backoff_s": -0.1}, "RestartBackoff.min_backoff_s must be >= 0"),
        ({"min_backoff_s": 5.0, "max_backoff_s": 1.0}, "RestartBackoff.max_backoff_s must be >="),
        ({"random_factor": -1.0}, "RestartBackoff.random_factor must be >= 0"),
        ({"reset_after_s": float("nan")}, "RestartBackoff.reset_after_s"),
    ],
)
def test_invalid_backoff_names_the_field(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        RestartBackoff(**kwargs)
