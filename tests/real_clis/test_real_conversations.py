"""Conversations with the real claude, codex and gemini against the emulator.

claude runs warm (one process, one stream-json user message per turn); codex and gemini
resume their session in a new process per turn. In every case the emulator's log must show
that each request carried the earlier turns.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest
import trio

from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import ConversationHistory, RetryConfig, TimeoutConfig, open_supervisor

from ..helpers import MARKER_ENV, live_processes_with_env, marker
from .test_real_clis import FACTORIES, SKIP_REASON, CliName, _installed, _spec

RETRY = RetryConfig(max_attempts=3, initial_delay_ms=50, max_delay_ms=200)
TIMEOUTS = TimeoutConfig(total_execution=60, chunk_receive=20, first_output=45, graceful_shutdown=2)


def _carried(requests: Sequence[object], prompt: str) -> str:
    """All message texts of the last request whose prompt was ``prompt``."""
    matching = [r for r in requests if getattr(r, "prompt", None) == prompt]
    assert matching, f"the emulator never saw {prompt!r}"
    return " ".join(m.text for m in matching[-1].messages)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.skipif(not _installed(n), reason=SKIP_REASON))
        for n in sorted(FACTORIES)
    ],
)
async def test_three_turns_each_carrying_the_earlier_ones(name: CliName, tmp_path: Path) -> None:
    turns = ["my name is Ada", "I live in Paris", "what do you know about me?"]
    async with open_emulator() as emulator:
        env = cli_environment(name, emulator.base_url, tmp_path / "home", inherit=os.environ)
        spec = _spec(name, env, cwd=str(tmp_path))
        async with open_supervisor(spec, retry=RETRY, timeouts=TIMEOUTS) as sup:
            async with sup.conversation() as conv:
                results = [await conv.send(turn) for turn in turns]
                mode = conv.mode
            stats = sup.statistics()
        requests = list(emulator.requests)
    assert mode == ("warm" if name == "claude" else "resume")
    assert [r.text.strip() for r in results] == [f"echo: {t}" for t in turns]
    assert len({r.session_id for r in results}) == 1
    second, third = _carried(requests, turns[1]), _carried(requests, turns[2])
    assert turns[0] in second
    assert turns[0] in third and turns[1] in third
    if name == "claude":
        assert stats.processes_spawned == 1  # one warm process served every turn


def _session_files(root: Path, session_id: str) -> list[Path]:
    """claude's stored transcript of ``session_id`` (``.claude/projects/<dir>/<id>.jsonl``)."""
    return list(root.rglob(f"{session_id}.jsonl"))


async def _wait_for_stored_answer(root: Path, session_id: str, prompt: str) -> None:
    with trio.fail_after(60):  # only a guard against a hang
        while not any(  # noqa: ASYNC110 - a file appearing offers nothing to await
            f"echo: {prompt}" in path.read_text(errors="replace")
            for path in _session_files(root, session_id)
        ):
            await trio.sleep(0.05)


async def _wait_until_dead(token: str) -> None:
    with trio.fail_after(60):  # only a guard against a hang
        while live_processes_with_env(token):  # noqa: ASYNC110 - polling /proc
            await trio.sleep(0.02)


@pytest.mark.skipif(not _installed("claude"), reason=SKIP_REASON)
@pytest.mark.parametrize("stored", [True, False], ids=["session-stored", "session-not-stored"])
async def test_warm_claude_killed_between_turns_recovers_with_its_history(
    tmp_path: Path, stored: bool
) -> None:
    token = marker()
    async with open_emulator() as emulator:
        env = cli_environment("claude", emulator.base_url, tmp_path / "home", inherit=os.environ)
        env[MARKER_ENV] = token
        spec = _spec("claude", env, cwd=str(tmp_path))
        async with open_supervisor(spec, retry=RETRY, timeouts=TIMEOUTS) as sup:
            async with sup.conversation() as conv:
                first = await conv.send("the secret is 42")
                assert first.session_id
                if stored:
                    # claude stores the session just after a turn: wait until the answer is
                    # on disk instead of guessing how long that takes.
                    await _wait_for_stored_answer(tmp_path, first.session_id, "the secret is 42")
                for pid in live_processes_with_env(token):
                    os.kill(pid, signal.SIGKILL)
                if not stored:
                    # Whether claude got to write it before the kill is a race: make sure
                    # nothing is stored once it is dead.
                    await _wait_until_dead(token)
                    for stale in _session_files(tmp_path, first.session_id):
                        stale.unlink()
                second = await conv.send("what is the secret?")
            stats = sup.statistics()
        requests = list(emulator.requests)
    assert [m.content for m in conv.history][::2] == ["the secret is 42", "what is the secret?"]
    if stored:
        # Restarted with --resume: the same session, and the API saw the first turn.
        assert second.text.strip() == "echo: what is the secret?"
        assert second.session_id == first.session_id
        assert "the secret is 42" in _carried(requests, "what is the secret?")
        assert stats.session_restarts == 0
    else:
        # Killed before it stored the session: a new session, our history replayed.
        assert second.session_id != first.session_id
        assert "the secret is 42" in requests[-1].prompt
        assert "what is the secret?" in requests[-1].prompt
        assert stats.session_restarts == 1
    assert stats.restarts >= 1
    assert live_processes_with_env(token) == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.skipif(not _installed(n), reason=SKIP_REASON))
        for n in ("claude", "codex")
    ],
)
async def test_export_load_continue(name: CliName, tmp_path: Path) -> None:
    saved = tmp_path / "conversation.json"
    async with open_emulator() as emulator:
        env = cli_environment(name, emulator.base_url, tmp_path / "home", inherit=os.environ)
        spec = _spec(name, env, cwd=str(tmp_path))
        async with (
            open_supervisor(spec, retry=RETRY, timeouts=TIMEOUTS) as sup,
            sup.conversation() as conv,
        ):
            first = await conv.send("remember: blue")
            conv.export_history(saved)
        async with (
            open_supervisor(spec, retry=RETRY, timeouts=TIMEOUTS) as sup,
            sup.conversation(history=saved) as again,
        ):
            second = await again.send("which colour?")
        requests = list(emulator.requests)
    assert second.session_id == first.session_id
    assert "remember: blue" in _carried(requests, "which colour?")
    assert again.turn_count == 2


def _forget_session_id(saved: Path, name: CliName) -> str:
    """Rewrite the exported history so it names a session ``name`` never had; return it."""
    history = ConversationHistory.model_validate_json(saved.read_text())
    made_up = str(uuid.uuid4())
    assert history.session_ids.get(name)  # the export did carry the real one
    history.session_ids[name] = made_up
    saved.write_text(history.model_dump_json())
    return made_up


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        pytest.param(n, m, marks=pytest.mark.skipif(not _installed(n), reason=SKIP_REASON))
        for n, m in (
            ("claude", "auto"),
            ("claude", "resume"),
            ("codex", "resume"),
            ("gemini", "resume"),
        )
    ],
)
async def test_an_unknown_session_id_starts_a_new_session_with_the_history(
    name: CliName, mode: Literal["auto", "resume"], tmp_path: Path
) -> None:
    saved = tmp_path / "conversation.json"
    async with open_emulator() as emulator:
        first_env = cli_environment(name, emulator.base_url, tmp_path / "home1", inherit=os.environ)
        (tmp_path / "cwd1").mkdir()
        first_spec = _spec(name, first_env, cwd=str(tmp_path / "cwd1"))
        async with (
            open_supervisor(first_spec, retry=RETRY, timeouts=TIMEOUTS) as sup,
            sup.conversation(mode=mode) as conv,
        ):
            await conv.send("remember: the ferry leaves at nine")
            conv.export_history(saved)
        made_up = _forget_session_id(saved, name)
        # Another home and cwd: the CLI there has never stored any session.
        env = cli_environment(name, emulator.base_url, tmp_path / "home2", inherit=os.environ)
        token = marker()
        env[MARKER_ENV] = token
        (tmp_path / "cwd2").mkdir()
        spec = _spec(name, env, cwd=str(tmp_path / "cwd2"))
        async with open_supervisor(spec, retry=RETRY, timeouts=TIMEOUTS) as sup:
            async with sup.conversation(mode=mode, history=saved) as again:
                assert again.session_id == made_up
                picked = again.mode
                with trio.fail_after(180):  # only a guard against a hang
                    second = await again.send("when does the ferry leave?")
            stats = sup.statistics()
        requests = list(emulator.requests)
    assert picked == ("warm" if mode == "auto" else "resume")
    assert second.session_id and second.session_id != made_up
    assert again.session_id == second.session_id
    assert stats.session_restarts == 1
    # The new session's request replayed the kept turn, and asked the new question.
    carried = _carried_text(requests[-1])
    assert "remember: the ferry leaves at nine" in carried
    assert "when does the ferry leave?" in carried
    assert again.turn_count == 2
    assert [m.content for m in again.history][::2] == [
        "remember: the ferry leaves at nine",
        "when does the ferry leave?",
    ]
    assert live_processes_with_env(token) == []


def _carried_text(request: object) -> str:
    """A request's prompt and all its message texts."""
    messages = getattr(request, "messages", ())
    return " ".join([getattr(request, "prompt", ""), *(m.text for m in messages)])
