"""The provider emulator (``actors._fakes._emulator``): its wire formats, faults, request log,
end to end with the REAL claude, codex and gemini binaries.

The real-CLI tests find the binaries in ``$LLMSUP_CLI_DIR`` (default ``.clis/node_modules/.bin``
in the repository, filled by ``.ci/install-clis.sh``) and skip when one is missing. Each runs the
CLI as a plain subprocess in its own session, with a scratch home from `cli_environment`, and
kills the whole process group on the way out. What they pin down is summarised in the table of
``actors/_fakes/_emulator/__init__.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import AsyncIterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from actors._fakes._emulator import (
    Emulator,
    EmulatorRule,
    Fault,
    Provider,
    RecordedRequest,
    RulesFileError,
    cli_environment,
    load_rules,
    open_emulator,
)
from actors._fakes._emulator._homes import CODEX_KEY_VARIABLE, CliName
from actors._fakes._emulator._rules import parse_rules, split_chunks

from ..helpers import open_fds

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = Path(os.environ.get("LLMSUP_CLI_DIR", str(ROOT / ".clis" / "node_modules" / ".bin")))
SKIP_REASON = "real CLIs not installed: run .ci/install-clis.sh (needs npm)"
CLIS: tuple[CliName, ...] = ("claude", "codex", "gemini")

# ---------------------------------------------------------------------------------------------
# Helpers: HTTP against the emulator
# ---------------------------------------------------------------------------------------------

ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 100,
    "stream": True,
    "system": [{"type": "text", "text": "be brief"}],
    "messages": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "hello there"},
            ],
        },
    ],
}
OPENAI_BODY: dict[str, Any] = {
    "model": "gpt-test",
    "stream": True,
    "instructions": "be brief",
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
    ],
}
GEMINI_BODY: dict[str, Any] = {
    "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
    "systemInstruction": {"parts": [{"text": "be brief"}]},
}
ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "anthropic": ("/v1/messages?beta=true", ANTHROPIC_BODY),
    "openai": ("/v1/responses", OPENAI_BODY),
    "gemini": ("/v1beta/models/gemini-test:streamGenerateContent?alt=sse", GEMINI_BODY),
}


@attrs.frozen
class SseEvent:
    event: str | None
    data: Any


def parse_sse(text: str) -> list[SseEvent]:
    """SSE frames as (event name, decoded data); raises ValueError on undecodable data."""
    events = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        name = None
        data = []
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        if data:
            events.append(SseEvent(name, json.loads("\n".join(data))))
    return events


def client(emulator: Emulator, timeout: float = 10.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=emulator.base_url, timeout=timeout, trust_env=False)


async def post(emulator: Emulator, provider: str, **changes: Any) -> httpx.Response:
    path, body = ROUTES[provider]
    async with client(emulator) as http:
        return await http.post(path, json={**body, **changes})


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with open_emulator() as running:
        yield running


# ---------------------------------------------------------------------------------------------
# Wire formats
# ---------------------------------------------------------------------------------------------


async def test_anthropic_stream_has_the_event_sequence_claude_needs(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="Hello from the emulator", chunks=3)])
    response = await post(emulator, "anthropic")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(e.data["type"] == e.event for e in events)
    assert events[0].data["message"]["model"] == "claude-test"
    deltas = [e.data["delta"]["text"] for e in events if e.event == "content_block_delta"]
    assert "".join(deltas) == "Hello from the emulator"
    assert events[6].data["delta"]["stop_reason"] == "end_turn"
    assert events[6].data["usage"]["output_tokens"] > 0

    (request,) = emulator.requests
    assert request.provider == "anthropic"
    assert request.query == {"beta": "true"}
    assert request.prompt == "hello there"  # CLI context blocks are not part of the prompt
    assert request.roles_and_texts()[:3] == [
        ("system", "be brief"),
        ("user", "first"),
        ("assistant", "ok"),
    ]
    assert request.texts == tuple(deltas)


async def test_anthropic_json_reply_and_path_prefix_and_count_tokens(emulator: Emulator) -> None:
    async with client(emulator) as http:
        reply = await http.post(
            "/gateway/anthropic/v1/messages", json={**ANTHROPIC_BODY, "stream": False}
        )
        count = await http.post("/v1/messages/count_tokens?beta=true", json=ANTHROPIC_BODY)
    assert reply.status_code == 200
    message = reply.json()
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert count.json()["input_tokens"] > 0
    assert [r.operation for r in emulator.requests] == ["generate", "static"]
    assert emulator.generation_requests("anthropic")[0].path == "/gateway/anthropic/v1/messages"


async def test_openai_responses_stream_shape(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="abcdef", chunks=2)])
    response = await post(emulator, "openai")
    events = parse_sse(response.text)
    assert [e.event for e in events] == [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.data["sequence_number"] for e in events] == list(range(len(events)))
    assert [e.data["delta"] for e in events[3:5]] == ["abc", "def"]
    assert events[5].data["text"] == "abcdef"
    completed = events[-1].data["response"]
    assert completed["status"] == "completed"
    assert completed["output"][0]["content"][0]["text"] == "abcdef"
    assert completed["usage"]["total_tokens"] == (
        completed["usage"]["input_tokens"] + completed["usage"]["output_tokens"]
    )
    assert emulator.requests[0].roles_and_texts() == [("system", "be brief"), ("user", "hello")]


async def test_openai_json_reply_and_models_list(emulator: Emulator) -> None:
    reply = await post(emulator, "openai", stream=False)
    assert reply.json()["output"][0]["content"][0]["text"] == "echo: hello"
    async with client(emulator) as http:
        models = await http.get("/v1/models")
    assert models.json()["object"] == "list"


async def test_gemini_stream_generate_and_count_tokens(emulator: Emulator) -> None:
    emulator.set_rules([EmulatorRule(reply="one two three", chunks=3)])
    response = await post(emulator, "gemini")
    events = parse_sse(response.text)
    assert all(e.event is None for e in events)
    texts = [e.data["candidates"][0]["content"]["parts"][0]["text"] for e in events]
    assert texts == split_chunks("one two three", 3)
    assert [e.data["candidates"][0].get("finishReason") for e in events] == [None, None, "STOP"]
    assert events[-1].data["usageMetadata"]["totalTokenCount"] > 0
    assert events[-1].data["modelVersion"] == "gemini-test"
    async with client(emulator) as http:
        plain = await http.post("/v1beta/models/gemini-test:generateContent", json=GEMINI_BODY)
        count = await http.post("/v1beta/models/gemini-test:countTokens", json=GEMINI_BODY)
    assert plain.json()["candidates"][0]["content"]["parts"][0]["text"] == "one two three"
    assert count.json()["totalTokens"] > 0
    assert emulator.requests[0].roles_and_texts() == [("system", "be brief"), ("user", "hello")]


async def test_unknown_routes_are_404_and_still_logged(emulator: Emulator) -> None:
    async with client(emulator) as http:
        missing = await http.post("/v2/nothing", content=b"not json")
        head = await http.head("/")
    assert missing.status_code == 404
    assert head.status_code == 200  # claude probes HEAD / before its first call
    first, second = emulator.requests
    assert (first.provider, first.status, first.body) == (None, 404, "not json")
    assert (second.method, second.status) == ("HEAD", 200)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------

ERROR_FIELD = {
    "anthropic": lambda body: body["error"]["type"],
    "openai": lambda body: body["error"]["code"] or body["error"]["type"],
    "gemini": lambda body: body["error"]["status"],
}
EXPECTED_ERRORS = {
    ("anthropic", 429): "rate_limit_error",
    ("anthropic", 529): "overloaded_error",
    ("anthropic", 401): "authentication_error",
    ("anthropic", 500): "api_error",
    ("anthropic", 400): "invalid_request_error",
    ("openai", 429): "rate_limit_exceeded",
    ("openai", 529): "server_error",
    ("openai", 401): "invalid_api_key",
    ("openai", 500): "server_error",
    ("openai", 400): "invalid_request_error",
    ("gemini", 429): "RESOURCE_EXHAUSTED",
    ("gemini", 529): "UNAVAILABLE",
    ("gemini", 401): "UNAUTHENTICATED",
    ("gemini", 500): "INTERNAL",
    ("gemini", 400): "INVALID_ARGUMENT",
}


@pytest.mark.parametrize(("provider", "status"), sorted(EXPECTED_ERRORS))
async def test_status_fault_uses_the_provider_error_shape(
    emulator: Emulator, provider: str, status: int
) -> None:
    emulator.set_rules([EmulatorRule(fault=Fault(kind="status", status=status, retry_after=20))])
    response = await post(emulator, provider)
    assert response.status_code == status
    assert response.headers["retry-after"] == "20"
    body = response.json()
    assert ERROR_FIELD[provider](body) == EXPECTED_ERRORS[provider, status]
    message = body["error"]["message"]
    assert message.endswith("Please try again in 20s.")
    if provider == "gemini":
        assert body["error"]["code"] == status
        assert "details" not in body["error"]
    (request,) = emulator.requests
    assert (request.status, request.fault, request.texts) == (status, "status", ())


async def test_gemini_retry_info_and_custom_message(emulator: Emulator) -> None:
    fault = Fault(
        kind="status",
        status=429,
        retry_after=7.5,
        message="Quota exceeded.",
        gemini_retry_info=True,
    )
    emulator.set_rules([EmulatorRule(fault=fault)])
    body = (await post(emulator, "gemini")).json()
    assert body["error"]["message"] == "Quota exceeded."
    assert body["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7.5s"}
    ]


@pytest.mark.parametrize("provider", sorted(ROUTES))
async def test_slow_fault_spaces_the_chunks(emulator: Emulator, provider: str) -> None:
    emulator.set_rules(
        [
            EmulatorRule(
                reply="slowly but surely", chunks=3, fault=Fault(kind="slow", chunk_delay_s=0.1)
            )
        ]
    )
    start = trio.current_time()
    response = await post(emulator, provider)
    assert trio.current_time() - start >= 0.3
    assert response.status_code == 200
    assert len(parse_sse(response.text)) > 0


@pytest.mark.parametrize("provider", sorted(ROUTES))
async def test_stall_sends_some_chunks_then_nothing_until_closed(provider: str) -> None:
    path, body = ROUTES[provider]
    rule = EmulatorRule(reply="abcdef", chunks=3, fault=Fault(kind="stall", stall_after_chunks=1))
    received = b""
    # Leaving open_emulator with the stalled request in flight must not hang: the fail_after
    # is only a guard against that hang (the client's own timeout is 30 s), not a timing bound.
    with trio.fail_after(25):
        async with (
            open_emulator([rule]) as emulator,
            client(emulator, timeout=30) as http,
            http.stream("POST", path, json=body) as response,
        ):
            assert response.status_code == 200
            chunks = response.aiter_raw()
            # First the chunk the stall lets through (however long a loaded machine takes)...
            while _streamed_text(provider, received) != "ab":
                received += await chunks.__anext__()
            # ...then nothing more, and no end of the stream either.
            with trio.move_on_after(0.5) as waited:
                async for chunk in chunks:
                    received += chunk
            assert waited.cancelled_caught, "the stalled stream ended"
    assert _streamed_text(provider, received) == "ab"


def _streamed_text(provider: str, received: bytes) -> str:
    """The text of the complete SSE frames in `received` (a partial last frame is left out)."""
    complete = received.decode(errors="replace").replace("\r\n", "\n").rpartition("\n\n")[0]
    return "".join(
        part["text"] for event in parse_sse(complete) for part in _texts_of(provider, event.data)
    )


def _texts_of(provider: str, data: Any) -> list[dict[str, str]]:
    if provider == "anthropic" and data["type"] == "content_block_delta":
        return [{"text": data["delta"]["text"]}]
    if provider == "openai" and data["type"] == "response.output_text.delta":
        return [{"text": data["delta"]}]
    if provider == "gemini":
        return list(data["candidates"][0]["content"]["parts"])
    return []


@pytest.mark.parametrize("provider", sorted(ROUTES))
async def test_disconnect_truncates_the_stream(emulator: Emulator, provider: str) -> None:
    rule = EmulatorRule(
        reply="abcdef", chunks=3, fault=Fault(kind="disconnect", disconnect_after_chunks=2)
    )
    emulator.set_rules([rule])
    with pytest.raises(httpx.RemoteProtocolError):
        await post(emulator, provider)
    assert emulator.requests[0].fault == "disconnect"


async def test_disconnect_and_stall_of_a_json_reply(emulator: Emulator) -> None:
    emulator.set_rules(
        [
            EmulatorRule(fault=Fault(kind="disconnect"), times=1),
            EmulatorRule(fault=Fault(kind="stall")),
        ]
    )
    with pytest.raises(httpx.RemoteProtocolError):
        await post(emulator, "anthropic", stream=False)
    async with client(emulator, timeout=0.5) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/v1/messages", json={**ANTHROPIC_BODY, "stream": False})


@pytest.mark.parametrize("provider", sorted(ROUTES))
async def test_malformed_sends_undecodable_data(emulator: Emulator, provider: str) -> None:
    emulator.set_rules([EmulatorRule(fault=Fault(kind="malformed"))])
    response = await post(emulator, provider)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        parse_sse(response.text)
    plain = await post(emulator, provider, stream=False)
    if provider != "gemini":  # gemini's streaming is chosen by the URL, not the body
        with pytest.raises(ValueError):
            plain.json()


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


async def test_rules_match_first_then_expire_after_times(emulator: Emulator) -> None:
    emulator.set_rules(
        [
            EmulatorRule(match="flaky", fault=Fault(kind="status", status=529), times=2),
            EmulatorRule(provider="openai", reply="openai says {prompt}"),
            EmulatorRule(match="flaky", reply="recovered: {prompt} {not a field}"),
        ]
    )
    statuses = [
        (
            await post(emulator, "anthropic", messages=[{"role": "user", "content": "a flaky one"}])
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [529, 529, 200]
    assert [r.rule_index for r in emulator.requests] == [0, 0, 2]
    assert emulator.requests[2].texts == ("recovered: a flaky one {not a field}",)
    openai = await post(emulator, "openai", stream=False)
    assert openai.json()["output"][0]["content"][0]["text"] == "openai says hello"
    echo = await post(emulator, "gemini", stream=False)
    assert "echo: hello" in echo.text
    assert emulator.requests[-1].rule_index is None

    emulator.set_rules(emulator.rules)  # counts restart
    emulator.clear_requests()
    assert (
        await post(emulator, "anthropic", messages=[{"role": "user", "content": "flaky"}])
    ).status_code == 529
    assert len(emulator.requests) == 1


def test_split_chunks_is_near_even_and_lossless() -> None:
    assert split_chunks("abcdefg", 3) == ["abc", "de", "fg"]
    assert split_chunks("ab", 5) == ["a", "b"]
    assert split_chunks("", 4) == [""]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([{"fault": {"kind": "explode"}}], "0.fault.kind: Input should be"),
        ([{"fault": {"kind": "slow", "status": 429}}], "status does not apply to kind 'slow'"),
        ([{"fault": {"kind": "status"}}], "kind 'status' needs a status"),
        (
            [{"fault": {"kind": "status", "status": 700}}],
            "0.fault.status: Input should be less than or equal to 599",
        ),
        ([{}, {"times": 0}], "1.times: Input should be greater than or equal to 1"),
        ([{"reply": "x", "colour": "red"}], "0.colour: Extra inputs are not permitted"),
        ({"rules": [{"chunks": "many"}]}, "0.chunks: Input should be a valid integer"),
        ({"rule": []}, "Input should be a valid list"),
    ],
)
def test_rules_validation_names_the_field(rules: object, expected: str) -> None:
    with pytest.raises(RulesFileError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        parse_rules(rules)


def test_rules_file_round_trip_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "rules.json"
    good.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "match": "boom",
                        "provider": "gemini",
                        "fault": {"kind": "status", "status": 429, "retry_after": 20},
                        "times": 1,
                    }
                ]
            }
        )
    )
    (rule,) = load_rules(good)
    assert rule.fault == Fault(kind="status", status=429, retry_after=20)
    assert parse_rules([{"reply": None}])[0].reply_text("hi") == "echo: hi"
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(RulesFileError, match="is not valid JSON"):
        load_rules(broken)
    with pytest.raises(RulesFileError, match="cannot read rules file"):
        load_rules(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"fault": {"kind": "stall", "stall_after_chunks": -1}}]')
    with pytest.raises(RulesFileError, match=r"bad\.json'?: 0\.fault\.stall_after_chunks"):
        load_rules(bad)


# ---------------------------------------------------------------------------------------------
# Request log
# ---------------------------------------------------------------------------------------------


async def test_request_log_redacts_keys_in_memory_and_in_the_file(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    secret = "sk-ant-api03-" + "x" * 40
    async with open_emulator(log_path=log) as emulator, client(emulator) as http:
        await http.post(
            "/v1/messages",
            json={**ANTHROPIC_BODY, "stream": False},
            headers={"x-api-key": secret, "authorization": f"Bearer {secret}"},
        )
        await http.post(
            "/v1beta/models/g:generateContent?key=AIzaSECRET",
            json=GEMINI_BODY,
            headers={"x-goog-api-key": "AIzaSECRET"},
        )
        in_memory = list(emulator.requests)
    assert secret not in log.read_text() and "AIzaSECRET" not in log.read_text()
    from_file = [RecordedRequest.model_validate_json(line) for line in log.read_text().splitlines()]
    assert from_file == in_memory
    anthropic, gemini = from_file
    assert anthropic.headers["x-api-key"] == "[REDACTED]"
    assert anthropic.headers["authorization"] == "[REDACTED]"
    assert gemini.headers["x-goog-api-key"] == "[REDACTED]"
    assert gemini.query == {"key": "[REDACTED]"}


async def test_log_file_is_appended_not_truncated(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    for _ in range(2):
        async with open_emulator(log_path=log) as emulator:
            await post(emulator, "openai")
    assert len(log.read_text().splitlines()) == 2


# ---------------------------------------------------------------------------------------------
# Serving: concurrency, clean shutdown, the command line
# ---------------------------------------------------------------------------------------------


async def test_many_concurrent_connections() -> None:
    rule = EmulatorRule(reply="{prompt}", chunks=4, fault=Fault(kind="slow", chunk_delay_s=0.05))
    results: dict[int, str] = {}
    async with open_emulator([rule]) as emulator:

        async def one(index: int) -> None:
            response = await post(
                emulator, "anthropic", messages=[{"role": "user", "content": f"n{index}"}]
            )
            deltas = parse_sse(response.text)[2:-3]
            results[index] = "".join(e.data["delta"]["text"] for e in deltas)

        async with trio.open_nursery() as nursery:
            for index in range(40):
                nursery.start_soon(one, index)
    assert results == {index: f"n{index}" for index in range(40)}


async def test_connections_are_served_at_the_same_time() -> None:
    # Every stream stalls after its first chunk, so no request can finish: all 40 reaching
    # the emulator proves they are in flight at once (a serial server would see one).
    stall = EmulatorRule(fault=Fault(kind="stall", stall_after_chunks=1))
    async with open_emulator([stall]) as emulator, trio.open_nursery() as nursery:
        for _ in range(40):
            nursery.start_soon(
                partial(post, emulator, "anthropic", messages=[{"role": "user", "content": "x"}])
            )
        with trio.fail_after(60):  # only a guard against a hang
            arrived = await emulator.wait_requests(40)
        assert len(arrived) == 40
        nursery.cancel_scope.cancel()


async def test_wait_requests_and_no_leaked_descriptors() -> None:
    before = open_fds()
    async with open_emulator() as emulator:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(post, emulator, "gemini"))
            with trio.fail_after(60):  # only a guard against a hang
                (request,) = await emulator.wait_requests(1)
        assert request.provider == "gemini"
    assert open_fds() <= before


async def test_address_in_use_raises_oserror() -> None:
    async with open_emulator() as first:
        with pytest.raises(OSError):
            async with open_emulator(port=first.port):
                pass  # pragma: no cover


async def test_llmsup_emulate_command_serves_until_interrupted(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"match": "boom", "fault": {"kind": "status", "status": 401}}]')
    log = tmp_path / "log.jsonl"
    argv = [
        sys.executable,
        "-m",
        "supervisor._llmsup",
        "emulate",
        "--port",
        "0",
        "--rules",
        str(rules),
        "--log",
        str(log),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(trio.run_process, argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, check=False)
        )
        assert process.stdout is not None
        banner = b""
        with trio.fail_after(60):  # only a guard against a hang
            while not banner.endswith(b"\n"):
                banner += await process.stdout.receive_some()
        prefix = "emulating anthropic, openai and gemini APIs on http://127.0.0.1:"
        line = banner.decode().strip()
        assert line.startswith(prefix)
        async with httpx.AsyncClient(base_url=line.rsplit(" ", 1)[1], trust_env=False) as http:
            boom = await http.post(
                "/v1/messages", json={"messages": [{"role": "user", "content": "boom"}]}
            )
        assert boom.status_code == 401
        process.send_signal(signal.SIGINT)
        with trio.fail_after(60):  # only a guard against a hang
            assert await process.wait() == 0
    assert json.loads(log.read_text())["status"] == 401


async def test_llmsup_emulate_rejects_a_bad_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"fault": {"kind": "status", "status": 99}}]')
    argv = [sys.executable, "-m", "supervisor._llmsup", "emulate", "--rules", str(rules)]
    with trio.fail_after(60):  # only a guard against a hang
        done = await trio.run_process(
            argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_stderr=True, check=False
        )
    assert done.returncode == 2
    assert "0.fault.status: Input should be greater than or equal to 400" in done.stderr.decode()


def test_cli_environment_writes_each_cli_configuration(tmp_path: Path) -> None:
    base = "http://127.0.0.1:9/"
    claude = cli_environment("claude", base, tmp_path / "c", model="claude-x")
    assert claude["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert claude["ANTHROPIC_MODEL"] == "claude-x"
    assert claude["HOME"] == str(tmp_path / "c")
    assert claude["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"

    codex = cli_environment("codex", base, tmp_path / "x", api_key="k1")
    config = tomllib.loads((Path(codex["CODEX_HOME"]) / "config.toml").read_text())
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == "http://127.0.0.1:9/v1"
    assert codex[provider["env_key"]] == "k1" and provider["env_key"] == CODEX_KEY_VARIABLE
    assert (provider["wire_api"], provider["supports_websockets"]) == ("responses", False)
    assert (provider["request_max_retries"], provider["stream_max_retries"]) == (0, 0)

    settings_path = tmp_path / "g" / ".gemini" / "settings.json"
    settings_path.parent.mkdir(parents=True)
    settings_path.write_text('{"ui": {"theme": "dark"}, "model": {"maxSessionTurns": 3}}')
    gemini = cli_environment(
        "gemini", base, tmp_path / "g", inherit={"PATH": "/bin", "GOOGLE_API_KEY": "x"}
    )
    settings = json.loads(settings_path.read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings["ui"] == {"theme": "dark"}  # the user's keys survive a refresh
    assert settings["model"] == {"maxSessionTurns": 3, "name": "gemini-2.5-flash"}
    assert gemini["PATH"] == "/bin" and "GOOGLE_API_KEY" not in gemini
    assert gemini["GEMINI_CLI_TRUST_WORKSPACE"] == "true"


# ---------------------------------------------------------------------------------------------
# The real CLIs
# ---------------------------------------------------------------------------------------------


def cli_available(cli: CliName) -> bool:
    return os.access(CLI_DIR / cli, os.X_OK)


def needs(*clis: CliName) -> pytest.MarkDecorator:
    """Skip (at collection, so the reason shows) unless every CLI in `clis` is installed."""
    return pytest.mark.skipif(not all(map(cli_available, clis)), reason=SKIP_REASON)


def each_cli(*clis: CliName) -> list[Any]:
    """`clis` as test parameters, each skipped when its binary is missing."""
    return [pytest.param(cli, marks=needs(cli)) for cli in clis or CLIS]


def cli_binary(cli: CliName) -> Path:
    return CLI_DIR / cli


@attrs.frozen
class CliRun:
    returncode: int | None  # None: still running when it was killed
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        """stdout's JSON lines (other lines skipped)."""
        found = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("type") == kind]


def live_group_members(pgid: int) -> list[int]:
    """Pids of non-zombie processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group `pgid` (a CLI started with ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


async def _deliver_cancel(process: trio.Process) -> None:
    kill_group(process.pid)


def cli_argv(cli: CliName, prompt: str, *extra: str) -> list[str]:
    """The one-shot, machine-readable invocation of each CLI."""
    binary = str(cli_binary(cli))
    if cli == "claude":
        return [binary, "-p", prompt, "--output-format", "stream-json", "--verbose", *extra]
    if cli == "codex":
        return [binary, "exec", "--json", "--skip-git-repo-check", *extra, prompt]
    return [binary, "-p", prompt, "--output-format", "stream-json", *extra]


def cli_env(cli: CliName, emulator: Emulator, home: Path) -> dict[str, str]:
    env = cli_environment(cli, emulator.base_url, home, inherit={"PATH": os.environ["PATH"]})
    if cli == "claude":
        env["CLAUDE_CODE_MAX_RETRIES"] = "0"
    (home / "work").mkdir(exist_ok=True)
    return env


async def run_cli(
    argv: Sequence[str],
    env: dict[str, str],
    home: Path,
    *,
    seconds: float = 60.0,
    until_stderr: str | None = None,
    stop: trio.Event | None = None,
) -> CliRun:
    """Run a CLI in its own session with stdin closed; always kills its whole group at the end.

    Returns when it exits, when `until_stderr` appears on its stderr, when `stop` is set, or
    after `seconds`, whichever comes first; in all but the first case `returncode` is None.
    """
    out, err = bytearray(), bytearray()
    returncode: int | None = None
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                list(argv),
                env=env,
                cwd=home / "work",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                check=False,
                deliver_cancel=_deliver_cancel,
            )
        )
        assert process.stdout is not None and process.stderr is not None

        async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
            async for chunk in stream:
                into.extend(chunk)
                if into is err and until_stderr is not None and until_stderr.encode() in err:
                    nursery.cancel_scope.cancel()

        async def stop_when_set(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        if stop is not None:
            nursery.start_soon(stop_when_set, stop)
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as readers:
                readers.start_soon(drain, process.stdout, out)
                readers.start_soon(drain, process.stderr, err)
            returncode = await process.wait()
        nursery.cancel_scope.cancel()  # still running: run_process kills the group
    kill_group(process.pid)  # stragglers of a CLI that did exit
    with trio.move_on_after(30):  # polls; 30 s only guards against a hang
        while live_group_members(process.pid):  # noqa: ASYNC110 - /proc offers nothing to await
            await trio.sleep(0.05)
    assert live_group_members(process.pid) == [], "the CLI left processes behind"
    return CliRun(returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def final_text(cli: CliName, run: CliRun) -> str:
    """The answer as each CLI reports it in its stream."""
    if cli == "claude":
        (result,) = run.of_type("result")
        assert result["is_error"] is False, result
        return str(result["result"])
    if cli == "codex":
        messages = [
            e["item"]["text"]
            for e in run.of_type("item.completed")
            if e["item"]["type"] == "agent_message"
        ]
        assert run.of_type("turn.completed"), run.stdout
        return "".join(messages)
    (result,) = run.of_type("result")
    assert result["status"] == "success", result
    return "".join(e["content"] for e in run.of_type("message") if e["role"] == "assistant")


PROVIDER_OF: dict[CliName, Provider] = {
    "claude": "anthropic",
    "codex": "openai",
    "gemini": "gemini",
}


@pytest.mark.parametrize("cli", each_cli())
async def test_real_cli_one_shot_answers_from_the_emulator(cli: CliName, tmp_path: Path) -> None:
    prompt = f"say hi {uuid.uuid4().hex[:8]}"
    async with open_emulator() as emulator:
        run = await run_cli(cli_argv(cli, prompt), cli_env(cli, emulator, tmp_path), tmp_path)
    assert run.returncode == 0, run.stderr
    assert final_text(cli, run) == f"echo: {prompt}"
    (request,) = [r for r in emulator.generation_requests() if r.prompt == prompt]
    assert request.provider == PROVIDER_OF[cli]
    assert request.stream
    # Nothing else than generation calls and claude's HEAD / probe reached the emulator.
    assert {(r.method, r.status) for r in emulator.requests} <= {("POST", 200), ("HEAD", 200)}


@pytest.mark.parametrize("cli", each_cli("claude", "gemini"))
async def test_real_cli_streams_each_chunk_as_a_delta(cli: CliName, tmp_path: Path) -> None:
    reply = "The quick brown fox jumps over the lazy dog."
    async with open_emulator([EmulatorRule(reply=reply, chunks=4)]) as emulator:
        extra = ("--include-partial-messages",) if cli == "claude" else ()
        run = await run_cli(
            cli_argv(cli, "tell me", *extra), cli_env(cli, emulator, tmp_path), tmp_path
        )
    assert run.returncode == 0, run.stderr
    if cli == "claude":
        deltas = [
            e["event"]["delta"]["text"]
            for e in run.of_type("stream_event")
            if e["event"]["type"] == "content_block_delta"
        ]
    else:
        deltas = [e["content"] for e in run.of_type("message") if e["role"] == "assistant"]
    assert deltas == split_chunks(reply, 4)
    assert final_text(cli, run) == reply


@pytest.mark.parametrize("cli", each_cli())
async def test_real_cli_rate_limited_429(cli: CliName, tmp_path: Path) -> None:
    rule = EmulatorRule(fault=Fault(kind="status", status=429, retry_after=20))
    async with open_emulator([rule]) as emulator:
        env = cli_env(cli, emulator, tmp_path)
        if cli == "gemini":
            # gemini retries 429s for minutes and says nothing on stdout: watch stderr.
            run = await run_cli(
                cli_argv(cli, "hi"),
                env,
                tmp_path,
                seconds=30,
                until_stderr="Attempt 1 failed with status 429",
            )
        else:
            run = await run_cli(cli_argv(cli, "hi"), env, tmp_path)
    if cli == "claude":
        assert run.returncode == 1
        (result,) = run.of_type("result")
        assert (result["is_error"], result["api_error_status"]) == (True, 429)
        assert result["result"].startswith("API Error: Request rejected (429)")
        assert result["result"].endswith("Please try again in 20s.")
    elif cli == "codex":
        assert run.returncode == 1
        (failed,) = run.of_type("turn.failed")
        assert (
            failed["error"]["message"] == "exceeded retry limit, last status: 429 Too Many Requests"
        )
    else:
        assert run.returncode is None, "gemini gave up on a 429 instead of retrying"
        assert "Retrying with backoff" in run.stderr
        assert '"status":"RESOURCE_EXHAUSTED"' in run.stderr
        assert [e["type"] for e in run.events()] == ["init", "message"]  # no result yet
    assert emulator.requests[-1].status == 429


@needs("gemini")
async def test_real_gemini_with_retry_info_waits_the_suggested_delay(tmp_path: Path) -> None:
    fault = Fault(kind="status", status=429, retry_after=3, gemini_retry_info=True)
    async with open_emulator([EmulatorRule(fault=fault)]) as emulator:
        run = await run_cli(
            cli_argv("gemini", "hi"),
            cli_env("gemini", emulator, tmp_path),
            tmp_path,
            seconds=30,
            until_stderr="Retrying after",
        )
    assert run.returncode is None
    assert (
        "Attempt 1 failed: Resource has been exhausted (e.g. check quota). Please try again in 3s."
        in run.stderr
    )
    assert "Suggested retry after 3s." in run.stderr


@pytest.mark.parametrize("cli", each_cli())
async def test_real_cli_invalid_key_401(cli: CliName, tmp_path: Path) -> None:
    async with open_emulator([EmulatorRule(fault=Fault(kind="status", status=401))]) as emulator:
        run = await run_cli(
            cli_argv(cli, "hi"), cli_env(cli, emulator, tmp_path), tmp_path, seconds=30
        )
    assert len(emulator.generation_requests()) == 1, "a 401 must not be retried"
    if cli == "claude":
        assert run.returncode == 1
        (result,) = run.of_type("result")
        assert (result["is_error"], result["api_error_status"]) == (True, 401)
        assert result["result"] == "Invalid API key · Fix external API key"
    elif cli == "codex":
        assert run.returncode == 1
        (failed,) = run.of_type("turn.failed")
        assert failed["error"]["message"].startswith(
            "unexpected status 401 Unauthorized: Incorrect API key"
        )
    else:
        assert run.returncode == 401 % 256  # gemini exits with the HTTP status, modulo 256
        (result,) = run.of_type("result")
        assert result["status"] == "error"
        assert '"code":401' in result["error"]["message"]
        assert "_ApiError" in run.stderr and "status: 401" in run.stderr


@pytest.mark.skipif(not any(map(cli_available, CLIS)), reason=SKIP_REASON)
async def test_real_clis_wait_on_a_stalled_stream(tmp_path: Path) -> None:
    clis = [cli for cli in CLIS if cli_available(cli)]
    rule = EmulatorRule(
        reply="partial answer", chunks=3, fault=Fault(kind="stall", stall_after_chunks=1)
    )
    runs: dict[CliName, CliRun] = {}
    async with open_emulator([rule]) as emulator:

        async def one(cli: CliName) -> None:
            home = tmp_path / cli
            home.mkdir()
            stop = trio.Event()

            async def stop_after_the_stall() -> None:
                # Under load a CLI can take many seconds to start: wait until its request has
                # reached the emulator (so it is reading a stalled stream), then give it a few
                # seconds to wrongly give up before stopping it.
                while not emulator.generation_requests(PROVIDER_OF[cli]):
                    await emulator.wait_requests(len(emulator.requests) + 1)
                await trio.sleep(3)
                stop.set()

            async with trio.open_nursery() as watcher:
                watcher.start_soon(stop_after_the_stall)
                runs[cli] = await run_cli(
                    cli_argv(cli, "hi"), cli_env(cli, emulator, home), home, stop=stop
                )
                watcher.cancel_scope.cancel()

        with trio.fail_after(180):  # only a guard against a hang
            async with trio.open_nursery() as nursery:
                for cli in clis:
                    nursery.start_soon(one, cli)
    assert set(runs) == set(clis)
    for cli in clis:
        assert emulator.generation_requests(PROVIDER_OF[cli]), f"{cli} never reached the emulator"
    for name, run in runs.items():
        assert run.returncode is None, f"{name} exited on a stalled stream: {run.stdout[-500:]}"
        assert not [
            e for e in run.events() if e.get("type") in ("result", "turn.completed", "turn.failed")
        ]
    assert {r.fault for r in emulator.generation_requests()} == {"stall"}


def _first_turn_id(cli: CliName, run: CliRun) -> str:
    if cli == "claude":
        return str(run.of_type("result")[0]["session_id"])
    if cli == "codex":
        return str(run.of_type("thread.started")[0]["thread_id"])
    return str(run.of_type("init")[0]["session_id"])


def resume_argv(cli: CliName, session: str, prompt: str) -> list[str]:
    """Continue a stored session in a new process."""
    if cli == "claude":
        return cli_argv(cli, prompt, "--resume", session)
    if cli == "codex":
        return cli_argv(cli, prompt, "resume", session)
    return cli_argv(cli, prompt, "--resume", session)


@pytest.mark.parametrize("cli", each_cli())
async def test_real_cli_resume_sends_the_first_turn_again(cli: CliName, tmp_path: Path) -> None:
    async with open_emulator() as emulator:
        env = cli_env(cli, emulator, tmp_path)
        first = await run_cli(cli_argv(cli, "first turn ALPHA"), env, tmp_path)
        assert first.returncode == 0, first.stderr
        session = _first_turn_id(cli, first)
        second = await run_cli(resume_argv(cli, session, "second turn BETA"), env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert final_text(cli, second) == "echo: second turn BETA"
    assert _first_turn_id(cli, second) == session
    request = emulator.generation_requests()[-1]
    assert request.prompt == "second turn BETA"
    conversation = [(m.role, m.text) for m in request.messages if m.role != "system"]
    users = [text for role, text in conversation if role == "user"]
    replies = [text for role, text in conversation if role in ("assistant", "model")]
    assert any(text.endswith("first turn ALPHA") for text in users), conversation
    assert replies == ["echo: first turn ALPHA"]
    assert users[-1] == "second turn BETA"


# What each CLI says for the other faults: the table in actors/_fakes/_emulator/__init__.py.
FAULT_CASES: dict[str, Fault] = {
    "overloaded-529": Fault(kind="status", status=529),
    "server-error-500": Fault(kind="status", status=500),
    "bad-request-400": Fault(kind="status", status=400),
    "disconnect": Fault(kind="disconnect"),
    "malformed": Fault(kind="malformed"),
}
# (exit status or None when still retrying, a substring of failure_text)
EXPECTED_FAILURES: dict[CliName, dict[str, tuple[int | None, str]]] = {
    "claude": {
        "overloaded-529": (1, "529 API Error: 529 Overloaded. This is a server-side issue"),
        "server-error-500": (1, "500 API Error: 500 Internal server error. This is a server-side"),
        "bad-request-400": (1, "400 API Error: 400 Invalid request."),
        "disconnect": (1, "None API Error: Connection to the API was lost (ECONNRESET)."),
        "malformed": (1, "None API Error: Failed to parse JSON"),
    },
    "codex": {
        "overloaded-529": (1, "unexpected status 529 <unknown status code>: The engine is"),
        "server-error-500": (1, "We’re currently experiencing high demand, which may cause"),
        "bad-request-400": (1, '{"error":{"message":"Invalid request.","type":"invalid_request'),
        "disconnect": (1, "stream disconnected before completion: Transport error: network"),
        "malformed": (1, "stream disconnected before completion: stream closed before resp"),
    },
    "gemini": {
        "overloaded-529": (None, "Attempt 1 failed with status 529. Retrying with backoff..."),
        "server-error-500": (None, "Attempt 1 failed with status 500. Retrying with backoff..."),
        "bad-request-400": (
            400 % 256,
            '[API Error: {"error":{"code":400,"message":"Request contai',
        ),
        "disconnect": (1, "[API Error: terminated]"),
        "malformed": (1, "[API Error: Unterminated string in JSON"),
    },
}


def failure_text(cli: CliName, run: CliRun) -> str:
    """Where each CLI reports a failed call: claude's result, codex's turn.failed, gemini's
    result (or, while it is still retrying, its stderr)."""
    if cli == "claude":
        (result,) = run.of_type("result")
        assert result["is_error"] is True
        return f"{result['api_error_status']} {result['result']}"
    if cli == "codex":
        (failed,) = run.of_type("turn.failed")
        return str(failed["error"]["message"])
    results = run.of_type("result")
    return str(results[0]["error"]["message"]) if results else run.stderr


@pytest.mark.parametrize("cli", each_cli())
async def test_real_cli_fault_messages_match_the_table(cli: CliName, tmp_path: Path) -> None:
    rules = [EmulatorRule(match=name, fault=fault) for name, fault in FAULT_CASES.items()]
    runs: dict[str, CliRun] = {}
    async with open_emulator(rules) as emulator:

        async def one(name: str) -> None:
            home = tmp_path / name
            home.mkdir()
            env = cli_env(cli, emulator, home)
            runs[name] = await run_cli(
                cli_argv(cli, name), env, home, seconds=30, until_stderr="Attempt 1 failed"
            )

        async with trio.open_nursery() as nursery:
            for name in FAULT_CASES:
                nursery.start_soon(one, name)
    for name, (returncode, text) in EXPECTED_FAILURES[cli].items():
        run = runs[name]
        evidence = (name, run.stdout[-800:], run.stderr[-800:])
        assert run.returncode == returncode, evidence
        assert text in failure_text(cli, run), evidence
    if cli == "claude":  # after a broken stream claude asks once more, without streaming
        asked = [r.stream for r in emulator.generation_requests() if r.prompt == "disconnect"]
        assert asked == [True, False]


async def test_errors_in_the_body_are_not_wrapped_in_exception_groups() -> None:
    with pytest.raises(KeyError):
        async with open_emulator():
            raise KeyError("mine")
    with trio.move_on_after(0.2) as scope:
        async with open_emulator() as emulator:
            await emulator.wait_requests(1)
    assert scope.cancelled_caught
