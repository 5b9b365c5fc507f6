"""Argv safety for every CLI spec: the prompt can never become a flag; each factory's
argv and environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import actors
from actors import gemini_stderr_watch
from actors._clis._codex import codex_tool_args
from actors._clis._gemini import gemini_policy_file

TRICKY_PROMPTS = [
    "--help",
    "-p",
    "-",
    "--",
    "--model x",
    "--prompt=evil",
    "$(touch y)",
    "`touch z`",
    "; rm -rf x",
    "a b\tc\nd",
    "ünïcödé ✓",
    "",
]


FACTORIES: dict[str, Callable[..., actors.CliSpec]] = {
    "claude": actors.claude,
    "codex": actors.codex,
    "gemini": actors.gemini,
}


@pytest.mark.parametrize("cli", sorted(FACTORIES))
@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_prompts_go_to_stdin_verbatim_and_never_into_argv(cli: str, prompt: str) -> None:
    spec = FACTORIES[cli]("/opt/bin/" + cli)
    assert spec.prompt_via == "stdin"
    assert spec.build_argv(prompt) == list(spec.argv)  # the same argv for every prompt
    payload = spec.stdin_payload(prompt)
    if cli == "claude":  # one stream-json user message line (--input-format stream-json)
        assert payload is not None and payload.endswith(b"\n") and payload.count(b"\n") == 1
        message = json.loads(payload)
        assert message == {"type": "user", "message": {"role": "user", "content": prompt}}
    else:
        assert payload == prompt.encode("utf-8")
    assert spec.argv[0] == "/opt/bin/" + cli


def test_claude_argv() -> None:
    spec = actors.claude(
        "claude",
        model="sonnet",
        system_prompt="- be terse",
        append_system_prompt="--help",
        max_turns=3,
        resume="0b485b1c-7e7e-48f5-9ead-b9f1aad15867",
        extra_args=["--allowedTools", "Read"],
        env={"ANTHROPIC_API_KEY": "k"},
    )
    assert spec.build_argv("--model x") == [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--input-format",  # the prompt is a stream-json user message on stdin
        "stream-json",
        "--include-partial-messages",
        "--tools=",  # tools="none" (the default): no tool is defined at all
        "--strict-mcp-config",
        "--model=sonnet",
        "--system-prompt=- be terse",  # a value starting with "-" stays a value
        "--append-system-prompt=--help",
        "--max-turns=3",
        "--resume=0b485b1c-7e7e-48f5-9ead-b9f1aad15867",
        "--allowedTools",
        "Read",
    ]
    assert spec.env == {"CLAUDE_CODE_MAX_RETRIES": "0", "ANTHROPIC_API_KEY": "k"}
    assert "--include-partial-messages" not in actors.claude("c", partial_messages=False).argv
    assert (
        actors.claude("c", env={"CLAUDE_CODE_MAX_RETRIES": "3"}).env["CLAUDE_CODE_MAX_RETRIES"]
        == "3"
    )
    with pytest.raises(ValueError, match="session id"):
        actors.claude("c", resume="--help")
    with pytest.raises(ValueError, match="max_turns"):
        actors.claude("c", max_turns=0)


def test_codex_argv_and_retry_overrides(tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    spec = actors.codex("codex", model="gpt-x", cwd="/work/-dir", env={"CODEX_HOME": str(home)})
    assert spec.build_argv("-") == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--model=gpt-x",
        "--cd=/work/-dir",
        *codex_tool_args("none"),  # tools="none" (the default): see test_codex_tools.py
        "--",
        "-",
    ]
    assert spec.cwd == "/work/-dir"
    assert f"--cd={os.path.abspath('rel')}" in actors.codex("codex", cwd="rel").argv
    # A provider defined in config.toml gets its own retries turned off.
    (home / "config.toml").write_text(
        'model_provider = "local"\n[model_providers.local]\nname = "local"\n'
        'base_url = "http://127.0.0.1:9/v1"\n'
    )
    spec = actors.codex(
        "codex",
        env={"CODEX_HOME": str(home)},
        extra_args=["-s", "read-only"],
        resume="01a2",
        tools="full",  # below "full", codex refuses extra_args that change the sandbox
    )
    assert spec.argv[4:] == (
        "--config=model_providers.local.request_max_retries=0",
        "--config=model_providers.local.stream_max_retries=0",
        *codex_tool_args("full"),
        "-s",
        "read-only",
        "resume",
        "--",
        "01a2",
        "-",
    )
    # A built-in provider cannot be overridden (codex would refuse to start).
    (home / "config.toml").write_text('model_provider = "openai"\n')
    assert not any(
        "max_retries" in a for a in actors.codex("codex", env={"CODEX_HOME": str(home)}).argv
    )
    # A profile file can switch to a defined provider.
    (home / "fast.config.toml").write_text(
        'model_provider = "p2"\n[model_providers.p2]\nname = "p2"\nbase_url = "http://x/v1"\n'
    )
    argv = actors.codex("codex", env={"CODEX_HOME": str(home)}, profile="fast").argv
    assert "--profile=fast" in argv
    assert "--config=model_providers.p2.request_max_retries=0" in argv
    with pytest.raises(ValueError, match="thread id"):
        actors.codex("codex", resume="-x")


def test_gemini_argv_and_env() -> None:
    # Only "full" may pass an approval mode of its own: below it the policy file rules.
    spec = actors.gemini(
        "gemini", resume="abc", extra_args=["--approval-mode", "plan"], tools="full"
    )
    assert spec.build_argv("-p") == [
        "gemini",
        "--output-format",
        "stream-json",
        "--model=gemini-2.5-flash",
        "--resume=abc",
        "--approval-mode=yolo",
        "--approval-mode",
        "plan",
    ]
    assert spec.env == {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    assert spec.stderr_watch is gemini_stderr_watch
    safe = actors.gemini("gemini", resume="abc", extra_args=["--sandbox"])
    assert safe.build_argv("-p")[-2:] == [
        f"--admin-policy={gemini_policy_file('none')}",
        "--sandbox",
    ]
    with pytest.raises(ValueError, match="approval-mode"):
        actors.gemini("gemini", extra_args=["--approval-mode", "plan"])
    overridden = actors.gemini("g", env={"GEMINI_CLI_TRUST_WORKSPACE": "false"})
    assert overridden.env["GEMINI_CLI_TRUST_WORKSPACE"] == "false"
    with pytest.raises(ValueError):
        actors.gemini("g", model="--help")


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_generic_arg_prompts_follow_the_prefix(prompt: str) -> None:
    spec = actors.generic(["llm", "-m", "gpt-4o-mini"], prompt_prefix_args=["--"])
    assert spec.build_argv(prompt) == ["llm", "-m", "gpt-4o-mini", "--", prompt]
    assert spec.stdin_payload(prompt) is None
    piped = actors.generic(["ollama", "run", "llama3"], prompt_via="stdin")
    assert piped.build_argv(prompt) == ["ollama", "run", "llama3"]
    assert piped.stdin_payload(prompt) == prompt.encode()
