"""`CircuitBreaker`: stop calling a CLI that keeps failing, and try it again later.

A pure state machine in the style of resilience4j: no I/O and no sleeping, and time comes
from an injected clock, so tests drive it with a plain float. What it adds to the Python
breakers it is compared with (pybreaker, purgatory, aiobreaker, circuitbreaker):

- a rate limit that announces its reset time (``retry_after``) keeps the breaker open for
  at least that long, instead of a fixed timeout;
- cancellation is neither a success nor a failure;
- which error categories count is configurable, and the others count neither way;
- half-open admits a bounded number of concurrent trial calls.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import attrs

from actors import ErrorCategory, LLMError
from actors.lowlevel import at_least as _at_least
from actors.lowlevel import category_set as _check_categories
from actors.lowlevel import default_clock as _default_clock
from actors.lowlevel import finite as _finite

P = ParamSpec("P")
T = TypeVar("T")

Listener = Callable[["CircuitState", "CircuitState"], None]
"""Called as ``listener(old_state, new_state)`` on every state transition."""

DEFAULT_COUNTED_CATEGORIES: frozenset[ErrorCategory] = frozenset(
    {
        ErrorCategory.RETRYABLE,
        ErrorCategory.TIMEOUT,
        ErrorCategory.RATE_LIMIT,
        ErrorCategory.AUTH_FAILURE,
    }
)
"""Failures that say the CLI or its API is unhealthy. A malformed answer or a bad request
(PERMANENT) says nothing about the service, and CIRCUIT_OPEN comes from a breaker itself."""

DEFAULT_NAME = "breaker"
"""The name of a breaker built without one; rejections then name the caller's CLI."""

# A rejection promises "try again in > 0 s", so a caller sleeping on it never spins.
_MIN_RETRY_AFTER_S = 0.001


class CircuitState(enum.Enum):
    """Where a `CircuitBreaker` is: passing calls, rejecting them, or trying a few."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _resolve_clock(clock: Callable[[], float] | None) -> Callable[[], float]:
    return _default_clock if clock is None else clock


def _format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    return f"{seconds:.1f}s"


@attrs.frozen
class BreakerStatistics:
    """A snapshot of a `CircuitBreaker`, as returned by `CircuitBreaker.statistics`.

    Attributes:
        state: the current state (after any due OPEN → HALF_OPEN transition).
        consecutive_failures: counted failures since the last success.
        half_open_successes: successful trial calls in the current half-open period.
        trial_calls_in_flight: trial calls admitted in half-open and not yet recorded.
        opened_count: how many times the breaker has opened since it was built.
        retry_after: seconds until it admits a trial call, or None when not open.
    """

    state: CircuitState
    consecutive_failures: int
    half_open_successes: int
    trial_calls_in_flight: int
    opened_count: int
    retry_after: float | None


@attrs.frozen
class Permit:
    """What `CircuitBreaker.acquire` hands out: the period the call was admitted in.

    Passing it back to ``record_*`` lets the breaker ignore stale results: a call admitted
    before the breaker opened must not decide a later half-open period (a slow call that
    times out during the trials is no evidence against the recovered service).
    """

    generation: int
    trial: bool


@attrs.define(eq=False)
class CircuitBreaker:
    """Rejects calls to a failing CLI for a while, then lets a few trial calls through.

    States and transitions:

    - CLOSED: every call is admitted. `failure_threshold` *consecutive* counted failures
      open the breaker for `timeout_seconds`; a success resets the count.
    - OPEN: `acquire` raises an `LLMError` of category CIRCUIT_OPEN whose ``retry_after``
      says when the breaker will try again. Once that time has come, the breaker is
      HALF_OPEN; the change happens lazily, when the state is next looked at (`state`,
      `acquire`, `statistics`, ...), and listeners hear of it then.
    - HALF_OPEN: at most `half_open_max_calls` trial calls run at once. `success_threshold`
      successful trials in this half-open period close the breaker; any counted failure
      opens it again for `timeout_seconds`.

    Rate limits: a RATE_LIMIT failure with a positive, finite ``retry_after`` opens the
    breaker at once, in any state, until at least ``now + retry_after``; it never shortens
    an opening already in force, and when the failure also trips the breaker the normal
    way, the longer of the two waits wins. A server that announced its reset time is thus
    not called again before it. (This needs RATE_LIMIT in `counted_categories`, as by
    default; removing it ignores rate limits altogether.)

    Errors whose category is not in `counted_categories` count neither as successes nor as
    failures, and neither does cancellation; both only give back a half-open trial slot.

    Protocol: call `acquire` before each attempt, then exactly one of `record_success`,
    `record_failure` or `record_cancelled` once it ends; `call` and `call_async` do all
    three. Results are judged by the state at the time they are recorded, so a call
    admitted while CLOSED that ends during HALF_OPEN counts as a trial result.

    Clock: by default `trio.current_time` inside a trio run and `time.monotonic` outside
    one; a breaker should live on one of the two, since the clocks differ. Pass `clock` to
    use another (tests pass a fake).
    """

    failure_threshold: int = attrs.field(default=5, validator=_at_least(1))
    success_threshold: int = attrs.field(default=2, validator=_at_least(1))
    timeout_seconds: float = attrs.field(default=60.0, validator=[_at_least(0), _finite])
    half_open_max_calls: int = attrs.field(default=1, kw_only=True, validator=_at_least(1))
    counted_categories: frozenset[ErrorCategory] = attrs.field(
        default=DEFAULT_COUNTED_CATEGORIES, kw_only=True, validator=_check_categories
    )
    clock: Callable[[], float] = attrs.field(
        default=None, kw_only=True, converter=_resolve_clock, repr=False
    )
    name: str = attrs.field(default=DEFAULT_NAME, kw_only=True)

    _state: CircuitState = attrs.field(init=False, default=CircuitState.CLOSED)
    _consecutive_failures: int = attrs.field(init=False, default=0)
    _half_open_successes: int = attrs.field(init=False, default=0)
    _trial_calls_in_flight: int = attrs.field(init=False, default=0)
    _opened_count: int = attrs.field(init=False, default=0)
    _open_until: float = attrs.field(init=False, default=-math.inf, repr=False)
    _open_reason: str = attrs.field(init=False, default="", repr=False)
    _generation: int = attrs.field(init=False, default=0, repr=False)
    _listeners: list[Listener] = attrs.field(init=False, factory=list, repr=False)

    # -- observing -----------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state; an OPEN breaker whose wait is over reads as HALF_OPEN."""
        self._refresh(self.clock())
        return self._state

    @property
    def opened_count(self) -> int:
        """How many times the breaker has opened (re-opening from half-open included)."""
        return self._opened_count

    def retry_after(self) -> float | None:
        """Seconds until the breaker admits a trial call, or None when it is not open."""
        return self._retry_after(self.clock())

    def statistics(self) -> BreakerStatistics:
        """A frozen snapshot of the state and counters."""
        # One clock reading, so that state and retry_after agree.
        now = self.clock()
        retry_after = self._retry_after(now)
        return BreakerStatistics(
            state=self._state,
            consecutive_failures=self._consecutive_failures,
            half_open_successes=self._half_open_successes,
            trial_calls_in_flight=self._trial_calls_in_flight,
            opened_count=self._opened_count,
            retry_after=retry_after,
        )

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` on every transition, synchronously, after it happened.

        A listener must not raise: its exception would propagate out of whichever method
        caused the transition (the breaker's own state is already consistent by then).
        """
        self._listeners.append(listener)

    # -- the protocol --------------------------------------------------------------------

    def acquire(self, cli: str | None = None) -> Permit:
        """Ask to make one attempt; raise an `LLMError` (CIRCUIT_OPEN) if it may not.

        In HALF_OPEN this takes one of the `half_open_max_calls` trial slots, which the
        matching ``record_*`` call gives back. The error's ``retry_after`` is the time
        until the breaker will admit a trial (always > 0); when that is unknown, because
        the trial slots are taken, it is `timeout_seconds`.

        ``cli`` names whose attempt this is: the rejection's ``cli`` is set to it, and a
        breaker that kept the default `name` is called after it in the message, so errors
        and logs say whose breaker it is (the breaker itself is not renamed).
        """
        now = self.clock()
        self._refresh(now)
        if self._state is CircuitState.OPEN:
            # > 0: with the same reading, _refresh would have made it HALF_OPEN otherwise.
            remaining = self._open_until - now
            raise LLMError(
                f"circuit breaker {self._label(cli)!r} is open {self._open_reason}; "
                f"will try again in {_format_seconds(remaining)}",
                ErrorCategory.CIRCUIT_OPEN,
                retry_after=remaining,
                cli=cli or self.name,
            )
        if self._state is CircuitState.HALF_OPEN:
            if self._trial_calls_in_flight >= self.half_open_max_calls:
                wait = max(self.timeout_seconds, _MIN_RETRY_AFTER_S)
                calls = "call is" if self.half_open_max_calls == 1 else "calls are"
                raise LLMError(
                    f"circuit breaker {self._label(cli)!r} is half-open and its "
                    f"{self.half_open_max_calls} trial {calls} in flight; "
                    f"try again in {_format_seconds(wait)}",
                    ErrorCategory.CIRCUIT_OPEN,
                    retry_after=wait,
                    cli=cli or self.name,
                )
            self._trial_calls_in_flight += 1
            return Permit(self._generation, trial=True)
        return Permit(self._generation, trial=False)

    def record_success(self, permit: Permit | None = None) -> None:
        """Record that the admitted attempt succeeded.

        With the attempt's `Permit`, a result from an earlier period is ignored.
        """
        self._refresh(self.clock())
        if self._is_stale(permit):
            return
        self._consecutive_failures = 0
        if self._state is CircuitState.HALF_OPEN:
            self._release_trial_slot()
            self._half_open_successes += 1
            if self._half_open_successes >= self.success_threshold:
                self._transition(CircuitState.CLOSED)

    def record_failure(self, error: LLMError, permit: Permit | None = None) -> None:
        """Record that the admitted attempt failed with `error`.

        Only categories in `counted_categories` count; see the class docstring for how a
        rate limit's ``retry_after`` keeps the breaker open. With the attempt's `Permit`, a
        result from an earlier period can only lengthen an opening (a rate-limit hint is
        the server's word, however late); it never decides a half-open period.
        """
        self._record_failure(error.category, error.retry_after, permit)

    def record_cancelled(self, permit: Permit | None = None) -> None:
        """Record that the admitted attempt was cancelled: it counts neither way.

        The only effect is to give back a half-open trial slot.
        """
        self._refresh(self.clock())
        if self._is_stale(permit):
            return
        if self._state is CircuitState.HALF_OPEN:
            self._release_trial_slot()

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises the CIRCUIT_OPEN `LLMError` from `acquire` without calling `fn`. An
        `LLMError` from `fn` is recorded as a failure of its category; any other
        `Exception` as a RETRYABLE failure; both are re-raised unchanged. A
        `BaseException` that is not an `Exception` (``trio.Cancelled``,
        ``KeyboardInterrupt``) is recorded as a cancellation and re-raised.
        """
        permit = self.acquire()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._record_exception(exc, permit)
            raise
        self.record_success(permit)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker, recording as `call` does.

        Cancellation: if the await is cancelled halfway, the attempt is recorded as
        cancelled (neither success nor failure, the trial slot given back) and
        ``trio.Cancelled`` propagates.
        """
        permit = self.acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._record_exception(exc, permit)
            raise
        self.record_success(permit)
        return result

    # -- internals -----------------------------------------------------------------------

    def _label(self, cli: str | None) -> str:
        return cli if cli and self.name == DEFAULT_NAME else self.name

    def _refresh(self, now: float) -> None:
        """Apply the lazy OPEN → HALF_OPEN transition once the wait is over."""
        if self._state is CircuitState.OPEN and now >= self._open_until:
            self._transition(CircuitState.HALF_OPEN)

    def _retry_after(self, now: float) -> float | None:
        self._refresh(now)
        if self._state is not CircuitState.OPEN:
            return None
        return self._open_until - now

    def _release_trial_slot(self) -> None:
        # max(): a result of a call admitted before this half-open period had no slot.
        self._trial_calls_in_flight = max(0, self._trial_calls_in_flight - 1)

    def _record_exception(self, exc: BaseException, permit: Permit) -> None:
        if isinstance(exc, LLMError):
            self.record_failure(exc, permit)
        elif isinstance(exc, Exception):
            self._record_failure(ErrorCategory.RETRYABLE, None, permit)
        else:  # trio.Cancelled, KeyboardInterrupt: neither success nor failure
            self.record_cancelled(permit)

    def _is_stale(self, permit: Permit | None) -> bool:
        return permit is not None and permit.generation != self._generation

    def _record_failure(
        self, category: ErrorCategory, retry_after: float | None, permit: Permit | None = None
    ) -> None:
        now = self.clock()
        self._refresh(now)
        stale = self._is_stale(permit)
        if stale and self._state is not CircuitState.OPEN:
            return
        if category not in self.counted_categories:
            if self._state is CircuitState.HALF_OPEN:
                self._release_trial_slot()
            return
        rate_limited_until: float | None = None
        if (
            category is ErrorCategory.RATE_LIMIT
            and retry_after is not None
            and 0 < retry_after < math.inf
        ):
            rate_limited_until = now + retry_after
        self._consecutive_failures += 1

        if self._state is CircuitState.OPEN:
            # A late result of a call admitted earlier: only a longer rate limit matters.
            if rate_limited_until is not None and rate_limited_until > self._open_until:
                self._open_until = rate_limited_until
                self._open_reason = "because it was rate limited by the API"
            return

        if self._state is CircuitState.HALF_OPEN:
            self._release_trial_slot()
            self._trip(now, "after a failed trial call", rate_limited_until)
        elif self._consecutive_failures >= self.failure_threshold:
            n = self._consecutive_failures
            reason = f"after {n} consecutive failure{'s' if n != 1 else ''}"
            self._trip(now, reason, rate_limited_until)
        elif rate_limited_until is not None:
            self._trip(None, "", rate_limited_until)

    def _trip(self, now: float | None, reason: str, rate_limited_until: float | None) -> None:
        """Open the breaker: until ``now + timeout_seconds`` (when `now` is given, i.e. a
        normal trip) or `rate_limited_until`, whichever is later."""
        open_until = self._open_until
        if now is not None and now + self.timeout_seconds >= open_until:
            open_until = now + self.timeout_seconds
            self._open_reason = reason
        if rate_limited_until is not None and rate_limited_until > open_until:
            open_until = rate_limited_until
            self._open_reason = "because it was rate limited by the API"
        self._open_until = open_until
        self._opened_count += 1
        self._transition(CircuitState.OPEN)

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        # Each half-open period and each closed period starts with fresh counters.
        if new is not CircuitState.OPEN:
            self._half_open_successes = 0
            self._trial_calls_in_flight = 0
        if new is CircuitState.CLOSED:
            self._consecutive_failures = 0
        for listener in tuple(self._listeners):
            listener(old, new)
