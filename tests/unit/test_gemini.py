"""The gemini adapter, classifier and stderr watch: golden transcripts and live error
shapes.

Golden files are real CLI output (``tests/data/transcripts``); the other
sample lines were captured from the real CLIs (claude 2.1.197, codex 0.169.0, gemini 0.61.0)
against a local stub server.
"""

from __future__ import annotations

import json

import pytest

from actors import (
    ErrorCategory,
    ErrorReport,
    GeminiAdapter,
    GeminiClassifier,
    ProcessExit,
    RawEvent,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
    gemini_stderr_watch,
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


def test_gemini_stream_ok() -> None:
    events = feed(GeminiAdapter(), transcript_lines("gemini-ok.stream.jsonl"))
    (started,) = events_of(events, SessionStarted)
    assert (started.session_id, started.model) == (
        "2359652b-0ea0-4f9b-b9af-8374a668609e",
        "gemini-2.5-flash",
    )
    (user_echo,) = events_of(events, RawEvent)
    assert user_echo.raw is not None and user_echo.raw["role"] == "user"
    final = final_result(events)
    assert (
        final.text
        == "Hello from fake Gemini."
        == "".join(d.text for d in events_of(events, TextDelta))
    )
    assert final.session_id == started.session_id
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 4)
    assert not final.is_error
    assert GeminiClassifier().classify(process_exit(events, 0, cli="gemini")) is None


def test_gemini_pretty_printed_json_document() -> None:
    events = feed(GeminiAdapter(), transcript_lines("gemini-ok.json"))
    final = final_result(events)
    assert final.text == "Hello from fake Gemini."
    assert final.session_id == "ce124146-88d8-478f-9300-cc16b61d2ad2"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 4)
    assert not events_of(events, RawEvent)
    assert GeminiClassifier().classify(process_exit(events, 0)) is None
    # The same document on one line, and a truncated document kept raw at the end.
    one_line = json.dumps(json.loads("\n".join(transcript_lines("gemini-ok.json"))))
    assert final_result(feed(GeminiAdapter(), [one_line])).text == "Hello from fake Gemini."
    cut = feed(GeminiAdapter(), transcript_lines("gemini-ok.json")[:5])
    assert cut and all(isinstance(e, RawEvent) for e in cut)


def test_gemini_429_on_stderr_is_a_terminal_rate_limit_with_its_hint() -> None:
    stderr_lines = transcript_lines("gemini-429.stderr.txt")
    reports = [r for r in map(gemini_stderr_watch, stderr_lines) if r is not None]
    (report,) = reports
    assert report.terminal
    assert (report.status, report.category, report.retry_after) == (429, "rate_limit", 20.0)
    assert "Attempt 1 failed with status 429" in report.message
    stdout = transcript_lines("gemini-ok.stream.jsonl")[:2]  # init and the user echo came first
    events = [*feed(GeminiAdapter(), stdout), report]
    stderr = "\n".join(stderr_lines)
    error = failure_of(GeminiClassifier(), process_exit(events, None, stderr, cli="gemini"))
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
    error = failure_of(GeminiClassifier(), process_exit([report], None, line))
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
        json_line({"type": "init", "session_id": "g", "model": "gemini-2.5-flash"}),
        json_line({"type": "message", "role": "user", "content": "hi"}),
        json_line(
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
    events = feed(GeminiAdapter(), _gemini_error_result(message))
    final = final_result(events)
    assert final.is_error
    error = failure_of(
        GeminiClassifier(), process_exit(events, exit_code, "Error when talking to Gemini API")
    )
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
    error = failure_of(GeminiClassifier(), process_exit([], exit_code, stderr, cli="gemini"))
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
    error = failure_of(GeminiClassifier(), exit)
    assert error.category is category
    if category is ErrorCategory.RETRYABLE:
        assert "500 ms" in error.message  # says why a prompt that was sent went missing
        assert error.stderr == stderr


def test_gemini_tools_and_warnings() -> None:
    lines = [
        json_line(
            {
                "type": "tool_use",
                "tool_name": "read_file",
                "tool_id": "c1",
                "parameters": {"path": "a"},
            }
        ),
        json_line(
            {
                "type": "tool_result",
                "tool_id": "c1",
                "status": "error",
                "error": {"type": "E", "message": "no such file"},
            }
        ),
        json_line(
            {"type": "error", "severity": "warning", "message": "Loop detected, stopping execution"}
        ),
        json_line(
            {"type": "error", "severity": "error", "message": "Maximum session turns exceeded"}
        ),
    ]
    events = feed(GeminiAdapter(), lines)
    (use,) = events_of(events, ToolUse)
    assert (use.id, use.name, use.input) == ("c1", "read_file", {"path": "a"})
    (result,) = events_of(events, ToolResult)
    assert (result.content, result.is_error) == ("no such file", True)
    (report,) = events_of(events, ErrorReport)
    assert report.message == "Maximum session turns exceeded"
    assert (
        failure_of(GeminiClassifier(), process_exit(events, 1)).category is ErrorCategory.PERMANENT
    )
