"""``llmsup map --ray ADDRESS``: the items run on a Ray cluster's nodes, the driver writes.

The input is read and checked here, streamed to the fleet (`supervisor.ray`) with bounded
read-ahead, and every answer is recorded by the driver through `MapRun.record`, one line
per id, as locally; each line also says which ``node`` ran it (a Ray node id; ``driver``
for an item that never left, an unreadable file). Progress and the summary count the
items done per node and the items sent again after a node was lost.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, TextIO

import trio

from ..._ray._dispatch import NodeLost
from ..._ray._fleet import Fleet, FleetDone, FleetNode, open_fleet
from ..._ray._node import NodeConfig
from ._input import MapItem
from ._output import OutputFile
from ._report import print_lines
from ._run import MapRun

PROGRESS_EVERY_S = 5.0
DRIVER = "driver"


class NodeStampedOutput(OutputFile):
    """Map's output file, with the ``node`` that ran each line's item added to it."""

    def __init__(self, inner: OutputFile) -> None:  # shares the inner file, not a new one
        self.inner = inner
        self.path = inner.path
        self.node = DRIVER

    @property
    def lines(self) -> int:  # type: ignore[override]
        return self.inner.lines

    @property
    def closed_reader(self) -> bool:  # type: ignore[override]
        return self.inner.closed_reader

    def write(self, record: dict[str, Any]) -> None:
        self.inner.write({**record, "node": self.node})

    def close(self) -> None:
        self.inner.close()


def node_config(run: MapRun) -> NodeConfig:
    job = run.job
    given = job.budget if job.budget_note == "--memory-budget" else None
    return NodeConfig(
        specs=tuple(job.specs),
        concurrency=job.policies.concurrency,
        memory_budget=given,  # else each node takes its own share of its MemAvailable
        estimates=tuple(stage.default_estimate for stage in run.stages),
        retry=job.policies.retry,
        timeouts=job.policies.timeouts,
        output_model=job.output_model,
        system=job.system,
        failure_threshold=job.policies.failure_threshold,
    )


def _short(node: str) -> str:
    return node[:12]


def fleet_lines(fleet: Fleet, address: str) -> list[str]:
    names = [spec.name for spec in fleet.config.specs]
    lines = [f"map: ray: {len(fleet.nodes)} nodes at {address}, one supervisor each"]
    for node in fleet.nodes.values():
        pairs = zip(names, node.limits, strict=False)
        limits = ", ".join(f"{name} {limit}" for name, limit in pairs)
        lines.append(f"map: ray: node {_short(node.name)} ({node.ip}): concurrency {limits}")
    return lines


def end_lines(fleet: Fleet) -> list[str]:
    dispatcher = fleet.dispatcher
    by_node = ", ".join(
        f"{_short(name)} {count}" for name, count in dispatcher.done_by_node.most_common()
    )
    lost = f"; {len(dispatcher.lost)} nodes lost" if dispatcher.lost else ""
    return [
        f"map: ray: by node: {by_node or 'none'}; "
        f"{dispatcher.redispatched} items re-dispatched{lost}"
    ]


async def _tick(run: MapRun, fleet: Fleet, stream: TextIO) -> None:
    while True:
        await trio.sleep(PROGRESS_EVERY_S)
        by_node = ", ".join(
            f"{_short(name)} {fleet.dispatcher.done_by_node[name]}" for name in fleet.nodes
        )
        print(
            f"map: ray: {run.tally.done}/{run.tally.total} done; by node: {by_node}; "
            f"{fleet.dispatcher.redispatched} re-dispatched",
            file=stream,
            flush=True,
        )


async def run_on_ray(run: MapRun, address: str, stream: TextIO) -> bool:
    """Run the job's items on the Ray cluster at ``address``, recording each on the driver;
    False when every node was lost before the end (the rest is left for ``--resume``)."""
    stamped = NodeStampedOutput(run.out)
    run.out = stamped
    pending: dict[Hashable, MapItem] = {}
    first = run.job.specs[0].name

    def items() -> Iterator[tuple[Hashable, str]]:
        for item in run.job.source.items(run.job.skip):
            if item.problem is not None:
                stamped.node = DRIVER
                run.unreadable(item)
                continue
            pending[item.id] = item
            yield item.id, item.prompt

    def on_done(done: FleetDone) -> None:
        item = pending.pop(done.key)
        item.attempts = done.attempts
        item.duration_s = done.duration_s
        if done.cli != first:
            run.tally.moved += 1
        stamped.node = done.node
        run.record(item, done.outcome, done.cli)

    def on_lost(node: FleetNode, count: int, why: str) -> None:
        line = f"map: ray: node {_short(node.name)} lost ({why}); {count} items sent again"
        print_lines([line], stream)

    async with open_fleet(node_config(run), address=address) as fleet:
        fleet.on_lost = on_lost
        print_lines(fleet_lines(fleet, address), stream)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_tick, run, fleet, stream)
                await fleet.run(items(), on_done)
                nursery.cancel_scope.cancel()
        except NodeLost as lost:
            print_lines([f"map: ray: {lost}; run again with --resume to finish"], stream)
            return False
        finally:
            print_lines(end_lines(fleet), stream)
    return True
