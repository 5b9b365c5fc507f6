"""`FleetBudget`: a node's `RetryBudgetTracker` that spends the fleet gate's shared budget.

A retry budget bounds retries as a share of recent calls; on a fleet the calls and the
retries are the account's, so every node of a run spends one budget per CLI, held by the
gate (`_gate_rules.FleetGateRules`). The engine is given this tracker (``open_supervisor(
retry_budget=...)``) and calls it synchronously:

- ``call_started`` reports the call to the gate without waiting;
- ``try_retry`` asks the gate for one retry (one blocking round trip, then the retry's
  backoff sleep follows anyway), unless this node's view, the gate's last answer, says
  the budget is spent: then it refuses locally, without the network, for as long as that
  view is fresh (``fresh_s``). A view older than that is asked again, since the window
  slides and other nodes' calls add to the allowance.

Every retry made anywhere in the fleet was granted by the gate, so the fleet retries no
more than one budget allows. ``refused`` counts this node's refusals (local or the gate's),
which is what the node's ``statistics().retries_refused`` reports.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .._policy._budget import RetryBudget, RetryBudgetTracker
from ._gate_rules import BudgetAnswer

VIEW_FRESH_S = 1.0
"""How long a node trusts a "spent" answer before asking the gate again (the budget counts
in one-second slots)."""


class BudgetLink(Protocol):
    """How a node's budget talks to the gate (a Ray actor in production, a
    `FleetGateRules` in tests)."""

    def call_started(self, cli: str, count: int) -> None:
        """Report calls started (without waiting for an answer)."""
        ...

    def take_retry(self, cli: str) -> BudgetAnswer:
        """Ask for one retry (blocking)."""
        ...


class FleetBudget(RetryBudgetTracker):
    """A `RetryBudgetTracker` whose account is the fleet gate's (see the module docstring)."""

    def __init__(
        self,
        budget: RetryBudget,
        *,
        cli: str,
        link: BudgetLink,
        local_clock: Callable[[], float] = time.monotonic,
        fresh_s: float = VIEW_FRESH_S,
    ) -> None:
        super().__init__(budget, clock=local_clock)
        self.cli = cli
        self._link = link
        self._fresh_s = fresh_s
        self._lock = threading.Lock()
        self._answer = BudgetAnswer(True, math.inf, 0)
        self._spent_until = -math.inf  # on this node's clock: refuse locally until then

    def apply(self, answer: BudgetAnswer) -> None:
        """Keep the gate's answer as this node's view of the fleet's account."""
        now = self._clock()
        with self._lock:
            self._answer = answer
            self._spent_until = now + self._fresh_s if answer.left < 1 else -math.inf

    def call_started(self) -> None:
        self._link.call_started(self.cli, 1)

    def try_retry(self) -> bool:
        if self._clock() < self._spent_until:
            self.refused += 1
            return False
        answer = self._link.take_retry(self.cli)
        self.apply(answer)
        if not answer.granted:
            self.refused += 1
        return answer.granted

    def allowance(self) -> float:
        """The fleet's allowance, as of the gate's last answer."""
        return self._answer.allowance

    def spent(self) -> int:
        """Retries the fleet made within the window, as of the gate's last answer."""
        return self._answer.spent
