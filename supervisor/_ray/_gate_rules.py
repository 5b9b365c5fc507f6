"""The fleet gate's rules: per CLI, one breaker and one retry budget for every node.

A rate limit or an auth failure is a property of the account, not of the node, so the
breaker that says "do not call this CLI now" is one state machine for the fleet: the
library's own `CircuitBreaker` (its rules, including a RATE_LIMIT's ``retry_after`` holding
it open, are unchanged), on an injected clock. Nodes keep a `GateView` of it: while the
view says CLOSED they admit calls locally, while it says OPEN they refuse them locally,
and only a half-open trial asks the gate (so trials are counted across the fleet). Every
call's end is reported here. The retry budget is one `RetryBudgetTracker` per CLI for the
fleet: nodes report each call's start and ask here for each retry (`take_retry`), keeping
the answer as their view (`_fleet_budget.FleetBudget`). The Ray actor
(`_actors.GateActor`) is a thin shell over this.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from actors import ErrorCategory, LLMError

from .._policy._breaker import CircuitBreaker, CircuitState, Permit
from .._policy._budget import RetryBudget, RetryBudgetTracker

NO_THRESHOLD = 2**31 - 1
"""The failure threshold of a gate asked for none: it then opens only on a rate limit that
announced its reset time (which is what makes one node's 429 pause the others)."""

TRIAL_POLL_S = 0.5
"""How soon a node refused because another node's trial is in flight asks again (the
breaker's own answer, its ``timeout_seconds``, would leave a waiting node idle long after
the fleet's trial closed the breaker)."""


@attrs.frozen
class GateView:
    """What a node knows of one CLI's fleet breaker.

    ``retry_after`` is relative (seconds from when the view was made), so nodes need no
    synchronised clocks: each turns it into a deadline on its own clock when it gets it.
    """

    cli: str
    state: CircuitState
    retry_after: float | None
    generation: int
    version: int
    opened_count: int
    reason: str = ""


@attrs.frozen
class GateRefusal:
    """The gate refused a trial: the CIRCUIT_OPEN error's message and wait."""

    message: str
    retry_after: float


@attrs.frozen
class BudgetAnswer:
    """The gate's answer to a node asking for one retry of a CLI: granted or not, and the
    fleet's account after it (``allowance`` retries the window allows, ``spent`` made)."""

    granted: bool
    allowance: float
    spent: int

    @property
    def left(self) -> float:
        """Retries still allowed (below 1: the next one would be refused)."""
        return self.allowance - self.spent


@attrs.frozen
class GateSettings:
    """How every CLI's fleet breaker and retry budget are configured."""

    failure_threshold: int | None = None
    timeout_seconds: float = 60.0
    success_threshold: int = 2
    half_open_max_calls: int = 1
    budget: RetryBudget | None = None


class _CliGate:
    def __init__(self, cli: str, settings: GateSettings, clock: Callable[[], float]) -> None:
        self.breaker = CircuitBreaker(
            failure_threshold=settings.failure_threshold or NO_THRESHOLD,
            success_threshold=settings.success_threshold,
            timeout_seconds=settings.timeout_seconds,
            half_open_max_calls=settings.half_open_max_calls,
            clock=clock,
            name=cli,
        )
        self.budget = RetryBudgetTracker(settings.budget, clock=clock) if settings.budget else None
        self.version = 0  # transitions so far: the breaker's permit generation
        self.trials = 0  # trial calls admitted across the fleet, ever
        self.breaker.add_listener(self._changed)

    def _changed(self, _old: CircuitState, _new: CircuitState) -> None:
        self.version += 1


class FleetGateRules:
    """Every CLI's fleet breaker and retry budget; a pure state machine on ``clock``."""

    def __init__(self, settings: GateSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._clis: dict[str, _CliGate] = {}

    def _gate(self, cli: str) -> _CliGate:
        gate = self._clis.get(cli)
        if gate is None:
            gate = self._clis[cli] = _CliGate(cli, self.settings, self._clock)
        return gate

    def view(self, cli: str) -> GateView:
        gate = self._gate(cli)
        stats = gate.breaker.statistics()  # applies a due OPEN -> HALF_OPEN first
        return GateView(
            cli=cli,
            state=stats.state,
            retry_after=stats.retry_after,
            # The breaker's permits carry its count of transitions, which is this version.
            generation=gate.version,
            version=gate.version,
            opened_count=stats.opened_count,
        )

    def acquire(self, cli: str) -> Permit | GateRefusal:
        """A node asks for a call (it does when its view is not CLOSED): a half-open trial
        slot of the fleet, or a refusal saying how long to wait."""
        gate = self._gate(cli)
        try:
            permit = gate.breaker.acquire(cli=cli)
        except LLMError as error:
            wait = error.retry_after if error.retry_after is not None else TRIAL_POLL_S
            if gate.breaker.state is CircuitState.HALF_OPEN:
                wait = min(wait, TRIAL_POLL_S)
            return GateRefusal(error.message, wait)
        if permit.trial:
            gate.trials += 1
        return permit

    def record(
        self,
        cli: str,
        permit: Permit,
        category: ErrorCategory | None,
        retry_after: float | None = None,
        *,
        cancelled: bool = False,
    ) -> GateView:
        """A call admitted with ``permit`` ended: success (``category`` None), failure of
        ``category``, or cancelled. Returns the view after it."""
        breaker = self._gate(cli).breaker
        if cancelled:
            breaker.record_cancelled(permit)
        elif category is None:
            breaker.record_success(permit)
        else:
            error = LLMError("reported by a node", category, retry_after=retry_after, cli=cli)
            breaker.record_failure(error, permit)
        return self.view(cli)

    def call_started(self, cli: str, count: int = 1) -> None:
        """``count`` calls to ``cli`` started on a node: each adds to the fleet's budget."""
        budget = self._gate(cli).budget
        if budget is not None:
            for _ in range(count):
                budget.call_started()

    def try_retry(self, cli: str) -> bool:
        """Take one retry from the fleet's budget for ``cli`` (True without a budget)."""
        budget = self._gate(cli).budget
        return True if budget is None else budget.try_retry()

    def take_retry(self, cli: str) -> BudgetAnswer:
        """`try_retry`, answered with the fleet's account after it (what a node keeps)."""
        granted = self.try_retry(cli)
        budget = self._gate(cli).budget
        if budget is None:
            return BudgetAnswer(granted, math.inf, 0)
        return BudgetAnswer(granted, budget.allowance(), budget.spent())

    def retries_refused(self, cli: str) -> int:
        """Retries of ``cli`` the fleet's budget refused at the gate (nodes also refuse
        locally while their view says it is spent; they count those themselves)."""
        budget = self._gate(cli).budget
        return 0 if budget is None else budget.refused

    def trials(self, cli: str) -> int:
        return self._gate(cli).trials

    def next_change_in(self, cli: str) -> float:
        """Seconds until the view changes by itself (OPEN -> HALF_OPEN), inf when never."""
        view = self.view(cli)
        return view.retry_after if view.retry_after is not None else math.inf
