"""claude's tool policy, native system prompt and lost sessions, without processes.

The recorded lines come from claude 2.1.197 run against the provider emulator (see
tests/real_clis/test_claude_agent.py for the same behaviour with the real binary).
"""

from __future__ import annotations

import logging

import pytest

import actors
from actors import ClaudeAdapter, ClaudeClassifier, ErrorCategory, ToolUse
from actors._clis._claude import lost_session_of
from actors._verdict import forbidden_tool

from .transcripts import events_of, failure_of, feed, process_exit

# `claude -p --resume=3f2b8c1e-... ` for a session the scratch home never had: exit 1, this
# one result line on stdout, and the same words on stderr.
LOST_ID = "3f2b8c1e-1111-4222-8333-444455556666"
LOST_RESULT = (
    '{"type":"result","subtype":"error_during_execution","duration_ms":0,"duration_api_ms":0,'
    '"is_error":true,"num_turns":0,"stop_reason":null,"session_id":"' + LOST_ID + '",'
    '"total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,'
    '"cache_read_input_tokens":0,"output_tokens":0,"server_tool_use":{"web_search_requests":0,'
    '"web_fetch_requests":0},"service_tier":"standard","cache_creation":'
    '{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":"",'
    '"iterations":[],"speed":"standard"},"modelUsage":{},"permission_denials":[],'
    '"uuid":"4b2c6610-9754-42a7-b6e2-b6a58ce3dfb2","errors":["No conversation found with '
    "session ID: " + LOST_ID + '"]}'
)
LOST_STDERR = f"No conversation found with session ID: {LOST_ID}\n"
# `--resume=not-a-uuid`: neither a UUID nor a stored session's title.
NOT_A_UUID_RESULT = (
    '{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,'
    '"session_id":"350a8823-af16-4267-9b65-04e30f3b77c7","errors":["Error: --resume requires '
    "a valid session ID or session title when used with --print. Usage: claude -p --resume "
    '<session-id|title>. Provided value \\"not-a-uuid\\" is not a UUID and does not match any '
    'session title."]}'
)
# An assistant line asking for a tool (as claude prints it after the emulator's tool_call).
TOOL_USE_LINE = (
    '{"type":"assistant","message":{"id":"msg_emu_1","type":"message","role":"assistant",'
    '"model":"claude-opus-4-8","content":[{"type":"tool_use","id":"toolu_emu_1","name":"Read",'
    '"input":{"file_path":"/etc/hostname"}}],"stop_reason":null},"parent_tool_use_id":null,'
    '"session_id":"s1"}'
)


def _flags(spec: actors.CliSpec) -> list[str]:
    return [a for a in spec.argv if a.startswith(("--tools", "--permission-mode", "--strict"))]


def test_claude_tool_policy_none_is_the_default_and_defines_no_tool() -> None:
    spec = actors.claude("claude")
    assert spec.tools == "none"
    assert spec.permitted_tools == frozenset({"StructuredOutput"})
    assert _flags(spec) == ["--tools=", "--strict-mcp-config"]
    # Every variant keeps the policy: resumed, warm, with a schema, with a system prompt.
    assert spec.session is not None and spec.session.warm is not None
    assert spec.output_schema is not None and spec.with_system is not None
    resumed = spec.session.resume("0b485b1c-7e7e-48f5-9ead-b9f1aad15867")
    warm = spec.session.warm("0b485b1c-7e7e-48f5-9ead-b9f1aad15867")
    for variant in (resumed, spec.output_schema({"type": "object"}), spec.with_system("s")):
        assert variant.tools == "none"
        assert _flags(variant) == ["--tools=", "--strict-mcp-config"]
        assert variant.permitted_tools == frozenset({"StructuredOutput"})
    assert "--tools=" in warm.argv


@pytest.mark.parametrize(
    ("level", "flags"),
    [
        ("read", ["--tools=Read,Glob,Grep", "--permission-mode=default", "--strict-mcp-config"]),
        (
            "edit",
            [
                "--tools=Read,Glob,Grep,Edit,Write,NotebookEdit",
                "--permission-mode=acceptEdits",
                "--strict-mcp-config",
            ],
        ),
    ],
)
def test_claude_tool_levels_map_onto_claude_flags(
    level: actors.ToolPolicy, flags: list[str]
) -> None:
    spec = actors.claude("claude", tools=level)
    assert spec.tools == level
    assert _flags(spec) == flags


def test_claude_full_tools_warn_and_bypass_permissions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmsup.claude"):
        spec = actors.claude("claude", tools="full", env={"IS_SANDBOX": "1"})
    assert _flags(spec) == ["--permission-mode=bypassPermissions"]
    assert [r.levelno for r in caplog.records if r.name == "llmsup.claude"] == [logging.WARNING]
    assert "tools='full'" in caplog.text
    with caplog.at_level(logging.WARNING, logger="llmsup.claude"):
        caplog.clear()
        actors.claude("claude")
    assert not caplog.records  # only "full" warns


def test_claude_full_tools_as_root_without_a_sandbox_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    with pytest.raises(ValueError, match=r"claude: tools='full'.*root"):
        actors.claude("claude", tools="full")
    actors.claude("claude", tools="full", env={"IS_SANDBOX": "1"})  # claude's own escape
    for not_one in ("yes", "true"):  # what claude itself refuses as root
        monkeypatch.setenv("IS_SANDBOX", not_one)
        with pytest.raises(ValueError, match=r"claude: tools='full'.*root"):
            actors.claude("claude", tools="full")


def test_claude_unknown_tool_policy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"claude: tools must be one of .*'some'"):
        actors.claude("claude", tools="some")  # type: ignore[arg-type]


def test_claude_with_system_passes_the_system_prompt_natively() -> None:
    spec = actors.claude("claude", append_system_prompt="more")
    assert spec.with_system is not None
    native = spec.with_system("- you are terse")
    assert "--system-prompt=- you are terse" in native.argv
    assert "--append-system-prompt=more" in native.argv
    assert not any(a.startswith("--system-prompt") for a in spec.argv)
    assert native.build_argv("hello") == list(native.argv)  # the prompt still goes to stdin


def test_claude_tool_use_line_is_a_tool_use_event_the_runtime_stops() -> None:
    events = feed(ClaudeAdapter(), [TOOL_USE_LINE])
    (use,) = events_of(events, ToolUse)
    assert (use.id, use.name, use.input) == ("toolu_emu_1", "Read", {"file_path": "/etc/hostname"})
    spec = actors.claude("claude")
    failure = forbidden_tool(spec, use)
    assert failure is not None and "'Read'" in failure.message
    structured = ToolUse(id="t", name="StructuredOutput", input={"n": 1})
    assert forbidden_tool(spec, structured) is None  # structured output is never blocked


def test_claude_unknown_session_is_a_lost_session() -> None:
    events = feed(ClaudeAdapter(), [LOST_RESULT])
    error = failure_of(ClaudeClassifier(), process_exit(events, 1, LOST_STDERR, cli="claude"))
    assert error.lost_session == LOST_ID
    assert error.category is ErrorCategory.PERMANENT
    assert error.message == (
        f"session {LOST_ID} is not known to claude: No conversation found with session ID: "
        f"{LOST_ID}"
    )
    # Seen on stderr alone (no result line) it is the same.
    alone = failure_of(ClaudeClassifier(), process_exit([], 1, LOST_STDERR, cli="claude"))
    assert alone.lost_session == LOST_ID


def test_claude_resume_value_that_is_no_session_is_a_lost_session() -> None:
    events = feed(ClaudeAdapter(), [NOT_A_UUID_RESULT])
    error = failure_of(ClaudeClassifier(), process_exit(events, 1, cli="claude"))
    assert error.lost_session == "not-a-uuid"
    assert error.message.startswith("session not-a-uuid is not known to claude: Error: --resume")


def test_claude_other_failures_have_no_lost_session() -> None:
    line = (
        '{"type":"result","subtype":"error_max_turns","is_error":true,"session_id":"x","errors":[]}'
    )
    error = failure_of(ClaudeClassifier(), process_exit(feed(ClaudeAdapter(), [line]), 1))
    assert error.lost_session is None
    assert lost_session_of(["API Error: Request rejected (429)"]) is None
