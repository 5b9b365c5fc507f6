"""The real gemini as an agent, against the emulator: what each tool level lets run.

The emulator's model asks for a tool (``Fault(kind="tool_call")``) and the follow-up
request shows what gemini sent back (``RecordedRequest.tool_results``): under "none" no
tool result may ever reach the provider. Also: the system prompt travels in the system
field (not in the user text) and keeps requests lean, an unknown session is classified
as lost, and structured output works end to end. Each test has its own home and folder;
``fail_after`` only guards against a hang.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from pydantic import BaseModel

import actors
from actors._fakes._emulator import EmulatorRule, Fault, open_emulator
from actors._fakes._emulator._app import RecordedRequest
from actors._fakes._emulator._homes import cli_environment
from supervisor import ErrorCategory, LLMError, Result, RetryConfig, TimeoutConfig, open_supervisor

from ..helpers import MARKER_ENV, live_processes_with_env, marker
from .test_real_clis import CLI_DIR, SKIP_REASON, _installed

pytestmark = pytest.mark.skipif(not _installed("gemini"), reason=SKIP_REASON)

HANG_GUARD_S = 150
TIMEOUTS = TimeoutConfig(total_execution=90, chunk_receive=60, first_output=60)
INSIDE_SECRET = "inside-secret-4f1c"
OUTSIDE_SECRET = "outside-secret-9b2e"


class Scene:
    """A scratch home, a working folder with a file in it, and a file outside it."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.cwd = root / "work"
        self.cwd.mkdir(parents=True)
        self.inside = self.cwd / "notes.txt"
        self.inside.write_text(INSIDE_SECRET + "\n")
        outside_dir = root / "elsewhere"
        outside_dir.mkdir()
        self.outside = outside_dir / "private.txt"
        self.outside.write_text(OUTSIDE_SECRET + "\n")
        self.token = marker()
        self.env = cli_environment("gemini", base_url, root / "home", inherit=os.environ)
        self.env[MARKER_ENV] = self.token

    def spec(self, **options: Any) -> actors.CliSpec:
        return actors.gemini(str(CLI_DIR / "gemini"), env=self.env, cwd=str(self.cwd), **options)


def _read_rule(match: str, path: Path) -> EmulatorRule:
    return EmulatorRule(
        match=match,
        reply="done reading",
        fault=Fault(kind="tool_call", tool_name="read_file", tool_input={"file_path": str(path)}),
    )


def _shell_rule(match: str, path: Path) -> EmulatorRule:
    return EmulatorRule(
        match=match,
        reply="done running",
        fault=Fault(
            kind="tool_call",
            tool_name="run_shell_command",
            tool_input={"command": f"cat {path}"},
        ),
    )


async def _ask(sup: Any, prompt: str, **options: Any) -> Result | LLMError:
    try:
        result: Result = await sup.ask(prompt, **options)
    except LLMError as error:
        return error
    return result


def _results(requests: list[RecordedRequest]) -> str:
    return "\n".join(text for r in requests for text in r.tool_results)


async def _run_level(tools: actors.ToolPolicy, tmp_path: Path) -> dict[str, Any]:
    """Ask for a file inside cwd, one outside, and a shell command; record everything."""
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            emulator.set_rules(
                [
                    _read_rule("read inside", scene.inside),
                    _read_rule("read outside", scene.outside),
                    _shell_rule("run shell", scene.outside),
                ]
            )
            outcomes: dict[str, Any] = {}
            async with open_supervisor(
                scene.spec(tools=tools), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                for prompt in ("read inside please", "read outside please", "run shell please"):
                    outcomes[prompt] = await _ask(sup, prompt)
            outcomes["requests"] = list(emulator.requests)
            outcomes["alive"] = live_processes_with_env(scene.token)
    return outcomes


def _first(requests: list[RecordedRequest], prompt: str) -> RecordedRequest:
    return next(r for r in requests if r.prompt == prompt)


async def test_none_runs_nothing_and_offers_no_tools(tmp_path: Path) -> None:
    outcomes = await _run_level("none", tmp_path)
    requests: list[RecordedRequest] = outcomes["requests"]
    seen = "\n".join(f"{k}: {v!r}" for k, v in outcomes.items() if k != "requests")
    assert requests, seen
    assert all(r.tools == () for r in requests), [r.tools for r in requests]
    # gemini answers a call of a tool it never declared with its own refusal, sent back
    # before the runtime can stop it: that refusal, never a tool's output, is all that
    # may reach the provider.
    refusals = [text for r in requests for text in r.tool_results]
    assert all(re.fullmatch(r'Tool "\w+" not found\.', t) for t in refusals), refusals
    for prompt in ("read inside please", "read outside please", "run shell please"):
        error = outcomes[prompt]
        # gemini never declared the tool, so it refuses the call itself, or the runtime
        # stops it at the ToolUse event: either way no result went back to the provider.
        if isinstance(error, LLMError):
            assert error.category is ErrorCategory.PERMANENT, seen
    assert INSIDE_SECRET not in _results(requests)
    assert outcomes["alive"] == []


async def test_read_reads_inside_only(tmp_path: Path) -> None:
    outcomes = await _run_level("read", tmp_path)
    requests: list[RecordedRequest] = outcomes["requests"]
    seen = "\n".join(f"{k}: {v!r}" for k, v in outcomes.items() if k != "requests")
    offered = set(_first(requests, "read inside please").tools)
    assert offered <= {"read_file", "read_many_files", "list_directory", "glob", "grep_search"}
    assert "read_file" in offered, offered
    inside = outcomes["read inside please"]
    assert isinstance(inside, Result) and inside.text.strip() == "done reading", seen
    results = _results(requests)
    assert INSIDE_SECRET in results
    assert OUTSIDE_SECRET not in results  # "Path not in workspace"; the shell is not offered
    assert outcomes["alive"] == []


async def test_edit_writes_inside_only(tmp_path: Path) -> None:
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            outside_new = scene.outside.with_name("written.txt")

            def write(match: str, path: Path) -> EmulatorRule:
                return EmulatorRule(
                    match=match,
                    reply="done writing",
                    fault=Fault(
                        kind="tool_call",
                        tool_name="write_file",
                        tool_input={"file_path": str(path), "content": "written by the model"},
                    ),
                )

            emulator.set_rules(
                [
                    write("write inside", scene.cwd / "new.txt"),
                    write("write outside", outside_new),
                    _read_rule("read outside", scene.outside),
                    _shell_rule("run shell", scene.outside),
                ]
            )
            outcomes: dict[str, Any] = {}
            async with open_supervisor(
                scene.spec(tools="edit"), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                for prompt in ("write inside", "write outside", "read outside", "run shell"):
                    outcomes[prompt] = await _ask(sup, prompt)
            requests = list(emulator.requests)
    seen = "\n".join(f"{k}: {v!r}" for k, v in outcomes.items())
    offered = set(_first(requests, "write inside").tools)
    assert {"write_file", "read_file"} <= offered, offered
    assert "run_shell_command" not in offered
    assert (scene.cwd / "new.txt").read_text() == "written by the model", seen
    assert not outside_new.exists(), seen
    assert OUTSIDE_SECRET not in _results(requests)


async def test_full_runs_the_shell(tmp_path: Path) -> None:
    outcomes = await _run_level("full", tmp_path)
    requests: list[RecordedRequest] = outcomes["requests"]
    seen = "\n".join(f"{k}: {v!r}" for k, v in outcomes.items() if k != "requests")
    assert "run_shell_command" in _first(requests, "run shell please").tools, seen
    shell = outcomes["run shell please"]
    assert isinstance(shell, Result) and shell.text.strip() == "done running", seen
    assert OUTSIDE_SECRET in _results(requests)  # the shell reads anywhere: "full" is full
    assert outcomes["alive"] == []


def test_full_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="llmsup.gemini"):
        actors.gemini(str(CLI_DIR / "gemini"), tools="full")
    assert any("tools='full'" in r.getMessage() for r in caplog.records)


async def test_system_prompt_is_native_and_requests_are_lean(tmp_path: Path) -> None:
    system = "You are the LLMSUP test persona. Answer tersely."
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            async with open_supervisor(
                scene.spec(), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                plain = await sup.ask("say hello")
                native = await sup.ask("say hello again", system=system)
            requests = list(emulator.requests)
    assert plain.text.strip() == "echo: say hello"
    assert native.text.strip() == "echo: say hello again"
    before = _first(requests, "say hello")
    after = _first(requests, "say hello again")
    assert after.system == system
    assert all(system not in m.text for m in after.messages if m.role == "user")
    assert after.tools == () and before.tools == ()
    assert after.body_bytes <= 8 * 1024, after.body_bytes
    # gemini's own agent instructions (kept without a system prompt) are many KB.
    assert len(before.system) > 10 * 1024, len(before.system)


async def test_unknown_session_is_lost(tmp_path: Path) -> None:
    made_up = "4f0c5a2e-1111-4222-8333-944455556666"
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            spec = scene.spec()
            async with open_supervisor(
                spec, retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                first = await sup.ask("remember pineapple")  # so the folder has a session
            assert first.session_id and first.session_id != made_up
            assert spec.session is not None
            async with open_supervisor(
                spec.session.resume(made_up), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                lost = await _ask(sup, "are you there?")
    assert isinstance(lost, LLMError), lost
    assert lost.lost_session == made_up
    assert lost.category is ErrorCategory.PERMANENT
    assert lost.message.startswith(f"session {made_up} is not known to gemini: ")
    assert f'Invalid session identifier "{made_up}"' in lost.message


class Weather(BaseModel):
    city: str
    degrees: int


async def test_structured_output(tmp_path: Path) -> None:
    rules = [EmulatorRule(match="weather", reply='{"city": "Oslo", "degrees": 7}')]
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator(rules) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            async with open_supervisor(
                scene.spec(), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                result = await sup.ask("what is the weather in Oslo?", output=Weather)
    assert result.data == Weather(city="Oslo", degrees=7)
