"""The real codex as an agent, against the emulator: what each tool level lets run.

The emulator's model asks for a tool (``Fault(kind="tool_call")``: codex's own
``exec_command`` shell tool, or ``view_image``) and the follow-up request shows what codex
sent back (``RecordedRequest.tool_results``): under "none" no file's content may ever
reach the provider. Also: the system prompt replaces codex's agent instructions (and
keeps requests lean), an unknown thread is classified as a lost session, and structured
output works end to end. Each test has its own home and folder; ``fail_after`` only
guards against a hang.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
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

pytestmark = pytest.mark.skipif(not _installed("codex"), reason=SKIP_REASON)

HANG_GUARD_S = 150
TIMEOUTS = TimeoutConfig(total_execution=90, chunk_receive=60, first_output=60)
INSIDE_SECRET = "inside-secret-7d3a"
OUTSIDE_SECRET = "outside-secret-2c8f"


def _png() -> bytes:
    """A 1x1 PNG, so that ``view_image`` has a real image to read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


class Scene:
    """A scratch home, a working folder with files in it, and files outside it."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.cwd = root / "work"
        self.cwd.mkdir(parents=True)
        self.inside = self.cwd / "notes.txt"
        self.inside.write_text(INSIDE_SECRET + "\n")
        self.inside_image = self.cwd / "inside.png"
        self.inside_image.write_bytes(_png())
        elsewhere = root / "elsewhere"
        elsewhere.mkdir()
        self.outside = elsewhere / "private.txt"
        self.outside.write_text(OUTSIDE_SECRET + "\n")
        self.outside_image = elsewhere / "outside.png"
        self.outside_image.write_bytes(_png())
        self.written_inside = self.cwd / "made-inside.txt"
        self.written_outside = elsewhere / "made-outside.txt"
        self.token = marker()
        self.env = cli_environment("codex", base_url, root / "home", inherit=os.environ)
        self.env[MARKER_ENV] = self.token

    def spec(self, **options: Any) -> actors.CliSpec:
        return actors.codex(str(CLI_DIR / "codex"), env=self.env, cwd=str(self.cwd), **options)

    def rules(self) -> list[EmulatorRule]:
        def shell(match: str, command: str) -> EmulatorRule:
            tool = Fault(kind="tool_call", tool_name="exec_command", tool_input={"cmd": command})
            return EmulatorRule(match=match, reply="done running", fault=tool)

        def image(match: str, path: Path) -> EmulatorRule:
            tool = Fault(kind="tool_call", tool_name="view_image", tool_input={"path": str(path)})
            return EmulatorRule(match=match, reply="done looking", fault=tool)

        return [
            shell("read inside", f"cat {self.inside}"),
            shell("read outside", f"cat {self.outside}"),
            shell("write inside", f"echo x > {self.written_inside}"),
            shell("write outside", f"echo x > {self.written_outside}"),
            image("image inside", self.inside_image),
            image("image outside", self.outside_image),
        ]


PROMPTS = (
    "read inside please",
    "read outside please",
    "write inside please",
    "write outside please",
    "image inside please",
    "image outside please",
)


async def _ask(sup: Any, prompt: str, **options: Any) -> Result | LLMError:
    try:
        result: Result = await sup.ask(prompt, **options)
    except LLMError as error:
        return error
    return result


def _results(requests: list[RecordedRequest], prompt: str) -> str:
    return "\n".join(t for r in requests if r.prompt == prompt for t in r.tool_results)


async def _run_level(tools: actors.ToolPolicy, tmp_path: Path) -> dict[str, Any]:
    """Ask for every tool of `Scene.rules`, one call each; record everything."""
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            emulator.set_rules(scene.rules())
            outcomes: dict[str, Any] = {"scene": scene}
            async with open_supervisor(
                scene.spec(tools=tools), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                for prompt in PROMPTS:
                    outcomes[prompt] = await _ask(sup, prompt)
            outcomes["requests"] = list(emulator.requests)
            outcomes["alive"] = live_processes_with_env(scene.token)
    return outcomes


def _seen(outcomes: dict[str, Any]) -> str:
    lines = [f"{k}: {v!r}" for k, v in outcomes.items() if k not in ("requests", "scene")]
    lines += [f"request {r.prompt!r}: {r.tool_results!r}" for r in outcomes["requests"]]
    return "\n".join(lines)


async def test_none_runs_nothing(tmp_path: Path) -> None:
    outcomes = await _run_level("none", tmp_path)
    requests: list[RecordedRequest] = outcomes["requests"]
    scene: Scene = outcomes["scene"]
    seen = _seen(outcomes)
    # No shell, web search, sub-agents, goals: only the two tools codex 0.169 offers
    # whatever the config (see `actors.codex`), and neither can reach a file.
    assert requests and {r.tools for r in requests} == {("request_user_input", "view_image")}, seen
    everything = "\n".join(t for r in requests for t in r.tool_results)
    assert INSIDE_SECRET not in everything and OUTSIDE_SECRET not in everything, seen
    assert "base64" not in everything, seen  # no image went back either
    for prompt in ("read inside please", "read outside please"):
        assert _results(requests, prompt) == "unsupported call: exec_command", seen
    for prompt, path in (
        ("image inside please", scene.inside_image),
        ("image outside please", scene.outside_image),
    ):
        assert f"unable to locate image at `{path}`" in _results(requests, prompt), seen
    assert not scene.written_inside.exists() and not scene.written_outside.exists()
    assert outcomes["alive"] == []


async def test_read_reads_inside_only(tmp_path: Path) -> None:
    outcomes = await _run_level("read", tmp_path)
    requests: list[RecordedRequest] = outcomes["requests"]
    scene: Scene = outcomes["scene"]
    seen = _seen(outcomes)
    assert all("exec_command" in r.tools for r in requests), seen
    assert all("web_search" not in r.tools for r in requests), seen
    assert INSIDE_SECRET in _results(requests, "read inside please"), seen
    assert "base64" in _results(requests, "image inside please"), seen
    outside = _results(requests, "read outside please")
    assert OUTSIDE_SECRET not in outside and "No such file" in outside, seen
    assert "base64" not in _results(requests, "image outside please"), seen
    assert "Read-only file system" in _results(requests, "write inside please"), seen
    assert not scene.written_inside.exists() and not scene.written_outside.exists()
    assert outcomes["alive"] == []


async def test_edit_writes_inside_only(tmp_path: Path) -> None:
    outcomes = await _run_level("edit", tmp_path)
    requests: list[RecordedRequest] = outcomes["requests"]
    scene: Scene = outcomes["scene"]
    seen = _seen(outcomes)
    assert INSIDE_SECRET in _results(requests, "read inside please"), seen
    assert OUTSIDE_SECRET not in _results(requests, "read outside please"), seen
    assert scene.written_inside.read_text() == "x\n", seen
    assert not scene.written_outside.exists(), seen
    assert outcomes["alive"] == []


async def test_full_runs_anything_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmsup.codex"):
        outcomes = await _run_level("full", tmp_path)
    assert any("tools='full'" in r.getMessage() for r in caplog.records)
    requests: list[RecordedRequest] = outcomes["requests"]
    scene: Scene = outcomes["scene"]
    seen = _seen(outcomes)
    assert OUTSIDE_SECRET in _results(requests, "read outside please"), seen
    assert scene.written_outside.read_text() == "x\n", seen
    assert outcomes["alive"] == []


async def test_system_prompt_replaces_the_agent_instructions(tmp_path: Path) -> None:
    system = "You are a terse assistant. Marker: zebra-sys-41."
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            async with open_supervisor(
                scene.spec(), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                plain = await sup.ask("say hi")
                given = await sup.ask("say hi again", system=system)
            requests = list(emulator.requests)
    assert plain.text == "echo: say hi" and given.text == "echo: say hi again"
    (before,) = [r for r in requests if r.prompt == "say hi"]
    (after,) = [r for r in requests if r.prompt == "say hi again"]
    assert "You are a coding agent running in the Codex CLI" in before.system
    assert after.system == system  # codex's own instructions are gone
    assert all(system not in m.text for m in after.messages if m.role == "user")
    assert after.body_bytes <= 8 * 1024, after.body_bytes
    assert before.body_bytes > after.body_bytes + 16 * 1024  # its ~17.7 KB instructions


async def test_unknown_thread_is_a_lost_session(tmp_path: Path) -> None:
    made_up = "0199a213-81c0-7800-8aa1-bbab2a035a53"
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            spec = scene.spec()
            assert spec.session is not None
            async with open_supervisor(
                spec.session.resume(made_up), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                lost = await _ask(sup, "hello again")
    assert isinstance(lost, LLMError), lost
    assert lost.category is ErrorCategory.PERMANENT
    assert lost.lost_session == made_up
    assert lost.message.startswith(
        f"session {made_up} is not known to codex: "
        f"thread/resume: thread/resume failed: no rollout found for thread id {made_up}"
    ), lost.message


class Verdict(BaseModel):
    label: str
    score: int


async def test_structured_output_end_to_end(tmp_path: Path) -> None:
    rule = EmulatorRule(match="classify", reply='{"label": "spam", "score": 9}')
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([rule]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            async with open_supervisor(
                scene.spec(), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                result = await sup.ask("classify this message", output=Verdict)
            requests = list(emulator.requests)
    assert result.data == Verdict(label="spam", score=9)
    # --output-schema reached the provider as the response format.
    (request,) = [r for r in requests if "classify" in r.prompt]
    body = request.body
    assert isinstance(body, dict) and "text" in body, (
        sorted(body) if isinstance(body, dict) else body
    )


async def test_mcp_servers_of_the_user_config_never_start_below_full(tmp_path: Path) -> None:
    with trio.fail_after(HANG_GUARD_S):
        async with open_emulator([]) as emulator:
            scene = Scene(tmp_path, emulator.base_url)
            started = tmp_path / "mcp-started"
            config = Path(scene.env["CODEX_HOME"]) / "config.toml"
            config.write_text(
                config.read_text() + '\n[mcp_servers.probe]\ncommand = "sh"\n'
                f'args = ["-c", "touch {started}"]\n'
            )
            async with open_supervisor(
                scene.spec(tools="edit"), retry=RetryConfig(max_attempts=1), timeouts=TIMEOUTS
            ) as sup:
                result = await sup.ask("say hi")
    assert result.text == "echo: say hi"
    assert not started.exists()  # codex started without it
