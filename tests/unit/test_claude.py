"""The claude adapter and classifier: golden transcripts and the error shapes seen in live
runs.

Golden files are real CLI output (``tests/data/transcripts``); the other
sample lines were captured from the real CLIs (claude 2.1.197, codex 0.169.0, gemini 0.61.0)
against a local stub server.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from actors import (
    AssistantMessage,
    ClaudeAdapter,
    ClaudeClassifier,
    ErrorCategory,
    ErrorReport,
    RawEvent,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
)

from .transcripts import (
    events_of,
    failure_of,
    feed,
    final_result,
    json_line,
    process_exit,
    transcript_lines,
)

NOW = 1_800_000_000.0  # a fixed clock for reset-time arithmetic


# Golden transcripts.


def test_claude_ok_maps_session_text_usage_cost_and_keeps_raw_json() -> None:
    events = feed(ClaudeAdapter(), transcript_lines("claude-ok.stream.jsonl"))
    started = events_of(events, SessionStarted)
    assert [(s.session_id, s.model) for s in started] == [
        ("83152a9e-cd61-400a-a502-0ca64bd60b74", "claude-opus-4-8[1m]")
    ]
    final = final_result(events)
    assert final.text == "Hello from the fake API. "
    assert final.session_id == "83152a9e-cd61-400a-a502-0ca64bd60b74"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 12)
    assert final.cost_usd == pytest.approx(0.00035)
    assert not final.is_error
    # No partial deltas were seen, so the assistant text is also streamed, exactly once.
    assert "".join(d.text for d in events_of(events, TextDelta)) == final.text
    assert [m.text for m in events_of(events, AssistantMessage)] == [final.text]
    assert all(e.raw is not None and "type" in e.raw for e in events)
    assert ClaudeClassifier().classify(process_exit(events, 0, cli="claude")) is None


def test_claude_partial_deltas_concatenate_exactly_to_the_result_text() -> None:
    events = feed(ClaudeAdapter(), transcript_lines("claude-ok-partial.stream.jsonl"))
    deltas = [d.text for d in events_of(events, TextDelta)]
    assert deltas == ["Hello fr", "om the f", "ake API.", " "]
    final = final_result(events)
    assert "".join(deltas) == final.text == "Hello from the fake API. "
    # The assistant line repeats the streamed text: a message, not more deltas.
    assert [m.text for m in events_of(events, AssistantMessage)] == [final.text]
    # status, message_start, content_block_start/stop, message_delta, message_stop: kept raw.
    raw = events_of(events, RawEvent)
    assert len(raw) == 6
    assert all(r.raw is not None and r.line for r in raw)
    assert ClaudeClassifier().classify(process_exit(events, 0)) is None


def test_claude_bare_json_result_object_is_understood() -> None:
    events = feed(ClaudeAdapter(), transcript_lines("claude-ok.json"))
    final = final_result(events)
    assert final.text == "Hello from the fake API. "
    assert final.session_id == "2bad558f-d55e-4d67-a46f-efce0cd45cc4"
    assert final.usage is not None and final.usage.output_tokens == 12
    assert "".join(d.text for d in events_of(events, TextDelta)) == final.text
    assert ClaudeClassifier().classify(process_exit(events, 0)) is None


def test_claude_json_verbose_array_yields_every_message() -> None:
    lines = transcript_lines("claude-ok.stream.jsonl")
    array = "[" + ",".join(lines) + "]"
    events = feed(ClaudeAdapter(), [array])
    assert events_of(events, SessionStarted)
    assert final_result(events).text == "Hello from the fake API. "


@pytest.mark.parametrize("exit_code", [1, 0])
def test_claude_429_with_retries_off_is_a_rate_limit_whatever_the_exit_code(
    exit_code: int,
) -> None:
    events = feed(ClaudeAdapter(), transcript_lines("claude-429-max-retries-0.stream.jsonl"))
    assert not events_of(events, TextDelta)  # the synthetic error message is not answer text
    final = final_result(events)
    assert final.is_error
    (report,) = events_of(events, ErrorReport)
    assert (report.status, report.category, report.terminal) == (429, "rate_limit", False)
    stderr = "some stderr evidence"
    error = failure_of(ClaudeClassifier(), process_exit(events, exit_code, stderr, cli="claude"))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.is_retryable
    assert "Request rejected (429)" in error.message
    assert error.exit_code == exit_code
    assert error.event is not None and error.event["api_error_status"] == 429
    assert error.stderr == stderr


def test_claude_529_with_retries_off_is_retryable() -> None:
    events = feed(ClaudeAdapter(), transcript_lines("claude-529-max-retries-0.stream.jsonl"))
    (report,) = events_of(events, ErrorReport)
    assert (report.status, report.category) == (529, "retryable")
    error = failure_of(ClaudeClassifier(), process_exit(events, 1))
    assert error.category is ErrorCategory.RETRYABLE
    assert "529 Overloaded" in error.message
    assert error.retry_after is None


def test_claude_own_retry_report_is_terminal_and_classified() -> None:
    lines = transcript_lines("claude-529-default-retries.first-6s.stream.jsonl")
    events = feed(ClaudeAdapter(), lines)
    # The actor stops at the first api_retry line: the CLI never gets to retry.
    report = events[-1]
    assert isinstance(report, ErrorReport)
    assert report.terminal and report.status == 529 and report.category == "retryable"
    assert report.raw is not None and report.raw["attempt"] == 1
    error = failure_of(ClaudeClassifier(), process_exit(events, None, cli="claude"))
    assert error.category is ErrorCategory.RETRYABLE
    assert "529" in error.message and "stopped early" in error.message
    assert error.event is not None and error.event["subtype"] == "api_retry"
    # Every api_retry line is terminal, not only the first.
    all_events = feed(ClaudeAdapter(), lines, stop_on_terminal=False)
    assert sum(isinstance(e, ErrorReport) and e.terminal for e in all_events) == 4


# Error shapes seen in live runs.


def _claude_result(status: int | None, text: str, **extra: Any) -> str:
    obj = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": status,
        "result": text,
        "session_id": "s-1",
        "total_cost_usd": 0,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    obj.update(extra)
    return json_line(obj)


def _api_retry(status: int | None, kind: str, delay_ms: float = 500.0) -> str:
    return json_line(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": 1,
            "max_retries": 10,
            "retry_delay_ms": delay_ms,
            "error_status": status,
            "error": kind,
            "session_id": "s",
        }
    )


@pytest.mark.parametrize(
    ("status", "kind", "category", "retry_after"),
    [
        (429, "rate_limit", ErrorCategory.RATE_LIMIT, 20.0),
        (529, "overloaded", ErrorCategory.RETRYABLE, None),
        (401, "authentication_failed", ErrorCategory.AUTH_FAILURE, None),
        (None, "unknown", ErrorCategory.RETRYABLE, None),  # a connection error
    ],
)
def test_claude_api_retry_lines_stop_the_cli_and_decide_the_category(
    status: int | None, kind: str, category: ErrorCategory, retry_after: float | None
) -> None:
    events = feed(ClaudeAdapter(), [_api_retry(status, kind, delay_ms=20000.0)])
    (report,) = events_of(events, ErrorReport)
    assert report.terminal
    assert report.retry_after == retry_after  # retry_delay_ms honours retry-after
    error = failure_of(ClaudeClassifier(), process_exit(events, None))
    assert error.category is category
    assert error.retry_after == retry_after


@pytest.mark.parametrize(
    ("status", "text", "category"),
    [
        (
            401,
            "Failed to authenticate. API Error: 401 invalid x-api-key",
            ErrorCategory.AUTH_FAILURE,
        ),
        (403, "API Error: 403 forbidden", ErrorCategory.AUTH_FAILURE),
        (400, "API Error: 400 prompt is too long", ErrorCategory.PERMANENT),
        (500, "API Error: 500 Internal server error", ErrorCategory.RETRYABLE),
        (None, "API Error: Unable to connect to API (ConnectionRefused)", ErrorCategory.RETRYABLE),
    ],
)
def test_claude_api_error_status_decides_the_category(
    status: int | None, text: str, category: ErrorCategory
) -> None:
    events = feed(ClaudeAdapter(), [_claude_result(status, text)])
    error = failure_of(ClaudeClassifier(), process_exit(events, 1))
    assert error.category is category
    assert text in error.message


def test_claude_usage_limit_with_epoch_is_a_rate_limit_until_the_reset() -> None:
    reset = int(NOW) + 3600
    text = f"Claude AI usage limit reached|{reset}"
    events = feed(ClaudeAdapter(clock=lambda: NOW), [_claude_result(None, text)])
    (report,) = events_of(events, ErrorReport)
    assert report.category == "rate_limit" and report.retry_after == 3600
    error = failure_of(ClaudeClassifier(clock=lambda: NOW), process_exit(events, 1))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == 3600


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5-hour limit reached ∙ resets in 2h", 7200.0),
        ("You've hit your session limit · resets 3pm (UTC)", 2 * 3600.0),
        ("Claude usage limit reached. Your limit will reset at 15:30 (UTC) · resets 15:30", 9000.0),
    ],
)
def test_claude_plan_limit_messages_give_the_time_to_reset(text: str, seconds: float) -> None:
    one_pm = dt.datetime(2026, 11, 25, 13, 0, tzinfo=dt.UTC).timestamp()
    classifier = ClaudeClassifier(clock=lambda: one_pm)
    events = feed(ClaudeAdapter(clock=lambda: one_pm), [_claude_result(None, text)])
    error = failure_of(classifier, process_exit(events, 1))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == pytest.approx(seconds)


def test_claude_rate_limit_event_rejected_is_reported_allowed_is_raw() -> None:
    def event(status: str, **more: Any) -> str:
        info = {"status": status, "resetsAt": NOW + 600, "rateLimitType": "five_hour", **more}
        return json_line({"type": "rate_limit_event", "rate_limit_info": info, "session_id": "s"})

    adapter = ClaudeAdapter(clock=lambda: NOW)
    (rejected,) = adapter.parse_line(event("rejected"))
    assert isinstance(rejected, ErrorReport)
    assert (rejected.category, rejected.retry_after) == ("rate_limit", 600)
    assert "five_hour" in rejected.message
    for line in (
        event("allowed"),
        event("allowed_warning"),
        event("rejected", isUsingOverage=True),
    ):
        (kept,) = adapter.parse_line(line)
        assert isinstance(kept, RawEvent) and kept.raw is not None
    error = failure_of(ClaudeClassifier(), process_exit([rejected], 1))
    assert error.category is ErrorCategory.RATE_LIMIT and error.retry_after == 600


def test_claude_successful_result_wins_over_exit_code_and_earlier_warnings() -> None:
    lines = transcript_lines("claude-ok.stream.jsonl")
    events = feed(ClaudeAdapter(), lines)
    assert ClaudeClassifier().classify(process_exit(events, 1)) is None
    warning = ErrorReport(message="rate limit rejected", category="rate_limit")
    assert ClaudeClassifier().classify(process_exit([warning, *events], 0)) is None


def test_claude_exit_zero_without_a_result_is_a_failure() -> None:
    events = feed(ClaudeAdapter(), transcript_lines("claude-ok.stream.jsonl")[:2])
    error = failure_of(ClaudeClassifier(), process_exit(events, 0, cli="claude"))
    assert error.category is ErrorCategory.RETRYABLE
    assert "without a result" in error.message


@pytest.mark.parametrize(
    ("subtype", "errors"),
    [
        ("error_during_execution", ["No conversation found with session ID: 1111"]),
        (
            "error_during_execution",
            [
                "Error: --resume requires a valid session ID or session title when used with "
                "--print."
            ],
        ),
        ("error_max_turns", []),
        ("error_max_budget_usd", []),
    ],
)
def test_claude_error_results_that_cannot_heal_are_permanent(
    subtype: str, errors: list[str]
) -> None:
    line = json_line(
        {
            "type": "result",
            "subtype": subtype,
            "is_error": True,
            "errors": errors,
            "session_id": "x",
        }
    )
    events = feed(ClaudeAdapter(), [line])
    error = failure_of(ClaudeClassifier(), process_exit(events, 1))
    assert error.category is ErrorCategory.PERMANENT
    assert (errors[0] if errors else subtype) in error.message


def test_claude_empty_prompt_refusal_is_permanent() -> None:
    stderr = (
        "Error: Input must be provided either through stdin or as a prompt argument when "
        "using --print\n"
    )
    error = failure_of(ClaudeClassifier(), process_exit([], 1, stderr))
    assert error.category is ErrorCategory.PERMANENT


def test_claude_tools_and_subagents() -> None:
    tool_use = {
        "type": "assistant",
        "message": {
            "id": "m1",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a.py"}},
            ],
        },
        "parent_tool_use_id": None,
    }
    tool_result = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "x = 1"}],
                }
            ],
        },
    }
    subagent = {**tool_use, "parent_tool_use_id": "t0"}
    events = feed(
        ClaudeAdapter(), [json_line(tool_use), json_line(tool_result), json_line(subagent)]
    )
    (use,) = events_of(events, ToolUse)
    assert (use.id, use.name, use.input) == ("t1", "Read", {"path": "a.py"})
    (result,) = events_of(events, ToolResult)
    assert (result.tool_use_id, result.content, result.is_error) == ("t1", "x = 1", False)
    assert [d.text for d in events_of(events, TextDelta)] == ["Let me look."]
    assert isinstance(events[-1], RawEvent)  # the sub-agent's message is not our answer
