"""`FleetBreaker`: a node's `CircuitBreaker` that follows the fleet gate's breaker.

The engine calls ``acquire`` and ``record_*`` synchronously for every attempt, so the
common cases never wait on the network: while the node's `GateView` says CLOSED a call is
admitted locally, while it says OPEN (and the announced time has not come) it is refused
locally. Only a half-open trial asks the gate (a blocking call, rare by nature), so trials
are counted across the fleet. Each attempt's end is sent to the gate without waiting; a
rate limit with ``retry_after`` also closes this node's view at once, before the gate's
answer comes back, and the gate's new view reaches every other node through `apply`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import attrs

from actors import ErrorCategory, LLMError

from .._policy._breaker import BreakerStatistics, CircuitBreaker, CircuitState, Permit
from ._gate_rules import GateRefusal, GateView

RATE_LIMITED = "because it was rate limited by the API"


class GateLink(Protocol):
    """How a node's breaker talks to the gate (a Ray actor in production, a
    `FleetGateRules` in tests)."""

    def acquire(self, cli: str) -> tuple[Permit | GateRefusal, GateView]:
        """Ask for a trial (blocking); the answer and the view after it."""
        ...

    def record(
        self,
        cli: str,
        permit: Permit,
        category: ErrorCategory | None,
        retry_after: float | None,
        cancelled: bool,
    ) -> None:
        """Report an attempt's end (without waiting for an answer)."""
        ...


@attrs.frozen
class _LocalView:
    state: CircuitState
    open_until: float  # on this node's clock
    generation: int
    version: int
    opened_count: int
    reason: str


def _local(view: GateView, now: float) -> _LocalView:
    until = now + view.retry_after if view.retry_after is not None else -math.inf
    return _LocalView(
        view.state, until, view.generation, view.version, view.opened_count, view.reason
    )


@attrs.define(eq=False)
class FleetBreaker(CircuitBreaker):
    """A `CircuitBreaker` whose state is the fleet gate's (see the module docstring)."""

    link: GateLink | None = attrs.field(default=None, kw_only=True, repr=False)
    local_clock: Callable[[], float] = attrs.field(default=time.monotonic, kw_only=True, repr=False)
    _view: _LocalView = attrs.field(
        init=False,
        default=_LocalView(CircuitState.CLOSED, -math.inf, 0, -1, 0, ""),
        repr=False,
    )
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    # -- the gate's side -----------------------------------------------------------------

    def apply(self, view: GateView) -> None:
        """Take the gate's view, unless this node already knows a newer one (a local
        rate-limit opening is kept until its time has come or the gate has seen it)."""
        now = self.local_clock()
        with self._lock:
            current = self._view
            if view.version < current.version:
                return
            fresh = _local(view, now)
            if (
                current.state is CircuitState.OPEN
                and current.open_until > now
                and current.open_until > fresh.open_until
            ):
                # A rate limit this node saw, longer than what the gate knows yet.
                fresh = attrs.evolve(
                    fresh,
                    state=CircuitState.OPEN,
                    open_until=current.open_until,
                    reason=current.reason,
                )
            self._view = fresh

    @property
    def view_version(self) -> int:
        return self._view.version

    # -- what the engine calls -----------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        view = self._view
        if view.state is CircuitState.OPEN and self.local_clock() >= view.open_until:
            return CircuitState.HALF_OPEN
        return view.state

    @property
    def opened_count(self) -> int:
        return self._view.opened_count

    def retry_after(self) -> float | None:
        view = self._view
        if view.state is not CircuitState.OPEN:
            return None
        remaining = view.open_until - self.local_clock()
        return remaining if remaining > 0 else None

    def statistics(self) -> BreakerStatistics:
        return BreakerStatistics(
            state=self.state,
            consecutive_failures=0,
            half_open_successes=0,
            trial_calls_in_flight=0,
            opened_count=self.opened_count,
            retry_after=self.retry_after(),
        )

    def acquire(self, cli: str | None = None) -> Permit:
        view = self._view
        now = self.local_clock()
        if view.state is CircuitState.CLOSED:
            return Permit(view.generation, trial=False)
        if view.state is CircuitState.OPEN and now < view.open_until:
            remaining = view.open_until - now
            raise self._refusal(
                cli,
                f"is open for the whole fleet {view.reason or 'after failures'}; "
                f"will try again in {remaining:.1f}s",
                remaining,
            )
        assert self.link is not None, "a FleetBreaker needs its gate link"
        answer, fresh = self.link.acquire(cli or self.name)
        self.apply(fresh)
        if isinstance(answer, GateRefusal):
            raise self._refusal(cli, f"(fleet gate) {answer.message}", answer.retry_after)
        return answer

    def record_success(self, permit: Permit | None = None) -> None:
        self._report(permit, None, None, cancelled=False)

    def record_failure(self, error: LLMError, permit: Permit | None = None) -> None:
        if (
            error.category is ErrorCategory.RATE_LIMIT
            and error.retry_after is not None
            and 0 < error.retry_after < math.inf
            and error.category in self.counted_categories
        ):
            until = self.local_clock() + error.retry_after
            with self._lock:
                view = self._view
                if view.state is not CircuitState.OPEN or view.open_until < until:
                    self._view = attrs.evolve(
                        view, state=CircuitState.OPEN, open_until=until, reason=RATE_LIMITED
                    )
        self._report(permit, error.category, error.retry_after, cancelled=False)

    def record_cancelled(self, permit: Permit | None = None) -> None:
        self._report(permit, None, None, cancelled=True)

    # -- internals -----------------------------------------------------------------------

    def _report(
        self,
        permit: Permit | None,
        category: ErrorCategory | None,
        retry_after: float | None,
        *,
        cancelled: bool,
    ) -> None:
        if self.link is None:
            return
        if permit is None:
            permit = Permit(self._view.generation, trial=False)
        self.link.record(self.name, permit, category, retry_after, cancelled)

    def _refusal(self, cli: str | None, what: str, retry_after: float) -> LLMError:
        return LLMError(
            f"circuit breaker {self.name!r} {what}",
            ErrorCategory.CIRCUIT_OPEN,
            retry_after=max(retry_after, 0.001),
            cli=cli or self.name,
        )
