"""The codex adapter and classifier: golden transcripts and live error shapes.

Golden files are real CLI output (``tests/data/transcripts``); the other
sample lines were captured from the real CLIs (claude 2.1.197, codex 0.169.0, gemini 0.61.0)
against a local stub server.
"""

from __future__ import annotations

import pytest

from actors import (
    AssistantMessage,
    CodexAdapter,
    CodexClassifier,
    ErrorCategory,
    ErrorReport,
    FinalResult,
    RawEvent,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
    UsageReport,
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


def test_codex_ok_maps_thread_text_usage_and_final_result() -> None:
    events = feed(CodexAdapter(), transcript_lines("codex-ok.jsonl"))
    (started,) = events_of(events, SessionStarted)
    assert started.session_id == "01a213bc-73ca-7473-ace2-d78f0626042f"
    # The "Model metadata ... not found" error item is a warning: raw, never an error.
    assert not events_of(events, ErrorReport)
    assert any(isinstance(e, RawEvent) and "Model metadata" in e.line for e in events)
    assert [d.text for d in events_of(events, TextDelta)] == ["Hello from fake OpenAI."]
    assert [m.text for m in events_of(events, AssistantMessage)] == ["Hello from fake OpenAI."]
    (usage,) = events_of(events, UsageReport)
    assert (usage.usage.input_tokens, usage.usage.output_tokens) == (5, 4)
    final = final_result(events)
    assert (final.text, final.session_id) == ("Hello from fake OpenAI.", started.session_id)
    assert final.usage == usage.usage
    assert CodexClassifier().classify(process_exit(events, 0, cli="codex")) is None


def test_codex_429_is_a_rate_limit_with_its_evidence() -> None:
    events = feed(CodexAdapter(), transcript_lines("codex-429.jsonl"))
    assert not events_of(events, FinalResult)  # the turn never completed
    reports = events_of(events, ErrorReport)
    assert [(r.status, r.category, r.terminal) for r in reports] == [(429, "rate_limit", False)] * 2
    stderr = "Reading additional input from stdin...\n"
    error = failure_of(CodexClassifier(), process_exit(events, 1, stderr, cli="codex"))
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
        json_line({"type": "thread.started", "thread_id": "t"}),
        json_line({"type": "turn.started"}),
        json_line({"type": "error", "message": message}),
        json_line({"type": "turn.failed", "error": {"message": message}}),
    ]
    events = feed(CodexAdapter(), lines)
    assert events_of(events, ErrorReport)[0].status == status
    error = failure_of(CodexClassifier(), process_exit(events, 1))
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
    events = feed(CodexAdapter(), [json_line({"type": "error", "message": message})])
    (report,) = events_of(events, ErrorReport)
    assert report.terminal
    error = failure_of(CodexClassifier(), process_exit(events, None))
    assert error.category is category


def test_codex_stderr_only_failures() -> None:
    no_thread = "Error: thread/resume: thread/resume failed: no rollout found for thread id 01a2\n"
    assert (
        failure_of(CodexClassifier(), process_exit([], 1, no_thread)).category
        is ErrorCategory.PERMANENT
    )
    config = "Error loading config.toml: model_providers.x: provider name must not be empty\n"
    assert (
        failure_of(CodexClassifier(), process_exit([], 1, config)).category
        is ErrorCategory.PERMANENT
    )
    empty = "No prompt provided via stdin.\n"
    assert (
        failure_of(CodexClassifier(), process_exit([], 1, empty)).category
        is ErrorCategory.PERMANENT
    )
    silent = failure_of(CodexClassifier(), process_exit([], 0))
    assert silent.category is ErrorCategory.RETRYABLE


def test_codex_several_messages_and_tools() -> None:
    lines = [
        json_line({"type": "thread.started", "thread_id": "t"}),
        json_line(
            {
                "type": "item.completed",
                "item": {"id": "i0", "type": "agent_message", "text": "Looking."},
            }
        ),
        json_line(
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
        json_line(
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
        json_line(
            {"type": "item.completed", "item": {"id": "i2", "type": "reasoning", "text": "hmm"}}
        ),
        json_line(
            {
                "type": "item.completed",
                "item": {"id": "i3", "type": "agent_message", "text": "Done."},
            }
        ),
        json_line(
            {"type": "turn.completed", "usage": {"input_tokens": 9, "cached_input_tokens": 4}}
        ),
    ]
    events = feed(CodexAdapter(), lines)
    (use,) = events_of(events, ToolUse)
    assert (use.id, use.name, use.input) == ("i1", "command_execution", {"command": "ls"})
    (result,) = events_of(events, ToolResult)
    assert (result.tool_use_id, result.content, result.is_error) == ("i1", "a.py\n", True)
    final = final_result(events)
    assert final.text == "Looking.\n\nDone."
    assert "".join(d.text for d in events_of(events, TextDelta)) == final.text
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (5, 4)
