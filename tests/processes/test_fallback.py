"""Fallback (issue 11/12): a call moves to the next CLI on rate_limit, auth_failure or an
open breaker, with real processes: the primary is a script that prints a provider error
and exits 1, the fallback is the fake CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from pydantic import BaseModel

import actors
from actors import CliSpec, TextDelta
from supervisor import (
    CircuitBreaker,
    CircuitState,
    ErrorCategory,
    LLMError,
    RetryConfig,
    open_supervisor,
)

from ..helpers import fake, python_cli

FAST = RetryConfig(max_attempts=3, initial_delay_ms=1, max_delay_ms=2)


def failing(message: str, name: str = "primary", count: Path | None = None) -> CliSpec:
    """A CLI that prints ``message`` on stderr and exits 1 (counting its runs in ``count``)."""
    counting = f"open({str(count)!r}, 'a').write('x'); " if count else ""
    code = f"import sys; {counting}sys.stderr.write({message!r} + '\\n'); sys.exit(1)"
    return python_cli(code, name=name)


AUTH = "Error: 401 Unauthorized (invalid x-api-key)"
RATE = "API Error: 429 Too Many Requests"


@pytest.mark.parametrize(("message", "category"), [(AUTH, "auth_failure"), (RATE, "rate_limit")])
async def test_the_fallback_answers_when_the_primary_is_refused(
    message: str, category: str
) -> None:
    async with open_supervisor(
        failing(message), fallback=[fake({"text": "from the fallback"})], retry=FAST
    ) as sup:
        result = await sup.ask("hello")
        stats = sup.statistics()
    assert result.text == "from the fallback"
    assert result.cli == "fake"
    assert result.fallback is True
    assert stats.fallbacks == {"primary": 1}
    assert (stats.started, stats.succeeded, stats.failed) == (1, 1, 0)


async def test_the_primary_answer_is_not_marked_as_fallback() -> None:
    async with open_supervisor(fake({"text": "primary"}), fallback=[failing(AUTH)]) as sup:
        result = await sup.ask("hello")
        stats = sup.statistics()
    assert (result.cli, result.fallback, result.text) == ("fake", False, "primary")
    assert stats.fallbacks == {}


async def test_other_failures_do_not_move_to_the_fallback(tmp_path: Path) -> None:
    runs = tmp_path / "fallback-runs"
    code = f"open({str(runs)!r}, 'a').write('x'); print('never')"
    async with open_supervisor(
        failing("segmentation fault"), fallback=[python_cli(code, name="second")], retry=FAST
    ) as sup:
        with pytest.raises(LLMError) as caught:
            await sup.ask("hello")
        stats = sup.statistics()
    assert caught.value.category is ErrorCategory.RETRYABLE
    assert caught.value.cli == "primary"
    assert not runs.exists()
    assert stats.fallbacks == {}


async def test_the_chain_goes_on_and_the_last_error_is_the_calls(tmp_path: Path) -> None:
    async with open_supervisor(
        failing(AUTH, "first"), fallback=[failing(RATE, "second")], retry=FAST
    ) as sup:
        with pytest.raises(LLMError) as caught:
            await sup.ask("hello")
        stats = sup.statistics()
    assert caught.value.category is ErrorCategory.RATE_LIMIT
    assert caught.value.cli == "second"
    assert stats.fallbacks == {"first": 1}
    assert (stats.started, stats.failed) == (1, 1)


async def test_an_open_breaker_moves_calls_to_the_fallback_which_has_its_own(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "primary-runs"
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=3600)
    async with open_supervisor(
        failing("segmentation fault", count=runs),
        fallback=[fake({"text": "ok"})],
        breaker=breaker,
        retry=RetryConfig(max_attempts=1),
    ) as sup:
        with pytest.raises(LLMError) as caught:
            await sup.ask("first")  # fails on the primary and opens its breaker
        assert caught.value.category is ErrorCategory.RETRYABLE
        result = await sup.ask("second")  # the open breaker sends it to the fallback
        stats = sup.statistics()
        fallback_breaker = sup.breaker_of("fake")
    assert result.cli == "fake"
    assert runs.read_text() == "x"  # the primary ran once: the second call never reached it
    assert breaker.state is CircuitState.OPEN
    assert fallback_breaker is not None and fallback_breaker is not breaker
    assert fallback_breaker.state is CircuitState.CLOSED
    assert fallback_breaker.failure_threshold == 1
    assert stats.fallbacks == {"primary": 1}


async def test_a_stream_falls_back_before_any_text() -> None:
    async with open_supervisor(
        failing(AUTH), fallback=[fake({"text": "streamed", "chunks": 3})], retry=FAST
    ) as sup:
        async with sup.stream("hello") as events:
            texts = [e.text async for e in events if isinstance(e, TextDelta)]
        result = events.result
    assert "".join(texts) == "streamed"
    assert (result.cli, result.fallback) == ("fake", True)


async def test_a_stream_that_delivered_text_does_not_fall_back(tmp_path: Path) -> None:
    runs = tmp_path / "fallback-runs"
    # Streams one text delta, then fails with an auth error.
    code = (
        "import json, sys; "
        "print(json.dumps({'type': 'text_delta', 'text': 'partial'}), flush=True); "
        "sys.stderr.write('401 Unauthorized\\n'); sys.exit(1)"
    )
    second = python_cli(f"open({str(runs)!r}, 'a').write('x'); print('never')", name="second")
    primary = python_cli(code, name="primary", output_format="jsonl")
    seen: list[str] = []
    async with (
        open_supervisor(primary, fallback=[second], retry=FAST) as sup,
        sup.stream("hello") as events,
    ):
        with pytest.raises(LLMError) as caught:
            async for event in events:
                if isinstance(event, TextDelta):
                    seen.append(event.text)
    assert seen == ["partial"]
    assert caught.value.cli == "primary"
    assert not runs.exists()


async def test_map_items_fall_back() -> None:
    async with open_supervisor(
        failing(RATE), fallback=[fake({"text": "answer"})], retry=FAST, concurrency=2
    ) as sup:
        outcomes = await sup.map(["a", "b", "c"])
        stats = sup.statistics()
    assert all(isinstance(o, actors.LLMError) is False for o in outcomes)
    assert [getattr(o, "cli", None) for o in outcomes] == ["fake"] * 3
    assert stats.fallbacks == {"primary": 3}


class Answer(BaseModel):
    value: int


async def test_structured_calls_fall_back() -> None:
    answer = "```json\n" + json.dumps({"value": 7}) + "\n```"
    async with open_supervisor(failing(AUTH), fallback=[fake({"text": answer})]) as sup:
        result = await sup.ask("give a value", output=Answer)
    assert result.data_as(Answer).value == 7
    assert result.cli == "fake"


def test_fallback_must_be_a_list_of_specs() -> None:
    async def main() -> None:
        async with open_supervisor(fake(), fallback=fake()):  # type: ignore[arg-type]
            pass

    with pytest.raises(TypeError, match="a list of CliSpecs"):
        trio.run(main)

    async def main2() -> None:
        async with open_supervisor(fake(), fallback=["claude"]):  # type: ignore[list-item]
            pass

    with pytest.raises(TypeError, match=r"fallback\[0\] must be a CliSpec"):
        trio.run(main2)


# ------------------------------------------------- issue 12 bugs 3, 4 and 5 (library side)


async def test_the_error_that_opened_the_breaker_comes_first() -> None:
    # failure_threshold=1: the first attempt's failure opens the breaker, which then
    # refuses the retry. The call's own error is what it reports, not circuit_open.
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=3600)
    async with open_supervisor(failing("segmentation fault"), breaker=breaker, retry=FAST) as sup:
        with pytest.raises(LLMError) as caught:
            await sup.ask("hello")
    assert caught.value.category is ErrorCategory.RETRYABLE
    assert "segmentation fault" in str(caught.value)
    assert "circuit breaker opened" in caught.value.message
    assert breaker.state is CircuitState.OPEN


async def test_one_failed_structured_ask_counts_once() -> None:
    async with open_supervisor(fake({"text": "no JSON here"})) as sup:
        with pytest.raises(LLMError):
            await sup.ask("give a value", output=Answer, max_reasks=1)
        stats = sup.statistics()
    assert (stats.started, stats.succeeded, stats.failed) == (1, 0, 1)
    assert stats.failures_by_category == {"malformed_output": 1}
    assert stats.reasks == 1


async def test_stream_result_is_a_result_after_the_block() -> None:
    async with open_supervisor(fake({"text": "hi"})) as sup, sup.stream("hello") as events:
        with pytest.raises(RuntimeError, match="before the stream ended"):
            _ = events.result
        async for _event in events:
            pass
    session_id: str | None = events.result.session_id  # typed: no Optional to unwrap
    assert events.result.text == "hi"
    assert session_id == events.result.session_id


async def test_stream_result_raises_the_calls_error() -> None:
    async with open_supervisor(failing(AUTH), retry=FAST) as sup, sup.stream("hello") as events:
        with pytest.raises(LLMError):
            async for _event in events:
                pass
    with pytest.raises(LLMError) as caught:
        _ = events.result
    assert caught.value.category is ErrorCategory.AUTH_FAILURE


async def test_a_conversation_turn_the_cli_refuses_goes_to_the_fallback_with_the_history() -> None:
    import attrs

    from actors._spec import SessionSupport

    refused = failing(AUTH)
    refused = attrs.evolve(refused, session=SessionSupport(resume=lambda _id: refused))
    echo = python_cli("import json, sys; print(json.dumps(sys.argv[1:]))", name="echo")
    async with open_supervisor(refused, fallback=[echo], retry=FAST) as sup:
        conv = sup.conversation(mode="resume")
        first = await conv.send("one")
        second = await conv.send("two")
    assert (first.cli, first.fallback, second.cli) == ("echo", True, "echo")
    replayed = json.loads(second.text)[0]
    assert "User: one" in replayed and replayed.rstrip().endswith("two")
    assert conv.turn_count == 2
