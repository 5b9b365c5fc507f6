"""Counters of a supervisor and the frozen snapshot `statistics()` returns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import attrs

from actors import ErrorCategory

from ._policy._breaker import CircuitState


@attrs.frozen
class SupervisorStatistics:
    """A point-in-time snapshot of one supervisor (trio's ``statistics()`` convention)."""

    cli: str
    concurrency: int
    in_flight: int
    started: int
    succeeded: int
    failed: int
    failures_by_category: Mapping[str, int]
    retries: int
    restarts: int
    processes_spawned: int
    breaker_rejections: int
    breaker_waits: int
    trimmed_turns: int
    reasks: int
    session_restarts: int
    breaker_state: CircuitState | None
    breaker_opened: int
    retries_refused: int = 0  # retries the retry budget did not allow


@attrs.define
class Counters:
    """Mutable counters; only the supervisor writes them."""

    in_flight: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    failures_by_category: Counter[str] = attrs.Factory(Counter)
    retries: int = 0
    restarts: int = 0
    processes_spawned: int = 0
    breaker_rejections: int = 0  # calls failed fast by an open breaker
    breaker_waits: int = 0  # times a call waited for the breaker (breaker_wait)
    trimmed_turns: int = 0
    reasks: int = 0
    session_restarts: int = 0

    def call_failed(self, category: ErrorCategory) -> None:
        self.failed += 1
        self.failures_by_category[category.value] += 1

    def answer_rejected(self) -> None:
        """A call that succeeded but whose answer did not validate: a malformed failure."""
        self.succeeded -= 1
        self.call_failed(ErrorCategory.MALFORMED_OUTPUT)
