"""``llmsup serve`` as daemon users expect it (issue 12's "Daemon" part, issue 14's standby).

Each test runs the real ``llmsup serve`` command on 127.0.0.1 with the fake CLI or a tiny
Python CLI, and talks to it over real HTTP: offline ``/docs`` and ``/redoc``, typed events on
``/stream`` (raw ones only with ``?raw=1``), ``/metrics`` for a Prometheus scraper
(``--metrics-token``, ``--public-metrics``), per-request ``model``, ``timeout``, ``system``
and ``tools`` within the server's limits, the ``cli`` label, ``--standby``, and the help.
"""

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
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from supervisor._llmsup._main import _parser

from ..helpers import live_processes_with, marker
from .test_serve import metric, parse_sse

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0  # only a guard against a hang
PY = shlex.quote(sys.executable)

# A JSON-lines CLI that prints one event the typed model has no type for, then its answer.
RAW_EVENTS = f"{PY} -S -c " + shlex.quote(
    "import json\n"
    "print(json.dumps({'type': 'system', 'subtype': 'init', 'internal': 42}))\n"
    "print(json.dumps({'type': 'text_delta', 'text': 'hi'}))\n"
    "print(json.dumps({'type': 'result', 'text': 'hi'}))\n"
)
# A JSON-lines CLI whose agent asks to run the Read tool, then answers.
READS_A_FILE = f"{PY} -S -c " + shlex.quote(
    "import json\n"
    "print(json.dumps({'type': 'tool_use', 'id': 't1', 'name': 'Read', 'input': {}}))\n"
    "print(json.dumps({'type': 'result', 'text': 'read it'}))\n"
)
REFUSED = f"{PY} -S -c " + shlex.quote(
    "import sys; sys.stderr.write('Error: 401 Unauthorized\\n'); sys.exit(1)"
)


@contextmanager
def serving(
    *args: str, command: str = "serve", env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``llmsup serve --port 0 ARGS`` and the URL it printed; SIGTERM and a clean exit after.

    ``command="emulate"`` runs the provider emulator instead."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environ.pop("LLMSUP_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor._llmsup", command, "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environ,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        found = re.search(r" on (http://\S+)$", line.strip())
        assert found, (line, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        yield proc, found.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0


def llmsup_serve(*args: str) -> subprocess.CompletedProcess[str]:
    """``llmsup serve ARGS`` run to its end (a usage error, ``--help``)."""
    return subprocess.run(
        [sys.executable, "-m", "supervisor._llmsup", "serve", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=WAIT_S,
        check=False,
    )


def error_of(response: httpx.Response, status: int, category: str) -> str:
    """The message of an `ErrorBody` response of that status and category."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["category"] == category, error
    message: str = error["message"]
    return message


# -------------------------------------------------------------------- 1. offline docs


class _References(HTMLParser):
    """Every URL a page loads: ``src`` and ``href`` attributes, ReDoc's ``spec-url``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)


def _page_references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    # Swagger UI's configuration script names the schema as a JS string.
    parser.urls += re.findall(r"url: '([^']+)'", html)
    return parser.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_offline_every_asset_from_the_server(page: str) -> None:
    # With a token: the pages, their assets and the schema need none (a browser cannot send
    # a bearer header to load a page); the calls do.
    with serving("--cli", "fake", "--token", "s3cret") as (_proc, url):
        response = httpx.get(url + page, timeout=WAIT_S)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        # Nothing from a CDN or any other host: no absolute URL anywhere in the page.
        assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), html
        references = _page_references(html)
        scripts = [ref for ref in references if ref.endswith(".js")]
        assert scripts, references  # the page does load its UI
        assert "/openapi.json" in references
        for ref in references:
            assert ref.startswith("/"), ref  # served by this app
            asset = httpx.get(url + ref, timeout=WAIT_S)
            assert asset.status_code == 200, (ref, asset.text[:200])
            assert asset.content, ref
        for script in scripts:  # the real bundles, not an error page
            asset = httpx.get(url + script, timeout=WAIT_S)
            assert "javascript" in asset.headers["content-type"], script
            assert len(asset.content) > 100_000, script
        schema = httpx.get(url + "/openapi.json", timeout=WAIT_S).json()
        assert set(schema["paths"]) == {"/ask", "/stream", "/health", "/metrics"}
        # The schema declares the token, so Swagger UI's "Authorize" can send it.
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        # The calls still need the token.
        assert httpx.post(url + "/ask", json={"prompt": "hi"}, timeout=WAIT_S).status_code == 401


# -------------------------------------------------------------------- 2. /stream


def test_stream_sends_typed_events_by_default_and_raw_ones_only_when_asked() -> None:
    with serving("--command", RAW_EVENTS, "--output-format", "jsonl") as (_proc, url):
        typed = httpx.post(url + "/stream", json={"prompt": "go"}, timeout=WAIT_S)
        raw = httpx.post(url + "/stream?raw=1", json={"prompt": "go"}, timeout=WAIT_S)
    assert typed.status_code == 200 and raw.status_code == 200
    events = parse_sse(typed.text)
    assert [name for name, _ in events] == ["text_delta", "result"]
    assert events[0][1] == {"type": "text_delta", "text": "hi"}  # no CLI object in it
    assert events[1][1]["text"] == "hi"

    raw_events = parse_sse(raw.text)
    assert [name for name, _ in raw_events] == ["raw", "text_delta", "result"]
    internal = raw_events[0][1]
    assert internal["raw"] == {"type": "system", "subtype": "init", "internal": 42}
    # Each typed event carries the CLI's own object too.
    assert raw_events[1][1]["raw"] == {"type": "text_delta", "text": "hi"}


# -------------------------------------------------------------------- 3. /metrics access


def _get_metrics(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url + "/metrics", headers=headers, timeout=WAIT_S).status_code


def test_metrics_stay_behind_the_api_token_by_default() -> None:
    with serving("--cli", "fake", "--token", "api-token") as (_proc, url):
        assert _get_metrics(url, None) == 401
        assert _get_metrics(url, "wrong") == 401
        assert _get_metrics(url, "api-token") == 200


def test_metrics_token_opens_metrics_only() -> None:
    with serving("--cli", "fake", "--token", "api-token", "--metrics-token", "scrape") as (
        _proc,
        url,
    ):
        assert _get_metrics(url, "scrape") == 200
        assert _get_metrics(url, "api-token") == 200
        assert _get_metrics(url, None) == 401
        assert _get_metrics(url, "wrong") == 401
        scraper = {"Authorization": "Bearer scrape"}
        ask = httpx.post(url + "/ask", json={"prompt": "hi"}, headers=scraper, timeout=WAIT_S)
        assert ask.status_code == 401  # the scraper's token runs no call


def test_public_metrics_need_no_token_and_the_api_still_does() -> None:
    with serving("--cli", "fake", "--token", "api-token", "--public-metrics") as (_proc, url):
        response = httpx.get(url + "/metrics", timeout=WAIT_S)
        assert response.status_code == 200
        assert "llmsup_calls_total" in response.text
        ask = httpx.post(url + "/ask", json={"prompt": "hi"}, timeout=WAIT_S)
        assert ask.status_code == 401


def test_public_metrics_with_a_metrics_token_is_a_usage_error() -> None:
    done = llmsup_serve("--public-metrics", "--metrics-token", "x")
    assert done.returncode == 2
    assert "--metrics-token" in done.stderr and "public" in done.stderr


# -------------------------------------------------------------------- 4. per-request options


def test_a_request_system_prompt_reaches_the_cli() -> None:
    with serving("--cli", "fake", "--system", "server default") as (_proc, url):
        own = httpx.post(url + "/ask", json={"prompt": "hi", "system": "be brief"}, timeout=WAIT_S)
        default = httpx.post(url + "/ask", json={"prompt": "hi"}, timeout=WAIT_S)
    # The fake echoes what it was given; it has no native system option, so the system
    # prompt is put before the user text.
    assert own.status_code == 200, own.text
    assert "System: be brief" in own.json()["text"]
    assert "server default" not in own.json()["text"]
    assert "System: server default" in default.json()["text"]


def test_a_request_timeout_stops_the_call_and_its_cli() -> None:
    token = marker()  # in the prompt, so in the fake's argv (not in the server's)
    plan = json.dumps({"latency_s": 600})
    with serving("--cli", "fake", "--plan", plan, "--max-timeout", "30") as (_proc, url):
        response = httpx.post(url + "/ask", json={"prompt": token, "timeout": 0.5}, timeout=WAIT_S)
        message = error_of(response, 504, "timeout")
        assert live_processes_with(token) == []  # the call's CLI was stopped before the answer
        assert "0.5 s" in message and "request's timeout" in message
        # Over the server's maximum: refused before anything runs, naming field and limit.
        over = httpx.post(url + "/ask", json={"prompt": token, "timeout": 31}, timeout=WAIT_S)
        message = error_of(over, 422, "invalid_request")
        assert message.startswith("timeout:") and "--max-timeout" in message and "30 s" in message
        for bad in ("soon", -1, 0):
            refused = httpx.post(url + "/ask", json={"prompt": "x", "timeout": bad}, timeout=WAIT_S)
            assert error_of(refused, 422, "invalid_request").startswith("timeout:")


def test_max_timeout_defaults_to_the_server_timeout() -> None:
    with serving("--cli", "fake", "--total-timeout", "20") as (_proc, url):
        over = httpx.post(url + "/ask", json={"prompt": "x", "timeout": 21}, timeout=WAIT_S)
        assert "at most 20 s" in error_of(over, 422, "invalid_request")
        ok = httpx.post(url + "/ask", json={"prompt": "x", "timeout": 20}, timeout=WAIT_S)
        assert ok.status_code == 200, ok.text


def test_a_request_tool_policy_reaches_the_cli_within_the_server_limit() -> None:
    with serving("--command", READS_A_FILE, "--output-format", "jsonl", "--tools", "read") as (
        _proc,
        url,
    ):
        allowed = httpx.post(url + "/ask", json={"prompt": "read"}, timeout=WAIT_S)
        narrowed = httpx.post(
            url + "/ask", json={"prompt": "read", "tools": "none"}, timeout=WAIT_S
        )
        stream = httpx.post(url + "/stream", json={"prompt": "r", "tools": "none"}, timeout=WAIT_S)
        wider = httpx.post(url + "/ask", json={"prompt": "read", "tools": "edit"}, timeout=WAIT_S)
        bad = httpx.post(url + "/ask", json={"prompt": "read", "tools": "all"}, timeout=WAIT_S)
    # The server's --tools read lets the agent's Read through.
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["text"] == "read it"
    # The request's "none" reached the CLI's spec: the runtime stopped the tool.
    message = error_of(narrowed, 502, "permanent")
    assert "Read" in message and "none" in message
    streamed = parse_sse(stream.text)
    assert [name for name, _ in streamed] == ["tool_use", "error"]
    assert "'Read'" in streamed[-1][1]["error"]["message"]
    # More than the server allows: refused, naming the field and the limit.
    message = error_of(wider, 403, "forbidden")
    assert message.startswith("tools:") and "'read'" in message and "--tools" in message
    assert error_of(bad, 422, "invalid_request").startswith("tools:")


CLI_DIR = Path(os.environ.get("LLMSUP_CLI_DIR") or ROOT / ".clis" / "node_modules" / ".bin")
HAS_CLAUDE = (CLI_DIR / "claude").is_file()


@pytest.mark.skipif(not HAS_CLAUDE, reason="real CLIs not installed: run .ci/install-clis.sh")
def test_a_request_model_and_tools_reach_the_real_claude(tmp_path: Path) -> None:
    # The emulator logs each API request claude makes: the model it asked for and the
    # tools it offered the model, which is what --model and --tools change.
    log = tmp_path / "requests.jsonl"
    with serving("--log", str(log), command="emulate") as (_emulator, emulator_url):
        args = ("--cli", "claude", "--emulator", emulator_url, "--tools", "read")
        with serving(*args, env={"LLMSUP_CLI_DIR": str(CLI_DIR)}) as (_proc, url):
            own = {"prompt": "hi", "model": "claude-haiku-4-5", "tools": "none"}
            asked = httpx.post(url + "/ask", json=own, timeout=WAIT_S)
            default = httpx.post(url + "/ask", json={"prompt": "hi"}, timeout=WAIT_S)
            streamed = httpx.post(url + "/stream", json=own, timeout=WAIT_S)
            unknown = httpx.post(
                url + "/ask", json={"prompt": "x", "tools": "full"}, timeout=WAIT_S
            )
    assert asked.status_code == 200, asked.text
    assert default.status_code == 200, default.text
    assert asked.json()["cli"] == "claude"
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/messages")]
    offered = [
        sorted(t if isinstance(t, str) else t.get("name", "") for t in call["tools"])
        for call in calls
    ]
    models = [call["model"] for call in calls]
    # ask (own model, no tools), ask (the server's), stream (own model, no tools), in order.
    assert len(calls) == 3, requests
    assert models[0] == models[2] == "claude-haiku-4-5"
    assert models[1] != "claude-haiku-4-5"
    assert offered[0] == offered[2] == []
    assert {"Read", "Grep", "Glob"} <= set(offered[1])
    session = next(data for name, data in parse_sse(streamed.text) if name == "session_started")
    assert session["model"] == "claude-haiku-4-5"
    assert error_of(unknown, 403, "forbidden").startswith("tools: 'full'")


def test_a_model_for_a_cli_without_one_is_refused_naming_the_field() -> None:
    with serving("--cli", "fake") as (_proc, url):
        refused = httpx.post(url + "/ask", json={"prompt": "x", "model": "sonnet"}, timeout=WAIT_S)
        bad = httpx.post(url + "/ask", json={"prompt": "x", "model": "--all"}, timeout=WAIT_S)
    assert error_of(refused, 422, "invalid_request") == "model: the fake CLI takes no model"
    assert error_of(bad, 422, "invalid_request").startswith("model:")


# -------------------------------------------------------------------- 5. the cli label


def test_metrics_name_the_cli_that_answered_after_a_fallback() -> None:
    with serving("--command", REFUSED, "--fallback", "fake", "--max-attempts", "1") as (
        _proc,
        url,
    ):
        answered = httpx.post(url + "/ask", json={"prompt": "hi"}, timeout=WAIT_S)
        streamed = httpx.post(url + "/stream", json={"prompt": "hi"}, timeout=WAIT_S)
        text = httpx.get(url + "/metrics", timeout=WAIT_S).text
    assert answered.json()["cli"] == "fake"
    assert parse_sse(streamed.text)[-1][1]["cli"] == "fake"
    assert metric(text, 'llmsup_calls_total{cli="fake",outcome="ok"}') == 2
    assert metric(text, 'llmsup_calls_total{cli="python3",outcome="ok"}') == 0
    assert metric(text, 'llmsup_call_duration_seconds_count{cli="fake"}') == 2
    assert metric(text, 'llmsup_fallbacks_total{cli="python3"}') == 2


def test_metrics_name_the_cli_that_failed() -> None:
    with serving("--command", REFUSED, "--max-attempts", "1") as (_proc, url):
        failed = httpx.post(url + "/ask", json={"prompt": "hi"}, timeout=WAIT_S)
        text = httpx.get(url + "/metrics", timeout=WAIT_S).text
    error_of(failed, 502, "auth_failure")
    assert metric(text, 'llmsup_calls_total{cli="python3",outcome="auth_failure"}') == 1


# -------------------------------------------------------------------- 6. --standby


def test_standby_serves_a_call_and_metrics_show_it() -> None:
    plan = json.dumps({"startup_s": 0.2})
    args = ("--cli", "fake", "--prompt-via", "stdin", "--plan", plan, "--standby", "1")
    with serving(*args) as (_proc, url):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:  # the pool fills in the background
            text = httpx.get(url + "/metrics", timeout=WAIT_S).text
            if metric(text, "llmsup_standby_ready") >= 1:
                break
            time.sleep(0.05)
        assert metric(text, "llmsup_standby_ready") >= 1, text
        answered = httpx.post(url + "/ask", json={"prompt": "hello"}, timeout=WAIT_S)
        assert answered.status_code == 200, answered.text
        assert "hello" in answered.json()["text"]
        text = httpx.get(url + "/metrics", timeout=WAIT_S).text
    assert metric(text, "llmsup_standby_taken_total") >= 1
    for name in ("llmsup_standby_discarded_total", "llmsup_standby_recycled_total"):
        assert metric(text, name) == 0


def test_a_bad_standby_is_a_usage_error() -> None:
    done = llmsup_serve("--standby", "-1")
    assert done.returncode == 2
    assert "--standby" in done.stderr
    # The fake takes its prompt as an argument by default: no process can start before it.
    done = llmsup_serve("--cli", "fake", "--standby", "1")
    assert done.returncode == 2, done.stderr
    assert "--standby: not possible for fake" in done.stderr
    assert "--prompt-via stdin" in done.stderr
    assert "Traceback" not in done.stderr


# -------------------------------------------------------------------- 7. help


SERVE_OWN_OPTIONS = (
    "--host",
    "--port",
    "--token",
    "--metrics-token",
    "--public-metrics",
    "--max-timeout",
    "--standby",
    "--grace",
    "--cwd",
)


def test_every_serve_option_help_says_what_it_does_and_its_default() -> None:
    done = llmsup_serve("--help")
    assert done.returncode == 0, done.stderr
    for option in SERVE_OWN_OPTIONS:
        assert option in done.stdout
    subcommands = next(
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    serve = subcommands.choices["serve"]
    helps = {o: a.help or "" for a in serve._actions for o in a.option_strings}
    for option in SERVE_OWN_OPTIONS:
        assert "(default" in helps[option], (option, helps[option])
        assert len(helps[option].split("(default")[0].split()) >= 4, option  # says what it does
