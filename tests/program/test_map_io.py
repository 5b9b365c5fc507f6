"""``llmsup map`` as fan-out users expect it, run as the real command on the fake CLI: ``-``
for stdin and stdout, an input line's other fields written back, ``--retry-failed`` that
replaces failed lines through one rename, one rule for ids ``1`` and ``"1"``, the cost
as the CLI reported it, empty prompts refused up front, ``--standby``, help with defaults."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import ErrorCategory, LLMError
from supervisor._llmsup._map import add_map_arguments
from supervisor._llmsup._map._input import MapItem, id_key
from supervisor._llmsup._map._output import RESERVED_FIELDS, ReplacingOutput, result_line

from ..helpers import live_processes_with, marker
from .test_map_cli import by_id, llmsup_map, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _map_process(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "supervisor._llmsup", "map", *args],
        cwd=ROOT,
        env=full_env,
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _spool_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith("llmsup-map-stdin-")]


def _jsonl_bytes(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in items).encode()


# -- 1. stdin in, stdout out ------------------------------------------------------------------


def test_stdin_in_stdout_out_with_the_summary_on_stderr(tmp_path: Path) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    items = [{"id": i, "prompt": f"question {i}"} for i in range(40)]
    proc = _map_process("-", "-o", "-", stdin=_jsonl_bytes(items), env={"TMPDIR": str(spool)})
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]  # only JSON lines
    assert proc.stdout.endswith(b"\n")
    assert {line["id"]: line["text"] for line in lines} == {
        i: f"echo: question {i}" for i in range(40)
    }
    err = proc.stderr.decode()
    assert "map: 40 items from stdin -> stdout" in err
    assert "map: finished 40/40" in err
    assert _spool_files(spool) == []  # the spool file of stdin is removed


def test_a_bad_stdin_line_is_a_usage_error_and_leaves_no_spool_file(tmp_path: Path) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    data = b'{"id": 1, "prompt": "fine"}\n{"id": 2}\n'
    proc = _map_process("-", "-o", "-", stdin=data, env={"TMPDIR": str(spool)})
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith('llmsup: stdin line 2: "prompt" must be a string')
    assert proc.stdout == b""
    assert _spool_files(spool) == []


@pytest.mark.parametrize("flag", ["--resume", "--retry-failed"])
def test_resume_or_retry_with_stdout_is_a_usage_error(tmp_path: Path, flag: str) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])
    proc = llmsup_map(str(source), "-o", "-", flag)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"llmsup: {flag} needs an output file"), proc.stderr
    assert proc.stdout == ""


def test_stdout_closed_by_its_reader_stops_the_run(tmp_path: Path) -> None:
    """``llmsup map in -o - | head -n 3``: no traceback, the CLI processes are ended."""
    token = marker()
    items = [{"id": i, "prompt": f"q {i}"} for i in range(2000)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    plan = json.dumps({"rules": [{"match": token}]})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor._llmsup",
            "map",
            *(str(source), "-o", "-"),
            "--plan",
            plan,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    _out, err = proc.communicate(timeout=60)
    assert all(json.loads(line)["ok"] for line in first)
    assert proc.returncode == 1, err
    assert b"Traceback" not in err, err
    assert b"standard output was closed by its reader" in err
    assert live_processes_with(token) == []


# -- 2. an input line's other fields come back ------------------------------------------------


def test_other_input_fields_come_back_and_clashing_ones_go_under_input(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [
        {"id": "a", "prompt": "p", "lang": "fr", "meta": {"row": 7, "tags": ["x"]}},
        {"id": "b", "prompt": "q", "text": "source doc", "ok": "mine", "input": 3, "n": None},
        {"id": "c", "prompt": "r"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    plan = json.dumps({"rules": [{"match": "q", "auth_failure": True}]})
    proc = llmsup_map(str(source), "-o", str(out), "--plan", plan)
    assert proc.returncode == 1, proc.stderr
    lines = by_id(read_jsonl(out))
    assert lines["a"]["text"] == "echo: p"
    assert lines["a"]["lang"] == "fr" and lines["a"]["meta"] == {"row": 7, "tags": ["x"]}
    assert "input" not in lines["a"] and "prompt" not in lines["a"]
    b = lines["b"]
    assert b["ok"] is False and b["text"] is None  # the output's own fields win
    assert b["error"]["category"] == "auth_failure"
    assert b["input"] == {"text": "source doc", "ok": "mine", "input": 3}
    assert "n" in b and b["n"] is None
    assert "input" not in lines["c"] and set(lines["c"]) == set(lines["a"]) - {"lang", "meta"}


def test_other_fields_nested_too_deeply_are_a_usage_error(tmp_path: Path) -> None:
    deep = {"id": 2, "prompt": "x", "extra": json.loads("[" * 500 + "]" * 500)}
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "prompt": "y"}, deep])
    proc = llmsup_map(str(source), "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"llmsup: {source} line 2: not usable JSON (nested too deeply")
    assert not (tmp_path / "out.jsonl").exists()


# -- 3. --retry-failed ------------------------------------------------------------------------


def _first_run_with_failures(tmp_path: Path, count: int, bad: set[int]) -> tuple[Path, Path]:
    items = [{"id": i, "prompt": f"{'[bad] ' if i in bad else ''}t{i}"} for i in range(count)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    plan = json.dumps({"rules": [{"match": "[bad]", "auth_failure": True}]})
    first = llmsup_map(str(source), "-o", str(out), "--plan", plan)
    assert first.returncode == 1, first.stderr
    lines = by_id(read_jsonl(out))
    assert {i for i, line in lines.items() if not line["ok"]} == bad
    return source, out


RECORDING_CLI = """
import sys
log, prompt = sys.argv[1], sys.argv[-1]
with open(log, "a") as f:
    f.write(prompt + "\\n")
print("done: " + prompt)
"""


def test_retry_failed_replaces_only_the_failed_lines(tmp_path: Path) -> None:
    bad = {1, 4, 5, 9, 11}
    source, out = _first_run_with_failures(tmp_path, 12, bad)
    # A line of an id that is not in the input is kept as it is.
    with open(out, "a") as f:
        f.write('{"id": "other", "ok": false, "text": null}\n')
    before = out.read_bytes().splitlines(keepends=True)
    inode = out.stat().st_ino
    log = tmp_path / "log"
    recording = shlex.join([sys.executable, "-S", "-c", RECORDING_CLI, str(log)])
    proc = llmsup_map(str(source), "-o", str(out), "--retry-failed", "--cli", recording)
    assert proc.returncode == 0, proc.stderr
    assert "(5 failed before, run again)" in proc.stderr
    after = out.read_bytes().splitlines(keepends=True)
    lines = by_id(read_jsonl(out))  # one line per id
    assert set(lines) == {*range(12), "other"}
    assert all(lines[i]["ok"] for i in range(12))
    assert lines[4]["text"] == "done: [bad] t4"
    kept = [line for line in before if json.loads(line)["id"] not in bad]
    assert after[: len(kept)] == kept  # the ok lines and the foreign one, byte for byte
    assert out.stat().st_ino != inode  # a new file was renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "log", "out.jsonl"]
    assert sorted(log.read_text().splitlines()) == sorted(f"[bad] t{i}" for i in bad)


def test_retry_failed_interrupted_keeps_what_is_done_and_the_old_lines_of_the_rest(
    tmp_path: Path,
) -> None:
    bad = set(range(0, 60, 2))  # 30 failed; 3, 13, 23, ... hang on the retry
    source, out = _first_run_with_failures(tmp_path, 60, bad)
    before = {json.loads(line)["id"]: line for line in out.read_bytes().splitlines(True)}
    token = marker()
    rules = [{"match": "[bad] t1", "hang": True}, {"match": token}]  # ids 10, 12, 14, ... 18
    hanging = {i for i in bad if str(i).startswith("1")}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(source), "-o", str(out), "--retry-failed", "--plan", json.dumps({"rules": rules})]
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor._llmsup", "map", *args, "--concurrency", "8"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        partial = _wait_for_partial(tmp_path, out, 60 - len(bad) + len(bad - hanging), proc)
        assert out.read_bytes().splitlines(True) == list(before.values())  # untouched so far
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not partial.exists()
    lines = by_id(read_jsonl(out))
    assert set(lines) == set(range(60))
    for i in range(60):
        raw = json.dumps(lines[i])
        if i in hanging:
            assert json.loads(before[i]) == lines[i], raw  # still the old failed line
            assert lines[i]["ok"] is False
        else:
            assert lines[i]["ok"] is True, raw
    assert live_processes_with(token) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def _wait_for_partial(folder: Path, out: Path, count: int, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in folder.iterdir() if p.name.startswith(f".{out.name}.")]
        if partial and partial[0].read_bytes().count(b"\n") >= count:
            return partial[0]
        time.sleep(0.05)
    raise AssertionError(f"the new file never had {count} lines")


# -- 4. ids 1 and "1" are one id --------------------------------------------------------------


def test_an_integer_id_and_its_string_are_one_id(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}, {"id": "1", "prompt": "y"}]
    )
    proc = llmsup_map(str(source), "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        f"llmsup: {source} line 2: duplicate id '1' (1 and \"1\" are one id)"
    ), proc.stderr
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}, {"id": "01", "prompt": "y"}]
    )
    assert llmsup_map(str(source), "-o", str(tmp_path / "out.jsonl")).returncode == 0


def test_resume_takes_an_output_id_1_for_the_input_id_string_1(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [
        {"id": "1", "prompt": "one"},
        {"id": 2, "prompt": "two"},
        {"id": 3, "prompt": "three"},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 1, "ok": true, "text": "kept"}\n{"id": "2", "ok": false}\n')
    proc = llmsup_map(str(source), "-o", str(out), "--resume")
    assert proc.returncode == 1, proc.stderr  # id 2 failed before
    assert "(2 already in" in proc.stderr
    lines = read_jsonl(out)
    assert [line["id"] for line in lines] == [1, "2", 3]
    retried = llmsup_map(str(source), "-o", str(out), "--retry-failed")
    assert retried.returncode == 0, retried.stderr
    lines = read_jsonl(out)
    assert [(line["id"], line["text"]) for line in lines] == [
        (1, "kept"),
        (3, "echo: three"),
        (2, "echo: two"),  # written with the input's id
    ]


# -- 5. cost as the CLI reported it -----------------------------------------------------------


def test_the_summary_says_the_cost_is_the_clis_own_figure(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(3)])
    proc = llmsup_map(str(source), "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert (
        "; cost $0.0000 as reported by the CLI for 3 of 3 items (the CLI's own estimate from "
        "its token counts and price list, not a bill)"
    ) in proc.stderr
    plain = f"{sys.executable} -S -c \"import sys; print('ok ' + sys.argv[-1])\""
    proc = llmsup_map(str(source), "-o", str(tmp_path / "out2.jsonl"), "--cli", plain)
    assert proc.returncode == 0, proc.stderr
    assert "; cost not reported by the CLI" in proc.stderr
    assert all(line["cost"] is None for line in read_jsonl(tmp_path / "out2.jsonl"))


# -- 6. an empty prompt -----------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "  \n\t "])
def test_an_empty_prompt_is_a_usage_error_naming_the_line(tmp_path: Path, prompt: str) -> None:
    token = marker()
    items = [{"id": "a", "prompt": "fine"}, {"id": "b", "prompt": prompt}]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    proc = llmsup_map(
        str(source), "-o", str(out), "--plan", json.dumps({"rules": [{"match": token}]})
    )
    assert proc.returncode == 2
    assert proc.stderr == f"llmsup: {source} line 2: \"prompt\" is empty for id 'b'\n"
    assert not out.exists()
    assert live_processes_with(token) == []


# -- 8. help ----------------------------------------------------------------------------------


def test_every_map_option_says_what_it_does_and_its_default() -> None:
    parser = argparse.ArgumentParser()
    add_map_arguments(parser)
    missing = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue  # positional, or hidden alias
        if isinstance(action, argparse._StoreTrueAction | argparse._HelpAction):
            continue
        text = action.help or ""
        if not text or ("default: " not in text and "(required)" not in text):
            missing.append(action.option_strings[-1])
    assert missing == []


# -- 7. --standby ------------------------------------------------------------------------------


def test_standby_processes_serve_the_calls_end_to_end(tmp_path: Path) -> None:
    token = marker()
    items = [{"id": i, "prompt": f"p{i}"} for i in range(6)]
    source = write_jsonl(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    starts = tmp_path / "starts.log"
    plan = {"startup_s": 0.3, "startup_marker": str(starts), "rules": [{"match": token}]}
    proc = llmsup_map(
        *(str(source), "-o", str(out), "--standby", "1", "--concurrency", "1"),
        *("--prompt-via", "stdin", "--plan", json.dumps(plan)),
    )
    assert proc.returncode == 0, proc.stderr
    lines = by_id(read_jsonl(out))
    assert {i: line["text"] for i, line in lines.items()} == {i: f"echo: p{i}" for i in range(6)}
    assert "standby 1 (counted in the memory budget)" in proc.stderr
    taken = re.search(r"map: standby fake: (\d+) calls took a standby process", proc.stderr)
    assert taken is not None, proc.stderr
    assert 1 <= int(taken.group(1)) <= 6
    assert live_processes_with(token) == []  # the last standby process was stopped too


def test_standby_for_a_cli_that_takes_its_prompt_as_an_argument_is_a_usage_error(
    tmp_path: Path,
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "prompt": "x"}])
    proc = llmsup_map(str(source), "-o", str(tmp_path / "out.jsonl"), "--standby", "1")
    assert proc.returncode == 2
    assert proc.stderr.startswith("llmsup: --standby: not for fake: the prompt is passed as an")
    assert not (tmp_path / "out.jsonl").exists()


# Counts the processes of its kind alive when it starts (its parent, llmsup map, has the
# token in its argv too, and is left out), then holds ~40 MiB before it reads its prompt.
COUNTING_CLI = """
import os, sys
token, log = sys.argv[1].encode(), sys.argv[2]
alive = 0
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getppid():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                alive += token in f.read()
        except OSError:
            pass
with open(log, "a") as f:
    f.write(f"{alive}\\n")
block = bytearray(40 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
print("done: " + sys.stdin.read())
"""


@pytest.mark.parametrize(("budget", "most"), [("50M", 1), ("2G", 3)])
def test_standby_processes_count_against_the_memory_budget(
    tmp_path: Path, budget: str, most: int
) -> None:
    """50M holds one such process: a standby one or a call's, never both; 2G holds the
    call's and both standby ones (the control: without the bound they do overlap)."""
    token = marker()
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(8)])
    log = tmp_path / "alive.log"
    cli = shlex.join([sys.executable, "-S", "-c", COUNTING_CLI, token, str(log)])
    proc = llmsup_map(
        *(str(source), "-o", str(tmp_path / "out.jsonl"), "--command", cli),
        *("--prompt-via", "stdin", "--standby", "2", "--concurrency", "1"),
        *("--memory-budget", budget),
    )
    assert proc.returncode == 0, proc.stderr
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 8
    counts = [int(line) for line in log.read_text().split()]
    if most == 1:
        assert max(counts) == 1, counts
    else:
        assert max(counts) >= 2, counts  # standby processes waited beside the call's
    assert live_processes_with(token) == []


# -- the decisions, without processes -----------------------------------------------------------

_names = st.sampled_from(["ok", "text", "input", "node", "cost", "lang", "row", "x"])
_values = st.none() | st.integers() | st.text(max_size=5)


@given(extra=st.dictionaries(_names, _values, max_size=8))
def test_input_fields_all_come_back_and_never_replace_an_output_field(
    extra: dict[str, Any],
) -> None:
    item = MapItem(7, "p", extra=dict(extra) or None)
    line = result_line(item, LLMError("no", ErrorCategory.PERMANENT), "fake", structured=False)
    assert line["id"] == 7 and line["ok"] is False and line["text"] is None
    back = {k: v for k, v in line.items() if k not in RESERVED_FIELDS}
    back.update(line.get("input", {}))
    assert back == extra
    assert ("input" in line) == any(name in RESERVED_FIELDS for name in extra)


@given(
    old=st.lists(st.tuples(st.integers(0, 9), st.booleans()), max_size=15),
    finished=st.sets(st.integers(0, 9)),
)
def test_retry_output_is_one_line_per_id_whatever_finished(
    tmp_path_factory: pytest.TempPathFactory, old: list[tuple[int, bool]], finished: set[int]
) -> None:
    folder = tmp_path_factory.mktemp("retry")
    path = folder / "out.jsonl"
    path.write_text("".join(json.dumps({"id": i, "ok": ok, "v": "old"}) + "\n" for i, ok in old))
    first: dict[int, bool] = {}
    for i, ok in old:
        first.setdefault(i, ok)
    retry = {str(i) for i, ok in first.items() if not ok}
    out = ReplacingOutput(str(path), retry)
    for i in sorted(finished):
        if str(i) in retry:
            out.write({"id": i, "ok": True, "v": "new"})
    out.close()
    lines = by_id(read_jsonl(path))  # one line per id, none torn
    assert set(lines) == set(first)
    for i, ok in first.items():
        expected = "new" if (not ok and i in finished) else "old"
        assert lines[i]["v"] == expected
    assert [p.name for p in folder.iterdir()] == ["out.jsonl"]


def test_id_key_makes_an_integer_and_its_digits_one_id() -> None:
    assert id_key(1) == id_key("1") == "1"
    assert id_key(-3) == "-3"
    assert id_key("01") != id_key(1)
