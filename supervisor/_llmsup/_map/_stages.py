"""One stage per CLI of the fallback chain: its supervisor and memory-bound concurrency."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs
import trio

from actors import CliSpec
from supervisor import Supervisor

from ._input import MapItem
from ._job import MapJob
from ._memory import (
    DEFAULT_ESTIMATES_MIB,
    MIB,
    OBSERVED_MARGIN,
    OTHER_ESTIMATE_MIB,
    SAMPLE_EVERY_S,
    TRUSTED_AFTER,
    tree_peak_bytes,
)


@attrs.define
class CliStage:
    """One CLI of the chain, with its supervisor and its memory observations."""

    index: int
    spec: CliSpec
    limit: int  # --concurrency
    budget: int | None
    default_estimate: int
    standby: int = 0  # --standby: processes kept waiting for a prompt, beside the calls'
    concurrency: int = 0
    start_concurrency: int = 0
    sup: Supervisor | None = None
    pids: dict[int, bool] = attrs.Factory(dict)  # pid -> seen alive at least once
    peak: int = 0
    observed: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def estimate(self) -> int:
        observed = int(self.peak * OBSERVED_MARGIN)
        if self.observed >= TRUSTED_AFTER:
            return max(observed, MIB)
        return max(self.default_estimate, observed)

    def allowed(self) -> int:
        """Processes for calls: --concurrency, or fewer when the budget holds fewer."""
        slots = self.memory_slots()
        return self.limit if slots is None else min(self.limit, slots)

    def memory_slots(self) -> int | None:
        """How many processes the budget holds (at least one; None: no budget): calls' and
        standby ones together (`Supervisor.set_process_limit`)."""
        if self.budget is None:
            return None
        return max(1, self.budget // self.estimate())

    def on_spawn(self, pid: int) -> None:
        self.pids[pid] = False

    def sample(self) -> None:
        """Sample the live processes' peaks. A process counts as observed once it has
        ended (after it was seen alive): a young one, such as a standby process waiting
        for its prompt, has not reached its peak yet, and must not make the estimate
        trusted while it is low."""
        for pid, seen in list(self.pids.items()):
            peak = tree_peak_bytes(pid)
            if peak is None:
                del self.pids[pid]
                self.observed += seen
                continue
            self.pids[pid] = True
            self.peak = max(self.peak, peak)
        self.adjust()

    def adjust(self) -> None:
        allowed = self.allowed()
        if allowed != self.concurrency and self.sup is not None:
            self.concurrency = allowed
            # The supervisor was opened with --concurrency slots of read-ahead; its process
            # limiter is what the memory budget narrows.
            self.sup.set_concurrency(allowed)
        self.limit_processes()

    def limit_processes(self) -> None:
        """With standby processes, bound the processes alive (calls' and standby ones) by
        the memory budget: the supervisor refills its standby processes only below it."""
        if self.sup is not None and self.standby:
            slots = self.memory_slots()
            if slots != self.sup.process_limit:
                self.sup.set_process_limit(slots)

    def breaker_state(self) -> str:
        breaker = self.sup.breaker if self.sup is not None else None
        return breaker.state.value if breaker is not None else "off"


class StageFeed:
    """The prompts of one stage's ``map_stream``, remembering which item each index is."""

    def __init__(
        self,
        items: Iterator[MapItem] | trio.MemoryReceiveChannel[MapItem],
        on_problem: Callable[[MapItem], None],
    ) -> None:
        self._items = items
        self._on_problem = on_problem
        self._next_index = 0
        self.pending: dict[int, MapItem] = {}

    def __aiter__(self) -> StageFeed:
        return self

    async def __anext__(self) -> str:
        while True:
            if isinstance(self._items, trio.MemoryReceiveChannel):
                try:
                    item = await self._items.receive()
                except trio.EndOfChannel:
                    raise StopAsyncIteration from None
            else:
                try:
                    item = next(self._items)
                except StopIteration:
                    raise StopAsyncIteration from None
            if item.problem is None:
                break
            self._on_problem(item)
        item.started = trio.current_time()
        self.pending[self._next_index] = item
        self._next_index += 1
        return item.prompt


def build_stages(job: MapJob, limit: int) -> list[CliStage]:
    stages = []
    for index, spec in enumerate(job.specs):
        default = DEFAULT_ESTIMATES_MIB.get(spec.name, OTHER_ESTIMATE_MIB) * MIB
        standby = job.standby if spec.standby_refusal_reason() is None else 0
        stage = CliStage(index, spec, limit, job.budget, default, standby)
        stage.concurrency = stage.start_concurrency = stage.allowed()
        stages.append(stage)
    return stages


async def sample_memory(stages: list[CliStage]) -> None:
    while True:
        for stage in stages:
            stage.sample()
        await trio.sleep(SAMPLE_EVERY_S)
