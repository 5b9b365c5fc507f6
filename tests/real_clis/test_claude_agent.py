"""claude as an agent, with the real binary against the provider emulator: what runs.

The emulated model asks for a tool (`Fault(kind="tool_call")`); the follow-up request, which
the emulator records, shows what claude ran and sent back (`RecordedRequest.tool_results`).
Each level of `actors.claude(tools=...)` is checked with a file inside the working folder and
one outside it, a shell command and a write. Also: the system prompt travels in the request's
system field (`CliSpec.with_system`), requests under "none" are lean, resuming an unknown
session is a lost session, and structured output works under "none".

Every scenario gets its own home and working folder; calls of one test run concurrently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from pydantic import BaseModel

import actors
from actors._fakes._emulator import EmulatorRule, Fault, RecordedRequest, open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import ErrorCategory, LLMError, Result, RetryConfig, TimeoutConfig, open_supervisor

from ..helpers import MARKER_ENV, live_processes_with_env, marker
from .test_real_clis import CLI_DIR, SKIP_REASON, _installed

pytestmark = pytest.mark.skipif(not _installed("claude"), reason=SKIP_REASON)

HANG_GUARD_S = 240  # only against a hang: a call takes about a second
INSIDE_TEXT = "INSIDE-3b1f"  # the content of a file in the working folder
OUTSIDE_TEXT = "OUTSIDE-9c7e"  # the content of a file outside it


@attrs.frozen
class Scenario:
    """One call: the prompt, and the tool the emulated model asks for when it sees it."""

    prompt: str
    tool: str
    tool_input: dict[str, Any]


@attrs.frozen
class Outcome:
    result: Result | LLMError
    requests: tuple[RecordedRequest, ...]  # the generation requests this call's claude made

    @property
    def tool_results(self) -> list[str]:
        return [text for request in self.requests for text in request.tool_results]


@attrs.frozen
class Folders:
    work: Path  # the working folder, holding inside.txt
    outside: Path  # a folder beside it, holding outside.txt


def _folders(root: Path) -> Folders:
    work, outside = root / "work", root / "outside"
    work.mkdir(parents=True)
    outside.mkdir()
    (work / "inside.txt").write_text(INSIDE_TEXT + "\n")
    (outside / "outside.txt").write_text(OUTSIDE_TEXT + "\n")
    return Folders(work, outside)


async def _run(
    tmp_path: Path,
    scenarios: dict[str, Scenario],
    *,
    tools: actors.ToolPolicy,
    env: dict[str, str] | None = None,
    system: str | None = None,
) -> dict[str, Outcome]:
    """Run every scenario concurrently, each with its own home and folders under tmp_path."""
    rules = [
        EmulatorRule(
            match=s.prompt,
            reply="finished",
            fault=Fault(kind="tool_call", tool_name=s.tool, tool_input=s.tool_input),
        )
        for s in scenarios.values()
    ]
    token = marker()
    results: dict[str, Result | LLMError] = {}
    async with open_emulator(rules) as emulator:

        async def one(label: str, scenario: Scenario) -> None:
            own = tmp_path / label
            home_env = cli_environment(
                "claude", emulator.base_url, own / "home", inherit=os.environ
            )
            spec = actors.claude(
                str(CLI_DIR / "claude"),
                env={**home_env, MARKER_ENV: token, **(env or {})},
                cwd=str(own / "work"),
                tools=tools,
            )
            if system is not None:
                assert spec.with_system is not None
                spec = spec.with_system(system)
            async with open_supervisor(
                spec, retry=RetryConfig(max_attempts=1), timeouts=TimeoutConfig(total_execution=120)
            ) as sup:
                try:
                    results[label] = await sup.ask(scenario.prompt)
                except LLMError as error:
                    results[label] = error

        with trio.fail_after(HANG_GUARD_S):
            async with trio.open_nursery() as nursery:
                for label, scenario in scenarios.items():
                    nursery.start_soon(one, label, scenario)
        requests = [r for r in emulator.requests if r.operation == "generate"]
    assert live_processes_with_env(token) == []
    return {
        label: Outcome(
            results[label],
            tuple(r for r in requests if scenario.prompt in r.prompt or _carries(r, scenario)),
        )
        for label, scenario in scenarios.items()
    }


def _carries(request: RecordedRequest, scenario: Scenario) -> bool:
    """A follow-up request (the latest message is a tool result) of this scenario's call."""
    return any(scenario.prompt in m.text for m in request.messages)


def _scenarios(root: Path, calls: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Scenario]:
    """A scenario per label, with ``WORK`` / ``OUTSIDE`` in tool inputs naming its folders."""
    made = {}
    for label, (tool, tool_input) in calls.items():
        folders = _folders(root / label)
        filled = {
            key: value.replace("WORK", str(folders.work)).replace("OUTSIDE", str(folders.outside))
            for key, value in tool_input.items()
        }
        made[label] = Scenario(prompt=f"please do task {label}", tool=tool, tool_input=filled)
    return made


CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "read inside": ("Read", {"file_path": "WORK/inside.txt"}),
    "read outside": ("Read", {"file_path": "OUTSIDE/outside.txt"}),
    "grep outside": ("Grep", {"pattern": "OUTSIDE", "path": "OUTSIDE"}),
    "write inside": ("Write", {"file_path": "WORK/new.txt", "content": "written"}),
    "write outside": ("Write", {"file_path": "OUTSIDE/new.txt", "content": "written"}),
    "shell": ("Bash", {"command": "touch WORK/shell-ran; cat OUTSIDE/outside.txt"}),
}


def _pick(*labels: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {label: CALLS[label] for label in labels}


def _seen(outcomes: dict[str, Outcome]) -> str:
    return "\n".join(
        f"  {label}: {o.result!r} tool_results={o.tool_results}" for label, o in outcomes.items()
    )


async def test_claude_tools_none_offers_no_tool_and_no_tool_result_reaches_the_provider(
    tmp_path: Path,
) -> None:
    scenarios = _scenarios(tmp_path, _pick("read inside", "write inside", "shell"))
    outcomes = await _run(tmp_path, scenarios, tools="none")
    seen = _seen(outcomes)
    for label, outcome in outcomes.items():
        assert outcome.requests, f"{label}: the emulator never saw the call\n{seen}"
        assert all(r.tools == () for r in outcome.requests), seen  # no tool is even defined
        # Nothing ran. claude may answer a call to a tool it never offered with its own
        # refusal before the runtime stops it (seen under load); no tool output goes back.
        assert all(
            r.startswith("<tool_use_error>Error: No such tool available")
            for r in outcome.tool_results
        ), seen
        assert not any(INSIDE_TEXT in r or OUTSIDE_TEXT in r for r in outcome.tool_results), seen
        error = outcome.result
        # The model asked anyway: the runtime stopped claude (the second line of defence).
        assert isinstance(error, LLMError) and error.category is ErrorCategory.PERMANENT, seen
        assert f"'{scenarios[label].tool}'" in error.message and "'none'" in error.message
    assert not (tmp_path / "write inside" / "work" / "new.txt").exists()
    assert not (tmp_path / "shell" / "work" / "shell-ran").exists()


async def test_claude_tools_read_reads_inside_the_working_folder_only(tmp_path: Path) -> None:
    labels = ("read inside", "read outside", "grep outside", "write inside", "shell")
    outcomes = await _run(tmp_path, _scenarios(tmp_path, _pick(*labels)), tools="read")
    seen = _seen(outcomes)
    for outcome in outcomes.values():
        assert isinstance(outcome.result, Result), seen
        assert set(outcome.requests[0].tools) == {"Read", "Glob", "Grep"}, seen
        assert len(outcome.tool_results) == 1, seen  # the follow-up carried one result
    assert INSIDE_TEXT in outcomes["read inside"].tool_results[0], seen
    for label in ("read outside", "grep outside", "shell"):
        assert OUTSIDE_TEXT not in outcomes[label].tool_results[0], seen
    assert "haven't granted it" in outcomes["read outside"].tool_results[0], seen
    assert "No such tool available: Write" in outcomes["write inside"].tool_results[0], seen
    assert "No such tool available: Bash" in outcomes["shell"].tool_results[0], seen
    assert not (tmp_path / "write inside" / "work" / "new.txt").exists()
    assert not (tmp_path / "shell" / "work" / "shell-ran").exists()


async def test_claude_tools_edit_writes_inside_the_working_folder_only(tmp_path: Path) -> None:
    labels = ("write inside", "write outside", "read outside", "shell")
    outcomes = await _run(tmp_path, _scenarios(tmp_path, _pick(*labels)), tools="edit")
    seen = _seen(outcomes)
    for outcome in outcomes.values():
        assert isinstance(outcome.result, Result), seen
        assert "Bash" not in outcome.requests[0].tools and "Write" in outcome.requests[0].tools
    assert (tmp_path / "write inside" / "work" / "new.txt").read_text() == "written"
    assert not (tmp_path / "write outside" / "outside" / "new.txt").exists(), seen
    assert "haven't granted it" in outcomes["write outside"].tool_results[0], seen
    assert OUTSIDE_TEXT not in outcomes["read outside"].tool_results[0], seen
    assert "No such tool available: Bash" in outcomes["shell"].tool_results[0], seen
    assert not (tmp_path / "shell" / "work" / "shell-ran").exists()


async def test_claude_tools_full_runs_the_shell_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # IS_SANDBOX=1: claude's own consent to bypassPermissions when the tests run as root.
    with caplog.at_level(logging.WARNING, logger="llmsup.claude"):
        outcomes = await _run(
            tmp_path, _scenarios(tmp_path, _pick("shell")), tools="full", env={"IS_SANDBOX": "1"}
        )
    seen = _seen(outcomes)
    assert isinstance(outcomes["shell"].result, Result), seen
    assert "Bash" in outcomes["shell"].requests[0].tools
    assert OUTSIDE_TEXT in outcomes["shell"].tool_results[0], seen
    assert (tmp_path / "shell" / "work" / "shell-ran").exists()
    assert "tools='full'" in caplog.text


async def test_claude_system_prompt_arrives_in_the_system_field_and_requests_are_lean(
    tmp_path: Path,
) -> None:
    system = "You are a terse assistant. SYSTEM-MARK-51d2"
    sizes: dict[str, int] = {}
    async with open_emulator() as emulator:
        specs: dict[str, actors.CliSpec] = {}
        for label, system_prompt in (("default", None), ("with system", system)):
            own = tmp_path / label
            own.mkdir()
            env = cli_environment("claude", emulator.base_url, own / "home", inherit=os.environ)
            spec = actors.claude(str(CLI_DIR / "claude"), env=env, cwd=str(own))
            if system_prompt is not None:
                assert spec.with_system is not None
                spec = spec.with_system(system_prompt)
            specs[label] = spec

        async def ask(label: str) -> None:
            async with open_supervisor(specs[label], retry=RetryConfig(max_attempts=1)) as sup:
                result = await sup.ask(f"say hello ({label})")
            assert result.text == f"echo: say hello ({label})"

        with trio.fail_after(HANG_GUARD_S):
            async with trio.open_nursery() as nursery:
                for label in specs:
                    nursery.start_soon(ask, label)
        for label in specs:
            (request,) = [r for r in emulator.requests if r.prompt == f"say hello ({label})"]
            sizes[label] = request.body_bytes
            assert request.tools == ()
            if label == "with system":
                assert system in request.system
                # Replaced, not appended: claude's agent instructions are gone.
                assert "software engineering" not in request.system
                assert all(system not in m.text for m in request.messages if m.role == "user")
            else:
                assert "software engineering" in request.system  # claude's own instructions
    print(f"claude request bytes under tools='none': {sizes}")
    assert sizes["with system"] <= 8 * 1024, sizes
    assert sizes["with system"] < sizes["default"], sizes


async def test_claude_unknown_session_is_a_lost_session(tmp_path: Path) -> None:
    made_up = "3f2b8c1e-1111-4222-8333-444455556666"
    async with open_emulator() as emulator:
        env = cli_environment("claude", emulator.base_url, tmp_path / "home", inherit=os.environ)
        spec = actors.claude(str(CLI_DIR / "claude"), env=env, cwd=str(tmp_path))
        assert spec.session is not None
        async with open_supervisor(
            spec.session.resume(made_up), retry=RetryConfig(max_attempts=1)
        ) as sup:
            with trio.fail_after(HANG_GUARD_S), pytest.raises(LLMError) as info:
                await sup.ask("carry on")
    error = info.value
    assert error.lost_session == made_up, error
    assert error.category is ErrorCategory.PERMANENT
    assert error.message == (
        f"session {made_up} is not known to claude: No conversation found with session ID: "
        f"{made_up}"
    )


class Count(BaseModel):
    word: str
    count: int


async def test_claude_structured_output_works_under_tools_none(tmp_path: Path) -> None:
    rules: Sequence[EmulatorRule] = [
        EmulatorRule(match="count the words", reply='{"word": "apple", "count": 3}')
    ]
    async with open_emulator(rules) as emulator:
        env = cli_environment("claude", emulator.base_url, tmp_path / "home", inherit=os.environ)
        spec = actors.claude(str(CLI_DIR / "claude"), env=env, cwd=str(tmp_path))
        assert spec.tools == "none"
        async with open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup:
            with trio.fail_after(HANG_GUARD_S):
                result = await sup.ask("count the words: apple apple apple", output=Count)
        first = next(r for r in emulator.requests if "count the words" in r.prompt)
    assert result.data_as(Count) == Count(word="apple", count=3)
    assert first.tools == ("StructuredOutput",)  # the one tool claude offers, never blocked
