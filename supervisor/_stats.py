"""Counters of a supervisor and the frozen snapshot `statistics()` returns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import attrs

from actors import ErrorCategory

from ._policy._breaker import CircuitBreaker, CircuitState
from ._policy._budget import RetryBudgetTracker
from ._policy._standby import StandbyPolicy


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
    # Calls moved from a CLI to the next of the fallback chain, by the CLI they left
    # (its name -> count); a call that falls back twice counts once for each CLI it left.
    fallbacks: Mapping[str, int] = attrs.field(factory=dict)
    # Standby processes (``open_supervisor(standby=N)``): started and waiting for their
    # prompt right now; handed to a call; thrown away because they exited or wrote
    # something before their prompt; stopped and replaced for being older than
    # ``standby_max_age``.
    standby_ready: int = 0
    standby_taken: int = 0
    standby_discarded: int = 0
    standby_recycled: int = 0


@attrs.define
class Counters:
    """Mutable counters of one supervisor; only its engine writes them (features report
    through the engine's ``note_*`` methods), and `snapshot` reads them."""

    in_flight: int = 0
    started: int = 0
    succeeded: int = 0  # calls that returned a result, before any answer check
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
    # Calls that returned, whose answer then did not validate: statistics report each one
    # as a malformed failure instead of a success.
    answers_rejected: int = 0
    fallbacks: Counter[str] = attrs.Factory(Counter)
    # Calls whose answer did not validate and were asked again: part of one structured
    # call, so statistics count neither their start nor their success.
    reasked_calls: int = 0

    def call_failed(self, category: ErrorCategory) -> None:
        self.failed += 1
        self.failures_by_category[category.value] += 1

    def snapshot(
        self,
        cli: str,
        concurrency: int,
        breaker: CircuitBreaker | None,
        budget: RetryBudgetTracker | None,
        standby: StandbyPolicy | None = None,
    ) -> SupervisorStatistics:
        """The frozen `SupervisorStatistics` of these counters and the policies' state."""
        failures = Counter(self.failures_by_category)
        if self.answers_rejected:
            failures[ErrorCategory.MALFORMED_OUTPUT.value] += self.answers_rejected
        return SupervisorStatistics(
            cli=cli,
            concurrency=concurrency,
            in_flight=self.in_flight,
            started=self.started - self.reasked_calls,
            succeeded=self.succeeded - self.answers_rejected - self.reasked_calls,
            failed=self.failed + self.answers_rejected,
            failures_by_category=dict(failures),
            retries=self.retries,
            restarts=self.restarts,
            processes_spawned=self.processes_spawned,
            breaker_rejections=self.breaker_rejections,
            breaker_waits=self.breaker_waits,
            trimmed_turns=self.trimmed_turns,
            reasks=self.reasks,
            session_restarts=self.session_restarts,
            breaker_state=breaker.state if breaker else None,
            breaker_opened=breaker.opened_count if breaker else 0,
            retries_refused=budget.refused if budget else 0,
            fallbacks=dict(self.fallbacks),
            standby_ready=standby.ready if standby else 0,
            standby_taken=standby.taken if standby else 0,
            standby_discarded=standby.discarded if standby else 0,
            standby_recycled=standby.recycled if standby else 0,
        )
