"""SIGTERM, SIGHUP and SIGINT to every ``llmsup`` subcommand that runs CLIs: the command
stops its CLI processes and exits with 128+signal (``serve`` drains, then exits 0, as it
documents). Run as real processes; checked through /proc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..helpers import live_processes_with, marker

ROOT = Path(__file__).resolve().parents[2]
STOP_SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]
WAIT_S = 60.0  # only a guard against a hang: the loops below end on what they see


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 :].split()[0] != b"Z"


def descendants(root: int) -> dict[int, bytes]:
    """Every live process below ``root`` (by PPID, through /proc), with its command line."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if fields[0] != b"Z":
            parents[int(entry)] = int(fields[1])
    found: dict[int, bytes] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                cmdline = _cmdline(pid)
                if cmdline is not None:
                    found[pid] = cmdline
                    frontier.append(pid)
    return found


def still_running(tree: dict[int, bytes]) -> list[int]:
    """The processes of ``tree`` still alive (the same command line: not a reused pid)."""
    return [pid for pid, cmdline in tree.items() if _alive(pid) and _cmdline(pid) == cmdline]


def cli_tree(proc: subprocess.Popen[str]) -> dict[int, bytes]:
    """The processes below ``proc`` that run a program of their own (not a fork of it that
    has yet to exec)."""
    own = _cmdline(proc.pid)
    return {pid: cmdline for pid, cmdline in descendants(proc.pid).items() if cmdline != own}


def wait_for_cli(proc: subprocess.Popen[str], token: str) -> dict[int, bytes]:
    """Poll until a CLI process carrying ``token`` runs below ``proc``; fail if none ever does."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"llmsup exited early with {proc.returncode}"
        tree = cli_tree(proc)
        if any(token.encode() in cmdline for cmdline in tree.values()):
            return tree
        time.sleep(0.02)
    pytest.fail(f"no CLI process carrying {token} ever appeared")


@contextmanager
def llmsup(*args: str, stdin: bool = False) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor._llmsup", *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop_and_check(
    proc: subprocess.Popen[str], token: str, tree: dict[int, bytes], signum: int, status: int
) -> str:
    assert still_running(tree), "the CLI is gone before the signal"
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == status, err
    assert "Traceback" not in err, err
    assert still_running(tree) == []
    assert live_processes_with(token) == []
    return err


def hang_plan(token: str) -> str:
    return json.dumps({"hang": True, "session_id": token})


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_ask_stops_its_cli_on_a_signal(signum: signal.Signals) -> None:
    token = marker()
    with llmsup("ask", "--plan", hang_plan(token), "a question") as proc:
        tree = wait_for_cli(proc, token)
        err = stop_and_check(proc, token, tree, signum, 128 + signum)
    assert "every CLI process was stopped" in err


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_chat_stops_its_warm_cli_on_a_signal(signum: signal.Signals) -> None:
    token = marker()
    with llmsup("chat", "--plan", hang_plan(token), stdin=True) as proc:
        assert proc.stdin is not None
        proc.stdin.write("a slow question\n")
        proc.stdin.flush()
        tree = wait_for_cli(proc, token)
        stop_and_check(proc, token, tree, signum, 128 + signum)


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_map_stops_its_clis_on_a_signal(signum: signal.Signals, tmp_path: Path) -> None:
    token = marker()
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(4)))
    out = tmp_path / "out.jsonl"
    with llmsup("map", str(source), "-o", str(out), "--plan", hang_plan(token)) as proc:
        tree = wait_for_cli(proc, token)
        stop_and_check(proc, token, tree, signum, 128 + signum)
    assert out.read_text() == ""  # nothing in flight is written


def test_demo_stops_its_clis_on_a_signal() -> None:
    with llmsup("demo", "--prompts", "40", "--concurrency", "4") as proc:
        deadline = time.monotonic() + WAIT_S
        tree: dict[int, bytes] = {}
        while not any(b"_cli.py" in cmdline for cmdline in tree.values()):
            # its fake CLIs (running actors/_fakes/_cli.py), children of the demo process
            assert time.monotonic() < deadline, "the demo never started a CLI"
            assert proc.poll() is None, proc.communicate()
            tree = cli_tree(proc)
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    assert still_running(tree) == []


def _post_in_background(url: str, results: list[object]) -> threading.Thread:
    def post() -> None:
        request = urllib.request.Request(
            url + "/ask",
            data=json.dumps({"prompt": "x"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT_S) as response:
                results.append(response.status)
        except urllib.error.HTTPError as exc:
            results.append(exc.code)
        except OSError as exc:
            results.append(type(exc).__name__)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_serve_drains_then_stops_its_clis_on_a_signal(signum: signal.Signals) -> None:
    token = marker()
    args = ("serve", "--port", "0", "--grace", "0", "--plan", hang_plan(token))
    with llmsup(*args) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, line
        results: list[object] = []
        thread = _post_in_background(line.split(" on ", 1)[1].strip(), results)
        tree = wait_for_cli(proc, token)
        # serve documents its own status: 0 once the calls in flight are drained
        stop_and_check(proc, token, tree, signum, 0)
        thread.join(WAIT_S)
    assert results == [503]  # the call outlived --grace 0: stopped and answered 503
