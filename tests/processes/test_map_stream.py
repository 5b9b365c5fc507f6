"""map_stream: completion order, any (async) iterable, bounded read-ahead, early exit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager

import pytest
import trio

from supervisor import Completed, ErrorCategory, LLMError, Result, open_supervisor

from ..helpers import fake, live_processes_with, marker


async def test_results_arrive_in_completion_order_with_their_input_index() -> None:
    plan = {"rules": [{"match": "slow", "latency_s": 0.6}]}
    spec = fake(plan)
    prompts = ["slow 0", "fast 1", "fast 2"]
    async with open_supervisor(spec, concurrency=3) as sup, sup.map_stream(prompts) as results:
        done = [item async for item in results]
    assert [d.index for d in done][-1] == 0  # the slow one finishes last
    assert sorted(d.index for d in done) == [0, 1, 2]
    for item in done:
        assert isinstance(item.outcome, Result)
        assert item.outcome.text == f"echo: {item.prompt}"


async def test_async_iterable_input_is_pulled_only_as_fast_as_work_completes() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[str]:
        nonlocal pulled
        while True:
            pulled += 1
            yield f"prompt {pulled}"

    async with open_supervisor(fake({"latency_s": 0.05}), concurrency=2) as sup:
        seen = 0
        async with sup.map_stream(endless()) as results:
            async for _item in results:
                seen += 1
                if seen == 10:
                    break
        # An endless input, yet only a bounded window was ever read ahead.
        assert pulled <= seen + 2 * 2 + 2 + 1


async def test_a_large_lazy_input_streams_through() -> None:
    def prompts() -> Iterator[str]:
        for i in range(300):
            yield f"p{i}"

    async with open_supervisor(fake({"chunks": 1}), concurrency=8) as sup:
        count = 0
        async with sup.map_stream(prompts()) as results:
            async for item in results:
                assert isinstance(item.outcome, Result)
                count += 1
        stats = sup.statistics()
    assert count == 300
    assert stats.succeeded == 300


async def test_leaving_early_stops_the_rest() -> None:
    token = marker()
    plan = {"rules": [{"match": "slow", "latency_s": 30}]}
    async with open_supervisor(fake(plan), concurrency=4) as sup:
        prompts = ["quick", *[f"{token} slow {i}" for i in range(6)]]
        # A hang guard, not a timing assertion: the quick call's result must come.
        with trio.fail_after(120):
            await _leave_after_the_first(sup.map_stream(prompts), token)
        assert live_processes_with(token) == []
        assert sup.statistics().in_flight == 0


async def _leave_after_the_first(
    stream: AbstractAsyncContextManager[AsyncIterator[Completed]], token: str
) -> None:
    """Take the first item of ``stream`` and leave, once 3 slow calls are running."""
    async with stream as results:
        async for _first in results:
            # Leave only once slow calls are really running (under load they may not have
            # started yet), so the caller's check is about live processes.
            with trio.fail_after(60):  # a hang guard, not a timing assertion
                while len(live_processes_with(token)) < 3:  # noqa: ASYNC110 - /proc offers nothing to await
                    await trio.sleep(0.02)
            return
    raise AssertionError("map_stream ended without a single result")


async def test_items_that_are_not_strings_fail_alone() -> None:
    mixed: list[object] = ["ok", 42, "fine"]
    async with open_supervisor(fake()) as sup, sup.map_stream(mixed) as results:  # type: ignore[arg-type]
        done = {item.index: item async for item in results}
    assert isinstance(done[0].outcome, Result) and isinstance(done[2].outcome, Result)
    bad = done[1].outcome
    assert isinstance(bad, LLMError)
    assert bad.category is ErrorCategory.PERMANENT
    assert "int, not a str" in bad.message


async def test_an_input_that_raises_reaches_the_reader() -> None:
    def broken() -> Iterator[str]:
        yield "one"
        raise OSError("disk went away")

    async with open_supervisor(fake()) as sup:
        with pytest.raises(OSError, match="disk went away"):
            async with sup.map_stream(broken()) as results:
                async for _item in results:
                    pass


async def test_completed_reports_success() -> None:
    ok = Completed(0, "p", Result(text="x"))
    assert ok.ok
    assert not Completed(1, "q", LLMError("boom")).ok
    await trio.lowlevel.checkpoint()
