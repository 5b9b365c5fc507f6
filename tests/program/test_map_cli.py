"""``llmsup map``: JSON lines in, JSON lines out, with real processes and the fake CLI."""

from __future__ import annotations

import io
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from supervisor._llmsup._main import EXIT_USAGE, main
from supervisor._llmsup._map._input import render_template, unescape_template
from supervisor._llmsup._map._memory import parse_size
from supervisor._llmsup._map._progress import PlainProgress, RichProgress
from supervisor._llmsup._map._tally import Tally
from supervisor._llmsup._options import BadUsage

from ..helpers import live_processes_with, marker

ROOT = Path(__file__).resolve().parents[2]
PYTHON = os.path.basename(sys.executable)


def llmsup_map(
    *args: str, cwd: Path = ROOT, pythonpath: str = "", timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), pythonpath) if p)}
    return subprocess.run(
        [sys.executable, "-m", "supervisor._llmsup", "map", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a torn last line"
    return [json.loads(line) for line in text.splitlines()]  # every line parses


def by_id(lines: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)), f"ids written twice: {Counter(ids).most_common(3)}"
    return {line["id"]: line for line in lines}


FIELDS = {"id", "ok", "text", "error", "attempts", "cli", "duration_s", "usage", "cost"}


# -- JSON lines in, JSON lines out ----------------------------------------------------------


def test_jsonl_in_jsonl_out_with_progress_and_summary(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [{"id": f"q{i}", "prompt": f"question {i}"} for i in range(5)]
    items.append({"id": 99, "prompt": "[auth] question"})
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    plan = json.dumps({"rules": [{"match": "[auth]", "auth_failure": True}]})
    proc = llmsup_map(str(source), "-o", str(out), "--plan", plan)
    assert proc.returncode == 1, proc.stderr  # one item failed
    lines = by_id(read_jsonl(out))
    assert set(lines) == {*(f"q{i}" for i in range(5)), 99}
    for i in range(5):
        line = lines[f"q{i}"]
        assert set(line) == FIELDS
        assert line["ok"] is True
        assert line["text"] == f"echo: question {i}"
        assert line["error"] is None
        assert line["attempts"] == 1
        assert line["cli"] == "fake"
        assert line["duration_s"] > 0
        assert line["usage"]["input_tokens"] == 2
        assert line["cost"] == 0.0
    failed = lines[99]
    assert failed["ok"] is False and failed["text"] is None
    assert failed["error"]["category"] == "auth_failure"
    assert "401" in failed["error"]["message"]
    assert set(failed["error"]) == {"category", "message", "retry_after"}
    err = proc.stderr
    # Off a terminal: plain progress lines, then the summary.
    assert re.search(r"^map: \d+/6 done, \d+ failed.*, [\d.]+/s, no breaker$", err, re.M), err
    assert "map: finished 6/6" in err
    assert "5 ok, 1 failed (auth_failure 1)" in err
    assert re.search(r"latency p50 [\d.]+s, p95 [\d.]+s; wall [\d.]+s", err), err
    assert "tokens in " in err and "cost $" in err
    assert "\x1b[" not in err  # no terminal codes off a terminal


def test_all_ok_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "hi"}])
    assert main(["map", str(source), "-o", str(tmp_path / "out.jsonl")]) == 0
    assert read_jsonl(tmp_path / "out.jsonl")[0]["text"] == "echo: hi"
    assert "1 ok, 0 failed" in capsys.readouterr().err


def test_template_over_files(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "a.py").write_text("x = 1 {not a placeholder}\n")
    (tmp_path / "src" / "pkg" / "b.py").write_text("y = 2\n")
    (tmp_path / "src" / "notes.txt").write_text("skip me\n")
    proc = llmsup_map(
        "--template",
        r"Analyze {path}:\n{content}",
        "--files",
        "src/**/*.py",
        "-o",
        "out.jsonl",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = by_id(read_jsonl(tmp_path / "out.jsonl"))
    assert set(lines) == {"src/a.py", "src/pkg/b.py"}
    assert lines["src/a.py"]["text"] == "echo: Analyze src/a.py:\nx = 1 {not a placeholder}\n"
    assert lines["src/pkg/b.py"]["text"] == "echo: Analyze src/pkg/b.py:\ny = 2\n"


def test_template_helpers() -> None:
    assert unescape_template(r"a\nb\tc\\n") == "a\nb\tc\\n"
    assert render_template("{path}:{content}:{other}", "p", "{path}") == "p:{path}:{other}"


# -- bad input: exit 2 before anything runs --------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'], "line 2: duplicate id 'a'"),
        (['{"id": "a", "prompt": "x"}', '{"prompt": "y"}'], 'line 2: missing "id"'),
        (['{"id": "a", "prompt": "x"}', "", "{not json"], "line 3: not valid JSON"),
        (['{"id": "a"}'], 'line 1: "prompt" must be a string'),
        (['{"id": true, "prompt": "x"}'], 'line 1: "id" must be a string or an integer'),
    ],
)
def test_bad_input_is_a_usage_error_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], message: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["map", str(source), "-o", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"llmsup: {source} {message}"), err
    assert not out.exists()


def test_existing_output_needs_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "x"}])
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "b", "ok": true}\n')
    assert main(["map", str(source), "-o", str(out)]) == EXIT_USAGE
    assert "use --resume" in capsys.readouterr().err
    assert out.read_text() == '{"id": "b", "ok": true}\n'


def test_resume_cuts_a_torn_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(4)])
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 0, "ok": true, "text": "kept"}\n{"id": 1, "ok": tr')
    assert main(["map", str(source), "-o", str(out), "--resume"]) == 0
    lines = by_id(read_jsonl(out))
    assert set(lines) == {0, 1, 2, 3}
    assert lines[0]["text"] == "kept"  # not run again
    assert lines[1]["text"] == "echo: p1"
    assert "(1 already in" in capsys.readouterr().err


# -- interrupt and resume, under random faults ------------------------------------------------

# fault -> (fake-plan rule, expected category: None for success, expected attempts or None)
FAULTS: dict[str, tuple[dict[str, object], str | None, int | None]] = {
    "ok": ({}, None, 1),
    "slow": ({"latency_s": 0.05}, None, 1),
    "garbage": ({"malformed_line": True}, None, 1),
    "flaky": ({"fail_first": 1}, None, None),  # 2 attempts, or 1 if it failed before Ctrl+C
    "rate": ({"rate_limit_retry_after_s": 0.01}, "rate_limit", 2),
    "auth": ({"auth_failure": True}, "auth_failure", 1),
}


def _wait_for_lines(path: Path, count: int, proc: subprocess.Popen[str], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return path.read_bytes().count(b"\n")
        time.sleep(0.02)
    raise AssertionError(f"map wrote fewer than {count} lines in {seconds}s")


def test_interrupt_then_resume_completes_the_set_once(tmp_path: Path) -> None:
    token = marker()
    rng = random.Random(20240607)
    kinds = [rng.choice(sorted(FAULTS)) for _ in range(500)]
    items = [{"id": f"item-{i:03d}", "prompt": f"[{k}] item {i}"} for i, k in enumerate(kinds)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    (tmp_path / "state").mkdir()
    rules = [{"match": f"[{name}]", **rule} for name, (rule, _, _) in FAULTS.items() if rule]
    # The marker rule never matches a prompt; it puts the token in every CLI's argv.
    plan = {"state_dir": str(tmp_path / "state"), "rules": [*rules, {"match": token}]}
    args = [
        *(str(source), "-o", str(out), "--plan", json.dumps(plan), "--concurrency", "16"),
        *("--max-attempts", "2", "--initial-delay-ms", "1", "--max-delay-ms", "5"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor._llmsup", "map", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        try:
            _wait_for_lines(out, 100, proc, 40)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err, err
    assert "map: interrupted after" in err and "every CLI process was stopped" in err
    assert [pid for pid in live_processes_with(token) if pid != proc.pid] == []
    first = by_id(read_jsonl(out))
    assert 100 <= len(first) < 500, "the interrupt came too late to test anything"

    resumed = llmsup_map(*args, "--resume")
    assert resumed.returncode == 1, resumed.stderr  # auth and rate-limit items fail
    assert f"({len(first)} already in" in resumed.stderr
    lines = by_id(read_jsonl(out))
    assert set(lines) == {item["id"] for item in items}
    for item_id, line in first.items():
        assert lines[item_id] == line  # nothing done twice
    for item, kind in zip(items, kinds, strict=True):
        line = lines[item["id"]]
        _rule, category, attempts = FAULTS[kind]
        if category is None:
            assert line["ok"] is True, line
            assert line["text"] == f"echo: {item['prompt']}"
        else:
            assert line["ok"] is False, line
            assert line["error"]["category"] == category, line
        if attempts is not None:
            assert line["attempts"] == attempts, line
        if kind == "rate":
            assert line["error"]["retry_after"] == 0.01
    assert live_processes_with(token) == []


# -- fallbacks ---------------------------------------------------------------------------------

BUSY_CLI = """
import sys
prompt = sys.argv[-1]
if "[busy]" in prompt:
    sys.stderr.write("Error: 429 Too Many Requests: rate limit exceeded\\n")
    sys.exit(1)
print("primary: " + prompt)
"""

ALWAYS_BUSY_CLI = """
import sys
with open(sys.argv[1], "a") as f:
    f.write("called\\n")
sys.stderr.write("Error: 429 Too Many Requests\\n")
sys.exit(1)
"""


def test_rate_limited_items_move_to_the_fallback(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [
        {"id": i, "prompt": f"{'[busy] ' if i % 3 == 0 else ''}task {i}"} for i in range(9)
    ]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    primary = f"{shlex.quote(sys.executable)} -S -c {shlex.quote(BUSY_CLI)}"
    proc = llmsup_map(
        str(source), "-o", str(out), "--command", primary, "--fallback", "fake",
        "--max-attempts", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = by_id(read_jsonl(out))
    for item in items:
        line = lines[item["id"]]
        assert line["ok"] is True, line
        if "[busy]" in item["prompt"]:
            assert line["cli"] == "fake"
            assert line["text"] == f"echo: {item['prompt']}"
            assert line["attempts"] == 2  # one on the primary, one on the fallback
        else:
            assert line["cli"] == PYTHON
            assert line["text"] == f"primary: {item['prompt']}"
    assert "map: fallback fake: concurrency" in proc.stderr
    assert "3 moved to a fallback" in proc.stderr


def test_an_open_breaker_moves_items_without_calling_the_primary(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": f"t{i}"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    calls = tmp_path / "calls.txt"
    code = shlex.quote(ALWAYS_BUSY_CLI)
    primary = f"{shlex.quote(sys.executable)} -S -c {code} {shlex.quote(str(calls))}"
    proc = llmsup_map(
        str(source), "-o", str(out), "--command", primary, "--fallback", "fake",
        "--max-attempts", "1", "--failure-threshold", "1", "--concurrency", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(out)
    assert len(lines) == 5
    assert {line["cli"] for line in lines} == {"fake"}
    assert calls.read_text() == "called\n"  # after that, CIRCUIT_OPEN moved them at once


# -- structured output ------------------------------------------------------------------------

STRUCTURED_PLAN = json.dumps(
    {
        "rules": [
            {"match": "[good]", "text": 'Here:\n```json\n{"score": 7}\n```'},
            {"match": "[bad]", "text": '{"score": "high"}'},
        ]
    }
)


def test_output_schema_module_model_gives_data(tmp_path: Path) -> None:
    (tmp_path / "scoremodel.py").write_text(
        "from pydantic import BaseModel\n\nclass Score(BaseModel):\n    score: int\n"
    )
    items = [{"id": "g", "prompt": "[good] rate it"}, {"id": "b", "prompt": "[bad] rate it"}]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    proc = llmsup_map(
        str(source), "-o", str(out), "--plan", STRUCTURED_PLAN,
        "--output-schema", "scoremodel:Score", pythonpath=str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = by_id(read_jsonl(out))
    assert lines["g"]["data"] == {"score": 7}
    assert "text" not in lines["g"]
    assert lines["b"]["data"] is None
    assert lines["b"]["error"]["category"] == "malformed_output"
    assert lines["b"]["attempts"] == 3  # the call and two re-asks


def test_output_schema_json_schema_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 0}},
        "required": ["score"],
        "additionalProperties": False,
    }
    (tmp_path / "score.json").write_text(json.dumps(schema))
    items = [{"id": "g", "prompt": "[good] rate it"}, {"id": "b", "prompt": "[bad] rate it"}]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    argv = ["map", str(source), "-o", str(out), "--plan", STRUCTURED_PLAN]
    assert main([*argv, "--output-schema", str(tmp_path / "score.json")]) == 1
    lines = by_id(read_jsonl(out))
    assert lines["g"]["data"] == {"score": 7}
    assert lines["b"]["error"]["category"] == "malformed_output"
    assert "$.score: " in lines["b"]["error"]["message"]
    assert "is not of type 'integer'" in lines["b"]["error"]["message"]


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "properties": {"n": {"type": "integr"}}}, "$.properties.n.type"),
        ({"properties": {"p": {"$ref": "#/$defs/Missing"}}}, "does not resolve"),
        ({"$ref": "https://example.com/schema.json"}, "only references inside the schema"),
        ([], "must be a JSON object"),
    ],
)
def test_an_unusable_schema_file_is_a_usage_error_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], schema: object, named: str
) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(schema))
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "x"}])
    out = tmp_path / "out.jsonl"
    argv = ["map", str(source), "-o", str(out), "--output-schema", str(tmp_path / "bad.json")]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert named in err and "bad.json" in err
    assert not out.exists() or out.read_text() == ""  # nothing ran


# -- memory budget ------------------------------------------------------------------------------


def test_memory_budget_caps_concurrency(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(6)])
    proc = llmsup_map(
        str(source), "-o", str(tmp_path / "out.jsonl"),
        "--memory-budget", "60M", "--concurrency", "16",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    start = proc.stderr.splitlines()[1]
    assert start.startswith("map: cli fake: concurrency 2 (--concurrency 16;"), start
    assert "memory budget 60 MiB (--memory-budget), 30 MiB per process estimated" in start
    assert re.search(r"map: memory fake: budget 60 MiB, per-process peak ", proc.stderr)


def test_parse_size() -> None:
    assert parse_size("2G") == 2 * 1024**3
    assert parse_size("500M") == 500 * 1024**2
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("4096") == 4096
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(BadUsage):
            parse_size(bad)


# -- progress display ----------------------------------------------------------------------------


def _tally() -> Tally:
    tally = Tally(total=10, ok=3)
    tally.failed["rate_limit"] = 2
    return tally


def test_rich_progress_bar_shows_counts_failures_and_breaker() -> None:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160)
    progress = RichProgress(_tally(), [], started=0.0, console=console)
    progress.update(2.0)
    progress.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "5/10" in text
    assert "2.5/s" in text
    assert "2 failed (rate_limit 2)" in text


def test_plain_progress_prints_every_tenth_or_two_seconds() -> None:
    buffer = io.StringIO()
    tally = Tally(total=100)
    progress = PlainProgress(tally, [], started=0.0, stream=buffer)
    tally.ok = 5
    progress.update(1.0)
    assert buffer.getvalue() == ""
    progress.update(2.5)  # two seconds passed
    tally.ok = 10
    progress.update(2.6)  # another tenth
    tally.ok = 11
    progress.update(2.7)
    assert buffer.getvalue().count("\n") == 2
