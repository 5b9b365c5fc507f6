"""Running the items through the chain of supervisors, recording each outcome as a line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack

import attrs
import trio

from actors import ErrorCategory, LLMError
from supervisor import Completed, Result, open_supervisor

from ._input import MapItem
from ._job import MapJob
from ._output import OutputFile, result_line
from ._progress import ProgressDisplay, open_progress, tick_progress
from ._stages import CliStage, StageFeed, sample_memory
from ._tally import Tally

LAST_BREAKER_WAIT_S = 120.0
MOVE_TO_FALLBACK = frozenset(
    {ErrorCategory.RATE_LIMIT, ErrorCategory.AUTH_FAILURE, ErrorCategory.CIRCUIT_OPEN}
)

Items = Iterator[MapItem] | trio.MemoryReceiveChannel[MapItem]
"""What a stage takes its items from: the input (first stage) or the stage before it."""


def moves_to_fallback(outcome: Result | LLMError) -> bool:
    """Whether a finished call goes to the next CLI of the chain (when there is one)."""
    return isinstance(outcome, LLMError) and outcome.category in MOVE_TO_FALLBACK


@attrs.define
class MapRun:
    """One ``llmsup map`` run: its stages, its output file and its tally."""

    job: MapJob
    stages: list[CliStage]
    out: OutputFile
    tally: Tally
    progress: ProgressDisplay | None = None
    stop: Callable[[], None] | None = None  # ends the run (standard output's reader left)

    def record(self, item: MapItem, outcome: Result | LLMError, cli: str) -> None:
        """Write the item's line and count it."""
        line = result_line(item, outcome, cli, structured=self.job.output_model is not None)
        self.out.write(line)
        if self.out.closed_reader:
            if self.stop is not None:
                self.stop()
            return
        self.tally.count(
            None if isinstance(outcome, Result) else outcome.category.value,
            line["cli"],
            item.duration_s,
            outcome.usage if isinstance(outcome, Result) else None,
            line["cost"],
        )
        if self.progress is not None:
            self.progress.update(trio.current_time())

    def unreadable(self, item: MapItem) -> None:
        error = LLMError(item.problem or "unreadable", ErrorCategory.PERMANENT)
        self.record(item, error, self.stages[0].name)

    async def run_stage(
        self, stage: CliStage, items: Items, forward: trio.MemorySendChannel[MapItem] | None
    ) -> None:
        """Run a stage's items; move some on to ``forward`` (the next stage), record the rest."""
        assert stage.sup is not None
        feed = StageFeed(items, self.unreadable)
        try:
            async with stage.sup.map_stream(
                feed, self.job.output_model, system=self.job.system
            ) as results:
                async for done in results:
                    item = self._finished(feed, done)
                    if forward is not None and moves_to_fallback(done.outcome):
                        self.tally.moved += 1
                        await forward.send(item)
                    else:
                        self.record(item, done.outcome, stage.name)
        finally:
            if forward is not None:
                forward.close()

    @staticmethod
    def _finished(feed: StageFeed, done: Completed) -> MapItem:
        """The item a call was for, with that call's attempts and time added."""
        item = feed.pending.pop(done.index)
        outcome = done.outcome
        item.attempts += outcome.attempts
        if isinstance(outcome, Result):
            item.duration_s += outcome.duration_s
        else:
            item.duration_s += trio.current_time() - item.started
        return item


async def run_stages(run: MapRun, started: float) -> None:
    """Open one supervisor per stage, then pipe the items through the stages."""
    async with AsyncExitStack() as stack:
        for stage in run.stages:
            await _open_stage(stack, run.job, stage, last=stage.index == len(run.stages) - 1)
        run.progress = open_progress(run.tally, run.stages, started)
        async with trio.open_nursery() as helpers:
            helpers.start_soon(sample_memory, run.stages)
            helpers.start_soon(tick_progress, run.progress)
            async with trio.open_nursery() as pipeline:
                items: Items = run.job.source.items(run.job.skip)
                for stage in run.stages:
                    forward: trio.MemorySendChannel[MapItem] | None = None
                    next_items: trio.MemoryReceiveChannel[MapItem] | None = None
                    if stage.index < len(run.stages) - 1:
                        forward, next_items = trio.open_memory_channel[MapItem](0)
                    pipeline.start_soon(run.run_stage, stage, items, forward)
                    if next_items is not None:
                        items = next_items
            helpers.cancel_scope.cancel()


async def _open_stage(stack: AsyncExitStack, job: MapJob, stage: CliStage, *, last: bool) -> None:
    policies = job.policies
    sup = await stack.enter_async_context(
        open_supervisor(
            stage.spec,
            retry=policies.retry,
            timeouts=policies.timeouts,
            breaker=policies.breaker(stage.name),
            # Read-ahead sized for the most the memory budget could allow.
            concurrency=stage.limit,
            breaker_wait=LAST_BREAKER_WAIT_S if last else 0.0,
            standby=stage.standby,
        )
    )
    stage.sup = sup
    sup.set_concurrency(stage.concurrency)
    stage.limit_processes()
    # Every process the supervisor spawns is sampled for its memory.
    sup.add_spawn_listener(stage.on_spawn)
