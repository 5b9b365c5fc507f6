"""codex as an agent, without processes: tool items become `ToolUse`, the tool levels map
onto codex's own options, the system prompt goes to ``model_instructions_file``, and an
unknown thread is a lost session. The sample lines are real codex 0.169.0 output (against
a local server); the end-to-end proof is tests/real_clis/test_codex_agent.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import actors
from actors import CodexAdapter, CodexClassifier, ErrorCategory, ToolResult, ToolUse
from actors._clis._codex import (
    POLICY_PROFILE,
    check_tool_args,
    codex_tool_args,
    configured_mcp_servers,
    lost_session_words,
    sandbox_helper_dirs,
)

from .transcripts import events_of, failure_of, feed, process_exit

# A provider-side web search, as codex 0.169.0 printed it (the item has "id" twice).
WEB_SEARCH_LINES = [
    '{"type":"item.started","item":{"id":"item_1","type":"web_search","id":"ws_1",'
    '"query":"weather in paris","action":{"type":"search","query":"weather in paris"}}}',
    '{"type":"item.completed","item":{"id":"item_1","type":"web_search","id":"ws_1",'
    '"query":"weather in paris","action":{"type":"search","query":"weather in paris"}}}',
]
# A shell command the model asked for through exec_command.
COMMAND_LINES = [
    '{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":'
    '"/bin/bash -lc \'cat /tmp/cx/outside.txt\'","aggregated_output":"",'
    '"exit_code":null,"status":"in_progress"}}',
    '{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":'
    '"/bin/bash -lc \'cat /tmp/cx/outside.txt\'","aggregated_output":"OUTSIDE-SECRET\\n",'
    '"exit_code":0,"status":"completed"}}',
]
# `codex exec resume -- ID -` for a thread it never saw: stderr, exit code 1.
MADE_UP = "0199a213-81c0-7800-8aa1-bbab2a035a53"
LOST_STDERR = (
    "Error: thread/resume: thread/resume failed: no rollout found for thread id "
    f"{MADE_UP} (code -32600)\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n"
)


def test_a_web_search_item_is_one_tool_use() -> None:
    events = feed(CodexAdapter(), WEB_SEARCH_LINES)
    (use,) = events_of(events, ToolUse)
    assert (use.id, use.name) == ("ws_1", "web_search")
    assert use.input["query"] == "weather in paris"


def test_a_completed_only_tool_item_is_still_a_tool_use() -> None:
    events = feed(CodexAdapter(), WEB_SEARCH_LINES[1:])
    assert [u.name for u in events_of(events, ToolUse)] == ["web_search"]
    line = (
        '{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":'
        '[{"path":"/w/a.txt","kind":"add"}],"status":"completed"}}'
    )
    (use,) = events_of(feed(CodexAdapter(), [line]), ToolUse)
    assert (use.name, use.input) == (
        "file_change",
        {"changes": [{"path": "/w/a.txt", "kind": "add"}]},
    )


def test_a_command_is_a_tool_use_as_soon_as_it_starts() -> None:
    adapter = CodexAdapter()
    (use,) = adapter.parse_line(COMMAND_LINES[0])
    assert isinstance(use, ToolUse) and use.name == "command_execution"
    (result,) = adapter.parse_line(COMMAND_LINES[1])
    assert isinstance(result, ToolResult) and result.content == "OUTSIDE-SECRET\n"


def test_an_unknown_thread_is_a_lost_session() -> None:
    assert lost_session_words(LOST_STDERR) == (
        f"thread/resume: thread/resume failed: no rollout found for thread id {MADE_UP} "
        "(code -32600)"
    )
    exit = process_exit([], 1, LOST_STDERR, cli="codex")
    error = failure_of(CodexClassifier(resume=MADE_UP), exit)
    assert error.category is ErrorCategory.PERMANENT
    assert error.lost_session == MADE_UP
    assert error.message == (
        f"session {MADE_UP} is not known to codex: thread/resume: thread/resume failed: "
        f"no rollout found for thread id {MADE_UP} (code -32600)"
    )
    assert error.stderr == LOST_STDERR  # the evidence stays
    # Not resuming: the same words are a plain PERMANENT failure, no session lost.
    plain = failure_of(CodexClassifier(), exit)
    assert plain.category is ErrorCategory.PERMANENT and plain.lost_session is None
    # Its words, not the last frame of the stack backtrace that follows them.
    assert plain.message == (
        "codex exited with code 1: thread/resume: thread/resume failed: no rollout found "
        f"for thread id {MADE_UP} (code -32600)"
    )


def test_the_resumed_spec_classifies_its_own_thread(tmp_path: Path) -> None:
    spec = actors.codex("codex", env={"CODEX_HOME": str(tmp_path)})
    assert spec.session is not None
    resumed = spec.session.resume(MADE_UP)
    error = resumed.classifier.classify(process_exit([], 1, LOST_STDERR, cli="codex"))
    assert error is not None and error.lost_session == MADE_UP


def _config(args: tuple[str, ...]) -> list[str]:
    return [a.removeprefix("--config=") for a in args if a.startswith("--config=")]


def test_none_turns_every_tool_off_and_grants_no_file() -> None:
    args = codex_tool_args("none")
    config = _config(args)
    assert f"permissions.{POLICY_PROFILE}.filesystem={{}}" in config
    assert f'default_permissions="{POLICY_PROFILE}"' in config
    assert 'approval_policy="never"' in config and 'web_search="disabled"' in config
    disabled = {a.removeprefix("--disable=") for a in args if a.startswith("--disable=")}
    assert {"shell_tool", "unified_exec", "multi_agent", "apps", "image_generation"} <= disabled
    assert "include_environment_context=false" in config
    assert not any("danger" in a for a in args)


@pytest.mark.parametrize(("tools", "access"), [("read", "read"), ("edit", "write")])
def test_read_and_edit_confine_commands_to_the_working_folder(
    tools: actors.ToolPolicy, access: str
) -> None:
    args = codex_tool_args(tools, helper_dirs=("/opt/codex/vendor/x86",))
    (filesystem,) = [c for c in _config(args) if c.startswith(f"permissions.{POLICY_PROFILE}")]
    assert filesystem == (
        f'permissions.{POLICY_PROFILE}.filesystem={{":minimal"="read",'
        f'"/opt/codex/vendor/x86"="read",":workspace_roots"={{"."="{access}"}}}}'
    )
    assert "--disable=shell_tool" not in args  # commands run, inside the sandbox
    assert "--disable=multi_agent" in args and 'web_search="disabled"' in _config(args)


def test_full_bypasses_the_sandbox_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert codex_tool_args("full") == ("--dangerously-bypass-approvals-and-sandbox",)
    with caplog.at_level(logging.WARNING, logger="llmsup.codex"):
        spec = actors.codex("codex", tools="full")
    assert spec.tools == "full"
    assert [r.levelno for r in caplog.records if r.name == "llmsup.codex"] == [logging.WARNING]
    with caplog.at_level(logging.WARNING, logger="llmsup.codex"):
        caplog.clear()
        actors.codex("codex", tools="read")
    assert not caplog.records


def test_the_spec_carries_its_level_and_refuses_unknown_ones() -> None:
    assert actors.codex("codex").tools == "none"
    assert "--config=permissions.llmsup.filesystem={}" in actors.codex("codex").argv
    with pytest.raises(ValueError, match="codex: tools must be one of"):
        actors.codex("codex", tools="all")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "extra",
    [
        ["--sandbox", "danger-full-access"],
        ["-s", "workspace-write"],
        ["--add-dir=/"],
        ["--dangerously-bypass-approvals-and-sandbox"],
        ["-c", 'sandbox_mode="danger-full-access"'],
        ['--config=default_permissions=":danger-full-access"'],
        ["-cfeatures.shell_tool=true"],
        ["--enable", "shell_tool"],
    ],
)
def test_extra_args_cannot_widen_the_level(extra: list[str]) -> None:
    with pytest.raises(ValueError, match="would change which tools run"):
        actors.codex("codex", extra_args=extra)
    check_tool_args("full", extra)  # anything goes under "full"


def test_harmless_extra_args_pass() -> None:
    check_tool_args("none", ["-c", 'model_reasoning_effort="low"', "--ephemeral"])


def test_mcp_servers_of_the_user_config_are_disabled(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[mcp_servers.docs]\ncommand = "docs-server"\n[mcp_servers.git-tool]\ncommand = "g"\n'
    )
    env = {"CODEX_HOME": str(tmp_path)}
    assert configured_mcp_servers(env) == ("docs", "git-tool")
    argv = actors.codex("codex", env=env, tools="edit").argv
    assert "--config=mcp_servers.docs.enabled=false" in argv
    assert "--config=mcp_servers.git-tool.enabled=false" in argv
    assert not any("mcp_servers" in a for a in actors.codex("codex", env=env, tools="full").argv)
    (tmp_path / "config.toml").write_text('[mcp_servers."a.b"]\ncommand = "x"\n')
    with pytest.raises(ValueError, match="cannot be disabled"):
        actors.codex("codex", env=env)


def test_the_sandbox_may_read_the_native_binary_behind_the_npm_launcher(tmp_path: Path) -> None:
    modules = tmp_path / "node_modules"
    launcher = modules / "@openai" / "codex" / "bin" / "codex.js"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("")
    vendor = modules / "@openai" / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl"
    (vendor / "bin").mkdir(parents=True)
    (modules / ".bin").mkdir()
    (modules / ".bin" / "codex").symlink_to(launcher)
    assert sandbox_helper_dirs(str(modules / ".bin" / "codex")) == (str(vendor.resolve()),)
    native = tmp_path / "opt" / "codex"
    native.parent.mkdir()
    native.write_text("")
    assert sandbox_helper_dirs(str(native)) == (str(native.parent.resolve()),)


def test_with_system_passes_a_private_instructions_file() -> None:
    spec = actors.codex("codex", tools="read")
    assert spec.with_system is not None
    given = spec.with_system("You are terse.\n--not-a-flag")
    (flag,) = [a for a in given.argv if "model_instructions_file" in a]
    path = Path(flag.split("=", 2)[2].strip('"'))
    assert path.read_text() == "You are terse.\n--not-a-flag"
    assert path.stat().st_mode & 0o077 == 0 or path.parent.stat().st_mode & 0o077 == 0
    assert given.tools == "read" and given.argv[-2:] == ("--", "-")
    # The resumed variant keeps the instructions and the level.
    assert given.session is not None
    resumed = given.session.resume(MADE_UP)
    assert flag in resumed.argv and resumed.tools == "read"
    with pytest.raises(ValueError, match="empty"):
        spec.with_system("  ")
