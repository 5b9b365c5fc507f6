"""Fan-out of LLM CLI calls over a Ray cluster, with one rate-limit gate for the fleet.

Needs the extra: ``pip install 'llm-cli-supervisor[ray]'``. This module imports ``ray``
only when `open_ray_fleet` is used, so it is importable without it::

    from supervisor.ray import open_ray_fleet

    async with open_ray_fleet(actors.claude(), address="auto", concurrency=8) as fleet:
        await fleet.run(((i, p) for i, p in enumerate(prompts)), on_done=print)

One long-lived node actor per alive node hosts a local trio supervisor per CLI of the
chain (``cli`` then ``fallback``), with that node's process limit: ``concurrency``,
narrowed by ``memory_budget`` (bytes per node; default half of the node's MemAvailable)
over ``estimates`` (bytes per process, per CLI). Items stream to the nodes with bounded
read-ahead; ``on_done`` gets each item's `FleetDone` exactly once, on the driver. A lost
node's items are sent to the others (``fleet.dispatcher.redispatched`` counts them); Ray
itself never retries one. A named gate actor holds each CLI's circuit breaker for the
whole fleet: a 429 with ``retry-after`` seen on one node stops every node starting calls
to that CLI until then, and half-open trials are counted across the fleet. With a retry
budget (``retry=RetryConfig(budget=...)``, ``--retry-budget``) the gate holds one account
per CLI too: retries across the fleet add up to what one budget allows, not one per node.
``llmsup map --ray ADDRESS`` is this, with map's input, output and resume.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from pydantic import BaseModel

from actors import CliSpec, TimeoutConfig

from ._policy._backoff import RetryConfig
from ._ray._gate_rules import GateSettings as GateSettings
from ._ray._node import NodeConfig as NodeConfig

if TYPE_CHECKING:
    from ._ray._fleet import Fleet

INSTALL_HINT = "pip install 'llm-cli-supervisor[ray]'"


class RayNotInstalled(ImportError):
    """Ray is not installed; the message says how to install the extra."""


def require_ray() -> None:
    """Raise `RayNotInstalled` (one line naming the extra) unless ``ray`` imports."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise RayNotInstalled(f"Ray is not installed; {INSTALL_HINT}") from exc


@asynccontextmanager
async def open_ray_fleet(
    cli: CliSpec,
    *,
    fallback: Sequence[CliSpec] = (),
    address: str = "auto",
    concurrency: int = 8,
    memory_budget: int | None = None,
    estimates: Sequence[int] = (),
    retry: RetryConfig | None = None,
    timeouts: TimeoutConfig | None = None,
    failure_threshold: int | None = None,
    output: type[BaseModel] | None = None,
    system: str | None = None,
    read_ahead: int | None = None,
) -> AsyncIterator[Fleet]:
    """Connect to Ray at ``address`` (``auto``, ``local`` or an address) and place the
    fleet; on exit every node's CLI processes are stopped and the actors removed."""
    require_ray()
    from ._ray._fleet import open_fleet

    config = NodeConfig(
        specs=(cli, *fallback),
        concurrency=concurrency,
        memory_budget=memory_budget,
        estimates=tuple(estimates),
        retry=retry,
        timeouts=timeouts,
        output_model=output,
        system=system,
        failure_threshold=failure_threshold,
    )
    async with open_fleet(config, address=address, read_ahead=read_ahead) as fleet:
        yield fleet
