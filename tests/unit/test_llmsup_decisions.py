"""The llmsup program's decisions, without processes or sockets: HTTP mapping, health, the
guard's checks, the serve shutdown's signals, map's output lines, tally, fallback and status."""

from __future__ import annotations

import signal

import pytest

from actors import ErrorCategory, LLMError, Usage
from supervisor import CircuitState, Result, SupervisorStatistics
from supervisor._llmsup._map._command import exit_status
from supervisor._llmsup._map._input import MapItem
from supervisor._llmsup._map._output import result_line
from supervisor._llmsup._map._run import moves_to_fallback
from supervisor._llmsup._map._tally import Tally
from supervisor._llmsup._serve._app import check_app_arguments, health_response
from supervisor._llmsup._serve._errors import http_error_parts, llm_error_parts
from supervisor._llmsup._serve._guard import authorized, declared_too_large
from supervisor._llmsup._serve._server import ServeShutdown

from ..helpers import fake

# -- serve: errors to HTTP -----------------------------------------------------------------------


def test_http_errors_map_to_a_status_category_and_message() -> None:
    assert http_error_parts(400, "bad") == (422, "invalid_request", "bad")
    assert http_error_parts(404, "Not Found") == (404, "not_found", "Not Found")
    assert http_error_parts(405, None) == (405, "method_not_allowed", "request failed")
    assert http_error_parts(418, "teapot") == (418, "http_error", "teapot")


@pytest.mark.parametrize(
    ("category", "retry_after", "expected"),
    [
        (ErrorCategory.RATE_LIMIT, 7.0, (429, 7.0)),
        (ErrorCategory.RATE_LIMIT, None, (429, 1.0)),
        (ErrorCategory.CIRCUIT_OPEN, None, (503, 1.0)),
        (ErrorCategory.TIMEOUT, 3.0, (504, None)),
        (ErrorCategory.AUTH_FAILURE, None, (502, None)),
        (ErrorCategory.PERMANENT, None, (502, None)),
    ],
)
def test_failed_calls_map_to_a_status_and_retry_after(
    category: ErrorCategory, retry_after: float | None, expected: tuple[int, float | None]
) -> None:
    assert llm_error_parts(LLMError("x", category, retry_after=retry_after)) == expected


# -- serve: health -------------------------------------------------------------------------------


def _stats(breaker_state: CircuitState | None) -> SupervisorStatistics:
    return SupervisorStatistics(
        cli="fake",
        concurrency=2,
        in_flight=1,
        started=3,
        succeeded=2,
        failed=0,
        failures_by_category={},
        retries=4,
        restarts=5,
        processes_spawned=6,
        breaker_rejections=0,
        breaker_waits=0,
        trimmed_turns=0,
        reasks=0,
        session_restarts=0,
        breaker_state=breaker_state,
        breaker_opened=0,
    )


def test_health_says_starting_ok_degraded_or_draining() -> None:
    body, code = health_response("fake", draining=False, stats=None, retry_after=None)
    assert (body.status, code, body.in_flight, body.breaker_state) == ("starting", 503, 0, None)
    body, code = health_response("fake", draining=False, stats=_stats(None), retry_after=None)
    assert (body.status, code) == ("ok", 200)
    assert (body.in_flight, body.retries, body.restarts, body.processes_spawned) == (1, 4, 5, 6)
    body, code = health_response(
        "fake", draining=False, stats=_stats(CircuitState.HALF_OPEN), retry_after=0.5
    )
    assert (body.status, code, body.breaker_state) == ("degraded", 200, "half_open")
    assert body.breaker_retry_after_s == 0.5
    body, code = health_response(
        "fake", draining=True, stats=_stats(CircuitState.CLOSED), retry_after=None
    )
    assert (body.status, code) == ("draining", 503)


def test_app_arguments_are_checked_before_anything_runs() -> None:
    check_app_arguments(fake(), 1, "s3cret")
    check_app_arguments(fake(), 8, None)
    with pytest.raises(TypeError):
        check_app_arguments("fake", 8, None)
    for concurrency in (0, -1, 1.5, "8"):
        with pytest.raises(ValueError, match="concurrency must be a positive integer"):
            check_app_arguments(fake(), concurrency, None)
    for token in ("", "has space", "tab\t", "naïve"):
        with pytest.raises(ValueError, match="printable ASCII"):
            check_app_arguments(fake(), 8, token)


# -- serve: the guard's checks -------------------------------------------------------------------


def test_the_bearer_token_is_checked_by_scheme_and_value() -> None:
    assert authorized([], None)
    assert authorized([(b"Authorization", b"Bearer tok")], b"tok")
    assert authorized([(b"authorization", b"bearer  tok ")], b"tok")
    assert not authorized([(b"authorization", b"Bearer other")], b"tok")
    assert not authorized([(b"authorization", b"Basic tok")], b"tok")
    assert not authorized([], b"tok")


def test_a_declared_length_over_the_limit_is_too_large() -> None:
    assert declared_too_large([(b"Content-Length", b"11")], 10)
    assert not declared_too_large([(b"content-length", b"10")], 10)
    assert not declared_too_large([(b"content-length", b"junk")], 10)
    assert not declared_too_large([], 10)


# -- serve: the shutdown's signals ---------------------------------------------------------------


def test_the_first_signal_drains_and_the_second_forces() -> None:
    shutdown = ServeShutdown()
    assert not shutdown.on_signal()
    assert shutdown.drain.is_set()
    assert not shutdown.forced
    assert shutdown.on_signal()
    assert shutdown.forced


def test_a_signal_after_the_trigger_drained_forces() -> None:
    shutdown = ServeShutdown()
    shutdown.drain.set()  # what the shutdown trigger does
    assert shutdown.on_signal()
    assert shutdown.forced


# -- map: lines, tally, fallback, exit status ----------------------------------------------------


def test_a_success_line_has_text_usage_cost_and_the_answering_cli() -> None:
    item = MapItem("a", "p", attempts=2, duration_s=1.23456)
    usage = Usage(input_tokens=3, output_tokens=4)
    result = Result(text="hi", usage=usage, cost_usd=0.5, cli="claude")
    line = result_line(item, result, "fake", structured=False)
    assert line == {
        "id": "a",
        "ok": True,
        "text": "hi",
        "error": None,
        "attempts": 2,
        "cli": "claude",
        "duration_s": 1.235,
        "usage": usage.model_dump(mode="json"),
        "cost": 0.5,
    }


def test_a_failure_line_has_the_error_and_the_stage_cli() -> None:
    error = LLMError("slow down", ErrorCategory.RATE_LIMIT, retry_after=2.0)
    line = result_line(MapItem(7, "p"), error, "fake", structured=True)
    assert line["data"] is None and "text" not in line
    assert line["error"] == {"category": "rate_limit", "message": "slow down", "retry_after": 2.0}
    assert (line["ok"], line["cli"], line["usage"], line["cost"]) == (False, "fake", None, None)


def test_the_tally_counts_outcomes_clis_tokens_and_cost() -> None:
    tally = Tally(total=3)
    tally.count(None, "claude", 1.0, Usage(input_tokens=3, output_tokens=4), 0.25)
    tally.count("timeout", "fake", 2.0, None, None)
    assert (tally.ok, tally.done, tally.failures()) == (1, 2, "1 failed (timeout 1)")
    assert dict(tally.by_cli) == {"claude": 1, "fake": 1}
    assert (tally.tokens_in, tally.tokens_out, tally.cost) == (3, 4, 0.25)
    assert tally.percentile(0.5) == 1.0
    assert tally.rate(4.0) == 0.5
    assert Tally(total=1).cost is None and Tally(total=1).rate(0.0) == 0.0


def test_rate_limits_auth_failures_and_open_breakers_move_to_a_fallback() -> None:
    moving = (ErrorCategory.RATE_LIMIT, ErrorCategory.AUTH_FAILURE, ErrorCategory.CIRCUIT_OPEN)
    for category in ErrorCategory:
        assert moves_to_fallback(LLMError("x", category)) == (category in moving)
    assert not moves_to_fallback(Result(text="ok"))


def test_the_map_exit_status() -> None:
    assert exit_status(None, failed=False) == 0
    assert exit_status(None, failed=True) == 1
    assert exit_status(signal.SIGINT, failed=True) == 130
    assert exit_status(signal.SIGTERM, failed=False) == 143
