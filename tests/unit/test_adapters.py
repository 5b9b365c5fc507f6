"""The claude, codex, gemini and generic adapters: golden transcripts, classification,
argv safety, executable discovery, robustness, and the real binaries failing fast.

Golden files are real CLI output (``/work/shared/reference/transcripts``); the other
sample lines were captured from the real CLIs (claude 2.1.197, codex 0.169.0, gemini 0.61.0)
against a local stub server. Real-binary tests need no server: they point each CLI at a
closed port and check that the failure is fast, typed, explained and leaves no process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actors
from actors import (
    Adapter,
    AssistantMessage,
    ClaudeAdapter,
    ClaudeClassifier,
    CodexAdapter,
    CodexClassifier,
    ErrorCategory,
    ErrorReport,
    Event,
    FieldMapAdapter,
    FinalResult,
    GeminiAdapter,
    GeminiClassifier,
    LLMError,
    ProcessExit,
    RawEvent,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
    UsageReport,
    find_executable,
    gemini_stderr_watch,
)
from actors._clis._discovery import CLI_DIR_ENV, cli_search_description
from supervisor import RetryConfig, TimeoutConfig, open_supervisor

from ..helpers import live_processes_with, marker, wait_until_gone

TRANSCRIPTS = Path("/work/shared/reference/transcripts")
REPO = Path(__file__).resolve().parents[2]
CLI_DIR = Path(os.environ.get(CLI_DIR_ENV) or REPO / ".clis" / "node_modules" / ".bin")
NOT_INSTALLED = "real CLIs not installed: run .ci/install-clis.sh (needs npm)"
ONE_ATTEMPT = RetryConfig(max_attempts=1)
NOW = 1_800_000_000.0  # a fixed clock for reset-time arithmetic

TRICKY_PROMPTS = [
    "--help",
    "-p",
    "-",
    "--",
    "--model x",
    "--prompt=evil",
    "$(touch y)",
    "`touch z`",
    "; rm -rf x",
    "a b\tc\nd",
    "ünïcödé ✓",
    "",
]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _transcript(name: str) -> list[str]:
    path = TRANSCRIPTS / name
    if not path.exists():
        pytest.skip(f"reference transcript {path} is not available")
    return path.read_text(encoding="utf-8").splitlines()


def _feed(adapter: Adapter, lines: Iterable[str], *, stop_on_terminal: bool = True) -> list[Event]:
    """Events for ``lines`` the way the actor collects them: it stops reading at the first
    terminal report (it then stops the CLI) and only asks ``finish()`` after a full read."""
    events: list[Event] = []
    for line in lines:
        events.extend(adapter.parse_line(line))
        if stop_on_terminal and any(isinstance(e, ErrorReport) and e.terminal for e in events):
            return events
    events.extend(adapter.finish())
    return events


def _exit(
    events: Sequence[Event], exit_code: int | None, stderr: str = "", cli: str = "cli"
) -> ProcessExit:
    return ProcessExit(cli=cli, exit_code=exit_code, stderr_tail=stderr, events=tuple(events))


def _fails(classifier: Any, exit: ProcessExit) -> LLMError:
    error = classifier.classify(exit)
    assert isinstance(error, LLMError), f"expected a failure for {exit!r}"
    return error


def _of(events: Sequence[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def _final(events: Sequence[Event]) -> FinalResult:
    finals = _of(events, FinalResult)
    assert len(finals) == 1, events
    result = finals[0]
    assert isinstance(result, FinalResult)
    return result


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


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
    return _line(obj)


# --------------------------------------------------------------------------------------
# claude: golden transcripts
# --------------------------------------------------------------------------------------


def test_claude_ok_maps_session_text_usage_cost_and_keeps_raw_json() -> None:
    events = _feed(ClaudeAdapter(), _transcript("claude-ok.stream.jsonl"))
    started = _of(events, SessionStarted)
    assert [(s.session_id, s.model) for s in started] == [
        ("83152a9e-cd61-400a-a502-0ca64bd60b74", "claude-opus-4-8[1m]")
    ]
    final = _final(events)
    assert final.text == "Hello from the fake API. "
    assert final.session_id == "83152a9e-cd61-400a-a502-0ca64bd60b74"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 12)
    assert final.cost_usd == pytest.approx(0.00035)
    assert not final.is_error
    # No partial deltas were seen, so the assistant text is also streamed, exactly once.
    assert "".join(d.text for d in _of(events, TextDelta)) == final.text
    assert [m.text for m in _of(events, AssistantMessage)] == [final.text]
    assert all(e.raw is not None and "type" in e.raw for e in events)
    assert ClaudeClassifier().classify(_exit(events, 0, cli="claude")) is None


def test_claude_partial_deltas_concatenate_exactly_to_the_result_text() -> None:
    events = _feed(ClaudeAdapter(), _transcript("claude-ok-partial.stream.jsonl"))
    deltas = [d.text for d in _of(events, TextDelta)]
    assert deltas == ["Hello fr", "om the f", "ake API.", " "]
    final = _final(events)
    assert "".join(deltas) == final.text == "Hello from the fake API. "
    # The assistant line repeats the streamed text: a message, not more deltas.
    assert [m.text for m in _of(events, AssistantMessage)] == [final.text]
    # status, message_start, content_block_start/stop, message_delta, message_stop: kept raw.
    raw = _of(events, RawEvent)
    assert len(raw) == 6
    assert all(r.raw is not None and r.line for r in raw)
    assert ClaudeClassifier().classify(_exit(events, 0)) is None


def test_claude_bare_json_result_object_is_understood() -> None:
    events = _feed(ClaudeAdapter(), _transcript("claude-ok.json"))
    final = _final(events)
    assert final.text == "Hello from the fake API. "
    assert final.session_id == "2bad558f-d55e-4d67-a46f-efce0cd45cc4"
    assert final.usage is not None and final.usage.output_tokens == 12
    assert "".join(d.text for d in _of(events, TextDelta)) == final.text
    assert ClaudeClassifier().classify(_exit(events, 0)) is None


def test_claude_json_verbose_array_yields_every_message() -> None:
    lines = _transcript("claude-ok.stream.jsonl")
    array = "[" + ",".join(lines) + "]"
    events = _feed(ClaudeAdapter(), [array])
    assert _of(events, SessionStarted)
    assert _final(events).text == "Hello from the fake API. "


@pytest.mark.parametrize("exit_code", [1, 0])
def test_claude_429_with_retries_off_is_a_rate_limit_whatever_the_exit_code(
    exit_code: int,
) -> None:
    events = _feed(ClaudeAdapter(), _transcript("claude-429-max-retries-0.stream.jsonl"))
    assert not _of(events, TextDelta)  # the synthetic error message is not answer text
    final = _final(events)
    assert final.is_error
    (report,) = _of(events, ErrorReport)
    assert (report.status, report.category, report.terminal) == (429, "rate_limit", False)
    stderr = "some stderr evidence"
    error = _fails(ClaudeClassifier(), _exit(events, exit_code, stderr, cli="claude"))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.is_retryable
    assert "Request rejected (429)" in error.message
    assert error.exit_code == exit_code
    assert error.event is not None and error.event["api_error_status"] == 429
    assert error.stderr == stderr


def test_claude_529_with_retries_off_is_retryable() -> None:
    events = _feed(ClaudeAdapter(), _transcript("claude-529-max-retries-0.stream.jsonl"))
    (report,) = _of(events, ErrorReport)
    assert (report.status, report.category) == (529, "retryable")
    error = _fails(ClaudeClassifier(), _exit(events, 1))
    assert error.category is ErrorCategory.RETRYABLE
    assert "529 Overloaded" in error.message
    assert error.retry_after is None


def test_claude_own_retry_report_is_terminal_and_classified() -> None:
    lines = _transcript("claude-529-default-retries.first-6s.stream.jsonl")
    events = _feed(ClaudeAdapter(), lines)
    # The actor stops at the first api_retry line: the CLI never gets to retry.
    report = events[-1]
    assert isinstance(report, ErrorReport)
    assert report.terminal and report.status == 529 and report.category == "retryable"
    assert report.raw is not None and report.raw["attempt"] == 1
    error = _fails(ClaudeClassifier(), _exit(events, None, cli="claude"))
    assert error.category is ErrorCategory.RETRYABLE
    assert "529" in error.message and "stopped early" in error.message
    assert error.event is not None and error.event["subtype"] == "api_retry"
    # Every api_retry line is terminal, not only the first.
    all_events = _feed(ClaudeAdapter(), lines, stop_on_terminal=False)
    assert sum(isinstance(e, ErrorReport) and e.terminal for e in all_events) == 4


# --------------------------------------------------------------------------------------
# claude: error shapes seen in live runs
# --------------------------------------------------------------------------------------


def _api_retry(status: int | None, kind: str, delay_ms: float = 500.0) -> str:
    return _line(
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
    events = _feed(ClaudeAdapter(), [_api_retry(status, kind, delay_ms=20000.0)])
    (report,) = _of(events, ErrorReport)
    assert report.terminal
    assert report.retry_after == retry_after  # retry_delay_ms honours retry-after
    error = _fails(ClaudeClassifier(), _exit(events, None))
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
    events = _feed(ClaudeAdapter(), [_claude_result(status, text)])
    error = _fails(ClaudeClassifier(), _exit(events, 1))
    assert error.category is category
    assert text in error.message


def test_claude_usage_limit_with_epoch_is_a_rate_limit_until_the_reset() -> None:
    reset = int(NOW) + 3600
    text = f"Claude AI usage limit reached|{reset}"
    events = _feed(ClaudeAdapter(clock=lambda: NOW), [_claude_result(None, text)])
    (report,) = _of(events, ErrorReport)
    assert report.category == "rate_limit" and report.retry_after == 3600
    error = _fails(ClaudeClassifier(clock=lambda: NOW), _exit(events, 1))
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
    events = _feed(ClaudeAdapter(clock=lambda: one_pm), [_claude_result(None, text)])
    error = _fails(classifier, _exit(events, 1))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == pytest.approx(seconds)


def test_claude_rate_limit_event_rejected_is_reported_allowed_is_raw() -> None:
    def event(status: str, **more: Any) -> str:
        info = {"status": status, "resetsAt": NOW + 600, "rateLimitType": "five_hour", **more}
        return _line({"type": "rate_limit_event", "rate_limit_info": info, "session_id": "s"})

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
    error = _fails(ClaudeClassifier(), _exit([rejected], 1))
    assert error.category is ErrorCategory.RATE_LIMIT and error.retry_after == 600


def test_claude_successful_result_wins_over_exit_code_and_earlier_warnings() -> None:
    lines = _transcript("claude-ok.stream.jsonl")
    events = _feed(ClaudeAdapter(), lines)
    assert ClaudeClassifier().classify(_exit(events, 1)) is None
    warning = ErrorReport(message="rate limit rejected", category="rate_limit")
    assert ClaudeClassifier().classify(_exit([warning, *events], 0)) is None


def test_claude_exit_zero_without_a_result_is_a_failure() -> None:
    events = _feed(ClaudeAdapter(), _transcript("claude-ok.stream.jsonl")[:2])
    error = _fails(ClaudeClassifier(), _exit(events, 0, cli="claude"))
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
    line = _line(
        {
            "type": "result",
            "subtype": subtype,
            "is_error": True,
            "errors": errors,
            "session_id": "x",
        }
    )
    events = _feed(ClaudeAdapter(), [line])
    error = _fails(ClaudeClassifier(), _exit(events, 1))
    assert error.category is ErrorCategory.PERMANENT
    assert (errors[0] if errors else subtype) in error.message


def test_claude_empty_prompt_refusal_is_permanent() -> None:
    stderr = (
        "Error: Input must be provided either through stdin or as a prompt argument when "
        "using --print\n"
    )
    error = _fails(ClaudeClassifier(), _exit([], 1, stderr))
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
    events = _feed(ClaudeAdapter(), [_line(tool_use), _line(tool_result), _line(subagent)])
    (use,) = _of(events, ToolUse)
    assert (use.id, use.name, use.input) == ("t1", "Read", {"path": "a.py"})
    (result,) = _of(events, ToolResult)
    assert (result.tool_use_id, result.content, result.is_error) == ("t1", "x = 1", False)
    assert [d.text for d in _of(events, TextDelta)] == ["Let me look."]
    assert isinstance(events[-1], RawEvent)  # the sub-agent's message is not our answer


# --------------------------------------------------------------------------------------
# codex
# --------------------------------------------------------------------------------------


def test_codex_ok_maps_thread_text_usage_and_final_result() -> None:
    events = _feed(CodexAdapter(), _transcript("codex-ok.jsonl"))
    (started,) = _of(events, SessionStarted)
    assert started.session_id == "01a213bc-73ca-7473-ace2-d78f0626042f"
    # The "Model metadata ... not found" error item is a warning: raw, never an error.
    assert not _of(events, ErrorReport)
    assert any(isinstance(e, RawEvent) and "Model metadata" in e.line for e in events)
    assert [d.text for d in _of(events, TextDelta)] == ["Hello from fake OpenAI."]
    assert [m.text for m in _of(events, AssistantMessage)] == ["Hello from fake OpenAI."]
    (usage,) = _of(events, UsageReport)
    assert (usage.usage.input_tokens, usage.usage.output_tokens) == (5, 4)
    final = _final(events)
    assert (final.text, final.session_id) == ("Hello from fake OpenAI.", started.session_id)
    assert final.usage == usage.usage
    assert CodexClassifier().classify(_exit(events, 0, cli="codex")) is None


def test_codex_429_is_a_rate_limit_with_its_evidence() -> None:
    events = _feed(CodexAdapter(), _transcript("codex-429.jsonl"))
    assert not _of(events, FinalResult)  # the turn never completed
    reports = _of(events, ErrorReport)
    assert [(r.status, r.category, r.terminal) for r in reports] == [(429, "rate_limit", False)] * 2
    stderr = "Reading additional input from stdin...\n"
    error = _fails(CodexClassifier(), _exit(events, 1, stderr, cli="codex"))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert "last status: 429" in error.message
    assert error.event == {"type": "error", "message": reports[0].message}
    assert error.stderr == stderr


@pytest.mark.parametrize(
    ("message", "category", "status"),
    [
        (
            "unexpected status 401 Unauthorized: bad key, url: http://127.0.0.1:1/v1/responses",
            ErrorCategory.AUTH_FAILURE,
            401,
        ),
        ("unexpected status 403 Forbidden: no", ErrorCategory.AUTH_FAILURE, 403),
        (
            '{"error": {"type": "invalid_request_error", "message": "bad param"}}',
            ErrorCategory.PERMANENT,
            None,
        ),
        ("unexpected status 400 Bad Request: nope", ErrorCategory.PERMANENT, 400),
        (
            "unexpected status 529 <unknown status code>: busy, url: http://h/v1/responses",
            ErrorCategory.RETRYABLE,
            529,
        ),
        (
            "We’re currently experiencing high demand, which may cause temporary errors.",
            ErrorCategory.RETRYABLE,
            None,
        ),
        ("Quota exceeded. Check your plan and billing details.", ErrorCategory.PERMANENT, None),
    ],
)
def test_codex_failures_are_classified_by_status_and_message(
    message: str, category: ErrorCategory, status: int | None
) -> None:
    lines = [
        _line({"type": "thread.started", "thread_id": "t"}),
        _line({"type": "turn.started"}),
        _line({"type": "error", "message": message}),
        _line({"type": "turn.failed", "error": {"message": message}}),
    ]
    events = _feed(CodexAdapter(), lines)
    assert _of(events, ErrorReport)[0].status == status
    error = _fails(CodexClassifier(), _exit(events, 1))
    assert error.category is category
    assert message in error.message


@pytest.mark.parametrize(
    ("message", "category"),
    [
        (
            "Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)",
            ErrorCategory.RATE_LIMIT,
        ),
        (
            "Reconnecting... waiting for network (Connection failed: error sending request)",
            ErrorCategory.RETRYABLE,
        ),
    ],
)
def test_codex_own_retries_are_terminal(message: str, category: ErrorCategory) -> None:
    events = _feed(CodexAdapter(), [_line({"type": "error", "message": message})])
    (report,) = _of(events, ErrorReport)
    assert report.terminal
    error = _fails(CodexClassifier(), _exit(events, None))
    assert error.category is category


def test_codex_stderr_only_failures() -> None:
    no_thread = "Error: thread/resume: thread/resume failed: no rollout found for thread id 01a2\n"
    assert _fails(CodexClassifier(), _exit([], 1, no_thread)).category is ErrorCategory.PERMANENT
    config = "Error loading config.toml: model_providers.x: provider name must not be empty\n"
    assert _fails(CodexClassifier(), _exit([], 1, config)).category is ErrorCategory.PERMANENT
    empty = "No prompt provided via stdin.\n"
    assert _fails(CodexClassifier(), _exit([], 1, empty)).category is ErrorCategory.PERMANENT
    silent = _fails(CodexClassifier(), _exit([], 0))
    assert silent.category is ErrorCategory.RETRYABLE


def test_codex_several_messages_and_tools() -> None:
    lines = [
        _line({"type": "thread.started", "thread_id": "t"}),
        _line(
            {
                "type": "item.completed",
                "item": {"id": "i0", "type": "agent_message", "text": "Looking."},
            }
        ),
        _line(
            {
                "type": "item.started",
                "item": {
                    "id": "i1",
                    "type": "command_execution",
                    "command": "ls",
                    "status": "in_progress",
                },
            }
        ),
        _line(
            {
                "type": "item.completed",
                "item": {
                    "id": "i1",
                    "type": "command_execution",
                    "command": "ls",
                    "aggregated_output": "a.py\n",
                    "exit_code": 2,
                    "status": "failed",
                },
            }
        ),
        _line({"type": "item.completed", "item": {"id": "i2", "type": "reasoning", "text": "hmm"}}),
        _line(
            {
                "type": "item.completed",
                "item": {"id": "i3", "type": "agent_message", "text": "Done."},
            }
        ),
        _line({"type": "turn.completed", "usage": {"input_tokens": 9, "cached_input_tokens": 4}}),
    ]
    events = _feed(CodexAdapter(), lines)
    (use,) = _of(events, ToolUse)
    assert (use.id, use.name, use.input) == ("i1", "command_execution", {"command": "ls"})
    (result,) = _of(events, ToolResult)
    assert (result.tool_use_id, result.content, result.is_error) == ("i1", "a.py\n", True)
    final = _final(events)
    assert final.text == "Looking.\n\nDone."
    assert "".join(d.text for d in _of(events, TextDelta)) == final.text
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (5, 4)


# --------------------------------------------------------------------------------------
# gemini
# --------------------------------------------------------------------------------------


def test_gemini_stream_ok() -> None:
    events = _feed(GeminiAdapter(), _transcript("gemini-ok.stream.jsonl"))
    (started,) = _of(events, SessionStarted)
    assert (started.session_id, started.model) == (
        "2359652b-0ea0-4f9b-b9af-8374a668609e",
        "gemini-2.5-flash",
    )
    (user_echo,) = _of(events, RawEvent)
    assert user_echo.raw is not None and user_echo.raw["role"] == "user"
    final = _final(events)
    assert (
        final.text == "Hello from fake Gemini." == "".join(d.text for d in _of(events, TextDelta))
    )
    assert final.session_id == started.session_id
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 4)
    assert not final.is_error
    assert GeminiClassifier().classify(_exit(events, 0, cli="gemini")) is None


def test_gemini_pretty_printed_json_document() -> None:
    events = _feed(GeminiAdapter(), _transcript("gemini-ok.json"))
    final = _final(events)
    assert final.text == "Hello from fake Gemini."
    assert final.session_id == "ce124146-88d8-478f-9300-cc16b61d2ad2"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 4)
    assert not _of(events, RawEvent)
    assert GeminiClassifier().classify(_exit(events, 0)) is None
    # The same document on one line, and a truncated document kept raw at the end.
    one_line = json.dumps(json.loads("\n".join(_transcript("gemini-ok.json"))))
    assert _final(_feed(GeminiAdapter(), [one_line])).text == "Hello from fake Gemini."
    cut = _feed(GeminiAdapter(), _transcript("gemini-ok.json")[:5])
    assert cut and all(isinstance(e, RawEvent) for e in cut)


def test_gemini_429_on_stderr_is_a_terminal_rate_limit_with_its_hint() -> None:
    stderr_lines = _transcript("gemini-429.stderr.txt")
    reports = [r for r in map(gemini_stderr_watch, stderr_lines) if r is not None]
    (report,) = reports
    assert report.terminal
    assert (report.status, report.category, report.retry_after) == (429, "rate_limit", 20.0)
    assert "Attempt 1 failed with status 429" in report.message
    stdout = _transcript("gemini-ok.stream.jsonl")[:2]  # init and the user echo came first
    events = [*_feed(GeminiAdapter(), stdout), report]
    stderr = "\n".join(stderr_lines)
    error = _fails(GeminiClassifier(), _exit(events, None, stderr, cli="gemini"))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == 20.0
    assert "RESOURCE_EXHAUSTED" in error.stderr
    assert error.exit_code is None and "stopped early" in error.message


@pytest.mark.parametrize(
    ("line", "status", "category", "retry_after"),
    [
        (
            "Attempt 1 failed: You exceeded your current quota. Please retry in 20.5s.",
            None,
            ErrorCategory.RATE_LIMIT,
            20.5,
        ),
        (
            'Attempt 2 failed with status 503. Retrying with backoff... _ApiError: {"error":'
            '{"code":503,"message":"stub google 503","status":"UNAVAILABLE"}}',
            503,
            ErrorCategory.RETRYABLE,
            None,
        ),
        (
            "Attempt 1 failed with status 500. Retrying with backoff... _ApiError: x",
            500,
            ErrorCategory.RETRYABLE,
            None,
        ),
        (
            "Attempt 1 failed. Retrying with backoff... Error: exception TypeError: fetch "
            "failed sending request",
            None,
            ErrorCategory.RETRYABLE,
            None,
        ),
    ],
)
def test_gemini_retry_attempts_on_stderr_stop_it(
    line: str, status: int | None, category: ErrorCategory, retry_after: float | None
) -> None:
    report = gemini_stderr_watch(line)
    assert report is not None and report.terminal and report.status == status
    error = _fails(GeminiClassifier(), _exit([report], None, line))
    assert error.category is category
    assert error.retry_after == retry_after


@pytest.mark.parametrize(
    "line",
    [
        "Warning: 256-color support not detected.",
        "Ripgrep is not available. Falling back to GrepTool.",
        "    at async retryWithBackoff (file:///x/chunk.js:308039:23)",
        "  status: 429",
        "",
    ],
)
def test_gemini_other_stderr_lines_are_not_reports(line: str) -> None:
    assert gemini_stderr_watch(line) is None


def _gemini_error_result(message: str, kind: str = "unknown") -> list[str]:
    return [
        _line({"type": "init", "session_id": "g", "model": "gemini-2.5-flash"}),
        _line({"type": "message", "role": "user", "content": "hi"}),
        _line(
            {
                "type": "result",
                "status": "error",
                "error": {"type": kind, "message": message},
                "stats": {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
            }
        ),
    ]


@pytest.mark.parametrize(
    ("message", "exit_code", "category"),
    [
        (
            '[API Error: {"error":{"code":400,"message":"API key not valid. Please pass a valid '
            'API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}]',
            144,
            ErrorCategory.AUTH_FAILURE,
        ),
        (
            '[API Error: {"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}]',
            147,
            ErrorCategory.AUTH_FAILURE,
        ),
        (
            '[API Error: {"error":{"code":401,"message":"stub","status":"UNAUTHENTICATED"}}]',
            145,
            ErrorCategory.AUTH_FAILURE,
        ),
        (
            '[API Error: {"error":{"code":400,"message":"bad field","status":"INVALID_ARGUMENT"}}]',
            144,
            ErrorCategory.PERMANENT,
        ),
        (
            # An Anthropic-style body names no status: the exit code (401 % 256) does.
            '[API Error: {"type":"error","error":{"type":"x","message":"stub status"}}]',
            145,
            ErrorCategory.AUTH_FAILURE,
        ),
    ],
)
def test_gemini_error_results_are_classified(
    message: str, exit_code: int, category: ErrorCategory
) -> None:
    events = _feed(GeminiAdapter(), _gemini_error_result(message))
    final = _final(events)
    assert final.is_error
    error = _fails(GeminiClassifier(), _exit(events, exit_code, "Error when talking to Gemini API"))
    assert error.category is category
    assert error.event is not None and error.event["status"] == "error"


@pytest.mark.parametrize(
    ("exit_code", "stderr", "category", "needle"),
    [
        (41, "Invalid auth method selected.\n", ErrorCategory.AUTH_FAILURE, "GEMINI_API_KEY"),
        (
            42,
            "No input provided via stdin. Input can be provided by piping data\n",
            ErrorCategory.PERMANENT,
            "bad input",
        ),
        (
            53,
            "Reached max session turns for this session.\n",
            ErrorCategory.PERMANENT,
            "turn limit",
        ),
        (
            55,
            "\x1b[31mGemini CLI is not running in a trusted directory. To proceed, ...\x1b[0m\n",
            ErrorCategory.PERMANENT,
            "GEMINI_CLI_TRUST_WORKSPACE=true",
        ),
    ],
)
def test_gemini_fatal_exit_codes(
    exit_code: int, stderr: str, category: ErrorCategory, needle: str
) -> None:
    error = _fails(GeminiClassifier(), _exit([], exit_code, stderr, cli="gemini"))
    assert error.category is category
    assert needle in error.message
    assert error.stderr == stderr


@pytest.mark.parametrize(
    ("stdin_bytes", "category"),
    [(0, ErrorCategory.PERMANENT), (None, ErrorCategory.PERMANENT), (12, ErrorCategory.RETRYABLE)],
)
def test_gemini_no_input_after_a_written_prompt_is_a_lost_prompt_worth_retrying(
    stdin_bytes: int | None, category: ErrorCategory
) -> None:
    stderr = "No input provided via stdin. Input can be provided by piping data into gemini\n"
    exit = ProcessExit(
        cli="gemini", exit_code=42, stderr_tail=stderr, events=(), stdin_bytes=stdin_bytes
    )
    error = _fails(GeminiClassifier(), exit)
    assert error.category is category
    if category is ErrorCategory.RETRYABLE:
        assert "500 ms" in error.message  # says why a prompt that was sent went missing
        assert error.stderr == stderr


def test_gemini_tools_and_warnings() -> None:
    lines = [
        _line(
            {
                "type": "tool_use",
                "tool_name": "read_file",
                "tool_id": "c1",
                "parameters": {"path": "a"},
            }
        ),
        _line(
            {
                "type": "tool_result",
                "tool_id": "c1",
                "status": "error",
                "error": {"type": "E", "message": "no such file"},
            }
        ),
        _line(
            {"type": "error", "severity": "warning", "message": "Loop detected, stopping execution"}
        ),
        _line({"type": "error", "severity": "error", "message": "Maximum session turns exceeded"}),
    ]
    events = _feed(GeminiAdapter(), lines)
    (use,) = _of(events, ToolUse)
    assert (use.id, use.name, use.input) == ("c1", "read_file", {"path": "a"})
    (result,) = _of(events, ToolResult)
    assert (result.content, result.is_error) == ("no such file", True)
    (report,) = _of(events, ErrorReport)
    assert report.message == "Maximum session turns exceeded"
    assert _fails(GeminiClassifier(), _exit(events, 1)).category is ErrorCategory.PERMANENT


# --------------------------------------------------------------------------------------
# argv: the prompt can never become a flag
# --------------------------------------------------------------------------------------

FACTORIES: dict[str, Callable[..., actors.CliSpec]] = {
    "claude": actors.claude,
    "codex": actors.codex,
    "gemini": actors.gemini,
}


@pytest.mark.parametrize("cli", sorted(FACTORIES))
@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_prompts_go_to_stdin_verbatim_and_never_into_argv(cli: str, prompt: str) -> None:
    spec = FACTORIES[cli]("/opt/bin/" + cli)
    assert spec.prompt_via == "stdin"
    assert spec.build_argv(prompt) == list(spec.argv)  # the same argv for every prompt
    assert spec.stdin_payload(prompt) == prompt.encode("utf-8")
    assert spec.argv[0] == "/opt/bin/" + cli


def test_claude_argv() -> None:
    spec = actors.claude(
        "claude",
        model="sonnet",
        system_prompt="- be terse",
        append_system_prompt="--help",
        max_turns=3,
        resume="0b485b1c-7e7e-48f5-9ead-b9f1aad15867",
        extra_args=["--allowedTools", "Read"],
        env={"ANTHROPIC_API_KEY": "k"},
    )
    assert spec.build_argv("--model x") == [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--model=sonnet",
        "--system-prompt=- be terse",  # a value starting with "-" stays a value
        "--append-system-prompt=--help",
        "--max-turns=3",
        "--resume=0b485b1c-7e7e-48f5-9ead-b9f1aad15867",
        "--allowedTools",
        "Read",
    ]
    assert spec.env == {"CLAUDE_CODE_MAX_RETRIES": "0", "ANTHROPIC_API_KEY": "k"}
    assert "--include-partial-messages" not in actors.claude("c", partial_messages=False).argv
    assert (
        actors.claude("c", env={"CLAUDE_CODE_MAX_RETRIES": "3"}).env["CLAUDE_CODE_MAX_RETRIES"]
        == "3"
    )
    with pytest.raises(ValueError, match="session id"):
        actors.claude("c", resume="--help")
    with pytest.raises(ValueError, match="max_turns"):
        actors.claude("c", max_turns=0)


def test_codex_argv_and_retry_overrides(tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    spec = actors.codex("codex", model="gpt-x", cwd="/work/-dir", env={"CODEX_HOME": str(home)})
    assert spec.build_argv("-") == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--model=gpt-x",
        "--cd=/work/-dir",
        "--",
        "-",
    ]
    assert spec.cwd == "/work/-dir"
    assert f"--cd={os.path.abspath('rel')}" in actors.codex("codex", cwd="rel").argv
    # A provider defined in config.toml gets its own retries turned off.
    (home / "config.toml").write_text(
        'model_provider = "local"\n[model_providers.local]\nname = "local"\n'
        'base_url = "http://127.0.0.1:9/v1"\n'
    )
    spec = actors.codex(
        "codex", env={"CODEX_HOME": str(home)}, extra_args=["-s", "read-only"], resume="01a2"
    )
    assert spec.argv[4:] == (
        "--config=model_providers.local.request_max_retries=0",
        "--config=model_providers.local.stream_max_retries=0",
        "-s",
        "read-only",
        "resume",
        "--",
        "01a2",
        "-",
    )
    # A built-in provider cannot be overridden (codex would refuse to start).
    (home / "config.toml").write_text('model_provider = "openai"\n')
    assert not any(
        "max_retries" in a for a in actors.codex("codex", env={"CODEX_HOME": str(home)}).argv
    )
    # A profile file can switch to a defined provider.
    (home / "fast.config.toml").write_text(
        'model_provider = "p2"\n[model_providers.p2]\nname = "p2"\nbase_url = "http://x/v1"\n'
    )
    argv = actors.codex("codex", env={"CODEX_HOME": str(home)}, profile="fast").argv
    assert "--profile=fast" in argv
    assert "--config=model_providers.p2.request_max_retries=0" in argv
    with pytest.raises(ValueError, match="thread id"):
        actors.codex("codex", resume="-x")


def test_gemini_argv_and_env() -> None:
    spec = actors.gemini("gemini", resume="abc", extra_args=["--approval-mode", "plan"])
    assert spec.build_argv("-p") == [
        "gemini",
        "--output-format",
        "stream-json",
        "--model=gemini-2.5-flash",
        "--resume=abc",
        "--approval-mode",
        "plan",
    ]
    assert spec.env == {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    assert spec.stderr_watch is gemini_stderr_watch
    overridden = actors.gemini("g", env={"GEMINI_CLI_TRUST_WORKSPACE": "false"})
    assert overridden.env["GEMINI_CLI_TRUST_WORKSPACE"] == "false"
    with pytest.raises(ValueError):
        actors.gemini("g", model="--help")


@pytest.mark.parametrize("prompt", TRICKY_PROMPTS)
def test_generic_arg_prompts_follow_the_prefix(prompt: str) -> None:
    spec = actors.generic(["llm", "-m", "gpt-4o-mini"], prompt_prefix_args=["--"])
    assert spec.build_argv(prompt) == ["llm", "-m", "gpt-4o-mini", "--", prompt]
    assert spec.stdin_payload(prompt) is None
    piped = actors.generic(["ollama", "run", "llama3"], prompt_via="stdin")
    assert piped.build_argv(prompt) == ["ollama", "run", "llama3"]
    assert piped.stdin_payload(prompt) == prompt.encode()


# --------------------------------------------------------------------------------------
# generic
# --------------------------------------------------------------------------------------


def test_field_map_adapter_reads_dotted_paths() -> None:
    adapter = FieldMapAdapter(
        delta_field="message.content", session_field="id", error_field="error"
    )
    lines = [
        '{"id": "s1", "message": {"role": "assistant", "content": "Hel"}, "error": null}',
        '{"id": "s1", "message": {"content": "lo"}}',
        "not json at all",
        '{"done": true}',
    ]
    events = _feed(adapter, lines)
    assert [type(e).__name__ for e in events] == [
        "SessionStarted",
        "TextDelta",
        "TextDelta",
        "RawEvent",
        "RawEvent",
        "FinalResult",
    ]
    final = _final(events)
    assert (final.text, final.session_id) == ("Hello", "s1")
    lists = FieldMapAdapter(delta_field="choices.0.delta.content")
    assert _final(_feed(lists, ['{"choices": [{"delta": {"content": "x"}}]}'])).text == "x"


def test_field_map_text_field_is_the_whole_answer() -> None:
    events = _feed(FieldMapAdapter(text_field="response"), ['{"response": "all of it"}'])
    assert [d.text for d in _of(events, TextDelta)] == ["all of it"]
    assert _final(events).text == "all of it"


def test_generic_user_patterns_are_added_to_the_defaults() -> None:
    spec = actors.generic(
        ["mytool"],
        output_format="jsonl",
        delta_field="text",
        error_field="error",
        rate_limit_patterns=[r"slow down, friend"],
        permanent_patterns=[r"model \S+ not found"],
    )
    classifier = spec.classifier
    adapter = spec.adapter_factory()
    events = _feed(adapter, ['{"error": {"message": "slow down, friend", "code": 0}}'])
    assert _fails(classifier, _exit(events, 1)).category is ErrorCategory.RATE_LIMIT
    assert (
        _fails(classifier, _exit([], 1, "model llama9 not found")).category
        is ErrorCategory.PERMANENT
    )
    # The defaults still apply.
    assert (
        _fails(classifier, _exit([], 1, "HTTP 429 Too Many Requests")).category
        is ErrorCategory.RATE_LIMIT
    )
    assert (
        _fails(classifier, _exit([], 1, "invalid api key")).category is ErrorCategory.AUTH_FAILURE
    )
    with pytest.raises(ValueError, match="not a valid regular expression"):
        actors.generic(["x"], auth_patterns=["(unclosed"])
    with pytest.raises(ValueError, match="jsonl"):
        actors.generic(["x"], text_field="a")
    assert actors.generic(["/usr/bin/llm"]).name == "llm"


async def test_generic_jsonl_tool_runs_under_the_supervisor(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "prompt = sys.stdin.read()\n"
        "print(json.dumps({'session': 's9', 'chunk': {'text': 'you said: '}}))\n"
        "print(json.dumps({'chunk': {'text': prompt}}))\n"
    )
    spec = actors.generic(
        [sys.executable, "-S", "-c", code],
        output_format="jsonl",
        prompt_via="stdin",
        delta_field="chunk.text",
        session_field="session",
        name="tool",
    )
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        result = await sup.ask("--help")
    assert (result.text, result.session_id, result.cli) == ("you said: --help", "s9", "tool")


# --------------------------------------------------------------------------------------
# never raise on unknown input
# --------------------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
KNOWN_TYPES = [
    "system", "stream_event", "assistant", "user", "result", "rate_limit_event",
    "thread.started", "item.started", "item.completed", "turn.completed", "turn.failed",
    "error", "init", "message", "tool_use", "tool_result",
]  # fmt: skip
KNOWN_KEYS = [
    "type", "subtype", "message", "event", "content", "result", "is_error", "api_error_status",
    "usage", "session_id", "item", "error", "rate_limit_info", "role", "delta", "stats",
    "status", "thread_id", "text", "errors", "response", "parent_tool_use_id", "severity",
]  # fmt: skip
typed_objects = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(KNOWN_TYPES),
    st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=6),
)


def _adapters() -> list[Adapter]:
    return [
        ClaudeAdapter(),
        CodexAdapter(),
        GeminiAdapter(),
        FieldMapAdapter(
            text_field="a.b", delta_field="content", session_field="session_id", error_field="error"
        ),
    ]


@settings(max_examples=300, deadline=None)
@given(objects=st.lists(typed_objects | json_values, max_size=6))
def test_arbitrary_json_never_makes_an_adapter_raise(objects: list[Any]) -> None:
    for adapter in _adapters():
        events: list[Event] = []
        for obj in objects:
            events.extend(adapter.parse_line(json.dumps(obj)))
        events.extend(adapter.finish())
        for classifier in (ClaudeClassifier(), CodexClassifier(), GeminiClassifier()):
            classifier.classify(_exit(events, 1))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(max_size=80), max_size=6))
def test_arbitrary_lines_never_make_an_adapter_raise(lines: list[str]) -> None:
    for adapter in _adapters():
        for line in ["{", *lines, "}"]:
            for event in adapter.parse_line(line):
                assert isinstance(
                    event, RawEvent | SessionStarted | TextDelta | FinalResult | ErrorReport
                )
        adapter.finish()
    for line in lines:
        gemini_stderr_watch(line)
        gemini_stderr_watch("Attempt 1 failed" + line)


# --------------------------------------------------------------------------------------
# find_executable
# --------------------------------------------------------------------------------------


def _make_exe(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_find_executable_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "llmsup-test-cli-xyz"
    on_path = _make_exe(tmp_path / "path-bin", name)
    in_env_dir = _make_exe(tmp_path / "env-dir", name)
    project = tmp_path / "project"
    in_project = _make_exe(project / ".clis" / "node_modules" / ".bin", name)
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv(CLI_DIR_ENV, str(in_env_dir.parent))

    assert find_executable(name, "/explicit/missing/claude") == "/explicit/missing/claude"
    assert find_executable(name) == str(on_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_executable(name) == str(in_env_dir)
    in_env_dir.chmod(0o644)  # not executable: skipped
    assert find_executable(name) == str(in_project)  # found searching upward
    monkeypatch.delenv(CLI_DIR_ENV)
    assert find_executable(name) == str(in_project)
    monkeypatch.chdir(tmp_path)
    assert find_executable(name) == name  # nothing anywhere: the bare name
    description = cli_search_description(name)
    assert name in description and CLI_DIR_ENV in description
    assert ".ci/install-clis.sh" in description


def test_factories_use_find_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv(CLI_DIR_ENV, str(tmp_path))
    exe = _make_exe(tmp_path, "gemini")
    assert actors.gemini().argv[0] == str(exe)
    assert actors.gemini(executable="/my/gemini").argv[0] == "/my/gemini"


async def test_missing_cli_is_a_permanent_error_naming_it() -> None:
    spec = actors.claude("/nonexistent/llmsup/claude")
    async with open_supervisor(spec, retry=RetryConfig(max_attempts=3)) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
    assert info.value.category is ErrorCategory.PERMANENT
    assert "/nonexistent/llmsup/claude" in info.value.message
    assert info.value.attempts == 1


# --------------------------------------------------------------------------------------
# the real binaries: fast, typed failures against a closed port, nothing left behind
# --------------------------------------------------------------------------------------

CLOSED = "http://127.0.0.1:9"


def _installed(name: str) -> bool:
    path = CLI_DIR / name
    return path.is_file() and os.access(path, os.X_OK)


def _real(name: str) -> str:
    return str(CLI_DIR / name)


def needs(name: str) -> pytest.MarkDecorator:
    """Skip (with the one-line install hint) unless ``$LLMSUP_CLI_DIR/<name>`` exists.

    A marker, not ``pytest.skip()`` in the test: a skip raised inside a trio test loses
    its reason.
    """
    return pytest.mark.skipif(not _installed(name), reason=NOT_INSTALLED)


async def _fails_fast(spec: actors.CliSpec, token: str, needle: str) -> LLMError:
    started = time.monotonic()
    async with open_supervisor(
        spec, retry=ONE_ATTEMPT, timeouts=TimeoutConfig(total_execution=60.0)
    ) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("--help")  # a prompt that would print help if it were a flag
    elapsed = time.monotonic() - started
    error = info.value
    assert elapsed < 20.0, f"{spec.name} took {elapsed:.1f}s to fail"
    assert error.category is ErrorCategory.RETRYABLE, error
    assert needle.lower() in (error.message + error.stderr).lower(), error
    assert await wait_until_gone(token, 5.0) == []
    return error


@needs("claude")
async def test_real_claude_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    token = marker()
    spec = actors.claude(
        _real("claude"),
        append_system_prompt=token,  # only to find its processes in /proc
        env={"HOME": str(tmp_path), "ANTHROPIC_BASE_URL": CLOSED, "ANTHROPIC_API_KEY": "sk-test"},
        cwd=str(tmp_path),
    )
    error = await _fails_fast(spec, token, "Unable to connect")
    assert error.exit_code == 1  # retries off: the CLI gave up at once by itself
    assert not live_processes_with(token)


@needs("claude")
async def test_real_claude_with_its_own_retries_on_is_stopped_at_the_first(
    tmp_path: Path,
) -> None:
    token = marker()
    env = {
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": CLOSED,
        "ANTHROPIC_API_KEY": "sk-test",
        "CLAUDE_CODE_MAX_RETRIES": "10",  # the CLI would retry for minutes
    }
    spec = actors.claude(_real("claude"), append_system_prompt=token, env=env, cwd=str(tmp_path))
    error = await _fails_fast(spec, token, "would retry on its own")
    assert error.exit_code is None and error.event is not None
    assert error.event["subtype"] == "api_retry"


@needs("codex")
async def test_real_codex_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    token = marker()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-test"\nmodel_provider = "local"\n'
        "[model_providers.local]\n"
        'name = "local"\n'
        f'base_url = "{CLOSED}/v1"\n'
        'env_key = "LLMSUP_TEST_KEY"\n'
        'wire_api = "responses"\n'
        "supports_websockets = false\n"
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    workdir = tmp_path / token  # --cd=... puts the marker in argv
    workdir.mkdir()
    env = {"HOME": str(home), "CODEX_HOME": str(home), "LLMSUP_TEST_KEY": "x"}
    spec = actors.codex(_real("codex"), env=env, cwd=str(workdir))
    assert "--config=model_providers.local.request_max_retries=0" in spec.argv
    # Even with retries 0, codex waits for the network forever; its "Reconnecting..."
    # report stops it.
    error = await _fails_fast(spec, token, "Connection failed")
    assert error.exit_code is None and "stopped early" in error.message


@needs("gemini")
async def test_real_gemini_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    token = marker()
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "settings.json").write_text(
        '{"security":{"auth":{"selectedType":"gemini-api-key"}}}'
    )
    workdir = tmp_path / token
    workdir.mkdir()
    env = {
        "HOME": str(tmp_path),
        "GOOGLE_GEMINI_BASE_URL": CLOSED,
        "GEMINI_API_KEY": "test-key",
        "TMPDIR": str(tmp_path),  # gemini writes error reports to the temp dir
    }
    spec = actors.gemini(
        _real("gemini"),
        env=env,
        cwd=str(workdir),
        extra_args=[f"--include-directories={workdir}"],  # the marker, in argv
    )
    # gemini would retry a refused connection for minutes; its stderr report stops it.
    error = await _fails_fast(spec, token, "fetch failed")
    assert error.exit_code is None and "Attempt 1 failed" in error.message


@needs("gemini")
async def test_real_gemini_untrusted_folder_is_permanent_with_the_hint(tmp_path: Path) -> None:
    token = marker()
    workdir = tmp_path / token
    workdir.mkdir()
    env = {"HOME": str(tmp_path), "GEMINI_API_KEY": "k", "GEMINI_CLI_TRUST_WORKSPACE": "false"}
    spec = actors.gemini(
        _real("gemini"), env=env, cwd=str(workdir), extra_args=[f"--include-directories={workdir}"]
    )
    async with open_supervisor(spec, retry=RetryConfig(max_attempts=3)) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("hi")
    assert info.value.category is ErrorCategory.PERMANENT
    assert info.value.exit_code == 55 and info.value.attempts == 1
    assert "GEMINI_CLI_TRUST_WORKSPACE=true" in info.value.message
    assert await wait_until_gone(token, 5.0) == []
