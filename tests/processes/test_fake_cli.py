"""The fake CLI, run as a real process: every fault in the plan does what it says."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actors._fakes import _cli as _fake_cli
from actors._fakes._plan import FAKE_CLI_PATH, FaultPlan, FaultRule, fake_argv

PlanArg = FaultPlan | Mapping[str, object] | None


def run(
    plan: PlanArg = None,
    prompt: str = "hello world",
    *,
    timeout: float = 5.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*fake_argv(plan), "--", prompt], capture_output=True, timeout=timeout, cwd=cwd
    )


def run_raw(plan_json: str, prompt: str = "hi") -> subprocess.CompletedProcess[bytes]:
    """Bypasses `FaultPlan` validation, to see what the script itself says."""
    argv = [sys.executable, "-S", FAKE_CLI_PATH, "--plan", plan_json, "--", prompt]
    return subprocess.run(argv, capture_output=True, timeout=5.0)


def events(stdout: bytes) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict)
        parsed.append(obj)
    return parsed


def of_type(evs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in evs if event["type"] == kind]


def check_normal_answer(evs: Sequence[dict[str, Any]], text: str) -> None:
    assert evs[0]["type"] == "session_started"
    assert evs[-1]["type"] == "result"
    assert "".join(e["text"] for e in of_type(evs, "text_delta")) == text
    assert evs[-1]["text"] == text
    assert evs[-1]["session_id"] == evs[0]["session_id"]


@contextlib.contextmanager
def popen(
    plan: PlanArg, prompt: str = "hi", *, serve: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    argv = [*fake_argv(plan), "--serve"] if serve else [*fake_argv(plan), "--", prompt]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def gone(pid: int, within: float = 30.0) -> bool:
    """Wait until ``pid`` is dead (it may linger a moment after closing its pipes).

    Polls: ``within`` is only a guard against a hang, generous for a loaded machine.
    """
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def grandchild_pid(stderr: bytes) -> int:
    for line in stderr.decode().splitlines():
        if line.startswith("fake: grandchild pid "):
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no grandchild pid in {stderr!r}")


# --- the normal answer ---------------------------------------------------------------------


def test_default_echo_answer() -> None:
    done = run()
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    evs = events(done.stdout)
    check_normal_answer(evs, "echo: hello world")
    assert [e["type"] for e in evs] == ["session_started"] + ["text_delta"] * 3 + ["result"]
    assert evs[0]["model"] == "fake"
    assert all(e["text"] for e in of_type(evs, "text_delta"))
    assert evs[-1]["usage"] == {"input_tokens": 2, "output_tokens": 3}
    assert evs[-1]["cost_usd"] == 0.0


def test_output_is_compact_json_lines() -> None:
    first = run(prompt="ü").stdout.splitlines()[0]
    assert first.startswith(b'{"type":"session_started","session_id":"')
    assert "ü".encode() in run(prompt="ü").stdout  # ensure_ascii=False


def test_plan_text_chunks_session_and_usage() -> None:
    plan = FaultPlan(text="abcdefg", chunks=4, session_id="s-1", input_tokens=11, output_tokens=12)
    evs = events(run(plan).stdout)
    check_normal_answer(evs, "abcdefg")
    assert [e["text"] for e in of_type(evs, "text_delta")] == ["ab", "cd", "ef", "g"]
    assert evs[0]["session_id"] == "s-1"
    assert evs[-1]["usage"] == {"input_tokens": 11, "output_tokens": 12}


def test_fewer_chunks_when_text_is_short() -> None:
    evs = events(run({"text": "ab", "chunks": 5}).stdout)
    assert [e["text"] for e in of_type(evs, "text_delta")] == ["a", "b"]


@pytest.mark.parametrize("prompt", ["--help", "$(touch y)", "-x", "a\nb 'c' \"d\"; rm -rf /", ""])
def test_prompt_arrives_verbatim(prompt: str, tmp_path: Path) -> None:
    done = run(prompt=prompt, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert events(done.stdout)[-1]["text"] == "echo: " + prompt
    assert list(tmp_path.iterdir()) == []


def test_prompt_from_stdin() -> None:
    argv = [*fake_argv(), "--prompt-stdin"]
    done = subprocess.run(argv, input="über\nalles".encode(), capture_output=True, timeout=5)
    assert done.returncode == 0, done.stderr
    assert events(done.stdout)[-1]["text"] == "echo: über\nalles"


def test_main_entry_point() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(FAKE_CLI_PATH).parent.parent)}
    code = "import sys; from actors._fakes._cli import main; sys.exit(main(['--', 'x y']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=5, env=env)
    assert done.returncode == 0, done.stderr
    assert events(done.stdout)[-1]["text"] == "echo: x y"


def test_latency() -> None:
    start = time.monotonic()
    done = run({"latency_s": 0.3})
    assert time.monotonic() - start >= 0.3
    assert done.returncode == 0


# --- the plan contract ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan_json", "needle"),
    [
        ('{"chunkz": 1}', "'chunkz'"),
        ('{"chunks": "3"}', "'chunks'"),
        ('{"chunks": 1.5}', "'chunks'"),
        ('{"hang": 1}', "'hang'"),
        ('{"latency_s": -1}', "'latency_s'"),
        ('{"latency_s": Infinity}', "'latency_s'"),
        ('{"format": "xml"}', "'format'"),
        ('{"exit_code": 256}', "'exit_code'"),
        ('{"fail_first": 2}', "'state_dir'"),
        ('{"rules": [{"match": "a", "bogus": 1}]}', "'rules[0].bogus'"),
        ('{"rules": [{"text": "a"}]}', "'rules[0].match'"),
        ('{"rules": [{"match": "a", "serve": true}]}', "'rules[0].serve'"),
        ('{"rules": {}}', "'rules'"),
        ("[1]", "object"),
        ("{not json", "invalid JSON"),
    ],
)
def test_bad_plan_exits_2_naming_the_key(plan_json: str, needle: str) -> None:
    done = run_raw(plan_json)
    assert done.returncode == 2
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("llmsup-fake: bad fault plan: ")
    assert needle in lines[0]


def test_plan_keys_match_the_models() -> None:
    assert set(FaultPlan.model_fields) == _fake_cli.PLAN_KEYS
    assert set(FaultRule.model_fields) == _fake_cli.RULE_KEYS
    assert {
        "rules",
        "serve",
        "crash_after_requests",
        "startup_s",
        "startup_marker",
    } == _fake_cli.PLAN_KEYS - (_fake_cli.RULE_KEYS - {"match"})


def test_script_accepts_every_plan_field() -> None:
    every_key = FaultPlan().model_dump(mode="json")
    assert set(every_key) == _fake_cli.PLAN_KEYS
    rule = {key: value for key, value in every_key.items() if key in _fake_cli.RULE_KEYS}
    assert set(rule) | {"match", "calls"} == set(FaultRule.model_fields)
    every_key["rules"] = [{"match": "zzz", **rule}]
    done = run_raw(json.dumps(every_key), "hello")
    assert done.returncode == 0, done.stderr
    check_normal_answer(events(done.stdout), "echo: hello")


def test_to_json_is_compact_and_round_trips() -> None:
    assert FaultPlan().to_json() == "{}"
    plan = FaultPlan(chunks=2, rules=[FaultRule(match="a", text=None, hang=True)])
    assert plan.to_json() == '{"chunks":2,"rules":[{"match":"a","text":null,"hang":true}]}'
    assert FaultPlan.model_validate_json(plan.to_json()) == plan
    assert hash(plan) == hash(FaultPlan.model_validate_json(plan.to_json()))


def test_fake_argv_shape() -> None:
    argv = fake_argv({"chunks": 2})
    assert argv == (sys.executable, "-S", FAKE_CLI_PATH, "--plan", '{"chunks":2}')
    assert os.path.isabs(FAKE_CLI_PATH)
    assert fake_argv()[-1] == "{}"


@pytest.mark.parametrize(
    "bad",
    [
        {"chunks": -1},
        {"latency_s": float("inf")},
        {"exit_code": 256},
        {"nope": 1},
        {"fail_first": 1, "state_dir": ""},
        {"format": "xml"},
        {"rules": [{"match": "x", "chunks": None}]},
        {"rules": [{"match": "x", "serve": True}]},
        {"rules": [{"chunks": 1}]},
        {"rules": [{"calls": [0, 2]}]},
        {"rules": [{"calls": [3, 2]}]},
        {"rules": [{"calls": [1]}]},
        {"rules": [{"calls": [1, 2, 3]}]},
        {"rules": [{"match": "x", "calls": None}]},
    ],
)
def test_fault_plan_rejects_what_the_script_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FaultPlan.model_validate(bad)
    with pytest.raises(ValidationError):
        fake_argv(bad)
    plan_json = json.dumps(bad).replace("Infinity", "1e999")
    assert run_raw(plan_json).returncode == 2


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            modules.add((node.module or "").split(".")[0])
    return modules


SCRIPT_PATH = Path(FAKE_CLI_PATH).parent / "_script.py"


def test_script_is_stdlib_only() -> None:
    # The pure script: standard library only, no package imports at all.
    modules = _imported_modules(SCRIPT_PATH)
    assert modules - {"__future__"} <= sys.stdlib_module_names
    assert "typing" not in modules or "TYPE_CHECKING = False" in SCRIPT_PATH.read_text()
    # The executor: the standard library and its sibling `_script` (the package import is for
    # the type checker and for importing it as actors._fakes._cli only).
    modules = _imported_modules(Path(FAKE_CLI_PATH))
    assert modules - {"__future__", "_script", "actors"} <= sys.stdlib_module_names
    assert "typing" not in modules or "TYPE_CHECKING = False" in Path(FAKE_CLI_PATH).read_text()


def test_the_running_script_imports_nothing_outside_the_stdlib() -> None:
    argv = [sys.executable, "-S", "-X", "importtime", FAKE_CLI_PATH, "--", "hi"]
    done = subprocess.run(argv, capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.decode().splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}
    assert imported - {"_script"} <= sys.stdlib_module_names, imported
    assert "_script" in imported
    assert not imported & {"actors", "pydantic", "trio", "attrs", "typing", "dataclasses"}


def test_a_plan_that_counts_needs_no_state_dir(tmp_path: Path) -> None:
    # The script run by hand still needs a folder for the count ...
    assert run_raw('{"fail_first": 1}').returncode == 2
    assert "'state_dir'" in run_raw('{"fail_first": 1}').stderr.decode()
    assert "'state_dir'" in run_raw('{"rules": [{"calls": [1, 1], "hang": true}]}').stderr.decode()
    # ... but the models accept the plan and fake_argv makes one, once per command line.
    for plan in ({"fail_first": 1}, {"rules": [{"match": "x", "fail_first": 1}]}):
        argv = fake_argv(plan)
        state_dir = json.loads(argv[-1]).get("state_dir") or json.loads(argv[-1])["rules"][0].get(
            "state_dir"
        )
        assert state_dir is None or os.path.isdir(state_dir)
        first = subprocess.run([*argv, "--", "x"], capture_output=True, timeout=5)
        second = subprocess.run([*argv, "--", "x"], capture_output=True, timeout=5)
        assert (first.returncode, second.returncode) == (1, 0), (first.stderr, second.stderr)
    assert FaultPlan(fail_first=2).state_dir is None
    given = str(tmp_path / "given")
    argv = fake_argv(FaultPlan(fail_first=1, state_dir=given))
    assert json.loads(argv[-1])["state_dir"] == given


# --- injected failures ---------------------------------------------------------------------


def test_rate_limit() -> None:
    done = run({"rate_limit_retry_after_s": 2.5})
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode() == (
        "Error: 429 Too Many Requests: rate limit exceeded. Please retry after 2.5s\n"
    )


def test_auth_failure() -> None:
    done = run({"auth_failure": True})
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode() == "Error: 401 Unauthorized: invalid API key\n"


def test_exit_code() -> None:
    done = run({"exit_code": 7})
    assert done.returncode == 7
    check_normal_answer(events(done.stdout), "echo: hello world")
    assert done.stderr.decode() == "fake: failing with exit code 7\n"


def test_crash_after_chunks() -> None:
    done = run({"crash_after_chunks": 1})
    assert done.returncode == 3
    evs = events(done.stdout)
    assert [e["type"] for e in evs] == ["session_started", "text_delta"]
    assert b"fake: crashed mid-stream" in done.stderr


def test_malformed_line() -> None:
    done = run({"malformed_line": True})
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert b"<<this is not json>>" in lines
    check_normal_answer(
        events(b"\n".join(x for x in lines if x != b"<<this is not json>>")), "echo: hello world"
    )


def test_oversized_line() -> None:
    done = run({"oversized_line_bytes": 200_000})
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert [len(x) for x in lines if len(x) >= 200_000] == [200_000]
    check_normal_answer(
        events(b"\n".join(x for x in lines if len(x) < 200_000)), "echo: hello world"
    )


def test_invalid_utf8() -> None:
    done = run({"invalid_utf8": True})
    assert done.returncode == 0
    assert b"\xff\xfe" in done.stdout
    with pytest.raises(UnicodeDecodeError):
        done.stdout.decode("utf-8")
    bad = [line for line in done.stdout.splitlines() if b"\xff" in line]
    assert len(bad) == 1
    assert bad[0].startswith(b'{"type":"text_delta","text":"')
    assert json.loads(bad[0].decode("utf-8", "replace"))["type"] == "text_delta"
    assert events(done.stdout.splitlines()[-1])[0]["type"] == "result"


def test_stderr_bytes() -> None:
    done = run({"stderr_bytes": 300_000})
    assert done.returncode == 0
    assert len(done.stderr) >= 300_000
    check_normal_answer(events(done.stdout), "echo: hello world")


def test_format_text() -> None:
    done = run({"format": "text"})
    assert done.returncode == 0
    assert done.stdout == b"echo: hello world\n"


def test_broken_pipe_exits_quietly() -> None:
    with popen({"oversized_line_bytes": 4_000_000}) as proc:
        assert proc.stdout is not None
        proc.stdout.close()
        proc.wait(timeout=5)
        assert proc.stderr is not None
        assert b"Traceback" not in proc.stderr.read()
        assert proc.returncode != 0


# --- fail_first and rules ------------------------------------------------------------------


def test_fail_first_then_succeed(tmp_path: Path) -> None:
    plan = FaultPlan(fail_first=2, state_dir=str(tmp_path / "state"))
    first, second, third = (run(plan, "same") for _ in range(3))
    for failed in (first, second):
        assert failed.returncode == 1
        assert failed.stderr == b"fake: transient failure\n"
        assert failed.stdout == b""
    assert third.returncode == 0
    check_normal_answer(events(third.stdout), "echo: same")
    assert run(plan, "other").returncode == 1  # counted per prompt


@pytest.mark.parametrize(
    ("fail_with", "code", "stderr"),
    [
        ("rate_limit", 1, b"Please retry after 0.5s"),
        ("auth", 1, b"401 Unauthorized"),
        ("crash", 3, b"crashed mid-stream"),
    ],
)
def test_fail_with(fail_with: str, code: int, stderr: bytes, tmp_path: Path) -> None:
    plan = {
        "fail_first": 1,
        "state_dir": str(tmp_path),
        "fail_with": fail_with,
        "fail_retry_after_s": 0.5,
    }
    failed = run(plan)
    assert failed.returncode == code
    assert stderr in failed.stderr
    assert run(plan).returncode == 0


def test_fail_with_hang(tmp_path: Path) -> None:
    plan = {"fail_first": 1, "state_dir": str(tmp_path), "fail_with": "hang"}
    with pytest.raises(subprocess.TimeoutExpired):
        run(plan, timeout=0.5)
    assert run(plan).returncode == 0


def test_rules_give_prompts_different_faults() -> None:
    plan = FaultPlan(
        text="base",
        rules=[
            FaultRule(match="alpha", text="A!", chunks=1),
            FaultRule(match="beta", auth_failure=True),
            FaultRule(match="al", text="never: the first match wins"),
        ],
    )
    alpha = run(plan, "say alpha")
    check_normal_answer(events(alpha.stdout), "A!")
    assert len(of_type(events(alpha.stdout), "text_delta")) == 1
    beta = run(plan, "beta")
    assert beta.returncode == 1
    assert b"401" in beta.stderr
    check_normal_answer(events(run(plan, "gamma").stdout), "base")


# --- hangs, signals and grandchildren ------------------------------------------------------


def test_hang_until_killed() -> None:
    with popen({"hang": True}) as proc:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["type"] == "session_started"
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.3)
        proc.kill()
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert proc.stdout.read() == b""


def test_hang_after_chunks() -> None:
    with popen({"hang_after_chunks": 2, "chunks": 3}) as proc:
        assert proc.stdout is not None
        got = [json.loads(proc.stdout.readline())["type"] for _ in range(3)]
        assert got == ["session_started", "text_delta", "text_delta"]
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.3)
        proc.kill()
        proc.wait(timeout=5)
        assert proc.stdout.read() == b""


def test_sigterm_stops_a_hung_fake() -> None:
    with popen({"hang": True}) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()
        proc.terminate()
        assert proc.wait(timeout=2) == -signal.SIGTERM


def test_ignore_sigterm() -> None:
    with popen({"hang": True, "ignore_sigterm": True}) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()  # signal handlers are installed by now
        proc.terminate()
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.3)
        proc.kill()
        assert proc.wait(timeout=5) == -signal.SIGKILL


def test_grandchild_holds_stdout() -> None:
    start = time.monotonic()
    done = run({"grandchild_holds_stdout_s": 0.4})
    assert time.monotonic() - start >= 0.4  # EOF only when the grandchild exits
    assert done.returncode == 0
    check_normal_answer(events(done.stdout), "echo: hello world")
    assert gone(grandchild_pid(done.stderr))


def test_grandchild_ignores_sigterm() -> None:
    plan = {"grandchild_holds_stdout_s": 30, "grandchild_ignores_sigterm": True}
    with popen(plan) as proc:
        assert proc.stderr is not None
        pid = grandchild_pid(proc.stderr.readline())
        try:
            assert proc.wait(timeout=5) == 0  # the fake itself exits normally
            assert alive(pid)
            os.kill(pid, signal.SIGTERM)
            time.sleep(0.2)
            assert alive(pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert gone(pid)


# --- serve mode ----------------------------------------------------------------------------


def test_serve_answers_each_request_in_one_session() -> None:
    with popen(None, serve=True) as proc:
        requests = b'{"prompt": "one"}\n\n{"prompt": "two three"}\nnot json\n{"nope": 1}\n'
        out, err = proc.communicate(requests, timeout=5)
        assert proc.returncode == 0, err
    evs = events(out)
    assert len(of_type(evs, "session_started")) == 1
    results = of_type(evs, "result")
    assert [r["text"] for r in results] == ["echo: one", "echo: two three"]
    assert {r["session_id"] for r in results} == {evs[0]["session_id"]}
    assert of_type(evs, "error") == [{"type": "error", "message": "bad request line"}] * 2


def test_serve_streams_one_request_at_a_time() -> None:
    with popen({"serve": True, "rules": [{"match": "second", "text": "2nd"}]}) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        for prompt, answer in [("first", "echo: first"), ("second", "2nd")]:
            proc.stdin.write(json.dumps({"prompt": prompt}).encode() + b"\n")
            proc.stdin.flush()
            while (event := json.loads(proc.stdout.readline()))["type"] != "result":
                pass
            assert event["text"] == answer
        proc.stdin.close()
        assert proc.wait(timeout=5) == 0


def test_serve_in_band_errors_keep_serving() -> None:
    plan = {"serve": True, "rules": [{"match": "limit", "rate_limit_retry_after_s": 3}]}
    with popen(plan) as proc:
        out, err = proc.communicate(b'{"prompt": "limit"}\n{"prompt": "ok"}\n', timeout=5)
    assert proc.returncode == 0
    evs = events(out)
    (error,) = of_type(evs, "error")
    assert error["category"] == "rate_limit"
    assert error["retry_after"] == 3
    assert [r["text"] for r in of_type(evs, "result")] == ["echo: ok"]
    assert b"Please retry after 3s" in err


def test_serve_crash_after_requests() -> None:
    with popen({"serve": True, "crash_after_requests": 1}) as proc:
        out, err = proc.communicate(b'{"prompt": "a"}\n{"prompt": "b"}\n', timeout=5)
    assert proc.returncode == 3
    assert [r["text"] for r in of_type(events(out), "result")] == ["echo: a"]
    assert b"crashed" in err
