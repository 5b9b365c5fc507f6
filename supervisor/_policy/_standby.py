"""Standby pool rules: which standby processes to start, hand out, discard and recycle.

A standby process is a CLI started ahead of its call, with stdin open and its prompt not
yet written (``open_supervisor(standby=N)``). `StandbyPolicy` is the pool's bookkeeping as
a pure state machine on an injected clock; the I/O around it (spawning, watching, stopping
processes) is `supervisor._standby`'s. Each process has a slot id:

- ``begin_spawn()`` reserves a slot (state *starting*); ``spawned(id)`` makes it *ready*;
  ``spawn_failed(id)`` frees it and counts a death.
- ``take()`` hands out the oldest ready slot that is not past ``max_age`` (it has had the
  most time to start up); it leaves the pool.
- ``died(id)``: a ready process exited or wrote before its prompt: discarded, counted,
  and never handed out.
- ``expired()`` takes out the ready slots older than ``max_age`` (recycled: stopped and
  replaced, because credentials and configuration change).
- ``wanted(room, refill_blocked)``: how many spawns to start now, at most ``room`` (the
  memory budget's free process slots), none while ``refill_blocked`` (an open breaker) or
  after `stop` (a CLI that keeps dying in standby).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs


def _non_negative_int(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative integer, got {value!r}")


def _positive_seconds(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"{attribute.name} must be a positive finite number of seconds, got {value!r}"
        )


@attrs.frozen
class StandbyConfig:
    """How many standby processes to keep (``standby``) and for how long (``standby_max_age``)."""

    standby: int = attrs.field(default=0, validator=_non_negative_int)
    standby_max_age: float = attrs.field(default=600.0, validator=_positive_seconds)


@attrs.define
class StandbyPolicy:
    """The standby pool's state (see the module docstring). Not thread-safe; one per pool."""

    config: StandbyConfig
    clock: Callable[[], float] = attrs.field(repr=False)
    _ready: dict[int, float] = attrs.field(init=False, factory=dict)  # id -> ready since
    _starting: set[int] = attrs.field(init=False, factory=set)
    _next_id: int = attrs.field(init=False, default=0)
    stopped: str | None = attrs.field(init=False, default=None)  # why refilling stopped
    taken: int = attrs.field(init=False, default=0)
    discarded: int = attrs.field(init=False, default=0)
    recycled: int = attrs.field(init=False, default=0)

    @property
    def ready(self) -> int:
        """Ready processes (started, waiting for a prompt)."""
        return len(self._ready)

    @property
    def starting(self) -> int:
        return len(self._starting)

    def wanted(self, room: float, refill_blocked: bool = False) -> int:
        """How many spawns to begin now: the deficit, at most ``room`` (free process slots
        under the memory budget), none while ``refill_blocked`` or after `stop`."""
        if self.stopped is not None or refill_blocked:
            return 0
        deficit = self.config.standby - len(self._ready) - len(self._starting)
        return max(0, int(min(deficit, room)))

    def begin_spawn(self) -> int:
        """Reserve a slot for a process about to be spawned; its id."""
        slot = self._next_id
        self._next_id += 1
        self._starting.add(slot)
        return slot

    def spawned(self, slot: int) -> None:
        """The slot's process started: it is ready from now."""
        self._starting.remove(slot)
        self._ready[slot] = self.clock()

    def spawn_failed(self, slot: int) -> None:
        """The slot's process could not start: a death (the caller counts it against the
        restart intensity)."""
        self._starting.remove(slot)
        self.discarded += 1

    def take(self) -> int | None:
        """Hand out the oldest ready process still within ``standby_max_age``, or None."""
        now, age = self.clock(), self.config.standby_max_age
        for slot, since in self._ready.items():
            if now < since + age:  # the same sum as next_expiry: no rounding gap
                del self._ready[slot]
                self.taken += 1
                return slot
        return None

    def died(self, slot: int) -> bool:
        """A ready process exited or wrote before its prompt: discard it. False when the
        slot had already left the pool (taken, recycled or removed): nothing counted."""
        if self._ready.pop(slot, None) is None:
            return False
        self.discarded += 1
        return True

    def expired(self) -> list[int]:
        """Take out, and count as recycled, the ready slots past ``standby_max_age``."""
        now, age = self.clock(), self.config.standby_max_age
        old = [slot for slot, since in self._ready.items() if now >= since + age]
        for slot in old:
            del self._ready[slot]
        self.recycled += len(old)
        return old

    def next_expiry(self) -> float:
        """When the oldest ready process reaches ``standby_max_age`` (inf: none is ready)."""
        if not self._ready:
            return math.inf
        return min(self._ready.values()) + self.config.standby_max_age

    def evict(self) -> int | None:
        """Take out the youngest ready process to free its memory for a call; uncounted."""
        if not self._ready:
            return None
        slot = next(reversed(self._ready))
        del self._ready[slot]
        return slot

    def remove(self, slot: int) -> None:
        """Forget the slot whatever its state (closing); nothing is counted."""
        self._ready.pop(slot, None)
        self._starting.discard(slot)

    def stop(self, reason: str) -> None:
        """Stop refilling for good (the CLI keeps dying in standby)."""
        if self.stopped is None:
            self.stopped = reason
