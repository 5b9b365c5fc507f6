"""``llmsup serve`` against a real server on loopback, real HTTP and real fake-CLI processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from actors import CliSpec
from supervisor import CircuitBreaker, RetryBudget, RetryConfig, Supervisor, TimeoutConfig
from supervisor._json_schema import SchemaError, check_schema, validate_json
from supervisor._llmsup._serve import (
    MAX_BODY_BYTES,
    TOKEN_ENV,
    create_app,
    serve,
)

from ..helpers import FakeClock, fake, live_processes_with, marker, wait_until_gone

ONE_ATTEMPT = RetryConfig(max_attempts=1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@asynccontextmanager
async def running(
    spec: CliSpec,
    *,
    headers: Mapping[str, str] | None = None,
    limits: httpx.Limits | None = None,
    **options: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """`serve` on 127.0.0.1:0 in this trio run, with a client; checks it exits cleanly."""
    stop = trio.Event()
    exit_codes: list[int] = []

    async def run(task_status: trio.TaskStatus[str]) -> None:
        code = await serve(
            spec, "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status, **options
        )
        exit_codes.append(code)

    options.setdefault("grace_s", 2.0)
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(run)
        assert url.startswith("http://127.0.0.1:")
        try:
            async with httpx.AsyncClient(
                base_url=url,
                timeout=20,
                headers=dict(headers or {}),
                limits=limits or httpx.Limits(),
            ) as client:
                yield client
        finally:
            stop.set()
    assert exit_codes == [0]


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """``[(event, data), ...]`` of a complete ``text/event-stream`` body (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def assert_error(response: httpx.Response, status: int, category: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"category", "message", "retry_after"}
    assert body["error"]["category"] == category
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    detail: dict[str, Any] = body["error"]
    return detail


def metric(text: str, name: str) -> float:
    """The value of the sample called exactly ``name`` (labels included) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


# ------------------------------------------------------------------------------- /ask


async def test_ask_returns_the_result_as_json() -> None:
    async with running(fake()) as client:
        response = await client.post("/ask", json={"prompt": "hello there world"})
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "echo: hello there world"
    assert body["data"] is None
    assert body["session_id"]
    assert body["attempts"] == 1
    assert body["duration_s"] > 0
    assert body["usage"]["input_tokens"] == 3
    assert body["cost_usd"] == 0.0
    assert body["cli"] == "fake"


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


async def test_output_schema_validates_the_answer() -> None:
    plan = {
        "rules": [
            {"match": "good", "text": 'Sure:\n```json\n{"name": "Ada", "age": 36}\n```'},
            {"match": "bad", "text": '{"name": "Ada", "age": "old"}'},
        ]
    }
    async with running(fake(plan)) as client:
        good = await client.post("/ask", json={"prompt": "good", "output_schema": PERSON})
        bad = await client.post("/ask", json={"prompt": "bad", "output_schema": PERSON})
        streamed = await client.post("/stream", json={"prompt": "good", "output_schema": PERSON})
        stream_bad = await client.post("/stream", json={"prompt": "bad", "output_schema": PERSON})
    assert good.status_code == 200, good.text
    assert good.json()["data"] == {"name": "Ada", "age": 36}
    error = assert_error(bad, 502, "malformed_output")
    assert "$.age: 'old' is not of type 'integer'" in error["message"]
    assert bad.json()["error"]["retry_after"] is None
    assert parse_sse(streamed.text)[-1][0] == "result"
    assert parse_sse(streamed.text)[-1][1]["data"] == {"name": "Ada", "age": 36}
    last = parse_sse(stream_bad.text)[-1]
    assert last[0] == "error" and last[1]["error"]["category"] == "malformed_output"


# ----------------------------------------------------------------- errors mapped to HTTP


async def test_rate_limit_is_429_with_retry_after() -> None:
    async with running(fake({"rate_limit_retry_after_s": 7}), retry=ONE_ATTEMPT) as client:
        response = await client.post("/ask", json={"prompt": "hi"})
        streamed = await client.post("/stream", json={"prompt": "hi"})
    error = assert_error(response, 429, "rate_limit")
    assert response.headers["Retry-After"] == "7"
    assert error["retry_after"] == 7
    # Failing before the first event, a stream gets the same plain error response.
    assert_error(streamed, 429, "rate_limit")
    assert streamed.headers["Retry-After"] == "7"


async def test_open_breaker_is_503_with_retry_after_and_shows_in_health() -> None:
    # The breaker's clock stands still (injected), so however long the HTTP round-trips
    # take on a loaded machine, the breaker still has all of its 30 s to go.
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout_seconds=30, clock=clock)
    async with running(fake({"exit_code": 7}), retry=ONE_ATTEMPT, breaker=breaker) as client:
        first = await client.post("/ask", json={"prompt": "hi"})
        second = await client.post("/ask", json={"prompt": "hi"})
        health = await client.get("/health")
        clock.now += 12.5
        later = await client.post("/ask", json={"prompt": "hi"})
        metrics = (await client.get("/metrics")).text
    assert_error(first, 502, "retryable")
    error = assert_error(second, 503, "circuit_open")
    assert second.headers["Retry-After"] == "30"
    assert error["retry_after"] == 30
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["breaker_state"] == "open"
    assert health.json()["breaker_retry_after_s"] == 30
    assert assert_error(later, 503, "circuit_open")["retry_after"] == 17.5
    assert later.headers["Retry-After"] == "18"  # whole seconds, rounded up
    assert metric(metrics, "llmsup_breaker_state") == 2
    assert metric(metrics, 'llmsup_calls_total{cli="fake",outcome="circuit_open"}') == 2
    assert metric(metrics, 'llmsup_calls_total{cli="fake",outcome="retryable"}') == 1


async def test_timeout_is_504() -> None:
    timeouts = TimeoutConfig(total_execution=0.5, graceful_shutdown=1.0)
    async with running(fake({"hang": True}), retry=ONE_ATTEMPT, timeouts=timeouts) as client:
        response = await client.post("/ask", json={"prompt": "hi"})
    assert_error(response, 504, "timeout")


async def test_auth_failure_is_502() -> None:
    async with running(fake({"auth_failure": True}), retry=ONE_ATTEMPT) as client:
        response = await client.post("/ask", json={"prompt": "hi"})
    assert_error(response, 502, "auth_failure")


BAD_BODIES: list[tuple[bytes, str]] = [
    (b"{}", "prompt: Field required"),
    (b'{"prompt": ""}', "prompt"),
    (b'{"prompt": "   \\n "}', "blank"),
    (b'{"prompt": 5}', "prompt"),
    (b'{"prompt": ["a"]}', "prompt"),
    (b'{"prompt": "hi", "output_schema": "object"}', "output_schema"),
    (b'{"prompt": "hi", "temperature": 2}', "temperature"),
    (b'["hi"]', "JSON object"),
    (b"{not json", "not valid JSON"),
    (b"", "body"),
    (b'{"prompt": "a\\u0000b"}', "NUL"),
    (b'{"prompt": "\\ud800"}', "prompt"),  # a lone surrogate
    (b'{"prompt": "hi", "output_schema": {"type": "string", "pattern": "("}}', "$.pattern"),
    (b'{"prompt": "hi", "output_schema": {"type": "strin"}}', "type"),
    (b'{"prompt": "hi", "output_schema": {"$ref": "#/$defs/Missing"}}', "does not resolve"),
]


async def test_bad_bodies_are_422_with_a_typed_body_and_start_nothing() -> None:
    async with running(fake()) as client:
        for path in ("/ask", "/stream"):
            for content, fragment in BAD_BODIES:
                response = await client.post(
                    path, content=content, headers={"content-type": "application/json"}
                )
                error = assert_error(response, 422, "invalid_request")
                assert fragment in error["message"], (content, error)
        huge = await client.post("/ask", content=b"x" * (MAX_BODY_BYTES + 1))
        stats = (await client.get("/health")).json()
    assert_error(huge, 413, "payload_too_large")
    assert stats["processes_spawned"] == 0


async def test_an_internal_error_never_reaches_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Supervisor, prompt: str, output: object = None) -> None:
        raise RuntimeError("secret internal detail at /srv/llmsup/x.py")

    monkeypatch.setattr(Supervisor, "ask", broken)
    async with running(fake()) as client:
        response = await client.post("/ask", json={"prompt": "hi"})
        metrics = (await client.get("/metrics")).text
    error = assert_error(response, 500, "internal")
    assert "secret" not in response.text
    assert "RuntimeError" not in response.text
    assert error["message"]
    assert metric(metrics, 'llmsup_calls_total{cli="fake",outcome="internal"}') == 1


# ------------------------------------------------------------------------------- /stream


async def test_stream_sends_deltas_in_order_then_the_result() -> None:
    async with running(fake({"chunks": 5})) as client:
        response = await client.post("/stream", json={"prompt": "one two three four five"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "session_started"
    assert names[-1] == "result"
    assert names.count("result") == 1  # the CLI's own result event is folded into it
    deltas = [data["text"] for name, data in events if name == "text_delta"]
    assert len(deltas) == 5
    assert names[1:-1] == ["text_delta"] * 5
    result = events[-1][1]
    assert "".join(deltas) == result["text"] == "echo: one two three four five"
    assert result["session_id"] == events[0][1]["session_id"]


async def test_stream_failing_mid_stream_ends_with_an_error_event() -> None:
    plan = {"chunks": 4, "crash_after_chunks": 2}
    async with running(fake(plan), retry=ONE_ATTEMPT) as client:
        response = await client.post("/stream", json={"prompt": "a b c d"})
    assert response.status_code == 200
    events = parse_sse(response.text)
    assert [name for name, _ in events] == ["session_started", "text_delta", "text_delta", "error"]
    error = events[-1][1]["error"]
    assert error["category"] == "retryable"
    assert "Traceback" not in response.text


async def test_a_client_leaving_a_stream_stops_the_cli() -> None:
    token = marker()
    plan = {"session_id": token, "chunks": 3, "hang_after_chunks": 1}
    async with running(fake(plan)) as client:
        async with client.stream("POST", "/stream", json={"prompt": "x y z"}) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line == "event: text_delta":
                    break
            assert live_processes_with(token)
        assert await wait_until_gone(token, 5.0) == []
        metrics = (await client.get("/metrics")).text
    assert metric(metrics, 'llmsup_calls_total{cli="fake",outcome="cancelled"}') == 1


async def test_a_client_leaving_an_ask_stops_the_cli() -> None:
    token = marker()
    async with running(fake({"session_id": token, "hang": True})) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/ask", json={"prompt": "hi"}, timeout=1.0)
        assert await wait_until_gone(token, 5.0) == []
        health = (await client.get("/health")).json()
    assert health["in_flight"] == 0


# ----------------------------------------------------------------- /health and /metrics


async def test_health_and_metrics_report_the_supervisor() -> None:
    plan = {"rules": [{"match": "limit", "rate_limit_retry_after_s": 3}]}
    async with running(fake(plan), retry=ONE_ATTEMPT, breaker=CircuitBreaker()) as client:
        health = await client.get("/health")
        await client.post("/stream", json={"prompt": "c"})
        for prompt in ("a", "b", "limit"):
            await client.post("/ask", json={"prompt": prompt})
        response = await client.get("/metrics")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "cli": "fake",
        "breaker_state": "closed",
        "breaker_retry_after_s": None,
        "in_flight": 0,
        "restarts": 0,
        "retries": 0,
        "processes_spawned": 0,
    }
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "llmsup_calls_total",
        "llmsup_call_duration_seconds_bucket",
        "llmsup_in_flight",
        "llmsup_retries_total",
        "llmsup_restarts_total",
        "llmsup_breaker_state",
    ):
        assert name in text
    assert metric(text, 'llmsup_calls_total{cli="fake",outcome="ok"}') == 3
    assert metric(text, 'llmsup_calls_total{cli="fake",outcome="rate_limit"}') == 1
    assert metric(text, 'llmsup_calls_total{cli="fake",outcome="timeout"}') == 0
    assert metric(text, 'llmsup_call_duration_seconds_count{cli="fake"}') == 4
    assert metric(text, "llmsup_in_flight") == 0
    assert metric(text, "llmsup_processes_spawned_total") == 4
    # The rate limit's retry-after hint opened the breaker.
    assert metric(text, "llmsup_breaker_state") == 2


async def test_metrics_count_retries_the_budget_refused() -> None:
    # A reserve of one retry (0.1/s over 10 s) and no share of calls: the first failing
    # call gets its retry, the second does not.
    budget = RetryBudget(ratio=0.0, min_per_s=0.1, window_s=10)
    retry = RetryConfig(max_attempts=2, initial_delay_ms=1, max_delay_ms=5, budget=budget)
    async with running(fake({"exit_code": 9}), retry=retry) as client:
        first = await client.post("/ask", json={"prompt": "a"})
        second = await client.post("/ask", json={"prompt": "b"})
        text = (await client.get("/metrics")).text
    assert first.json()["error"]["category"] == "retryable"
    assert "retry budget" not in first.json()["error"]["message"]
    assert "retry budget" in second.json()["error"]["message"]
    assert metric(text, "llmsup_retries_total") == 1
    assert metric(text, "llmsup_retries_refused_total") == 1
    assert metric(text, "llmsup_processes_spawned_total") == 3


async def test_each_app_has_its_own_metrics_registry_and_a_valid_openapi_schema() -> None:
    first, second = create_app(fake()), create_app(fake())
    assert first.state.metrics_registry is not second.state.metrics_registry
    paths = first.openapi()["paths"]
    assert set(paths) == {"/ask", "/stream", "/health", "/metrics"}
    assert "text/event-stream" in paths["/stream"]["post"]["responses"]["200"]["content"]
    assert "429" in paths["/ask"]["post"]["responses"]


# ---------------------------------------------------------------------------- the token


async def test_bearer_token_guards_everything_but_health() -> None:
    async with running(fake(), token="s3cret-token") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            for method, path in (("POST", "/ask"), ("POST", "/stream"), ("GET", "/metrics")):
                response = await client.request(
                    method, path, json={"prompt": "hi"}, headers=headers
                )
                assert_error(response, 401, "unauthorized")
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/health")).status_code == 200
        good = {"Authorization": "Bearer s3cret-token"}
        assert (await client.post("/ask", json={"prompt": "hi"}, headers=good)).status_code == 200
        assert (await client.get("/metrics", headers=good)).status_code == 200


async def test_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    async with running(fake()) as client:
        assert (await client.get("/metrics")).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": "bearer from-env"})
        assert ok.status_code == 200


# ------------------------------------------------------------------------------- load


async def test_200_concurrent_asks_are_all_answered() -> None:
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=200)
    async with running(fake({"latency_s": 0.05}), concurrency=16, limits=limits) as client:

        async def one(i: int) -> None:
            response = await client.post("/ask", json={"prompt": f"prompt {i}"})
            assert response.json()["text"] == f"echo: prompt {i}"
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)
        metrics = (await client.get("/metrics")).text
    assert statuses == [200] * 200
    assert metric(metrics, 'llmsup_calls_total{cli="fake",outcome="ok"}') == 200


# ------------------------------------------------------------------------ SIGTERM, SIGINT

SERVER = """
import json, os, sys
import trio
import actors
from supervisor import RetryConfig
from supervisor._llmsup._serve import serve

plan = json.loads(os.environ["LLMSUP_TEST_PLAN"])
grace_s = float(os.environ["LLMSUP_TEST_GRACE"])


async def main():
    return await serve(
        actors.fake(plan),
        "127.0.0.1",
        0,
        grace_s=grace_s,
        concurrency=16,
        retry=RetryConfig(max_attempts=1),
    )


sys.exit(trio.run(main))
"""


async def read_line(stream: trio.abc.ReceiveStream) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            break
        data += chunk
    return data.decode()


@asynccontextmanager
async def server_process(
    plan: Mapping[str, object], grace_s: float
) -> AsyncIterator[tuple[trio.Process, httpx.AsyncClient]]:
    """`serve` in a child process (the plan reaches it by environment, so a marker in the
    plan is in the fake CLIs' argv only), with a client for it."""
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "LLMSUP_TEST_PLAN": json.dumps(plan),
        "LLMSUP_TEST_GRACE": str(grace_s),
    }
    env.pop(TOKEN_ENV, None)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(20):
            line = await read_line(proc.stdout)
        assert line.startswith("llmsup serve: fake on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip()
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            yield proc, client
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def wait_in_flight(client: httpx.AsyncClient, count: int) -> None:
    with trio.fail_after(10):
        while (await client.get("/health")).json()["in_flight"] < count:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def wait_draining(client: httpx.AsyncClient) -> httpx.Response:
    """Poll /health until the server says it is draining (it saw the signal)."""
    with trio.fail_after(20):  # only a guard against a hang
        while (health := await client.get("/health")).status_code != 503:  # noqa: ASYNC110
            await trio.sleep(0.02)
    return health


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_drains_in_flight_calls_and_exits_0_leaving_no_process(
    signum: signal.Signals,
) -> None:
    token = marker()
    in_flight: list[int] = []
    late: list[str] = []
    async with server_process({"latency_s": 1.0, "session_id": token}, 10.0) as (proc, client):

        async def call(i: int) -> None:
            response = await client.post("/ask", json={"prompt": f"p{i}"})
            assert response.json()["text"] == f"echo: p{i}"
            in_flight.append(response.status_code)

        async def late_call() -> None:
            try:
                async with httpx.AsyncClient(base_url=client.base_url, timeout=30) as fresh:
                    response = await fresh.post("/ask", json={"prompt": "late"})
            except httpx.TransportError as exc:
                late.append(type(exc).__name__)
            else:
                assert_error(response, 503, "unavailable")
                late.append(str(response.status_code))

        async with trio.open_nursery() as nursery:
            for i in range(24):  # 16 run at once, 8 wait for a slot
                nursery.start_soon(call, i)
            await wait_in_flight(client, 24)
            assert live_processes_with(token)
            proc.send_signal(signum)
            draining = await wait_draining(client)
            assert draining.json()["status"] == "draining"
            for _ in range(3):
                nursery.start_soon(late_call)
        with trio.fail_after(20):
            await proc.wait()
    assert proc.returncode == 0
    assert in_flight == [200] * 24
    assert late == ["503"] * 3  # refused while draining, cleanly
    assert live_processes_with(token) == []


async def test_calls_outliving_the_grace_period_are_stopped_and_answered_503() -> None:
    token = marker()
    plan = {
        "session_id": token,
        "hang": True,
        "rules": [{"match": "stream", "hang": False, "hang_after_chunks": 1}],
    }
    async with server_process(plan, 0.5) as (proc, client):
        async with trio.open_nursery() as nursery:
            asked = nursery.start_soon
            responses: dict[str, httpx.Response] = {}

            async def post(path: str) -> None:
                responses[path] = await client.post(path, json={"prompt": "stream me"})

            asked(post, "/ask")
            asked(post, "/stream")
            await wait_in_flight(client, 2)
            proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            await proc.wait()
    assert proc.returncode == 0
    error = assert_error(responses["/ask"], 503, "unavailable")
    assert "shut down before the call finished" in error["message"]
    events = parse_sse(responses["/stream"].text)
    assert [name for name, _ in events] == ["session_started", "text_delta", "error"]
    assert events[-1][1]["error"]["category"] == "unavailable"
    assert live_processes_with(token) == []


async def test_a_second_signal_forces_the_exit_and_still_stops_every_cli() -> None:
    token = marker()
    failures: list[str] = []
    async with server_process({"session_id": token, "hang": True}, 30.0) as (proc, client):

        async def doomed() -> None:
            try:
                await client.post("/ask", json={"prompt": "x"})
            except httpx.TransportError as exc:
                failures.append(type(exc).__name__)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(doomed)
            await wait_in_flight(client, 3)
            proc.send_signal(signal.SIGTERM)
            await wait_draining(client)  # the first signal was taken: this one is the second
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                await proc.wait()
    assert proc.returncode == 1
    assert len(failures) == 3  # cut off: the operator asked for it
    assert live_processes_with(token) == []


# -------------------------------------------------------------- the JSON-Schema subset


@pytest.mark.parametrize(
    ("value", "schema", "problem"),
    [
        ({"a": 1}, {"type": "object", "additionalProperties": False}, "'a' was unexpected"),
        (True, {"type": "integer"}, "$: True is not of type 'integer'"),
        (1.0, {"type": "integer"}, None),
        ([1, 1], {"type": "array", "uniqueItems": True}, "non-unique"),
        ([1, "x"], {"items": {"type": "integer"}}, "$[1]: 'x' is not of type 'integer'"),
        ("b", {"enum": ["a", 1]}, "is not one of"),
        (1, {"enum": [True]}, "is not one of"),
        (None, {"anyOf": [{"type": "string"}, {"type": "null"}]}, None),
        (
            {"p": {"n": "x"}},
            {
                "$defs": {"P": {"properties": {"n": {"type": "integer"}}}},
                "properties": {"p": {"$ref": "#/$defs/P"}},
            },
            "$.p.n: 'x' is not of type 'integer'",
        ),
        (5, {"oneOf": [{"minimum": 0}, {"maximum": 10}]}, "is valid under each of"),
        (0.3, {"multipleOf": 0.1}, None),  # binary floats do not make 0.3 a non-multiple
        (0.35, {"multipleOf": 0.1}, "not a multiple of 0.1"),
        ("abc", {"pattern": "^a+$"}, "does not match"),
        ([1, "x"], {"prefixItems": [{"type": "integer"}, {"type": "integer"}]}, "$[1]"),
    ],
)
def test_answers_are_validated_by_the_full_json_schema(
    value: object, schema: dict[str, Any], problem: str | None
) -> None:
    check_schema(schema)
    problems = validate_json(value, schema)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_schema_check_refuses_what_it_cannot_check() -> None:
    refused: list[tuple[object, str]] = [
        ({"pattern": "("}, "$.pattern"),  # not a regex
        ({"type": 3}, "$.type"),
        ({"minLength": -1}, "$.minLength"),
        ({"$ref": "http://x/y"}, "only references inside the schema"),  # never fetched
        ({"$ref": "#/$defs/nope"}, "does not resolve"),
        ([], "must be a JSON object"),
    ]
    for schema, named in refused:
        with pytest.raises(SchemaError, match=re.escape(named)):
            check_schema(schema)
