"""The fleet's shared retry budget: the gate's account and each node's `FleetBudget`
view of it. No Ray: the nodes' link goes straight to the rules."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from actors import fake
from supervisor import ErrorCategory, LLMError, RetryBudget, RetryConfig, open_supervisor
from supervisor._ray._fleet_budget import FleetBudget
from supervisor._ray._gate_rules import BudgetAnswer, FleetGateRules, GateSettings

from ..helpers import FakeClock


class DirectLink:
    """A node's link straight to the rules (what the gate actor does over Ray)."""

    def __init__(self, rules: FleetGateRules) -> None:
        self.rules = rules
        self.asked = 0

    def call_started(self, cli: str, count: int) -> None:
        self.rules.call_started(cli, count)

    def take_retry(self, cli: str) -> BudgetAnswer:
        self.asked += 1
        return self.rules.take_retry(cli)


def fleet(
    nodes: int, budget: RetryBudget, clock: FakeClock | None = None
) -> tuple[FakeClock, DirectLink, list[FleetBudget]]:
    clock = clock or FakeClock(0.0)
    link = DirectLink(FleetGateRules(GateSettings(budget=budget), clock))
    views = [FleetBudget(budget, cli="fake", link=link, local_clock=clock) for _ in range(nodes)]
    return clock, link, views


def test_retries_across_the_fleet_add_up_to_one_budget() -> None:
    # 0.1/s over 50 s: 5 retries for the whole fleet, not 5 per node.
    _clock, _link, nodes = fleet(3, RetryBudget(ratio=0.0, min_per_s=0.1, window_s=50))
    granted = [sum(node.try_retry() for _ in range(4)) for node in nodes]
    assert granted == [4, 1, 0]
    assert sum(node.refused for node in nodes) == 12 - 5


def test_calls_started_on_any_node_earn_retries_for_every_node() -> None:
    _clock, _link, (a, b) = fleet(2, RetryBudget(ratio=0.5, min_per_s=0.0, window_s=10))
    for _ in range(4):
        a.call_started()
    assert [b.try_retry() for _ in range(3)] == [True, True, False]


def test_a_spent_view_refuses_locally_until_it_is_stale() -> None:
    clock, link, (a, b) = fleet(2, RetryBudget(ratio=0.5, min_per_s=0.0, window_s=10))
    assert a.try_retry() is False  # no calls yet: nothing to spend
    asked = link.asked
    assert [a.try_retry() for _ in range(5)] == [False] * 5
    assert link.asked == asked  # refused from the view, without the network
    assert a.refused == 6
    for _ in range(2):
        b.call_started()  # the fleet's allowance grows elsewhere
    clock.now += 1.0  # the view is stale: the gate is asked again
    assert a.try_retry() is True
    assert link.asked == asked + 1
    assert (a.allowance(), a.spent()) == (1.0, 1)  # the fleet's account, as last answered


def test_the_gate_counts_only_its_own_refusals() -> None:
    _clock, link, (a,) = fleet(1, RetryBudget(ratio=0.0, min_per_s=0.1, window_s=10))
    assert [a.try_retry() for _ in range(3)] == [True, False, False]
    assert a.refused == 2
    # The grant's answer said the budget was spent: both refusals were local.
    assert link.rules.retries_refused("fake") == 0 and link.asked == 1


def test_without_a_budget_the_gate_grants_every_retry() -> None:
    rules = FleetGateRules(GateSettings(), FakeClock(0.0))
    answer = rules.take_retry("fake")
    assert answer.granted and answer.left == math.inf
    assert rules.retries_refused("fake") == 0


@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["call", "retry"]), st.sampled_from([0, 0.4])),
        max_size=80,
    ),
    st.sampled_from([0.0, 0.25, 1.0]),
)
def test_the_fleet_never_retries_more_than_one_budget_allows(
    steps: list[tuple[int, str, float]], ratio: float
) -> None:
    # One window for the whole run (1000 s), so the bound is a count, not a rate.
    clock, link, nodes = fleet(3, RetryBudget(ratio=ratio, min_per_s=0.002, window_s=1000))
    calls = granted = 0
    for node, kind, wait in steps:
        clock.now += wait
        if kind == "call":
            nodes[node].call_started()
            calls += 1
            continue
        asked = link.asked
        ok = nodes[node].try_retry()
        granted += ok
        allowance = ratio * calls + 2
        assert granted <= allowance  # one budget for the fleet
        if link.asked > asked:  # the gate decided: exactly when one budget has room
            assert ok is (granted - ok + 1 <= allowance)
    asks = sum(1 for _node, kind, _wait in steps if kind == "retry")
    assert sum(node.refused for node in nodes) == asks - granted


async def test_supervisors_on_two_nodes_spend_the_fleet_budget() -> None:
    # Each node's supervisor gets a FleetBudget (as the node actor wires it); every call
    # fails, and the fleet makes the 3 retries one budget allows, whichever node asks.
    budget = RetryBudget(ratio=0.0, min_per_s=0.1, window_s=30)
    retry = RetryConfig(max_attempts=2, initial_delay_ms=1, max_delay_ms=5, budget=budget)
    _clock, _link, views = fleet(2, budget)
    spec = fake({"exit_code": 9})
    async with (
        open_supervisor(spec, retry=retry, concurrency=2, retry_budget=views[0]) as one,
        open_supervisor(spec, retry=retry, concurrency=2, retry_budget=views[1]) as two,
    ):
        outcomes = [
            *await one.map([f"a {i}" for i in range(5)]),
            *await two.map([f"b {i}" for i in range(5)]),
        ]
        stats = [one.statistics(), two.statistics()]
    assert all(isinstance(o, LLMError) and o.category is ErrorCategory.RETRYABLE for o in outcomes)
    assert sum(s.retries for s in stats) == 3
    assert sum(s.processes_spawned for s in stats) == 10 + 3
    assert [s.retries_refused for s in stats] == [views[0].refused, views[1].refused]
    assert sum(s.retries_refused for s in stats) == 10 - 3
