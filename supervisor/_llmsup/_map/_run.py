"""Running the items through the chain of supervisors, recording each outcome as a line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio
from pydantic import BaseModel

from actors import ErrorCategory, LLMError

from ..._result import Result
from ..._supervisor import open_supervisor
from ._input import _Item
from ._job import _Job
from ._output import _Output
from ._progress import _Progress, _progress, _Tally, _tick
from ._stages import _Feed, _sample_memory, _Stage

LAST_BREAKER_WAIT_S = 120.0
MOVE_TO_FALLBACK = frozenset(
    {ErrorCategory.RATE_LIMIT, ErrorCategory.AUTH_FAILURE, ErrorCategory.CIRCUIT_OPEN}
)


@attrs.define
class _Run:
    job: _Job
    stages: list[_Stage]
    out: _Output
    tally: _Tally
    progress: _Progress | None = None

    def record(self, item: _Item, outcome: Result | LLMError, cli: str) -> None:
        ok = isinstance(outcome, Result)
        line: dict[str, Any] = {"id": item.id, "ok": ok}
        if self.job.output_model is not None:
            data = outcome.data if isinstance(outcome, Result) else None
            line["data"] = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
        else:
            line["text"] = outcome.text if isinstance(outcome, Result) else None
        if isinstance(outcome, Result):
            line["error"] = None
        else:
            line["error"] = {
                "category": outcome.category.value,
                "message": outcome.message,
                "retry_after": outcome.retry_after,
            }
        usage = outcome.usage if isinstance(outcome, Result) else None
        cost = outcome.cost_usd if isinstance(outcome, Result) else None
        line.update(
            attempts=item.attempts,
            cli=outcome.cli or cli,
            duration_s=round(item.duration_s, 3),
            usage=usage.model_dump(mode="json") if usage is not None else None,
            cost=cost,
        )
        self.out.write(line)
        tally = self.tally
        if isinstance(outcome, Result):
            tally.ok += 1
        else:
            tally.failed[outcome.category.value] += 1
        tally.by_cli[line["cli"]] += 1
        tally.latencies.append(item.duration_s)
        if usage is not None:
            tally.tokens_in += usage.input_tokens
            tally.tokens_out += usage.output_tokens
        if cost is not None:
            tally.cost = (tally.cost or 0.0) + cost
        if self.progress is not None:
            self.progress.update(trio.current_time())

    def unreadable(self, item: _Item) -> None:
        error = LLMError(item.problem or "unreadable", ErrorCategory.PERMANENT)
        self.record(item, error, self.stages[0].name)

    async def run_stage(
        self,
        stage: _Stage,
        items: Iterator[_Item] | trio.MemoryReceiveChannel[_Item],
        forward: trio.MemorySendChannel[_Item] | None,
    ) -> None:
        assert stage.sup is not None
        feed = _Feed(items, self.unreadable)
        try:
            async with stage.sup.map_stream(feed, self.job.output_model) as results:
                async for done in results:
                    item = feed.pending.pop(done.index)
                    outcome = done.outcome
                    item.attempts += outcome.attempts
                    if isinstance(outcome, Result):
                        item.duration_s += outcome.duration_s
                    else:
                        item.duration_s += trio.current_time() - item.started
                    if (
                        forward is not None
                        and isinstance(outcome, LLMError)
                        and outcome.category in MOVE_TO_FALLBACK
                    ):
                        self.tally.moved += 1
                        await forward.send(item)
                    else:
                        self.record(item, outcome, stage.name)
        finally:
            if forward is not None:
                forward.close()


async def _run_stages(run: _Run, job: _Job, stages: list[_Stage], started: float) -> None:
    policies = job.policies
    last = len(stages) - 1
    async with AsyncExitStack() as stack:
        for stage in stages:
            sup = await stack.enter_async_context(
                open_supervisor(
                    stage.spec,
                    retry=policies.retry,
                    timeouts=policies.timeouts,
                    breaker=policies.breaker(stage.name),
                    # Read-ahead sized for the most the memory budget could allow.
                    concurrency=stage.limit,
                    breaker_wait=LAST_BREAKER_WAIT_S if stage.index == last else 0.0,
                )
            )
            stage.sup = sup
            sup.set_concurrency(stage.concurrency)
            # Every process the supervisor spawns is sampled for its memory.
            sup.add_spawn_listener(stage.on_spawn)
        run.progress = _progress(run.tally, stages, started)
        async with trio.open_nursery() as helpers:
            helpers.start_soon(_sample_memory, stages)
            helpers.start_soon(_tick, run.progress)
            async with trio.open_nursery() as pipeline:
                items: Iterator[_Item] | trio.MemoryReceiveChannel[_Item]
                items = job.source.items(job.skip)
                for stage in stages:
                    forward: trio.MemorySendChannel[_Item] | None = None
                    next_items: trio.MemoryReceiveChannel[_Item] | None = None
                    if stage.index < last:
                        forward, next_items = trio.open_memory_channel[_Item](0)
                    pipeline.start_soon(run.run_stage, stage, items, forward)
                    if next_items is not None:
                        items = next_items
            helpers.cancel_scope.cancel()
