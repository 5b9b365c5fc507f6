"""``llmsup serve`` run as the command a user types: --token, --grace, the default bind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ..helpers import live_processes_with, marker

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0  # only a guard against a hang


@contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``llmsup serve --port 0 ARGS`` and the URL it printed."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if env is None or "LLMSUP_TOKEN" not in env:
        environ.pop("LLMSUP_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor._llmsup", "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environ,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("llmsup serve: fake on http://"), (line, proc.poll())
        yield proc, line.split(" on ", 1)[1].strip()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _listening(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} has them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # TCP_LISTEN
                found.add(address)
    return found


def test_serve_listens_on_127_0_0_1_only_by_default() -> None:
    with serving() as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        assert _listening(port) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::
        assert httpx.get(url + "/health", timeout=WAIT_S).status_code == 200
    assert proc.returncode == 0


@pytest.mark.parametrize("how", ["--token", "LLMSUP_TOKEN"])
def test_serve_token_guards_every_endpoint_but_health(how: str) -> None:
    secret = "s3cret-" + marker()
    args, env = (["--token", secret], None) if how == "--token" else ([], {"LLMSUP_TOKEN": secret})
    with (
        serving(*args, env=env) as (_proc, url),
        httpx.Client(base_url=url, timeout=WAIT_S) as client,
    ):
        body = {"prompt": "hi"}
        assert client.post("/ask", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post("/ask", json=body, headers=wrong).status_code == 401
        assert client.get("/metrics").status_code == 401
        refused = client.post("/ask", json=body)
        assert refused.json()["error"]["category"] == "unauthorized"
        assert secret not in refused.text
        good = {"Authorization": f"Bearer {secret}"}
        answered = client.post("/ask", json=body, headers=good)
        assert answered.status_code == 200
        assert answered.json()["text"] == "echo: hi"
        assert client.get("/metrics", headers=good).status_code == 200
        assert client.get("/health").status_code == 200


def _slow_call_then_sigterm(grace: str) -> tuple[int, list[int]]:
    """One call in flight (2 s of latency), SIGTERM: (exit status, statuses the call got)."""
    token = marker()
    plan = json.dumps({"latency_s": 2.0, "session_id": token})
    statuses: list[int] = []
    with serving("--grace", grace, "--plan", plan) as (proc, url):

        def call() -> None:
            response = httpx.post(url + "/ask", json={"prompt": "slow"}, timeout=WAIT_S)
            statuses.append(response.status_code)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        deadline = time.monotonic() + WAIT_S
        with httpx.Client(base_url=url, timeout=WAIT_S) as client:
            while client.get("/health").json()["in_flight"] != 1:
                if time.monotonic() > deadline:
                    pytest.fail("the call never got in flight")
                time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT_S)
        caller.join(WAIT_S)
    assert [p for p in live_processes_with(token) if p != proc.pid] == []
    return proc.returncode, statuses


def test_serve_grace_lets_the_call_in_flight_finish() -> None:
    assert _slow_call_then_sigterm("60") == (0, [200])


def test_serve_grace_0_stops_the_call_in_flight_with_503() -> None:
    assert _slow_call_then_sigterm("0") == (0, [503])


def test_serve_rejects_a_bad_grace() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor._llmsup", "serve", "--port", "0", "--grace", "-1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=WAIT_S,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "llmsup: --grace must be a finite number of seconds >= 0, got -1.0"
    ]
