"""``llmsup serve``'s pure decisions: a request's own options within the server's limits, which
events ``/stream`` sends, and who may read which path."""

from __future__ import annotations

import json
import typing

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import CliSpec, RawEvent, TextDelta, ToolPolicy, fake
from supervisor._llmsup._serve._errors import ClientError
from supervisor._llmsup._serve._guard import MetricsAccess, RequestGuard
from supervisor._llmsup._serve._models import AskRequest
from supervisor._llmsup._serve._per_call import CallLimits, call_options, tool_rank
from supervisor._llmsup._serve._sse import event_frame

POLICIES: tuple[ToolPolicy, ...] = typing.get_args(ToolPolicy)


def _respec(spec: CliSpec, model: str | None, tools: ToolPolicy) -> CliSpec:
    if model is not None:
        spec = attrs.evolve(spec, name=f"{spec.name}@{model}")
    return attrs.evolve(spec, tools=tools)


@given(st.sampled_from(POLICIES), st.sampled_from(POLICIES))
def test_a_request_gets_at_most_the_server_tools(server: ToolPolicy, asked: ToolPolicy) -> None:
    spec = attrs.evolve(fake(), tools=server)
    body = AskRequest(prompt="x", tools=asked)
    limits = CallLimits(respec=_respec)
    if tool_rank(asked) > tool_rank(server):
        with pytest.raises(ClientError) as refused:
            call_options(body, (spec,), limits, None)
        assert refused.value.status == 403
        assert refused.value.message.startswith("tools:")
        return
    options = call_options(body, (spec,), limits, None)
    derived = options.adapt(spec) if options.adapt else spec
    assert derived.tools == asked


def test_the_model_is_the_primary_cli_s_and_the_call_folder_stays() -> None:
    primary, fallback = fake(name="one"), fake(name="two")
    options = call_options(
        AskRequest(prompt="x", model="m1"), (primary, fallback), CallLimits(respec=_respec), None
    )
    assert options.adapt is not None
    assert options.adapt(attrs.evolve(primary, cwd="/call")).name == "one@m1"
    assert options.adapt(attrs.evolve(primary, cwd="/call")).cwd == "/call"
    assert options.adapt(fallback).name == "two"  # a fallback keeps its own model


def test_limits_refuse_naming_the_field() -> None:
    spec = fake()
    with pytest.raises(ClientError, match=r"^timeout: 5 s is more .* 2 s, its --max-timeout"):
        call_options(AskRequest(prompt="x", timeout=5), (spec,), CallLimits(max_timeout=2), None)
    with pytest.raises(ClientError, match=r"^model: this server takes no per-request model"):
        call_options(AskRequest(prompt="x", model="m"), (spec,), CallLimits(), None)

    def refuses(spec: CliSpec, model: str | None, tools: ToolPolicy) -> CliSpec:
        raise ValueError("the fake CLI takes no model")

    with pytest.raises(ClientError, match=r"^model: the fake CLI takes no model$"):
        call_options(AskRequest(prompt="x", model="m"), (spec,), CallLimits(respec=refuses), None)


def test_the_request_system_prompt_replaces_the_server_s() -> None:
    limits = CallLimits()
    assert call_options(AskRequest(prompt="x"), (fake(),), limits, "default").system == "default"
    own = AskRequest(prompt="x", system="own")
    assert call_options(own, (fake(),), limits, "default").system == "own"


def test_stream_frames_typed_events_and_raw_ones_only_when_asked() -> None:
    raw = RawEvent(line="{}", raw={"type": "system"})
    delta = TextDelta(text="hi", raw={"type": "text_delta", "text": "hi", "x": 1})
    assert event_frame(raw, raw=False) is None
    assert (
        event_frame(delta, raw=False)
        == b'event: text_delta\ndata: {"type":"text_delta","text":"hi"}\n\n'
    )
    framed = event_frame(raw, raw=True)
    assert framed is not None and framed.startswith(b"event: raw\n")
    sent = event_frame(delta, raw=True)
    assert sent is not None
    assert json.loads(sent.split(b"data: ", 1)[1])["raw"]["x"] == 1


def _bearer(token: str | None) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())] if token else []


async def _app(scope: object, receive: object, send: object) -> None:  # never called
    raise AssertionError


@pytest.mark.parametrize(
    ("access", "allowed_tokens"),
    [
        (MetricsAccess(), {"api"}),
        (MetricsAccess(token="scrape"), {"api", "scrape"}),
        (MetricsAccess(public=True), {"api", "scrape", "wrong", None}),
    ],
)
def test_who_reads_metrics(access: MetricsAccess, allowed_tokens: set[str | None]) -> None:
    guard = RequestGuard(_app, token="api", max_body_bytes=10, metrics=access)
    for token in ("api", "scrape", "wrong", None):
        assert guard.allowed("/metrics", _bearer(token)) == (token in allowed_tokens), token
        assert guard.allowed("/ask", _bearer(token)) == (token == "api")
        assert guard.allowed("/docs", _bearer(token))
        assert guard.allowed("/docs-assets/swagger-ui.css", _bearer(token))
        assert guard.allowed("/openapi.json", _bearer(token))


def test_metrics_are_public_or_behind_a_token_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        MetricsAccess(token="x", public=True)
    with pytest.raises(ValueError, match="metrics token"):
        MetricsAccess(token="has space")
