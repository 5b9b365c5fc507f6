"""Retry budget: retries limited to a share of recent calls, across a whole supervisor.

Per-call limits (``max_attempts``) do not stop a retry storm: when every call fails, a fan-out
of 10,000 calls with 3 attempts each makes 30,000. A budget caps retries at ``ratio`` of the
calls started in the last ``window_s`` seconds, plus a small reserve (``min_per_s``) so that a
quiet supervisor can still retry. This is Finagle's RetryBudget; no Python retry library has
a budget shared across calls, hence our own.

Counts live in one-second slots over the window, so memory is bounded whatever the rate.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import attrs

from actors.lowlevel import at_least, default_clock, finite


@attrs.frozen
class RetryBudget:
    """How many retries a supervisor may make, as a share of its recent calls.

    Attributes:
        ratio: retries allowed per call started within the window (0.2: one retry for every
            five calls).
        min_per_s: retries always allowed per second of the window, however few calls.
        window_s: how far back calls and retries count.
    """

    ratio: float = attrs.field(default=0.2, validator=[at_least(0), finite])
    min_per_s: float = attrs.field(default=1.0, validator=[at_least(0), finite])
    window_s: float = attrs.field(default=10.0, validator=[at_least(1), finite])

    def describe(self) -> str:
        return f"{self.ratio:g} of calls + {self.min_per_s:g}/s over {self.window_s:g}s"


@attrs.define
class _Slot:
    second: int
    calls: int = 0
    retries: int = 0


class RetryBudgetTracker:
    """The running account of one `RetryBudget`; the clock is injectable for tests."""

    def __init__(self, budget: RetryBudget, clock: Callable[[], float] = default_clock) -> None:
        self.budget = budget
        self._clock = clock
        self._slots: collections.deque[_Slot] = collections.deque()
        self.refused = 0

    def _current(self) -> _Slot:
        second = math.floor(self._clock())
        oldest = second - math.ceil(self.budget.window_s) + 1
        while self._slots and self._slots[0].second < oldest:
            self._slots.popleft()
        if not self._slots or self._slots[-1].second != second:
            self._slots.append(_Slot(second))
        return self._slots[-1]

    def call_started(self) -> None:
        """A call's first attempt: it adds ``ratio`` to what may be retried."""
        self._current().calls += 1

    def allowance(self) -> float:
        """Retries the window allows in all, spent or not."""
        self._current()
        calls = sum(slot.calls for slot in self._slots)
        return self.budget.ratio * calls + self.budget.min_per_s * self.budget.window_s

    def spent(self) -> int:
        """Retries made within the window."""
        self._current()
        return sum(slot.retries for slot in self._slots)

    def try_retry(self) -> bool:
        """Take one retry from the budget; False (and counted) when it is spent."""
        if self.spent() + 1 > self.allowance():
            self.refused += 1
            return False
        self._slots[-1].retries += 1  # the current slot: `spent` just made sure of it
        return True
