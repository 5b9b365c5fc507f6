"""The app's state: its supervisor, draining, and the calls admitted (each abortable)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import trio

from actors import CliSpec
from supervisor import Supervisor

from ._errors import unavailable
from ._models import AskRequest
from ._per_call import CallLimits, CallOptions, call_options


@attrs.define(eq=False)
class CallSlot:
    """An admitted call: its supervisor, and the scope `ServeState.abort_calls` cancels."""

    supervisor: Supervisor
    abort: trio.CancelScope = attrs.field(factory=trio.CancelScope)


ABORTED = "the server shut down before the call finished"


@attrs.define(eq=False)
class ServeState:
    spec: CliSpec
    supervisor: Supervisor | None = None
    system: str | None = None  # the default system prompt (a request's replaces it)
    cwd: str | None = None  # every call's folder (None: a scratch folder per call)
    draining: bool = False
    fallback: tuple[CliSpec, ...] = ()
    limits: CallLimits = attrs.field(factory=CallLimits)
    _slots: set[CallSlot] = attrs.field(factory=set)
    _idle: trio.Event = attrs.field(factory=trio.Event)

    @property
    def active(self) -> int:
        return len(self._slots)

    @contextlib.contextmanager
    def call_slot(self) -> Iterator[CallSlot]:
        """Admit one call (refused with 503 while starting or draining)."""
        if self.draining:
            raise unavailable("the server is shutting down")
        if self.supervisor is None:
            raise unavailable("the server is not running")
        slot = CallSlot(self.supervisor)
        self._slots.add(slot)
        try:
            yield slot
        finally:
            self._slots.discard(slot)
            if not self._slots:
                self._idle.set()
                self._idle = trio.Event()

    @property
    def chain(self) -> tuple[CliSpec, ...]:
        """The CLIs a call may run on: the server's, then its fallbacks."""
        return (self.spec, *self.fallback)

    def options_of(self, body: AskRequest) -> CallOptions:
        """The call's options within the server's limits (a `ClientError` when outside)."""
        return call_options(body, self.chain, self.limits, self.system)

    @property
    def folder(self) -> dict[str, Any]:
        """Where a call runs, as `Supervisor.ask` takes it: ``cwd`` when set, else a fresh
        scratch folder per process (``scratch=True``), removed with whatever the CLI left
        in it when the process ends (a standby process is started in its own)."""
        if self.cwd is not None:
            return {"cwd": self.cwd}
        return {"scratch": True}

    async def wait_idle(self) -> None:
        while self._slots:
            await self._idle.wait()

    def abort_calls(self) -> None:
        """Cancel every admitted call; each then answers 503 (or ends its stream so)."""
        for slot in self._slots:
            slot.abort.cancel()
