"""The ``llmsup`` command line as a whole (issue 12): ``--plan`` in a fallback chain, prompts of
any size (stdin, ``@FILE``), ``ask --json`` errors, ``--version``, empty prompts, unknown CLI
names, option help, the emulator's rules file in ``emulate --help``, and the demo's retry lines.

Every test runs the real ``llmsup`` program (``python -m supervisor._llmsup``) on the fake CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from actors import ErrorCategory, load_rules
from supervisor._llmsup._main import EXIT_CODES, EXIT_USAGE, _parser

ROOT = Path(__file__).resolve().parents[2]

REFUSED = f"{shlex.quote(sys.executable)} -S -c " + shlex.quote(
    "import sys; sys.stderr.write('Error: 401 Unauthorized\\n'); sys.exit(1)"
)
LEAKY = f"{shlex.quote(sys.executable)} -S -c " + shlex.quote(
    "import sys; sys.stderr.write('Error: 401 invalid x-api-key sk-ant-api03-SECRETSECRET42\\n');"
    " sys.exit(1)"
)
# Prints how many characters reached it on stdin, and a digest of them.
STDIN_SIZE = f"{shlex.quote(sys.executable)} -S -c " + shlex.quote(
    "import sys, hashlib; t = sys.stdin.read(); "
    "print(len(t), hashlib.sha256(t.encode()).hexdigest())"
)


def run(
    *args: str,
    stdin: str | int | None = "",
    cwd: Path = ROOT,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``llmsup`` with ``args``; ``stdin`` is text, a file descriptor, or None."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kwargs: dict[str, object] = {}
    if isinstance(stdin, str):
        kwargs["input"] = stdin
    elif isinstance(stdin, int):
        kwargs["stdin"] = stdin
    else:
        kwargs["stdin"] = subprocess.DEVNULL
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "supervisor._llmsup", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


# -- 1. --plan in a chain with a real fallback, and --plan FILE ---------------------------------


def test_map_plan_on_the_fake_primary_with_a_claude_fallback(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "prompt": "hello"}\n')
    out = tmp_path / "out.jsonl"
    plan = json.dumps({"text": "planned answer"})
    done = run(
        "map", str(source), "-o", str(out), "--cli", "fake", "--plan", plan, "--fallback", "claude"
    )
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(raw) for raw in out.read_text().splitlines()]
    assert (line["ok"], line["text"], line["cli"]) == (True, "planned answer", "fake")


def test_ask_plan_applies_to_the_fake_as_a_fallback() -> None:
    plan = json.dumps({"text": "the fake's planned answer"})
    done = run("ask", "--command", REFUSED, "--fallback", "fake", "--plan", plan, "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the fake's planned answer\n"
    assert "answered by fake (fallback)" in done.stderr


def test_plan_with_no_fake_in_the_chain_is_a_usage_error() -> None:
    done = run("ask", "--command", "cat", "--fallback", "claude", "--plan", "{}", "x")
    assert done.returncode == EXIT_USAGE
    assert "--plan" in done.stderr
    assert "fake" in done.stderr


def test_plan_from_a_file(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"text": "from the plan file"}))
    done = run("ask", "--plan", str(plan), "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from the plan file\n"


def test_plan_file_missing_or_bad_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-plan.json"
    done = run("ask", "--plan", str(missing), "hi")
    assert done.returncode == EXIT_USAGE
    assert str(missing) in done.stderr
    assert "Traceback" not in done.stderr
    bad = tmp_path / "bad-plan.json"
    bad.write_text("{not json")
    done = run("ask", "--plan", str(bad), "hi")
    assert done.returncode == EXIT_USAGE
    assert str(bad) in done.stderr
    assert "not valid JSON" in done.stderr


# -- 2. prompts of any size: -, stdin, @FILE -----------------------------------------------------


def test_ask_dash_reads_the_prompt_from_stdin() -> None:
    done = run("ask", "-", stdin="from a pipe\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: from a pipe\n"


def test_ask_without_a_prompt_reads_a_pipe() -> None:
    done = run("ask", stdin="piped prompt")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: piped prompt\n"


def test_ask_without_a_prompt_on_a_terminal_is_a_usage_error() -> None:
    leader, follower = os.openpty()
    try:
        done = run("ask", stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == EXIT_USAGE
    assert "prompt" in done.stderr


def test_ask_at_file_reads_the_prompt_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("question from a file\n")
    done = run("ask", "@q.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: question from a file\n"


def test_ask_at_missing_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    done = run("ask", "@nowhere.txt", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "nowhere.txt" in done.stderr
    assert "Traceback" not in done.stderr


def test_double_at_is_a_literal_leading_at() -> None:
    done = run("ask", "@@handle says hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: @handle says hi\n"


def _digest(text: str) -> str:
    import hashlib

    return f"{len(text)} {hashlib.sha256(text.encode()).hexdigest()}\n"


def test_a_prompt_over_128_kib_reaches_the_cli_whole_from_stdin() -> None:
    prompt = "".join(f"line {i:06d} of a long prompt\n" for i in range(8_000))  # ~220 KiB
    assert len(prompt.encode()) > 128 * 1024
    done = run("ask", "--command", STDIN_SIZE, "--prompt-via", "stdin", "-", stdin=prompt)
    assert done.returncode == 0, done.stderr
    assert done.stdout == _digest(prompt.strip())


def test_a_prompt_over_128_kib_reaches_the_fake_whole_from_a_file(tmp_path: Path) -> None:
    prompt = "x" * 200_000 + " the end"
    (tmp_path / "big.txt").write_text(prompt)
    done = run("ask", "--prompt-via", "stdin", "@big.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"echo: {prompt}\n"


def test_a_prompt_too_long_for_an_argument_is_a_usage_error_saying_what_to_do() -> None:
    done = run("ask", "-", stdin="y" * 200_000)
    assert done.returncode == EXIT_USAGE
    assert "200000 bytes" in done.stderr
    assert "--prompt-via stdin" in done.stderr


# -- 3. ask --json failures ---------------------------------------------------------------------


def test_ask_json_failure_is_a_json_object_with_the_same_exit_status() -> None:
    plain = run("ask", "--plan", '{"auth_failure": true}', "x")
    done = run("ask", "--json", "--plan", '{"auth_failure": true}', "x")
    assert done.returncode == plain.returncode == EXIT_CODES[ErrorCategory.AUTH_FAILURE]
    body = json.loads(done.stdout)
    error = body["error"]
    assert set(error) == {"category", "message", "retry_after", "exit_code", "cli"}
    assert error["category"] == "auth_failure"
    assert "401" in error["message"]
    assert error["cli"] == "fake"
    assert error["retry_after"] is None


def test_ask_json_failure_carries_retry_after() -> None:
    plan = '{"rate_limit_retry_after_s": 2}'
    done = run("ask", "--json", "--max-attempts", "1", "--plan", plan, "x")
    assert done.returncode == EXIT_CODES[ErrorCategory.RATE_LIMIT]
    error = json.loads(done.stdout)["error"]
    assert error["category"] == "rate_limit"
    assert error["retry_after"] == 2


def test_ask_json_failure_keeps_secrets_redacted() -> None:
    done = run("ask", "--json", "--command", LEAKY, "x")
    assert done.returncode == EXIT_CODES[ErrorCategory.AUTH_FAILURE]
    assert "SECRETSECRET42" not in done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["category"] == "auth_failure"
    assert error["exit_code"] == 1


# -- 4. --version ------------------------------------------------------------------------------


def test_version() -> None:
    from importlib.metadata import version

    done = run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"llmsup {version('llm-cli-supervisor')}\n"


# -- 5. empty prompts ----------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t \n"])
def test_empty_prompt_argument_is_a_usage_error(prompt: str) -> None:
    done = run("ask", "--", prompt)
    assert done.returncode == EXIT_USAGE
    assert "empty" in done.stderr and "prompt" in done.stderr
    assert done.stdout == ""


def test_empty_prompt_on_stdin_is_a_usage_error() -> None:
    done = run("ask", "-", stdin="  \n\n")
    assert done.returncode == EXIT_USAGE
    assert "empty" in done.stderr and "stdin" in done.stderr


def test_empty_prompt_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "blank.txt").write_text("\n \n")
    done = run("ask", "@blank.txt", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "empty" in done.stderr and "blank.txt" in done.stderr


def test_chat_blank_line_asks_again_without_a_call() -> None:
    done = run("chat", stdin="one\n\n   \ntwo\n/quit\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("fake> ") == 2
    assert "error" not in done.stdout


# -- 6. unknown CLI names --------------------------------------------------------------------


def test_misspelled_cli_is_unknown_with_a_suggestion() -> None:
    done = run("ask", "--cli", "claud", "x")
    assert done.returncode == EXIT_USAGE
    assert "unknown CLI 'claud'" in done.stderr
    assert "did you mean claude?" in done.stderr
    assert "--command" in done.stderr


def test_misspelled_fallback_is_unknown_with_a_suggestion() -> None:
    done = run("ask", "--fallback", "gemeni", "x")
    assert done.returncode == EXIT_USAGE
    assert "did you mean gemini?" in done.stderr


# -- 7. every option's help says its default ------------------------------------------------------

_FLAG_ACTIONS = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._HelpAction,
    argparse._VersionAction,
    argparse.BooleanOptionalAction,
)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("llmsup has no subcommands")


def test_every_subcommand_option_help_says_its_default() -> None:
    subcommands = _subparsers(_parser())
    assert {"ask", "chat", "map", "serve", "demo", "emulate"} <= set(subcommands)
    lacking = []
    for name, sub in subcommands.items():
        for action in sub._actions:
            if not action.option_strings or isinstance(action, _FLAG_ACTIONS):
                continue  # positionals and boolean flags
            if action.required:
                continue  # no default to state
            if action.help == argparse.SUPPRESS:
                continue
            if not action.help or "default" not in action.help.lower():
                lacking.append(f"{name} {action.option_strings[0]}: {action.help!r}")
    assert not lacking, "options whose help does not say their default:\n" + "\n".join(lacking)


def test_help_no_longer_mentions_the_reference_document() -> None:
    for name in ("ask", "chat", "map", "serve", "demo", "emulate"):
        done = run(name, "--help")
        assert done.returncode == 0, done.stderr
        assert "reference document" not in done.stdout, name


# -- 8. emulate --help describes the rules file ---------------------------------------------------


def test_emulate_help_describes_the_rules_file_with_a_valid_example(tmp_path: Path) -> None:
    done = run("emulate", "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for word in ("match", "provider", "times", "reply", "chunks", "fault", "{prompt}"):
        assert word in text, word
    for kind in ("status", "slow", "stall", "disconnect", "malformed", "tool_call"):
        assert kind in text, kind
    start = text.index("[\n")
    end = text.index("\n]", start) + 2
    example = tmp_path / "rules.json"
    example.write_text(text[start:end])
    rules = load_rules(example)
    assert rules and any(rule.fault is not None for rule in rules)


# -- 9. the demo's retry lines name their prompt --------------------------------------------------


@pytest.mark.slow
def test_demo_retry_lines_name_a_prompt_that_has_a_row() -> None:
    done = run("demo", timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    rows = set(re.findall(r"^\[\s*\d+/\d+\] \S+\s+(\[\w+\] question \d+)", done.stdout, re.M))
    retried = re.findall(r"^  ↻ (\[\w+\] question \d+): attempt", done.stdout, re.M)
    assert len(rows) == 24, done.stdout
    assert retried, done.stdout
    assert set(retried) <= rows
