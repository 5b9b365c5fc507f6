"""The Ray actors: the fleet gate (a thin shell over `FleetGateRules`) and the node actor
(one per node, hosting `NodeProgram` under trio).

The node actor runs trio in a dedicated thread (``trio.run``) and talks to it with
``trio.from_thread``: the supervisor's trio code runs unchanged on its own loop, and Ray's
threads and event loop never run trio code nor wait on it (guest mode would put every
trio step on Ray's loop, where a blocking ``ray.get`` would stall both).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from typing import Any

import ray
import trio

from actors import ErrorCategory
from actors.lowlevel import sweep_orphaned_groups

from .._policy._breaker import Permit
from .._policy._budget import RetryBudgetTracker
from ._fleet_breaker import FleetBreaker
from ._fleet_budget import FleetBudget
from ._gate_rules import BudgetAnswer, FleetGateRules, GateRefusal, GateSettings, GateView
from ._node import NodeConfig, NodeDone, NodeProgram

logger = logging.getLogger("llmsup.ray")

WATCH_S = 5.0
"""How long a node's long poll of the gate waits for a change before asking again."""


class GateActor:
    """The fleet's gate: every node's breakers follow it (async actor: one thread)."""

    def __init__(self, settings: GateSettings) -> None:
        self._rules = FleetGateRules(settings, time.monotonic)
        self._changed: dict[str, asyncio.Event] = {}

    def _notify(self, cli: str, before: int) -> GateView:
        view = self._rules.view(cli)
        if view.version != before:
            event = self._changed.pop(cli, None)
            if event is not None:
                event.set()
        return view

    async def acquire(self, cli: str) -> tuple[Permit | GateRefusal, GateView]:
        before = self._rules.view(cli).version
        answer = self._rules.acquire(cli)
        return answer, self._notify(cli, before)

    async def record(
        self,
        cli: str,
        permit: Permit,
        category: ErrorCategory | None,
        retry_after: float | None,
        cancelled: bool,
    ) -> None:
        before = self._rules.view(cli).version
        self._rules.record(cli, permit, category, retry_after, cancelled=cancelled)
        self._notify(cli, before)

    async def watch(self, cli: str, version: int, wait_s: float) -> GateView:
        """The view once its version is past ``version`` (or after ``wait_s``)."""
        view = self._rules.view(cli)
        if view.version > version:
            return view
        event = self._changed.setdefault(cli, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(wait_s, self._rules.next_change_in(cli)))
        return self._rules.view(cli)

    async def calls_started(self, cli: str, count: int) -> None:
        self._rules.call_started(cli, count)

    async def take_retry(self, cli: str) -> BudgetAnswer:
        return self._rules.take_retry(cli)

    async def summary(self, cli: str) -> dict[str, int]:
        view = self._rules.view(cli)
        return {
            "opened": view.opened_count,
            "trials": self._rules.trials(cli),
            "retries_refused": self._rules.retries_refused(cli),
        }


class _RayGateLink:
    def __init__(self, gate: Any) -> None:
        self._gate = gate

    def acquire(self, cli: str) -> tuple[Permit | GateRefusal, GateView]:
        answer: tuple[Permit | GateRefusal, GateView] = ray.get(self._gate.acquire.remote(cli))
        return answer

    def record(
        self,
        cli: str,
        permit: Permit,
        category: ErrorCategory | None,
        retry_after: float | None,
        cancelled: bool,
    ) -> None:
        self._gate.record.remote(cli, permit, category, retry_after, cancelled)

    def call_started(self, cli: str, count: int) -> None:
        self._gate.calls_started.remote(cli, count)

    def take_retry(self, cli: str) -> BudgetAnswer:
        try:
            answer: BudgetAnswer = ray.get(self._gate.take_retry.remote(cli))
        except ray.exceptions.RayError:  # the gate is gone: the run is ending
            return BudgetAnswer(False, 0.0, 0)
        return answer


def _fleet_budgets(config: NodeConfig, link: _RayGateLink) -> list[RetryBudgetTracker | None]:
    """Per CLI of the chain, a tracker of the fleet's retry budget (when the run has one:
    ``--retry-budget``), so every node's retries spend one budget per CLI."""
    budget = config.retry.budget if config.retry is not None else None
    if budget is None:
        return []
    return [FleetBudget(budget, cli=spec.name, link=link) for spec in config.specs]


class NodeActor:
    """One per node: hosts the node's supervisors in a trio thread (threaded actor)."""

    def __init__(self, config: NodeConfig, gate: Any) -> None:
        self._gate = gate
        link = _RayGateLink(gate)
        self._breakers = [
            FleetBreaker(name=spec.name, link=link, failure_threshold=1) for spec in config.specs
        ]
        self._outbox: queue.SimpleQueue[NodeDone] = queue.SimpleQueue()
        self._program = NodeProgram(
            config, self._breakers, self._outbox, budgets=_fleet_budgets(config, link)
        )
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._send: trio.MemorySendChannel[tuple[Any, str]] | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._host, name="llmsup-node", daemon=True)
        self._thread.start()
        for breaker in self._breakers:
            threading.Thread(
                target=self._follow, args=(breaker,), name="llmsup-gate-watch", daemon=True
            ).start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"the node's supervisors did not open: {self._error}")

    def _host(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported by info() and take()
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        send, receive = trio.open_memory_channel[tuple[Any, str]](float("inf"))
        self._send = send
        with trio.CancelScope() as scope:
            self._scope = scope
            await self._program.run(receive, self._ready.set)

    def _follow(self, breaker: FleetBreaker) -> None:
        while not self._stopping.is_set():
            try:
                view = ray.get(self._gate.watch.remote(breaker.name, breaker.view_version, WATCH_S))
            except Exception:  # the gate is gone: the run is ending
                return
            breaker.apply(view)

    def info(self) -> dict[str, Any]:
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
            "pid": os.getpid(),
            "limits": list(self._program.limits),
        }

    def submit(self, batch: list[tuple[Any, str]]) -> None:
        assert self._token is not None and self._send is not None
        send = self._send

        def put_all() -> None:
            for entry in batch:
                send.send_nowait(entry)

        trio.from_thread.run_sync(put_all, trio_token=self._token)

    def take(self, wait_s: float) -> list[NodeDone]:
        """The items finished since the last take (waits up to ``wait_s`` for one)."""
        if self._error is not None:
            raise RuntimeError(f"the node's supervisors failed: {self._error!r}")
        done: list[NodeDone] = []
        with contextlib.suppress(queue.Empty):
            done.append(self._outbox.get(timeout=wait_s))
            while True:
                done.append(self._outbox.get_nowait())
        return done

    def stop(self, cancel: bool) -> dict[str, Any]:
        """End the node: ``cancel`` stops every call now, else the items held finish
        first; either way every CLI process is stopped before this returns."""
        token, send, scope = self._token, self._send, self._scope
        if token is not None and self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                if cancel and scope is not None:
                    trio.from_thread.run_sync(scope.cancel, trio_token=token)
                elif send is not None:
                    trio.from_thread.run_sync(send.close, trio_token=token)
        self._thread.join()
        self._stopping.set()
        return {"moved": self._program.moved, "left": self._outbox.qsize()}

    def sweep_after(self, pid: int, wait_s: float) -> list[int]:
        """Once process ``pid`` (a lost node actor on this machine) is gone, kill the CLI
        process groups it left (the registry's sweep of dead owners)."""
        deadline = time.monotonic() + wait_s
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        return sweep_orphaned_groups()
