"""gemini's tool levels, native system prompt and lost sessions, without processes.

The recorded lines come from gemini 0.61.0 run against the provider emulator.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

import actors
from actors import ErrorCategory, LLMError, ProcessExit, ToolUse
from actors._clis._gemini import GeminiAdapter, GeminiClassifier, gemini_policy_file

TOOL_USE_LINE = (
    '{"type":"tool_use","timestamp":"2026-12-01T10:13:37.754Z","tool_name":"read_file",'
    '"tool_id":"read_file__read_file_1796120017689_0",'
    '"parameters":{"file_path":"/tmp/gx/tmpuc8_mnm5/w/n.txt"}}'
)
SESSION = "4f0c5a2e-1111-4222-8333-944455556666"
INVALID_SESSION_STDERR = (
    f'Error resuming session: Invalid session identifier "{SESSION}".\n'
    "  Searched for sessions in /tmp/gx/tmpuc8_mnm5/home/.gemini/tmp/w/chats.\n"
    "  Use --list-sessions to see available sessions, then use --resume {number}, "
    "--resume {uuid}, or --resume latest.\n"
)
NO_SESSIONS_STDERR = "Error resuming session: No previous sessions found for this project.\n"


def _spec(**options: object) -> actors.CliSpec:
    return actors.gemini("/bin/gemini", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("tools", ["none", "read", "edit"])
def test_each_limited_level_passes_its_admin_policy(tools: actors.ToolPolicy) -> None:
    spec = _spec(tools=tools)
    policy = gemini_policy_file(tools)
    assert policy is not None and policy.is_file()
    assert f"--admin-policy={policy}" in spec.argv
    assert "--approval-mode=yolo" not in spec.argv
    assert spec.tools == tools


def test_default_is_none_and_denies_every_tool() -> None:
    spec = _spec()
    assert spec.tools == "none"
    policy = gemini_policy_file("none")
    assert policy is not None
    text = policy.read_text()
    assert 'toolName = "*"' in text and 'decision = "deny"' in text
    assert "allow" not in text.replace("#", "\n#").split("[[rule]]", 1)[1]


def test_read_allows_no_writing_or_shell_and_edit_no_shell() -> None:
    read, edit = gemini_policy_file("read"), gemini_policy_file("edit")
    assert read is not None and edit is not None
    rules = read.read_text().split("[[rule]]", 1)[1]
    for tool in ("write_file", "replace", "run_shell_command", "web_fetch"):
        assert tool not in rules
    assert "write_file" in edit.read_text()
    assert "run_shell_command" not in edit.read_text()


def test_full_is_yolo_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmsup.gemini"):
        spec = _spec(tools="full")
    assert "--approval-mode=yolo" in spec.argv
    assert not any(a.startswith("--admin-policy") for a in spec.argv)
    assert any("tools='full'" in r.getMessage() for r in caplog.records)


def test_none_warns_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmsup.gemini"):
        _spec()
    assert caplog.records == []


@pytest.mark.parametrize(
    "arg", ["--yolo", "-y", "--approval-mode=yolo", "--approval-mode", "--admin-policy=x"]
)
def test_extra_args_cannot_widen_a_limited_level(arg: str) -> None:
    with pytest.raises(ValueError, match="would change which tools run"):
        _spec(extra_args=[arg])
    _spec(extra_args=[arg], tools="full")  # allowed when everything is allowed anyway


def test_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="tools must be one of"):
        _spec(tools="some")


def test_resumed_spec_keeps_the_level_and_system() -> None:
    spec = _spec(tools="read")
    assert spec.with_system is not None
    system = spec.with_system("be brief")
    assert system.session is not None
    resumed = system.session.resume(SESSION)
    assert resumed.tools == "read"
    assert resumed.env["GEMINI_SYSTEM_MD"] == system.env["GEMINI_SYSTEM_MD"]
    assert f"--resume={SESSION}" in resumed.argv


def test_with_system_writes_a_private_file() -> None:
    spec = _spec()
    assert "GEMINI_SYSTEM_MD" not in spec.env
    assert spec.with_system is not None
    text = "You are terse.\nLine two: ${not_a_variable} stays."
    path = Path(spec.with_system(text).env["GEMINI_SYSTEM_MD"])
    assert path.read_text() == text
    folder = path.parent.lstat()
    assert folder.st_uid == os.getuid() and stat.S_IMODE(folder.st_mode) == 0o700
    again = Path(spec.with_system(text).env["GEMINI_SYSTEM_MD"])
    assert again == path  # one file per distinct text
    assert Path(spec.with_system("other").env["GEMINI_SYSTEM_MD"]) != path


def test_recorded_tool_use_line_becomes_a_tool_use() -> None:
    events = GeminiAdapter().parse_line(TOOL_USE_LINE)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ToolUse)
    assert event.name == "read_file"
    assert event.id == "read_file__read_file_1796120017689_0"
    assert event.input == {"file_path": "/tmp/gx/tmpuc8_mnm5/w/n.txt"}


def _exit(stderr: str, code: int = 42) -> ProcessExit:
    return ProcessExit(cli="gemini", exit_code=code, stderr_tail=stderr, events=(), stdin_bytes=1)


@pytest.mark.parametrize(
    ("stderr", "words"),
    [
        (INVALID_SESSION_STDERR, f'Invalid session identifier "{SESSION}".'),
        (NO_SESSIONS_STDERR, "No previous sessions found for this project."),
    ],
)
def test_unknown_session_is_lost(stderr: str, words: str) -> None:
    error = GeminiClassifier(resume=SESSION).classify(_exit(stderr))
    assert isinstance(error, LLMError)
    assert error.lost_session == SESSION
    assert error.category is ErrorCategory.PERMANENT
    assert error.message == f"session {SESSION} is not known to gemini: {words}"
    assert "--list-sessions" in error.stderr or "No previous" in error.stderr


def test_the_spec_classifier_knows_the_session() -> None:
    spec = _spec(resume=SESSION)
    error = spec.classifier.classify(_exit(INVALID_SESSION_STDERR))
    assert error is not None and error.lost_session == SESSION


def test_other_exit_42_is_not_a_lost_session() -> None:
    error = GeminiClassifier(resume=SESSION).classify(_exit("No input provided via stdin"))
    assert error is not None and error.lost_session is None
    fresh = GeminiClassifier().classify(_exit(NO_SESSIONS_STDERR))
    assert fresh is not None and fresh.lost_session is None
