"""The standby pool's rules (`StandbyPolicy`), on an injected clock, without processes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from supervisor._policy._standby import StandbyConfig, StandbyPolicy
from tests.helpers import FakeClock


def policy(standby: int = 2, max_age: float = 600.0) -> tuple[StandbyPolicy, FakeClock]:
    clock = FakeClock()
    return StandbyPolicy(StandbyConfig(standby, max_age), clock=clock), clock


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
def test_a_bad_standby_count_is_a_value_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="standby must be a non-negative integer"):
        StandbyConfig(standby=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, True, "1"])
def test_a_bad_max_age_is_a_value_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="standby_max_age must be a positive finite"):
        StandbyConfig(standby=1, standby_max_age=bad)  # type: ignore[arg-type]


def test_it_fills_to_the_target_and_refills_after_a_take() -> None:
    pool, _clock = policy(standby=2)
    assert pool.wanted(math.inf) == 2
    first, second = pool.begin_spawn(), pool.begin_spawn()
    assert pool.wanted(math.inf) == 0  # spawning counts: no double fill
    pool.spawned(first)
    pool.spawned(second)
    assert pool.take() == first  # the oldest: it has had the longest to start up
    assert (pool.ready, pool.taken) == (1, 1)
    assert pool.wanted(math.inf) == 1


def test_room_and_an_open_breaker_bound_the_refill() -> None:
    pool, _clock = policy(standby=3)
    assert pool.wanted(1) == 1
    assert pool.wanted(0) == 0
    assert pool.wanted(-2) == 0
    assert pool.wanted(math.inf, refill_blocked=True) == 0


def test_a_process_that_is_starting_is_never_handed_out() -> None:
    pool, _clock = policy(standby=1)
    pool.begin_spawn()
    assert pool.take() is None


def test_a_dead_process_is_discarded_and_never_handed_out() -> None:
    pool, _clock = policy(standby=1)
    slot = pool.begin_spawn()
    pool.spawned(slot)
    assert pool.died(slot) is True
    assert pool.take() is None
    assert (pool.discarded, pool.ready, pool.wanted(math.inf)) == (1, 0, 1)


def test_a_death_after_the_take_counts_nothing() -> None:
    pool, _clock = policy(standby=1)
    slot = pool.begin_spawn()
    pool.spawned(slot)
    assert pool.take() == slot
    assert pool.died(slot) is False
    assert pool.discarded == 0


def test_an_old_process_is_recycled_not_handed_out() -> None:
    pool, clock = policy(standby=1, max_age=10.0)
    slot = pool.begin_spawn()
    pool.spawned(slot)
    assert pool.next_expiry() == clock.now + 10.0
    clock.now += 9.5
    assert pool.expired() == []
    clock.now += 0.5
    assert pool.take() is None  # at max_age: no longer handed out
    assert pool.expired() == [slot]
    assert (pool.recycled, pool.ready, pool.next_expiry()) == (1, 0, math.inf)
    assert pool.wanted(math.inf) == 1


def test_stop_ends_refilling_for_good() -> None:
    pool, _clock = policy(standby=2)
    pool.stop("keeps dying")
    pool.stop("again")
    assert pool.stopped == "keeps dying"
    assert pool.wanted(math.inf) == 0


def test_a_failed_spawn_is_a_discard_and_frees_the_slot() -> None:
    pool, _clock = policy(standby=1)
    slot = pool.begin_spawn()
    pool.spawn_failed(slot)
    assert (pool.discarded, pool.starting, pool.wanted(math.inf)) == (1, 0, 1)


def test_evict_takes_the_youngest_and_counts_nothing() -> None:
    pool, clock = policy(standby=2)
    old = pool.begin_spawn()
    pool.spawned(old)
    clock.now += 1
    young = pool.begin_spawn()
    pool.spawned(young)
    assert pool.evict() == young
    assert (pool.taken, pool.discarded, pool.recycled, pool.ready) == (0, 0, 0, 1)


@given(st.integers(0, 20), st.floats(0, 1e6, allow_nan=False))
def test_wanted_never_exceeds_the_deficit_or_the_room(standby: int, room: float) -> None:
    pool, _clock = policy(standby=standby)
    assert 0 <= pool.wanted(room) <= min(standby, room)


class PoolMachine(RuleBasedStateMachine):
    """Any sequence of spawns, takes, deaths, evictions and clock moves keeps the books."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.pool = StandbyPolicy(StandbyConfig(3, 50.0), clock=self.clock)
        self.starting: set[int] = set()
        self.ready: dict[int, float] = {}
        self.handed: set[int] = set()
        self.gone = 0

    @precondition(lambda self: self.pool.wanted(math.inf) > 0)
    @rule()
    def spawn(self) -> None:
        self.starting.add(self.pool.begin_spawn())

    @precondition(lambda self: bool(self.starting))
    @rule(data=st.data(), ok=st.booleans())
    def spawn_ends(self, data: st.DataObject, ok: bool) -> None:
        slot = data.draw(st.sampled_from(sorted(self.starting)))
        self.starting.remove(slot)
        if ok:
            self.pool.spawned(slot)
            self.ready[slot] = self.clock()
        else:
            self.pool.spawn_failed(slot)

    @rule()
    def take(self) -> None:
        slot = self.pool.take()
        if slot is not None:
            assert slot in self.ready, "only a ready process is handed out"
            assert self.clock() - self.ready.pop(slot) < 50.0, "never one past max_age"
            assert slot not in self.handed, "never handed out twice"
            self.handed.add(slot)

    @precondition(lambda self: bool(self.ready))
    @rule(data=st.data())
    def dies(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.ready)))
        assert self.pool.died(slot)
        del self.ready[slot]

    @rule(slot=st.integers(0, 30))
    def dies_after_leaving(self, slot: int) -> None:
        if slot not in self.ready and slot not in self.starting:
            assert not self.pool.died(slot)

    @rule(seconds=st.floats(0, 40, allow_nan=False))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds
        for slot in self.pool.expired():
            assert self.clock() - self.ready.pop(slot) >= 50.0

    @rule()
    def evict(self) -> None:
        slot = self.pool.evict()
        if slot is not None:
            del self.ready[slot]

    @invariant()
    def books_agree(self) -> None:
        assert self.pool.ready == len(self.ready)
        assert self.pool.starting == len(self.starting)
        assert self.pool.ready + self.pool.starting <= 3
        assert self.pool.taken == len(self.handed)


TestPoolMachine = PoolMachine.TestCase


@given(st.floats(0, 1e7, allow_nan=False), st.floats(1e-3, 1e5, allow_nan=False))
def test_at_its_announced_expiry_a_process_is_expired(since: float, max_age: float) -> None:
    # The refill loop sleeps until next_expiry() and then calls expired(): if the two
    # disagreed by a rounding error, it would wake at once, forever (a busy loop).
    clock = FakeClock(since)
    pool = StandbyPolicy(StandbyConfig(1, max_age), clock=clock)
    slot = pool.begin_spawn()
    pool.spawned(slot)
    clock.now = pool.next_expiry()
    assert pool.take() is None
    assert pool.expired() == [slot]


def test_the_expiry_has_no_rounding_gap() -> None:
    # In floating point, since + max_age - max_age < since for these two.
    since, max_age = 64.69817977078462, 760.4143142221881
    assert since + max_age - max_age < since
    clock = FakeClock(since)
    pool = StandbyPolicy(StandbyConfig(1, max_age), clock=clock)
    slot = pool.begin_spawn()
    pool.spawned(slot)
    clock.now = pool.next_expiry()
    assert pool.expired() == [slot]
