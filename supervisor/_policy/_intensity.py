"""Restart policy: which children restart, how often a supervisor may restart, how soon.

- `RestartType`: OTP's permanent / transient / temporary.
- `RestartIntensity` and `RestartTracker`: OTP's restart intensity. More than
  `max_restarts` restarts within `period_s` seconds make the supervisor give up.
- `RestartBackoff`: Akka's backoff supervisor delay between restarts of one child.

Pure: no sleeping, and time comes from an injected clock.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Callable

import attrs

from actors import RestartIntensityExceeded
from actors.lowlevel import at_least as _at_least
from actors.lowlevel import finite as _finite
from actors.lowlevel import positive_finite as _positive_finite


class RestartType(enum.Enum):
    """Whether a child that stopped is started again (OTP's restart types)."""

    PERMANENT = "permanent"
    """Always restarted."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal exit (a crash, not a normal return)."""
    TEMPORARY = "temporary"
    """Never restarted."""

    def should_restart(self, abnormal: bool) -> bool:
        """True when a child of this type that stopped (`abnormal` or not) is restarted."""
        if self is RestartType.PERMANENT:
            return True
        if self is RestartType.TRANSIENT:
            return abnormal
        return False


@attrs.frozen
class RestartIntensity:
    """At most `max_restarts` restarts within any `period_s` seconds (Elixir: 3 in 5 s).

    Attributes:
        max_restarts: restarts allowed in the window; 0 means the first restart fails.
        period_s: the length of the sliding window, in seconds.
    """

    max_restarts: int = attrs.field(default=3, validator=_at_least(0))
    period_s: float = attrs.field(default=5.0, validator=_positive_finite)


@attrs.define
class RestartTracker:
    """Counts one supervisor's restarts in a sliding window and fails when there are too many.

    There is one tracker per supervisor, shared by all its children: the limit is on the
    supervisor's restarts, not each child's, as in OTP. (Counting per child lets a
    supervisor whose children crash in turn loop forever.)

    The window is closed, as in OTP: a restart exactly `period_s` seconds ago still counts.
    """

    intensity: RestartIntensity
    clock: Callable[[], float] = attrs.field(repr=False)
    _times: deque[float] = attrs.field(init=False, factory=deque, repr=False)
    _total: int = attrs.field(init=False, default=0)

    @property
    def total_restarts(self) -> int:
        """Every restart recorded, the one that exceeded the intensity included."""
        return self._total

    def restarts_in_window(self) -> int:
        """How many recorded restarts fall within the last `period_s` seconds, now."""
        self._forget_before(self.clock())
        return len(self._times)

    def record_restart(self, reason: str = "") -> None:
        """Record a restart happening now.

        Raises `RestartIntensityExceeded` when this restart makes more than
        `max_restarts` within the window; the supervisor should then stop its children
        and fail. `reason` (the failure that caused the restart) goes into the message.
        """
        now = self.clock()
        self._forget_before(now)
        self._times.append(now)
        self._total += 1
        count = len(self._times)
        limit = self.intensity
        if count > limit.max_restarts:
            message = (
                f"restart intensity exceeded: {count} restarts within {limit.period_s:g}s "
                f"(limit {limit.max_restarts} in {limit.period_s:g}s)"
            )
            if reason:
                message += f"; last failure: {reason}"
            raise RestartIntensityExceeded(message, restarts=count, period=limit.period_s)

    def _forget_before(self, now: float) -> None:
        # Times are appended in clock order, so the expired ones are at the left.
        threshold = now - self.intensity.period_s
        while self._times and self._times[0] < threshold:
            self._times.popleft()


@attrs.frozen
class RestartBackoff:
    """Akka's backoff between restarts of one child: exponential, capped, with noise.

    The delay before restart ``n`` (0 = the first restart after a crash) is
    ``min(max_backoff_s, min_backoff_s * 2**n) * (1 + random() * random_factor)``, so it
    may exceed `max_backoff_s` by up to the factor. The caller resets ``n`` to 0 once the
    child has run for `reset_after_s` seconds (see `is_stable`).

    Attributes:
        min_backoff_s: delay before the first restart, before noise.
        max_backoff_s: cap on the exponential part.
        random_factor: relative noise, so that children that crashed together do not
            restart together.
        reset_after_s: how long a child must run before its restart count resets.
    """

    min_backoff_s: float = attrs.field(default=0.1, validator=[_at_least(0), _finite])
    max_backoff_s: float = attrs.field(default=10.0, validator=[_at_least(0), _finite])
    random_factor: float = attrs.field(default=0.2, validator=[_at_least(0), _finite])
    reset_after_s: float = attrs.field(default=30.0, validator=[_at_least(0), _finite])

    @max_backoff_s.validator
    def _check_max_backoff(self, attribute: attrs.Attribute[float], value: float) -> None:
        if value < self.min_backoff_s:
            raise ValueError(
                f"RestartBackoff.max_backoff_s must be >= min_backoff_s "
                f"({self.min_backoff_s!r}), got {value!r}"
            )

    def delay(self, consecutive_restarts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next restart, after `consecutive_restarts` in a row.

        `rng` makes the noise reproducible; without it the `random` module's shared
        generator is used.
        """
        if consecutive_restarts < 0:
            raise ValueError(f"consecutive_restarts must be >= 0, got {consecutive_restarts}")
        try:
            # ldexp is exact for powers of two (and 0 stays 0); it raises rather than
            # return inf, and only when the product is past any finite cap.
            grown = math.ldexp(self.min_backoff_s, consecutive_restarts)
        except OverflowError:
            grown = math.inf
        base = min(self.max_backoff_s, grown)
        draw = rng.random() if rng is not None else random.random()
        return base * (1 + draw * self.random_factor)

    def is_stable(self, uptime_s: float) -> bool:
        """True when a child that has run `uptime_s` seconds should have its count reset."""
        return uptime_s >= self.reset_after_s
