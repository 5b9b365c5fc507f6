"""The driver's side of a Ray fan-out: connect, place one node actor per node, stream the
items to them with bounded read-ahead, take their answers, survive node loss, stop all.

Ray's blocking calls run in trio worker threads; the bookkeeping is `Dispatcher`'s. Ray
never re-runs an item on its own (``max_restarts=0``, ``max_task_retries=0``): a lost
node's items are sent again by the driver, which is the only one that records them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import ray
import trio
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.lowlevel import sweep_orphaned_groups

from ._actors import GateActor, NodeActor
from ._dispatch import Dispatcher, NodeLost
from ._gate_rules import GateSettings
from ._node import NodeConfig, NodeDone

logger = logging.getLogger("llmsup.ray")

TAKE_WAIT_S = 0.2
"""How long a node's ``take`` waits for a finished item before answering with none."""
STOP_WAIT_S = 120.0
"""How long the driver waits for a node to stop its CLI processes."""
LOST_SWEEP_WAIT_S = 30.0
"""How long a sweep waits for a lost node actor's process to be gone."""
READ_AHEAD = 2
"""Items held by a node beyond its process limit, so it never waits for the driver."""


@attrs.frozen
class FleetNode:
    name: str  # the Ray node id
    ip: str
    pid: int  # of its node actor
    limits: tuple[int, ...]  # each CLI's process limit there


@attrs.frozen
class FleetDone:
    """One item's end: where it ran and how it went."""

    key: Any
    outcome: Any  # Result | LLMError
    cli: str
    node: str
    attempts: int
    duration_s: float


class _Changed:
    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


def connect(address: str) -> bool:
    """Connect to Ray (``local``: start a cluster here; ``auto``: as Ray means it; else an
    address); False when this process was connected already (then it stays connected)."""
    if ray.is_initialized():
        return False
    ray.init(
        address=address,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=False,
    )
    return True


@attrs.define
class Fleet:
    """One node actor per alive node, the gate, and the dispatcher's bookkeeping."""

    config: NodeConfig
    gate: Any
    handles: dict[str, Any]
    nodes: dict[str, FleetNode]
    dispatcher: Dispatcher[Hashable, str]
    on_lost: Callable[[FleetNode, int, str], None] = lambda _node, _count, _why: None
    finished: bool = False
    _changed: _Changed = attrs.Factory(_Changed)
    _source: Iterator[tuple[Hashable, str]] | None = None
    _exhausted: bool = False
    _sweeps: list[Any] = attrs.Factory(list)

    async def run(
        self, items: Iterator[tuple[Hashable, str]], on_done: Callable[[FleetDone], None]
    ) -> None:
        """Run every ``(key, prompt)`` once on the fleet; ``on_done`` hears each end once.

        Raises `NodeLost` when every node is gone with items left (those are not run).
        """
        self._source = items
        async with trio.open_nursery() as nursery:
            for name in self.handles:
                nursery.start_soon(self._push, name)
                nursery.start_soon(self._pull, name, on_done)
            while not (self._exhausted and self.dispatcher.idle()):
                if not self.dispatcher.nodes:
                    left = self.dispatcher.waiting_again()
                    raise NodeLost(f"every Ray node was lost; {left} items in flight not run")
                await self._changed.wait()
            nursery.cancel_scope.cancel()
        self.finished = True

    def _next_batch(self, name: str) -> list[tuple[Hashable, str]]:
        room = self.dispatcher.room(name)
        batch = self.dispatcher.take_again(room)
        while len(batch) < room and not self._exhausted:
            assert self._source is not None
            entry = next(self._source, None)
            if entry is None:
                self._exhausted = True
                self._changed.fire()
            else:
                batch.append(entry)
        return batch

    async def _push(self, name: str) -> None:
        while name in self.dispatcher.nodes:
            batch = self._next_batch(name)
            if not batch:
                await self._changed.wait()
                continue
            for key, prompt in batch:
                self.dispatcher.assign(name, key, prompt)
            # Not awaited: a node that died is found by its puller, which sends these again.
            self.handles[name].submit.remote(batch)
            await trio.lowlevel.checkpoint()

    async def _pull(self, name: str, on_done: Callable[[FleetDone], None]) -> None:
        handle = self.handles[name]
        while True:
            try:
                done: list[NodeDone] = await trio.to_thread.run_sync(
                    ray.get, handle.take.remote(TAKE_WAIT_S), abandon_on_cancel=True
                )
            except ray.exceptions.RayError as error:
                self._lose(name, error)
                return
            for end in done:
                if self.dispatcher.complete(name, end.key) is not None:
                    on_done(
                        FleetDone(end.key, end.outcome, end.cli, name, end.attempts, end.duration_s)
                    )
            if done:
                self._changed.fire()

    def _lose(self, name: str, error: BaseException) -> None:
        keys = self.dispatcher.lose(name)
        node = self.nodes[name]
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        logger.warning("Ray node %s lost (%s); %d items sent again", name, why, len(keys))
        self.on_lost(node, len(keys), why)
        # Lost for good (max_restarts=0): an actor only out of reach must not run on.
        with contextlib.suppress(Exception):
            ray.kill(self.handles[name], no_restart=True)
        # The lost actor's CLI processes outlive it on its machine: a survivor there sweeps.
        for other in self.dispatcher.nodes:
            if self.nodes[other].ip == node.ip:
                self._sweeps.append(
                    self.handles[other].sweep_after.remote(node.pid, LOST_SWEEP_WAIT_S)
                )
                break
        self._changed.fire()

    def stop(self) -> None:
        """Stop every node (blocking): cancel what runs unless the run finished, wait for
        the CLI processes to be stopped, remove the actors, sweep what lost nodes left."""
        refs = [self.handles[name].stop.remote(not self.finished) for name in self.dispatcher.nodes]
        with contextlib.suppress(ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
            ray.get(refs, timeout=STOP_WAIT_S)
        with contextlib.suppress(ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
            ray.get(self._sweeps, timeout=LOST_SWEEP_WAIT_S)
        for handle in [*self.handles.values(), self.gate]:
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)
        # This machine's share of what lost node actors left (their processes are gone
        # by now, or the sweep leaves their groups alone: it kills only dead owners').
        sweep_orphaned_groups()


def _place(config: NodeConfig, settings: GateSettings, read_ahead: int | None) -> Fleet:
    """Create the gate and one node actor per alive node (blocking)."""
    gate = (
        ray.remote(GateActor)
        .options(num_cpus=0, max_restarts=0, max_task_retries=0, max_concurrency=1000)
        .remote(settings)
    )
    alive = ray.nodes()  # type: ignore[no-untyped-call]
    node_ids = [n["NodeID"] for n in alive if n.get("Alive")]
    handles: dict[str, Any] = {}
    for node_id in node_ids:
        handles[node_id] = (
            ray.remote(NodeActor)
            .options(
                num_cpus=0,
                max_restarts=0,
                max_task_retries=0,
                max_concurrency=8,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            )
            .remote(config, gate)
        )
    infos = ray.get([handle.info.remote() for handle in handles.values()])
    nodes = {
        info["node_id"]: FleetNode(info["node_id"], info["ip"], info["pid"], tuple(info["limits"]))
        for info in infos
    }
    most = max(max(node.limits) for node in nodes.values())
    window = most + (READ_AHEAD if read_ahead is None else read_ahead)
    dispatcher: Dispatcher[Hashable, str] = Dispatcher(window)
    for name in handles:
        dispatcher.add_node(name)
    return Fleet(config, gate, handles, nodes, dispatcher)


@asynccontextmanager
async def open_fleet(
    config: NodeConfig,
    *,
    address: str = "auto",
    gate: GateSettings | None = None,
    read_ahead: int | None = None,
) -> AsyncIterator[Fleet]:
    """Connect to Ray and place the fleet; on exit every node is stopped (cancelling its
    calls unless `Fleet.run` finished), the actors removed, and Ray disconnected if this
    opened the connection."""
    settings = gate or GateSettings(
        failure_threshold=config.failure_threshold,
        budget=config.retry.budget if config.retry is not None else None,
    )
    connected = await trio.to_thread.run_sync(connect, address)
    try:
        fleet = await trio.to_thread.run_sync(
            functools.partial(_place, config, settings, read_ahead)
        )
        try:
            yield fleet
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(fleet.stop)
    finally:
        if connected:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(ray.shutdown)


__all__ = ["Fleet", "FleetDone", "FleetNode", "NodeLost", "open_fleet"]
