"""The ``llmsup`` command line, run as a real process the way a user runs it."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors import ErrorCategory
from supervisor._llmsup._main import EXIT_CODES, EXIT_USAGE, main

from ..helpers import live_processes_with, marker

ROOT = Path(__file__).resolve().parents[2]


def llmsup(*args: str, cwd: Path = ROOT, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m supervisor._llmsup._main *args`` and capture its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "supervisor._llmsup", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    return lines[0]


# -- ask: answers ----------------------------------------------------------------------


def test_ask_prints_the_answer() -> None:
    proc = llmsup("ask", "hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "echo: hello\n"
    assert proc.stderr == ""


def test_prompt_that_looks_like_a_flag_after_double_dash() -> None:
    proc = llmsup("ask", "--", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "echo: --help\n"


def test_ask_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "multi word prompt"]) == 0
    out, err = capsys.readouterr()
    assert out == "echo: multi word prompt\n"
    assert err == ""


def test_ask_with_prompt_via_stdin_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--prompt-via", "stdin", "from stdin"]) == 0
    assert capsys.readouterr().out == "echo: from stdin\n"


def test_json_output_has_text_and_attempts() -> None:
    proc = llmsup("ask", "--json", "hi there")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["text"] == "echo: hi there"
    assert data["attempts"] == 1
    assert data["cli"] == "fake"
    assert data["usage"]["input_tokens"] == 2
    assert "raw_events" not in data


def test_json_output_counts_retries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = {"fail_first": 1, "state_dir": str(tmp_path)}
    assert main(["ask", "--json", "--plan", json.dumps(plan), "flaky"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == "echo: flaky"
    assert data["attempts"] == 2


# -- ask: typed errors -----------------------------------------------------------------


def test_auth_failure_exit_code_and_one_line_error() -> None:
    proc = llmsup("ask", "--plan", '{"auth_failure": true}', "x")
    assert proc.returncode == EXIT_CODES[ErrorCategory.AUTH_FAILURE] == 5
    assert proc.stdout == ""
    line = _error_line(proc.stderr)
    assert line.startswith("llmsup: error [auth_failure]")
    assert "401 Unauthorized" in line


def test_rate_limit_exit_code_mentions_retry_after() -> None:
    proc = llmsup("ask", "--max-attempts", "1", "--plan", '{"rate_limit_retry_after_s": 2}', "x")
    assert proc.returncode == EXIT_CODES[ErrorCategory.RATE_LIMIT] == 4
    line = _error_line(proc.stderr)
    assert line.startswith("llmsup: error [rate_limit]")
    assert "retry after 2s" in line


def test_retryable_failure_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "--max-attempts", "1", "--plan", '{"exit_code": 9}', "x"])
    assert code == EXIT_CODES[ErrorCategory.RETRYABLE] == 1
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("llmsup: error [retryable]")
    assert "exit code 9" in line


def test_plan_that_is_not_json_is_a_usage_error() -> None:
    proc = llmsup("ask", "--plan", "not json", "x")
    assert proc.returncode == EXIT_USAGE == 2
    assert proc.stdout == ""
    line = _error_line(proc.stderr)
    assert line.startswith("llmsup: --plan is not valid JSON")


def test_plan_with_unknown_key_is_a_one_line_usage_error_naming_it() -> None:
    proc = llmsup("ask", "--plan", '{"nope": 1}', "x")
    assert proc.returncode == EXIT_USAGE
    line = _error_line(proc.stderr)
    assert line.startswith("llmsup: bad fault plan")
    assert "nope" in line


def test_plan_with_bad_value_names_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--plan", '{"latency_s": -1}', "x"]) == EXIT_USAGE
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("llmsup: bad fault plan")
    assert "latency_s" in line


def test_plan_only_applies_to_the_fake(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--command", "cat", "--plan", "{}", "x"]) == EXIT_USAGE
    assert "--plan only applies to --cli fake" in capsys.readouterr().err


def test_missing_binary_is_permanent_and_named() -> None:
    proc = llmsup("ask", "--command", "no-such-binary-xyz", "x")
    assert proc.returncode == EXIT_CODES[ErrorCategory.PERMANENT] == 7
    line = _error_line(proc.stderr)
    assert line.startswith("llmsup: error [permanent]")
    assert "no-such-binary-xyz" in line


def test_timeout_exit_code_comes_quickly() -> None:
    started = time.monotonic()
    proc = llmsup("ask", "--timeout", "0.5", "--plan", '{"hang": true}', "--max-attempts", "1", "x")
    elapsed = time.monotonic() - started
    assert proc.returncode == EXIT_CODES[ErrorCategory.TIMEOUT] == 3
    assert _error_line(proc.stderr).startswith("llmsup: error [timeout]")
    assert elapsed < 10


def test_first_output_timeout_flag_names_the_startup_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = '{"latency_s": 30}'
    argv = ["ask", "--first-output-timeout", "0.5", "--max-attempts", "1", "--plan", plan, "x"]
    assert main(argv) == EXIT_CODES[ErrorCategory.TIMEOUT]
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("llmsup: error [timeout]")
    assert "first_output=0.5s" in line


@pytest.mark.parametrize(
    "args",
    [
        ["ask", "--timeout", "-1", "x"],
        ["ask", "--first-output-timeout", "0", "x"],
        ["ask", "--retry-budget", "-1", "x"],
        ["ask", "--max-attempts", "0", "x"],
        ["ask", "--cli", "", "x"],
        ["ask", "--cli", "'unbalanced", "x"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("llmsup: ")
    assert "Traceback" not in err


# -- ask --cli: any program, split like a shell would but never run by one ----------------

UPPER = "import sys; print(sys.argv[1].upper())"


def test_cli_command_line_is_split_like_a_shell() -> None:
    cli = f"{shlex.quote(sys.executable)} -c {shlex.quote(UPPER)}"
    proc = llmsup("ask", "--cli", cli, "make me loud")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "MAKE ME LOUD\n"


def test_cli_prompt_is_never_run_by_a_shell(tmp_path: Path) -> None:
    cli = f"{shlex.quote(sys.executable)} -c {shlex.quote(UPPER)}"
    prompt = "$(touch pwned); `touch pwned2` | touch pwned3"
    proc = llmsup("ask", "--cli", cli, prompt, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == prompt.upper() + "\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_with_stdin_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    code = "import sys; print(sys.stdin.read()[::-1])"
    cli = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    assert main(["ask", "--cli", cli, "--prompt-via", "stdin", "abc def"]) == 0
    assert capsys.readouterr().out == "fed cba\n"


# -- demo ------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_shows_breaker_retries_and_summary() -> None:
    proc = llmsup("demo", timeout=60)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    assert "[24/24]" in out  # every prompt reported
    assert "↻" in out  # retries happened and were shown
    transitions = re.findall(r"⚡ breaker (\w+) → (\w+)", out)
    assert ("closed", "open") in transitions, out
    assert any(new == "closed" for _old, new in transitions), out
    assert re.search(r"^ok\s+\d+\s+\d+\s+\d+\.\d\d$", out, re.MULTILINE), out
    assert re.search(r"^total\s+24\s+\d+$", out, re.MULTILINE), out
    final = re.search(r"wall time \d+\.\ds · .* now (\w+)$", out, re.MULTILINE)
    assert final, out
    # The summary's breaker state is the one the last printed transition led to.
    assert final.group(1) == transitions[-1][1]


def _chat(stdin: str, *extra: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor._llmsup", "chat", *extra],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_chat_runs_a_warm_conversation_and_exports_it(tmp_path: Path) -> None:
    saved = tmp_path / "chat.json"
    done = _chat(f"hello\n/history\n/export {saved}\nagain\n/quit\n", "--system", "be brief")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "chatting with fake (warm mode)" in out
    assert "fake> echo: System: be brief" in out
    assert "] user: hello" in out  # /history
    assert f"exported 1 turns to {saved}" in out
    assert "fake> echo: again" in out
    assert out.rstrip().endswith("bye")
    data = json.loads(saved.read_text())
    assert data["session_ids"]["fake"]


def test_chat_continues_an_exported_conversation(tmp_path: Path) -> None:
    saved = tmp_path / "chat.json"
    assert _chat(f"first\n/export {saved}\n").returncode == 0
    done = _chat("second\n/quit\n", "--history", str(saved))
    assert done.returncode == 0, done.stderr
    assert "continuing 1 turns" in done.stdout
    assert "fake> echo: second" in done.stdout


def test_chat_with_a_broken_history_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    done = _chat("", "--history", str(bad))
    assert done.returncode == 2
    assert "is not JSON" in done.stderr


def _fake_clis_with(token: str) -> list[int]:
    """The fake CLI processes (running actors/_fakes/_cli.py) whose argv holds ``token``."""
    found = []
    for pid in live_processes_with(token):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"_fakes/_cli.py" in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_chat_ctrl_c_mid_turn_leaves_no_process() -> None:
    token = marker()
    plan = json.dumps({"rules": [{"match": token, "latency_s": 60}]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor._llmsup", "chat", "--plan", plan],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"{token} slow question\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60  # only a guard against a hang
        while not _fake_clis_with(token):
            # The warm fake CLI must come up, busy with the turn, before the Ctrl+C (not
            # just any fork of chat's: importing trio forks an ldconfig).
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("chat never started its warm CLI")
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "every CLI process was stopped" in err
        assert [p for p in live_processes_with(token) if p != proc.pid] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
