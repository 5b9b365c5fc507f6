"""One node's work: a local trio supervisor per CLI of the chain, fed by the driver.

Runs in the node actor's own thread under ``trio.run`` (see `_actors.NodeActor`). The
items come in through a trio channel; each runs through the chain (an item whose call
fails with RATE_LIMIT, AUTH_FAILURE or CIRCUIT_OPEN moves to the next CLI, as ``llmsup
map`` does locally) and its end is put on a thread-safe queue for the driver to take.
The supervisors give the node's CLI processes all the local hygiene: the registry, the
stop sequence on exit, on error and on cancellation.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio
from pydantic import BaseModel

from actors import CliSpec, LLMError, TimeoutConfig
from actors.lowlevel import mem_available

from .._policy._backoff import RetryConfig
from .._policy._budget import RetryBudgetTracker
from .._policy._fallback import next_cli
from .._result import Result
from .._supervisor import Supervisor, open_supervisor
from ._fleet_breaker import FleetBreaker

LAST_BREAKER_WAIT_S = 120.0
"""How long an item may wait for the last CLI's fleet breaker (earlier CLIs fail fast, so
their items move to the next CLI at once), as locally."""

BUDGET_SHARE = 0.5


@attrs.frozen
class NodeConfig:
    """What every node runs: the chain, the policies, the per-node limits."""

    specs: tuple[CliSpec, ...]
    concurrency: int
    memory_budget: int | None = None  # bytes per node; None: BUDGET_SHARE of MemAvailable
    estimates: tuple[int, ...] = ()  # bytes per process, per CLI of the chain
    retry: RetryConfig | None = None
    timeouts: TimeoutConfig | None = None
    output_model: type[BaseModel] | None = None
    system: str | None = None
    failure_threshold: int | None = None

    def limits(self, available: int | None) -> list[int]:
        """Each CLI's process limit on a node with ``available`` bytes of MemAvailable."""
        budget = self.memory_budget
        if budget is None and available is not None:
            budget = int(available * BUDGET_SHARE)
        limits = []
        for index, _spec in enumerate(self.specs):
            estimate = self.estimates[index] if index < len(self.estimates) else 0
            if budget is None or estimate <= 0:
                limits.append(self.concurrency)
            else:
                limits.append(max(1, min(self.concurrency, budget // estimate)))
        return limits


@attrs.frozen
class NodeDone:
    """One item's end on a node, for the driver."""

    key: Any
    outcome: Result | LLMError
    cli: str
    attempts: int
    duration_s: float


def shippable(outcome: Result | LLMError) -> Result | LLMError:
    """The outcome without its raw events (the driver writes none of them)."""
    if isinstance(outcome, Result) and outcome.raw_events:
        return outcome.model_copy(update={"raw_events": []})
    return outcome


@attrs.define
class NodeProgram:
    """The trio side of a node; ``outbox`` is read by the actor's ``take``."""

    config: NodeConfig
    breakers: list[FleetBreaker]
    outbox: queue.SimpleQueue[NodeDone]
    limits: list[int] = attrs.Factory(list)
    sups: list[Supervisor] = attrs.Factory(list)
    moved: int = 0
    # Per CLI of the chain, the fleet's shared retry budget (none: the supervisor's own).
    budgets: list[RetryBudgetTracker | None] = attrs.Factory(list)

    async def run(
        self, items: trio.MemoryReceiveChannel[tuple[Any, str]], ready: Callable[[], None]
    ) -> None:
        """Open the chain's supervisors, then run every item received until the channel
        is closed; cancellation stops every CLI process before it returns."""
        self.limits = self.config.limits(mem_available())
        async with AsyncExitStack() as stack:
            last = len(self.config.specs) - 1
            for index, spec in enumerate(self.config.specs):
                sup = await stack.enter_async_context(
                    open_supervisor(
                        spec,
                        retry=self.config.retry,
                        timeouts=self.config.timeouts,
                        breaker=self.breakers[index],
                        concurrency=self.limits[index],
                        breaker_wait=LAST_BREAKER_WAIT_S if index == last else 0.0,
                        retry_budget=self.budgets[index] if index < len(self.budgets) else None,
                    )
                )
                self.sups.append(sup)
            ready()
            async with trio.open_nursery() as nursery:
                async for key, prompt in items:
                    nursery.start_soon(self._run_item, key, prompt)

    async def _run_item(self, key: Any, prompt: str) -> None:
        started = trio.current_time()
        attempts = 0
        outcome: Result | LLMError
        cli = self.config.specs[0].name
        for index, sup in enumerate(self.sups):
            cli = sup.cli.name
            try:
                outcome = await sup.ask(prompt, self.config.output_model, system=self.config.system)
            except LLMError as error:
                outcome = error
                attempts += error.attempts
                if next_cli(error, index, len(self.sups)):
                    self.moved += 1
                    continue
            else:
                attempts += outcome.attempts
            break
        duration = trio.current_time() - started
        self.outbox.put(NodeDone(key, shippable(outcome), cli, attempts, duration))
