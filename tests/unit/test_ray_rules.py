"""The fleet gate's rules, the fleet-backed breaker and the dispatcher: pure, no Ray."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import ErrorCategory, LLMError
from supervisor._policy._breaker import CircuitState, Permit
from supervisor._ray._dispatch import Dispatcher
from supervisor._ray._fleet_breaker import FleetBreaker
from supervisor._ray._gate_rules import FleetGateRules, GateRefusal, GateSettings, GateView

from ..helpers import FakeClock


class DirectLink:
    """A node's link straight to the rules (what the gate actor does over Ray)."""

    def __init__(self, rules: FleetGateRules) -> None:
        self.rules = rules
        self.nodes: list[FleetBreaker] = []

    def acquire(self, cli: str) -> tuple[Permit | GateRefusal, GateView]:
        return self.rules.acquire(cli), self.rules.view(cli)

    def record(
        self,
        cli: str,
        permit: Permit,
        category: ErrorCategory | None,
        retry_after: float | None,
        cancelled: bool,
    ) -> None:
        view = self.rules.record(cli, permit, category, retry_after, cancelled=cancelled)
        for node in self.nodes:  # the gate's long poll, delivered at once
            node.apply(view)


def fleet(nodes: int, settings: GateSettings | None = None) -> tuple[FakeClock, list[FleetBreaker]]:
    clock = FakeClock(0.0)
    link = DirectLink(FleetGateRules(settings or GateSettings(), clock))
    link.nodes = [
        FleetBreaker(name="fake", link=link, local_clock=clock, clock=clock) for _ in range(nodes)
    ]
    return clock, link.nodes


def rate_limited(seconds: float) -> LLMError:
    return LLMError("429", ErrorCategory.RATE_LIMIT, retry_after=seconds, cli="fake")


def test_a_rate_limit_on_one_node_stops_every_node_until_its_time() -> None:
    clock, (a, b, c) = fleet(3)
    permit = a.acquire("fake")
    a.record_failure(rate_limited(30), permit)
    for node in (a, b, c):
        with pytest.raises(LLMError) as refused:
            node.acquire("fake")
        assert refused.value.category is ErrorCategory.CIRCUIT_OPEN
        assert refused.value.retry_after == pytest.approx(30)
    clock.now = 29.9
    with pytest.raises(LLMError):
        b.acquire("fake")
    clock.now = 30.0
    trial = b.acquire("fake")  # one trial for the whole fleet
    assert trial.trial
    for node in (a, c):
        with pytest.raises(LLMError) as busy:
            node.acquire("fake")
        assert busy.value.retry_after is not None and busy.value.retry_after <= 0.5


def test_half_open_trials_are_counted_across_the_fleet_then_close_it() -> None:
    clock, (a, b) = fleet(2, GateSettings(success_threshold=2, half_open_max_calls=1))
    a.record_failure(rate_limited(5), a.acquire("fake"))
    clock.now = 6
    first = a.acquire("fake")
    with pytest.raises(LLMError):
        b.acquire("fake")
    a.record_success(first)
    second = b.acquire("fake")
    assert second.trial
    b.record_success(second)
    assert a.state is CircuitState.CLOSED and b.state is CircuitState.CLOSED
    assert not a.acquire("fake").trial


def test_the_node_that_saw_the_rate_limit_stops_before_the_gate_answers() -> None:
    clock = FakeClock(0.0)

    class Silent(DirectLink):
        def record(self, *args: object) -> None:  # the report is still on its way
            pass

    node = FleetBreaker(
        name="fake", link=Silent(FleetGateRules(GateSettings(), clock)), local_clock=clock
    )
    node.record_failure(rate_limited(3), node.acquire("fake"))
    with pytest.raises(LLMError):
        node.acquire("fake")
    # A stale view from the gate does not reopen it early.
    node.apply(GateView("fake", CircuitState.CLOSED, None, 0, 0, 0))
    with pytest.raises(LLMError):
        node.acquire("fake")


def test_consecutive_failures_across_nodes_trip_the_threshold() -> None:
    _clock, (a, b) = fleet(2, GateSettings(failure_threshold=2))
    error = LLMError("boom", ErrorCategory.RETRYABLE, cli="fake")
    a.record_failure(error, a.acquire("fake"))
    assert b.state is CircuitState.CLOSED
    b.record_failure(error, b.acquire("fake"))
    assert a.state is CircuitState.OPEN


def test_without_a_threshold_only_rate_limits_open_it() -> None:
    _clock, (a,) = fleet(1)
    for _ in range(50):
        a.record_failure(LLMError("x", ErrorCategory.RETRYABLE, cli="fake"), a.acquire("fake"))
    assert a.state is CircuitState.CLOSED


def test_the_fleet_retry_budget_is_shared() -> None:
    from supervisor import RetryBudget

    clock = FakeClock(0.0)
    rules = FleetGateRules(GateSettings(budget=RetryBudget(ratio=0.5, min_per_s=0)), clock)
    for _ in range(4):
        rules.call_started("fake")
    assert [rules.try_retry("fake") for _ in range(3)] == [True, True, False]


@given(
    st.lists(
        st.tuples(st.sampled_from(["send", "answer", "answer_dead", "kill"]), st.integers(0, 3)),
        max_size=120,
    ),
    st.integers(1, 4),
)
def test_dispatch_loses_nothing_and_records_nothing_twice(
    steps: list[tuple[str, int]], window: int
) -> None:
    nodes = ["n0", "n1", "n2", "n3"]
    dispatcher: Dispatcher[int, str] = Dispatcher(window)
    for node in nodes:
        dispatcher.add_node(node)
    total = 30
    fresh = iter(range(total))
    recorded: list[int] = []
    sent_to: dict[int, str] = {}  # last node each item was sent to (a dead one may answer)
    exhausted = False

    def send(node: str) -> None:
        nonlocal exhausted
        room = dispatcher.room(node)
        batch = dispatcher.take_again(room)
        while len(batch) < room and not exhausted:
            key = next(fresh, None)
            if key is None:
                exhausted = True
            else:
                batch.append((key, f"p{key}"))
        for key, prompt in batch:
            dispatcher.assign(node, key, prompt)
            sent_to[key] = node

    def answer(node: str) -> None:
        for key, holder in list(sent_to.items()):
            if holder == node and dispatcher.complete(node, key) is not None:
                recorded.append(key)

    for action, index in steps:
        node = nodes[index]
        if action == "send" and node in dispatcher.nodes:
            send(node)
        elif action in ("answer", "answer_dead"):
            answer(node)  # a lost node's late answer must be refused
        elif action == "kill" and len(dispatcher.nodes) > 1:
            dispatcher.lose(node)
    # Drain on the survivors.
    while not (exhausted and dispatcher.idle()):
        for node in dispatcher.nodes:
            send(node)
            answer(node)
    assert sorted(recorded) == list(range(total))
    assert len(recorded) == len(set(recorded))
