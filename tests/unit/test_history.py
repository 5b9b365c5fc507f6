"""ConversationManager: history replay, trimming that is counted, turn limits, export/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import actors
from supervisor import ConversationManager, ErrorCategory, LLMError, open_supervisor


class Recorder:
    """A call function that answers with a numbered reply and keeps what it was sent."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return f"answer {len(self.prompts)}"


async def test_history_is_replayed_into_each_prompt() -> None:
    manager = ConversationManager(system_prompt="You are a code reviewer", max_turns=10)
    call = Recorder()
    assert await manager.send_message("Review this code", call) == "answer 1"
    assert await manager.send_message("Explain the first issue more", call) == "answer 2"
    second = call.prompts[1]
    assert second.startswith("System: You are a code reviewer")
    assert "User: Review this code" in second
    assert "Assistant: answer 1" in second
    assert second.endswith("User: Explain the first issue more")
    assert manager.turn_count == 2
    assert [m.role for m in manager.history] == ["user", "assistant", "user", "assistant"]
    assert all(m.timestamp.tzinfo is not None for m in manager.history)


async def test_first_prompt_without_system_prompt_is_sent_as_is() -> None:
    call = Recorder()
    await ConversationManager().send_message("--help", call)
    assert call.prompts == ["--help"]


async def test_max_turns_is_a_clear_permanent_error() -> None:
    manager = ConversationManager(max_turns=2)
    call = Recorder()
    await manager.send_message("one", call)
    await manager.send_message("two", call)
    with pytest.raises(LLMError) as info:
        await manager.send_message("three", call)
    assert info.value.category is ErrorCategory.PERMANENT
    assert "max_turns=2" in info.value.message
    assert len(call.prompts) == 2  # nothing was sent


@given(turns=st.integers(0, 40), max_history=st.integers(2, 12))
def test_trimming_keeps_the_latest_whole_exchanges_and_counts_the_rest(
    turns: int, max_history: int
) -> None:
    manager = ConversationManager(system_prompt="sys", max_history=max_history)
    for turn in range(turns):
        manager.record_turn(f"q{turn}", f"a{turn}")
    history = manager.history
    assert len(history) <= max_history
    assert len(history) % 2 == 0
    kept = len(history) // 2
    assert manager.trimmed_turns == turns - kept
    assert manager.turn_count == turns
    if turns:
        assert history[-1].content == f"a{turns - 1}"
        first_kept = turns - kept
        assert history[0].content == f"q{first_kept}"
    assert manager.system_prompt == "sys"


async def test_export_then_load_then_continue(tmp_path: Path) -> None:
    manager = ConversationManager(system_prompt="be brief", max_turns=5, max_history=4)
    manager.record_turn("hello", "hi", session_id="sess-1", cli="claude")
    manager.record_turn("and now?", "still here", session_id="sess-2", cli="claude")
    path = manager.export_history(tmp_path / "conversation.json")
    data = json.loads(path.read_text())
    assert data["session_ids"] == {"claude": "sess-2"}  # the latest id wins
    assert [m["content"] for m in data["messages"]] == ["hello", "hi", "and now?", "still here"]

    loaded = ConversationManager.load_history(path)
    assert loaded.turn_count == 2
    assert loaded.history == manager.history
    call = Recorder()
    await loaded.send_message("third", call)
    assert "User: hello" in call.prompts[0] and "Assistant: still here" in call.prompts[0]
    assert loaded.turn_count == 3
    assert loaded.trimmed_turns == 1  # max_history=4 keeps two exchanges


def test_loading_a_broken_history_names_the_file_and_the_problem(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    with pytest.raises(ValueError, match="is not JSON"):
        ConversationManager.load_history(bad_json)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"messages": [{"role": "robot", "content": "x"}]}))
    with pytest.raises(ValueError, match=r"wrong\.json.*messages\.0\.role"):
        ConversationManager.load_history(wrong)
    with pytest.raises(ValueError, match="cannot read"):
        ConversationManager.load_history(tmp_path / "missing.json")


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_turns"):
        ConversationManager(max_turns=0)
    with pytest.raises(ValueError, match="max_history"):
        ConversationManager(max_history=1)


async def test_works_with_a_supervised_cli_as_call_func() -> None:
    manager = ConversationManager(system_prompt="sys")
    async with open_supervisor(actors.fake()) as sup:
        first = await manager.send_message("first question", sup.ask)
        second = await manager.send_message("second question", sup.ask)
    assert first == "echo: System: sys\n\nUser: first question"
    assert "User: first question" in second and "User: second question" in second
    assert manager.state.session_ids.keys() == {"fake"}
