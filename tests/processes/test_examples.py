"""The examples, run the way a user runs them: real subprocesses against the fake CLI.

Each example must exit 0 and print what it did. The FastAPI example is served for real
(as a subprocess, and in-process through `create_app`) and called over HTTP; the daemon is
stopped by its duration and by SIGTERM, with /proc checked for leftover CLI processes.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import httpx
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework

from ..helpers import live_processes_with, marker, wait_until_gone

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def example_argv(name: str, *args: str) -> list[str]:
    return [sys.executable, f"examples/{name}.py", *args]


def run_example(name: str, *args: str, timeout: float = 60) -> str:
    """Run ``examples/NAME.py``; assert it exits 0; return its stdout."""
    done = subprocess.run(
        example_argv(name, *args),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{name} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


def start_example(name: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        example_argv(name, *args),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


class OutputReader:
    """Reads a child's stdout without ever blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self.text = ""

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text)
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout}s in:\n{self.text}")
            readable, _, _ = select.select([self._fd], [], [], remaining)
            if readable:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    raise AssertionError(f"output ended before {pattern!r}:\n{self.text}")
                self.text += chunk.decode(errors="replace")

    def read_rest(self, timeout: float) -> str:
        """Everything up to EOF (the child has exited or is about to)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self._fd], [], [], deadline - time.monotonic())
            if not readable:
                break
            chunk = os.read(self._fd, 65536)
            if not chunk:
                break
            self.text += chunk.decode(errors="replace")
        return self.text


def stop(proc: subprocess.Popen[bytes], signum: int, timeout: float) -> tuple[int, float]:
    """Send ``signum``; return the exit status and how long the exit took."""
    started = time.monotonic()
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running {timeout}s after signal {signum}") from None
    return code, time.monotonic() - started


# ------------------------------------------------------------------ one-shot examples


def test_simple_analysis() -> None:
    out = run_example("simple_analysis")
    assert "score: 4.5" in out
    assert "issue: foo() has no docstring" in out
    assert "attempts: 1, re-asks: 0, cli: fake" in out
    assert "error: malformed_output: the answer did not match CodeAnalysis" in out
    assert "last answer: 'Looks fine to me, ship it!'" in out
    assert "wrapper: score 4.5" in out


def test_conversation() -> None:
    out = run_example("conversation")
    assert "mode: warm" in out
    for turn in (1, 2, 3):
        assert f"turn {turn}: echo: " in out
    assert "exported 6 messages to conversation.json" in out
    assert "turn 4 (continued): echo: Thanks!" in out
    assert "same session: True" in out
    assert "manager turn 2: echo: System: You are a helpful assistan … User: Tell me more" in out
    assert "manager: 2 turns, 4 messages kept" in out
    # Turns 1-3 share one warm process, turn 4 gets another, the manager spawns two.
    assert "statistics: 6 calls, 4 processes" in out


def test_batch_one_outcome_per_prompt() -> None:
    out = run_example("batch")
    assert "map: 8 prompts -> 8 outcomes" in out
    lines = out.splitlines()

    def line_for(name: str) -> str:
        return next(line for line in lines if line.strip().startswith(name))

    assert " ok after " in line_for("mean.py")
    assert "ok after 2 attempt(s)" in line_for("flaky.py")  # failed once, retried
    assert "FAILED retryable after 2 attempt(s)" in line_for("crashy.py")
    assert "FAILED auth_failure after 1 attempt(s)" in line_for("locked.py")  # never retried
    assert "FAILED timeout after 2 attempt(s)" in line_for("stuck.py")
    assert "map: 5 ok, 3 failed" in out
    streamed = [line for line in lines if line.startswith("map_stream: #")]
    assert len(streamed) == 8
    assert sorted(int(line.split("#")[1].split()[0]) for line in streamed) == list(range(8))
    assert "statistics: 16 calls" in out


def test_streaming() -> None:
    out = run_example("streaming")
    story = "Once upon a time, a trio nursery kept every child task in sight, and none leaked."
    assert out.count(story) == 2  # once from sup.stream, once from stream_response
    assert "stream: 8 text deltas, session " in out
    assert "first chunk only: 'Once upon a'" in out
    assert "left early: 0 calls in flight, 2 spawned" in out
    assert "stream_response: 8 chunks, 81 characters" in out


# ------------------------------------------------------------------ the FastAPI example


def test_fastapi_app_served_by_hypercorn() -> None:
    proc = start_example("fastapi_app", "--port", "0")
    try:
        output = OutputReader(proc)
        url = output.wait_for(r"serving on (http://127\.0\.0\.1:\d+)", timeout=20).group(1)
        with httpx.Client(base_url=url, timeout=20) as client:
            ok = client.post("/analyze", json={"code": "x = 42"})
            assert ok.status_code == 200, ok.text
            assert ok.json() == {"issues": ["no tests", "magic number"], "score": 6.5}

            with client.stream("GET", "/stream", params={"query": "tell me a story"}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/plain")
                chunks = list(response.iter_text())
            assert "".join(chunks) == "echo: tell me a story"

            # Text was already sent when the CLI crashed: the body is cut short.
            with (
                pytest.raises(httpx.RemoteProtocolError),
                client.stream("GET", "/stream", params={"query": "crash-mid-stream"}) as response,
            ):
                assert response.status_code == 200
                response.read()

            limited = client.post("/analyze", json={"code": "rate-limit-me"})
            assert limited.status_code == 429, limited.text
            assert limited.headers["retry-after"] == "7"
            assert limited.json()["detail"]["category"] == "rate_limit"

            # The rate limit opened the breaker until the announced time: fail fast.
            rejected = client.post("/analyze", json={"code": "x = 1"})
            assert rejected.status_code == 503, rejected.text
            assert 1 <= int(rejected.headers["retry-after"]) <= 7
            assert rejected.json()["detail"]["category"] == "circuit_open"
            streamed_rejection = client.get("/stream", params={"query": "hello"})
            assert streamed_rejection.status_code == 503
        code, _took = stop(proc, signal.SIGINT, timeout=60)  # a hang guard, not a bound
        assert code == 0, output.read_rest(5)
        assert "server stopped" in output.read_rest(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_fastapi_create_app_in_process() -> None:
    """`create_app` is importable: serve it in this trio run, call it, stop it."""
    from examples.fastapi_app import create_app

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 2.0
    shutdown = trio.Event()
    token = marker()
    async with trio.open_nursery() as nursery:

        async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
            app = cast(Framework, create_app())
            await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

        binds: list[str] = await nursery.start(run_server)
        async with httpx.AsyncClient(base_url=binds[0], timeout=20) as client:
            response = await client.post("/analyze", json={"code": "print('hi')"})
            assert response.status_code == 200
            assert response.json()["score"] == 6.5

            # A client that leaves mid-stream: the CLI process is stopped at once.
            params = {"query": f"slow-story {token}"}
            async with client.stream("GET", "/stream", params=params) as stream:
                assert stream.status_code == 200
                async for _text in stream.aiter_text():
                    assert live_processes_with(token)  # 19 more chunks to come
                    break
        assert await wait_until_gone(token, 30) == []  # polls; 30 s only guards a hang
        shutdown.set()


# ------------------------------------------------------------------ the daemon example


def test_daemon_runs_rounds_until_stopped() -> None:
    # Rounds are counted, not timed: wait for round 2's line (a round still running at the
    # next tick is skipped, so the interval leaves a loaded machine ample room), then stop.
    # --duration is only a backstop against a hang here.
    proc = start_example("daemon", "--duration", "300", "--interval", "2")
    try:
        output = OutputReader(proc)
        output.wait_for(r"round 2: .*\n", timeout=120)
        code, _took = stop(proc, signal.SIGTERM, timeout=60)
        out = output.read_rest(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, out
    assert "daemon started: cli=fake" in out
    assert "round 1: 4 ok, 0 failed" in out
    assert re.search(r"daemon: statistics: started=4 succeeded=4 failed=0", out)
    assert "round 2: 3 ok, 1 failed (retryable)" in out  # the crashing deploy check
    assert re.search(r"final statistics: started=\d+ .* in_flight=0 ", out)
    assert "daemon stopped cleanly" in out


def test_daemon_stops_by_itself_after_its_duration() -> None:
    out = run_example("daemon", "--duration", "1", "--interval", "0.5", timeout=120)
    assert "daemon started: cli=fake" in out
    assert re.search(r"final statistics: started=\d+ .* in_flight=0 ", out)
    assert "daemon stopped cleanly" in out


def test_daemon_stops_on_sigterm_leaving_no_process() -> None:
    token = marker()
    # "stuck" in the job name makes every fake CLI call hang: processes are in flight. The
    # duration is far past `stop`'s guard, so a daemon that ignored SIGTERM cannot pass by
    # ending on its own.
    proc = start_example("daemon", "--duration", "600", "--job", f"stuck-{token}")
    try:
        output = OutputReader(proc)
        output.wait_for("daemon started", timeout=20)
        deadline = time.monotonic() + 20
        while not [pid for pid in live_processes_with(token) if pid != proc.pid]:
            assert time.monotonic() < deadline, f"no CLI process started:\n{output.text}"
            time.sleep(0.05)
        # The calls hang forever: stopping at all proves they were cancelled; `stop`'s
        # timeout is a hang guard, not a timing bound.
        code, _took = stop(proc, signal.SIGTERM, timeout=60)
        text = output.read_rest(5)
        assert code == 0, text
        assert "SIGTERM received: shutting down" in text
        assert "in_flight=0" in text.split("final statistics:")[1]
        assert "daemon stopped cleanly" in text
        assert live_processes_with(token) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
