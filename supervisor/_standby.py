"""The standby pool's I/O: processes started ahead of their call, waiting for a prompt.

``open_supervisor(standby=N)`` keeps up to N processes of the supervisor's plain spec
started, stdin open, prompt not written. A call of that spec takes one (`StandbyPool.take`)
instead of spawning, so it does not pay the CLI's start-up; the pool refills at once in
the background. The rules (what to spawn, take, discard, recycle) are
`supervisor._policy._standby.StandbyPolicy`'s; this module does the I/O around them:

- `StandbyPool.run` is the refill loop, a task of the supervisor's nursery. Each standby
  process has a keeper task that spawns it (`actors.lowlevel.start_standby`), watches it
  (`watch_standby`: an exit or any output before the prompt discards it) and, unless a
  call took it, stops it with the full stop sequence. Closing or cancelling the
  supervisor cancels the keepers, so no standby process outlives it; the real backend
  records every one in the process registry, so a SIGKILLed supervisor's are swept by the
  next start.
- With ``scratch`` each process starts in a fresh folder of its own (``llmsup serve``'s
  per-call scratch folder), which leaves with the process (`Taken.folder`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable

import attrs
import trio

from actors import CliSpec, LLMError
from actors.lowlevel import SpawnedCli, end_standby, start_standby, watch_standby

from ._policy._standby import StandbyPolicy

logger = logging.getLogger("llmsup.standby")

# While the breaker is open and gives no time, how often the pool looks again.
BREAKER_RECHECK_S = 1.0
SCRATCH_PREFIX = "llmsup-standby-"


def make_scratch_folder() -> str:
    """A fresh scratch folder for one process (removed with `remove_folder`)."""
    return tempfile.mkdtemp(prefix=SCRATCH_PREFIX)


def remove_folder(folder: str | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@attrs.frozen
class StandbyHooks:
    """What the pool needs of its engine."""

    on_spawn: Callable[[int], None]  # every process started (counters, spawn listeners)
    room: Callable[[], float]  # free process slots under the process limit (inf: no limit)
    refill_wait: Callable[[], float | None]  # seconds the breaker stays open (None: closed)
    on_death: Callable[[str], None]  # a standby process died: count it (restart intensity)
    on_ready: Callable[[], None]  # a standby process is ready (a waiting call may take it)
    reserve: Callable[[], None]  # a process slot is taken (a standby spawn begins)
    release: Callable[[], None]  # a process slot is free again
    grace: float  # the stop sequence's grace period


@attrs.frozen
class Taken:
    """A standby process handed to a call, which now owns it (and its scratch folder)."""

    proc: SpawnedCli
    folder: str | None


@attrs.define(eq=False)
class _StandbySlot:
    id: int
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    proc: SpawnedCli | None = None
    folder: str | None = None
    handed: bool = False  # a call owns the process now
    unhealthy: str | None = None  # what the watch saw, when it ended on its own


class StandbyPool:
    """Standby processes of one spec (see the module docstring)."""

    def __init__(
        self, spec: CliSpec, policy: StandbyPolicy, hooks: StandbyHooks, *, scratch: bool
    ) -> None:
        self.spec = spec
        self.policy = policy
        self.scratch = scratch
        self._hooks = hooks
        self._slots: dict[int, _StandbySlot] = {}
        self._wake = trio.Event()

    def wake(self) -> None:
        """Something changed (a take, an end, the process limit, the breaker): look again."""
        self._wake.set()

    async def run(self) -> None:
        """The refill loop; runs until cancelled (the supervisor's close)."""
        async with trio.open_nursery() as keepers:
            while True:
                self._refill(keepers)
                deadline = self.policy.next_expiry()
                wait = self._hooks.refill_wait()
                if wait is not None and self.policy.stopped is None:
                    deadline = min(deadline, trio.current_time() + (wait or BREAKER_RECHECK_S))
                with trio.move_on_at(deadline):
                    await self._wake.wait()
                self._wake = trio.Event()

    def _refill(self, keepers: trio.Nursery) -> None:
        for slot_id in self.policy.expired():
            logger.info(
                "standby process of %s recycled (older than %gs)",
                self.spec.name,
                self.policy.config.standby_max_age,
                extra={"cli": self.spec.name},
            )
            self._slots[slot_id].scope.cancel()
        blocked = self._hooks.refill_wait() is not None
        for _ in range(self.policy.wanted(self._hooks.room(), blocked)):
            slot = _StandbySlot(self.policy.begin_spawn())
            self._slots[slot.id] = slot
            self._hooks.reserve()
            keepers.start_soon(self._keep, slot)

    async def _keep(self, slot: _StandbySlot) -> None:
        try:
            with slot.scope:
                await self._spawn_and_watch(slot)
        finally:
            self._slots.pop(slot.id, None)
            self.policy.remove(slot.id)
            if not slot.handed:
                remove_folder(slot.folder)
                self._hooks.release()
            slot.done.set()
            self.wake()

    async def _spawn_and_watch(self, slot: _StandbySlot) -> None:
        spec = self.spec
        if self.scratch:
            slot.folder = make_scratch_folder()
            spec = attrs.evolve(spec, cwd=slot.folder)
        try:
            proc = await start_standby(spec, on_spawn=self._hooks.on_spawn)
        except LLMError as error:
            self.policy.spawn_failed(slot.id)
            self._died(f"it could not start: {error.message}")
            return
        # Owned before the next checkpoint: stopped below unless a call took it.
        slot.proc = proc
        try:
            self.policy.spawned(slot.id)
            self.wake()  # the loop now has an expiry to wait for
            self._hooks.on_ready()
            slot.unhealthy = await watch_standby(proc, spec)
            if self.policy.died(slot.id):
                self._died(slot.unhealthy)
        finally:
            if not slot.handed:
                await end_standby(proc, self._hooks.grace, spec.name)

    def _died(self, reason: str) -> None:
        logger.warning(
            "standby process of %s discarded: %s",
            self.spec.name,
            reason,
            extra={"cli": self.spec.name},
        )
        self._hooks.on_death(reason)

    async def take(self) -> Taken | None:
        """A ready standby process for a call, which owns it from here on; None when
        none is ready (the call then spawns as usual). A refill begins at once."""
        while True:
            slot_id = self.policy.take()
            if slot_id is None:
                return None
            slot = self._slots[slot_id]
            slot.handed = True
            slot.scope.cancel()
            self.wake()
            # Wait for the keeper to let go of the pipes (quick: nothing is shielded).
            with trio.CancelScope(shield=True):
                await slot.done.wait()
                assert slot.proc is not None
                if slot.unhealthy is None and slot.proc.returncode is None:
                    return Taken(slot.proc, slot.folder)
                # It died as it was taken: discard it, as the keeper would have.
                self.policy.discarded += 1
                self._died(slot.unhealthy or "it exited before its prompt")
                await end_standby(slot.proc, self._hooks.grace, self.spec.name)
                remove_folder(slot.folder)
                self._hooks.release()

    def evict_one(self) -> bool:
        """Stop the youngest ready standby process, to free a process slot for a call.
        False when none is ready."""
        slot_id = self.policy.evict()
        if slot_id is None:
            return False
        self._slots[slot_id].scope.cancel()
        return True
