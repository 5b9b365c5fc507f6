"""Timeout configuration and the deadline bookkeeping the actor turns into cancel scopes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs
import trio

from ._validators import at_least
from ._validators import positive_or_none as _positive_or_none


@attrs.frozen
class TimeoutConfig:
    """Per-attempt time limits, each enforced by a trio cancel scope.

    The phases of an attempt each get their own limit: starting up (spawn to the first
    output), streaming (silence between outputs), the whole attempt, and stopping.

    Attributes:
        total_execution: deadline for one whole attempt, spawn to exit (None: no limit).
        chunk_receive: longest silence allowed on stdout once the CLI has printed something
            (None: no limit).
        first_output: longest wait for the CLI's first output, spawn (or, on a warm
            process, the turn's prompt) to first byte (None: no limit; default: the same
            as ``chunk_receive``). A cold node CLI on a loaded machine can take several
            seconds to print anything, far longer than a healthy gap mid-stream, so a
            tight ``chunk_receive`` wants a looser ``first_output``.
        graceful_shutdown: budget for the stop sequence before SIGKILL: stdin close, then
            SIGTERM to the process group, then SIGKILL.
    """

    total_execution: float | None = attrs.field(default=300.0, validator=_positive_or_none)
    chunk_receive: float | None = attrs.field(default=120.0, validator=_positive_or_none)
    graceful_shutdown: float = attrs.field(default=5.0, validator=at_least(0))
    first_output: float | None = attrs.field(
        default=attrs.Factory(lambda self: self.chunk_receive, takes_self=True),
        validator=_positive_or_none,
    )


def default_clock() -> float:
    """trio's clock inside a trio run (so autojump clocks work), else the monotonic clock."""
    try:
        return trio.current_time()
    except RuntimeError:
        return time.monotonic()


class ProgressiveTimeoutManager:
    """Tracks the total deadline and the inactivity deadline of one attempt.

    The reference API's usage works unchanged (``start``, ``activity``,
    ``check_chunk_timeout``); the actor uses `total_deadline` and `next_deadline` to set
    the deadlines of its cancel scopes, so the same object drives real enforcement.
    """

    def __init__(self, config: TimeoutConfig, clock: Callable[[], float] = default_clock) -> None:
        self.config = config
        self._clock = clock
        self._started: float | None = None
        self._last_activity: float | None = None
        self._seen_output = False

    def start(self) -> None:
        """Start the clock for an attempt."""
        self._started = self._last_activity = self._clock()
        self._seen_output = False

    def activity(self) -> None:
        """Record that output arrived (resets the inactivity deadline)."""
        self._last_activity = self._clock()
        self._seen_output = True

    @property
    def silence_limit(self) -> tuple[str, float | None]:
        """The inactivity limit now in force, by name: ``first_output`` until the first
        output arrives, ``chunk_receive`` after."""
        if self._seen_output:
            return "chunk_receive", self.config.chunk_receive
        return "first_output", self.config.first_output

    def silence_message(self, cli: str) -> str:
        """What to say when the inactivity deadline passes, naming the limit."""
        name, seconds = self.silence_limit
        if name == "first_output":
            return f"{cli} printed nothing within first_output={seconds:g}s"
        return f"{cli} sent no output for chunk_receive={seconds:g}s"

    @property
    def started(self) -> bool:
        return self._started is not None

    @property
    def total_deadline(self) -> float:
        """Absolute time the attempt must end by (``inf`` without a total limit)."""
        if self._started is None or self.config.total_execution is None:
            return math.inf
        return self._started + self.config.total_execution

    @property
    def chunk_deadline(self) -> float:
        """Absolute time by which the next output must arrive (``inf`` without a limit)."""
        _, limit = self.silence_limit
        if self._last_activity is None or limit is None:
            return math.inf
        return self._last_activity + limit

    def next_deadline(self) -> float:
        """The earlier of the two deadlines."""
        return min(self.total_deadline, self.chunk_deadline)

    def check_chunk_timeout(self) -> float:
        """Seconds left before either deadline (<= 0 means expired; ``inf`` if unlimited)."""
        return self.next_deadline() - self._clock()

    def check_total_timeout(self) -> float:
        """Seconds left before the total deadline (<= 0 means expired)."""
        return self.total_deadline - self._clock()

    def elapsed(self) -> float:
        """Seconds since `start`."""
        return 0.0 if self._started is None else self._clock() - self._started
