"""Conversations through the supervisor: warm actors, session resume, history replay."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from supervisor import (
    ErrorCategory,
    LLMError,
    RestartIntensity,
    RestartIntensityExceeded,
    RetryConfig,
    open_supervisor,
)

from ..helpers import fake, live_processes_with, marker, python_cli, wait_until_gone

FAST_RETRY = RetryConfig(max_attempts=3, initial_delay_ms=10, max_delay_ms=50)


def tagged(token: str, **plan: object) -> dict[str, object]:
    """A fault plan whose argv carries ``token`` (so its processes can be found)."""
    return {**plan, "rules": [{"match": token, "chunks": 1}]}


async def test_warm_conversation_uses_one_process_for_every_turn() -> None:
    token = marker()
    async with open_supervisor(fake(tagged(token))) as sup:
        async with sup.conversation(system_prompt="be brief") as conv:
            assert conv.mode == "warm"
            results = [await conv.send(f"turn {i}") for i in range(4)]
            assert len(live_processes_with(token)) == 1  # still warm between turns
        assert await wait_until_gone(token, 5) == []  # closing the conversation stopped it
        stats = sup.statistics()
    assert [r.text for r in results[1:]] == ["echo: turn 1", "echo: turn 2", "echo: turn 3"]
    assert "be brief" in results[0].text  # the system prompt went with the first turn
    assert len({r.session_id for r in results}) == 1
    assert stats.processes_spawned == 1
    assert conv.turn_count == 4


async def test_warm_process_crash_costs_at_most_a_retried_turn() -> None:
    token = marker()
    plan = tagged(token, crash_after_requests=1)  # every process dies on its 2nd request
    async with open_supervisor(fake(plan), retry=FAST_RETRY) as sup:
        conv = sup.conversation()
        first = await conv.send("one")
        second = await conv.send("two")
        third = await conv.send("three")
        stats = sup.statistics()
        await conv.aclose()
    assert (first.attempts, second.attempts, third.attempts) == (1, 2, 2)
    assert [first.text, second.text, third.text] == ["echo: one", "echo: two", "echo: three"]
    # The restarted process resumed the same session: no history was lost.
    assert first.session_id == second.session_id == third.session_id
    assert [m.content for m in conv.history][::2] == ["one", "two", "three"]
    assert stats.restarts == 2
    assert stats.processes_spawned == 3


async def test_warm_process_killed_between_turns_recovers_on_the_next_turn() -> None:
    token = marker()
    async with open_supervisor(fake(tagged(token)), retry=FAST_RETRY) as sup:
        conv = sup.conversation()
        before = await conv.send("before")
        (pid,) = live_processes_with(token)
        os.kill(pid, signal.SIGKILL)
        after = await conv.send("after")
        assert len(live_processes_with(token)) == 1
        assert live_processes_with(token) != [pid]
        stats = sup.statistics()
    assert after.text == "echo: after"
    assert after.session_id == before.session_id
    assert stats.processes_spawned == 2
    assert live_processes_with(token) == []


async def test_a_warm_cli_that_always_crashes_escalates_to_the_supervisor() -> None:
    token = marker()
    plan = tagged(token, crash_after_requests=0)
    with pytest.raises(RestartIntensityExceeded) as info:
        async with open_supervisor(
            fake(plan),
            retry=RetryConfig(max_attempts=10, initial_delay_ms=1, max_delay_ms=5),
            restart_intensity=RestartIntensity(max_restarts=2, period_s=60),
        ) as sup:
            await sup.conversation().send("doomed")
    assert "warm-fake" in info.value.message
    assert live_processes_with(token) == []


async def test_resume_mode_starts_a_process_per_turn_and_keeps_the_session() -> None:
    async with open_supervisor(fake()) as sup:
        conv = sup.conversation(mode="resume")
        results = [await conv.send(f"q{i}") for i in range(3)]
        stats = sup.statistics()
    assert stats.processes_spawned == 3
    assert len({r.session_id for r in results}) == 1
    assert conv.session_id == results[0].session_id


async def test_replay_mode_sends_the_trimmed_history_and_counts_what_was_trimmed(
    tmp_path: Path,
) -> None:
    log = tmp_path / "prompts"
    code = f"import sys\nopen({str(log)!r}, 'a').write(sys.argv[1] + '\\0')\nprint('ok')\n"
    async with open_supervisor(python_cli(code)) as sup:
        conv = sup.conversation(mode="replay", system_prompt="sys", max_history=4)
        for i in range(4):
            await conv.send(f"question {i}")
        stats = sup.statistics()
    last = log.read_text().split("\0")[-2]
    # The system prompt and the two latest exchanges, then the new question.
    assert last.startswith("System: sys")
    assert "User: question 1" in last and "User: question 2" in last
    assert "User: question 0" not in last
    assert last.endswith("User: question 3")
    assert last.count("Assistant: ok") == 2
    assert conv.trimmed_turns == 2  # four turns, max_history=4 keeps the last two
    assert stats.trimmed_turns == 2  # and the statistics say so


async def test_export_then_load_then_continue_the_same_session(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    async with open_supervisor(fake()) as sup, sup.conversation(system_prompt="be kind") as conv:
        first = await conv.send("hello")
        conv.export_history(path)
    async with open_supervisor(fake()) as sup, sup.conversation(history=path) as resumed:
        assert resumed.turn_count == 1
        assert resumed.session_id == first.session_id
        second = await resumed.send("again")
    assert second.session_id == first.session_id  # the warm process resumed the session
    assert second.text == "echo: again"  # no system preamble on a continued session
    assert [m.content for m in resumed.history] == ["hello", first.text, "again", "echo: again"]


async def test_turn_limit_and_bad_modes_are_clear_errors() -> None:
    async with open_supervisor(fake()) as sup:
        conv = sup.conversation(max_turns=1, mode="resume")
        await conv.send("only")
        with pytest.raises(LLMError) as info:
            await conv.send("one too many")
        assert info.value.category is ErrorCategory.PERMANENT
        assert "max_turns=1" in info.value.message
    import actors

    async with open_supervisor(actors.command(["cat"])) as sup:
        with pytest.raises(ValueError, match="no session support"):
            sup.conversation(mode="warm")
        assert sup.conversation().mode == "replay"


async def test_supervisor_exit_stops_a_warm_process_left_open() -> None:
    token = marker()
    async with open_supervisor(fake(tagged(token))) as sup:
        conv = sup.conversation()
        await conv.send("hi")
        assert len(live_processes_with(token)) == 1
    assert live_processes_with(token) == []


async def test_cancelled_warm_turn_does_not_corrupt_the_next_one() -> None:
    token = marker()
    plan = {"rules": [{"match": "slow", "latency_s": 5}, {"match": token, "chunks": 1}]}
    async with open_supervisor(fake(plan), retry=FAST_RETRY) as sup:
        conv = sup.conversation()
        await conv.send(f"{token} first")
        with trio.move_on_after(0.3):
            await conv.send("slow one")
        after = await conv.send("next")
    assert after.text == "echo: next"
