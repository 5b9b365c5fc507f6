"""The generic classifier: what a finished CLI process means, from the evidence it left.

Every `ProcessExit` here is built by hand, the way the process actor builds it, including
text taken from real CLI transcripts (claude, codex, gemini).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import (
    ErrorCategory,
    ErrorReport,
    Event,
    FinalResult,
    LLMError,
    PatternClassifier,
    ProcessExit,
    RawEvent,
    SessionStarted,
    TextDelta,
    parse_retry_after,
)
from actors._redact import REDACTED

from .transcripts import transcript_text

CLASSIFIER = PatternClassifier()


def _exit(
    exit_code: int | None = 1,
    stderr: str = "",
    events: tuple[Event, ...] = (),
    *,
    cli: str = "mycli",
    secrets: tuple[str, ...] = (),
) -> ProcessExit:
    return ProcessExit(
        cli=cli, exit_code=exit_code, stderr_tail=stderr, events=events, secrets=secrets
    )


def _error(exit: ProcessExit, classifier: PatternClassifier = CLASSIFIER) -> LLMError:
    error = classifier.classify(exit)
    assert error is not None, f"expected a failure for {exit!r}"
    return error


def _transcript(name: str) -> str:
    return transcript_text(name)


def _transcript_objects(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _transcript(name).splitlines() if line.strip()]


# -- success -------------------------------------------------------------------------------


def test_clean_exit_without_error_events_is_success() -> None:
    events: tuple[Event, ...] = (
        SessionStarted(session_id="s1"),
        TextDelta(text="hello"),
        FinalResult(text="hello"),
    )
    assert CLASSIFIER.classify(_exit(0, "some warning on stderr", events)) is None


def test_clean_exit_is_success_even_if_stderr_mentions_errors() -> None:
    # Warnings on stderr of a successful run are not failures.
    stderr = "Warning: rate limit is close (429 soon); retry after 3s if it fails"
    assert CLASSIFIER.classify(_exit(0, stderr)) is None


def test_clean_exit_with_an_in_band_error_event_is_a_failure() -> None:
    report = ErrorReport(message="upstream connection reset")
    error = _error(_exit(0, "", (TextDelta(text="partial"), report)))
    assert error.category is ErrorCategory.RETRYABLE
    assert "upstream connection reset" in error.message
    assert error.exit_code == 0


def test_result_flagged_is_error_with_exit_0_is_a_failure() -> None:
    # Real CLIs report rate limits as a result with is_error=true and exit code 0.
    final = FinalResult(text="API Error: Request rejected (429) · rate limited", is_error=True)
    error = _error(_exit(0, "", (final,)))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.is_retryable
    assert "Request rejected (429)" in error.message


def test_custom_success_exit_codes() -> None:
    classifier = PatternClassifier(success_exit_codes=frozenset({0, 3}))
    assert classifier.classify(_exit(3)) is None
    assert _error(_exit(0, "boom"), PatternClassifier(success_exit_codes=frozenset({3})))


# -- rate limits and retry-after hints -----------------------------------------------------


def test_429_on_stderr_is_a_rate_limit_with_its_retry_after() -> None:
    stderr = "Error: 429 Too Many Requests: rate limit exceeded. Please retry after 3s\n"
    error = _error(_exit(1, stderr))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == 3
    assert "(retry after 3s)" in str(error)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Rate limit reached. Please try again in 20s.", 20.0),
        ("rate limited, try again in 500ms", 0.5),
        ("usage limit reached (rate limit); resets in 2 minutes", 120.0),
        ("429: retry after 1.5 seconds", 1.5),
        ('{"error": "rate_limit", "retry-after": 7}', 7.0),
        ("Too many requests. Retry-After: 30", 30.0),
        ("429 quota hit, try again in 5 mins", 300.0),
    ],
)
def test_retry_after_hints_in_stderr(text: str, seconds: float) -> None:
    error = _error(_exit(1, text))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Please try again in 20s.", 20.0),
        ("try again in 500ms", 0.5),
        ("resets in 2 minutes", 120.0),
        ("retry after 3", 3.0),
        ("retry after 10 milliseconds", 0.01),
        ("try again in 2m", 120.0),
    ],
)
def test_parse_retry_after(text: str, seconds: float) -> None:
    assert parse_retry_after(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["no hint here", "try again in a moment", "retry later", "resets soon", ""]
)
def test_parse_retry_after_without_a_number(text: str) -> None:
    assert parse_retry_after(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "You exceeded your current quota, please check your plan",
        'status: "RESOURCE_EXHAUSTED"',
        "resource exhausted",
        "Rate-limit exceeded",
        "HTTP 429",
        "too many requests",
    ],
)
def test_quota_and_rate_limit_texts(text: str) -> None:
    error = _error(_exit(1, text))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after is None  # no hint, so none is invented


def test_retry_after_is_only_kept_for_rate_limits() -> None:
    # A hint in the text of an auth failure must not make anyone wait and retry.
    error = _error(_exit(1, "401 Unauthorized; try again in 20s"))
    assert error.category is ErrorCategory.AUTH_FAILURE
    assert error.retry_after is None
    assert not error.is_retryable


def test_error_report_retry_after_wins_over_text_hint() -> None:
    report = ErrorReport(message="slow down, retry after 99s", category="rate_limit", retry_after=4)
    error = _error(_exit(1, "", (report,)))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == 4


# -- authentication and permanent failures -------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Error: invalid x-api-key",
        "Error: 401 Unauthorized: invalid API key",
        "HTTP 403 Forbidden",
        "Request failed: 403",
        "authentication_error: bad credentials",
        "Missing API key: set ANTHROPIC_API_KEY",
    ],
)
def test_auth_failures(text: str) -> None:
    error = _error(_exit(1, text))
    assert error.category is ErrorCategory.AUTH_FAILURE
    assert not error.is_retryable


@pytest.mark.parametrize(
    "text",
    ["Error: 400 Bad Request", "invalid_request_error: prompt is too long", "billing problem"],
)
def test_permanent_failures(text: str) -> None:
    error = _error(_exit(1, text))
    assert error.category is ErrorCategory.PERMANENT
    assert not error.is_retryable


def test_line_numbers_in_a_js_stack_trace_are_not_status_codes() -> None:
    stderr = (
        "TypeError: Cannot read properties of undefined (reading 'text')\n"
        "    at parse (file:///usr/lib/node_modules/cli/bundle.js:401:12)\n"
        "    at run (file:///usr/lib/node_modules/cli/bundle.js:403:5)\n"
        "    at main (file:///usr/lib/node_modules/cli/bundle.js:429:3)\n"
        "    at next (file:///usr/lib/node_modules/cli/bundle.js:400:1)\n"
    )
    error = _error(_exit(1, stderr))
    assert error.category is ErrorCategory.RETRYABLE
    assert error.is_retryable


@pytest.mark.parametrize(
    "stderr",
    [
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3/site-packages/llm/cli.py", line 401, in main\n'
        "    response.text()\n"
        "ConnectionResetError: [Errno 104] Connection reset by peer\n",
        '  File "/app/client.py", line 429, in send\nOSError: network unreachable\n',
        "warning: read 403 bytes, expected 512\nError: stream ended early\n",
    ],
)
def test_line_numbers_and_counts_are_not_status_codes(stderr: str) -> None:
    # A crashing Python CLI must stay retryable, not become a permanent auth failure.
    error = _error(_exit(1, stderr))
    assert error.category is ErrorCategory.RETRYABLE
    assert error.is_retryable


# -- plain failures, signals, messages -----------------------------------------------------


def test_plain_failure_is_retryable_with_stderr_as_message() -> None:
    error = _error(_exit(1, "starting\nfake: transient failure\n\n"))
    assert error.category is ErrorCategory.RETRYABLE
    assert error.exit_code == 1
    assert error.message == "mycli exited with code 1: fake: transient failure"
    assert error.cli == "mycli"
    assert "fake: transient failure" in error.stderr


def test_failure_with_no_output_still_names_the_cli_and_exit() -> None:
    error = _error(_exit(2, "", cli="gemini"))
    assert error.category is ErrorCategory.RETRYABLE
    assert error.message == "gemini exited with code 2"
    assert str(error).startswith("[retryable]")
    assert "gemini exited with code 2" in str(error)


def test_killed_by_signal_names_the_signal() -> None:
    error = _error(_exit(-9, ""))
    assert "SIGKILL" in error.message
    assert error.message.startswith("mycli was killed by SIGKILL")
    assert error.category is ErrorCategory.RETRYABLE
    assert "SIGTERM" in _error(_exit(-15, "")).message


def test_unknown_signal_number_and_missing_exit_code() -> None:
    assert "signal 200" in _error(_exit(-200)).message
    assert _error(_exit(None)).message == "mycli was stopped early"


def test_text_cli_complaint_on_stdout_is_evidence() -> None:
    # A plain-text CLI that prints its error to stdout and exits 1.
    events: tuple[Event, ...] = (TextDelta(text="Error: 401 Unauthorized"),)
    error = _error(_exit(1, "", events))
    assert error.category is ErrorCategory.AUTH_FAILURE


def test_stdout_of_a_successful_run_is_not_judged() -> None:
    events: tuple[Event, ...] = (TextDelta(text="Here is how HTTP 401 Unauthorized works."),)
    assert CLASSIFIER.classify(_exit(0, "", events)) is None


def test_error_report_category_wins_over_text() -> None:
    report = ErrorReport(message="429 too many requests", category="auth_failure")
    error = _error(_exit(1, "Error: 429 Too Many Requests, retry after 3s", (report,)))
    assert error.category is ErrorCategory.AUTH_FAILURE
    assert error.retry_after is None


def test_error_report_status_decides_when_no_category() -> None:
    report = ErrorReport(message="request failed", status=429)
    error = _error(_exit(1, "", (report,)))
    assert error.category is ErrorCategory.RATE_LIMIT


def test_unknown_error_report_category_falls_back_to_text() -> None:
    report = ErrorReport(message="Forbidden", category="no-such-category")
    error = _error(_exit(1, "", (report,)))
    assert error.category is ErrorCategory.AUTH_FAILURE


def test_event_evidence_is_kept() -> None:
    raw = {"type": "error", "message": "overloaded", "code": 529}
    report = ErrorReport(message="overloaded", raw=raw)
    error = _error(_exit(1, "", (report,)))
    assert error.event == raw
    final_raw = {"type": "result", "is_error": True, "result": "quota exceeded"}
    final = FinalResult(text="quota exceeded", is_error=True, raw=final_raw)
    error = _error(_exit(0, "", (final,)))
    assert error.event == final_raw
    assert error.category is ErrorCategory.RATE_LIMIT


def test_secrets_are_redacted_from_message_and_stderr() -> None:
    secret = "my-very-own-secret-value-123"
    stderr = f"loading config\nError: invalid API key {secret} (sk-ant-api03-abcdefghijklmnop)\n"
    error = _error(_exit(1, stderr, secrets=(secret,)))
    assert error.category is ErrorCategory.AUTH_FAILURE
    for text in (error.message, error.stderr, str(error), error.one_line()):
        assert secret not in text
        assert "sk-ant-api03-abcdefghijklmnop" not in text
        assert REDACTED in text
    assert json.dumps(error.to_dict()).count(secret) == 0


def test_custom_patterns_wrap_a_new_tool() -> None:
    classifier = PatternClassifier(
        rate_limit_patterns=(r"slow down!",),
        auth_patterns=(r"who are you\?",),
        permanent_patterns=(r"cannot parse",),
    )
    slow = _error(_exit(1, "toolx: slow down! try again in 4s"), classifier)
    assert slow.category is ErrorCategory.RATE_LIMIT
    assert slow.retry_after == 4
    assert _error(_exit(1, "who are you?"), classifier).category is ErrorCategory.AUTH_FAILURE
    assert _error(_exit(1, "cannot parse input"), classifier).category is ErrorCategory.PERMANENT
    # The defaults are replaced, not extended: a 429 is now just a failure for this tool.
    assert _error(_exit(1, "429"), classifier).category is ErrorCategory.RETRYABLE
    # ... while the default classifier still knows it.
    assert _error(_exit(1, "429")).category is ErrorCategory.RATE_LIMIT


def test_category_of() -> None:
    assert CLASSIFIER.category_of("HTTP 429") is ErrorCategory.RATE_LIMIT
    assert CLASSIFIER.category_of("403 Forbidden") is ErrorCategory.AUTH_FAILURE
    assert CLASSIFIER.category_of("400") is ErrorCategory.PERMANENT
    assert CLASSIFIER.category_of("all good") is None


# -- real CLI transcripts ------------------------------------------------------------------


def test_gemini_429_stderr_is_a_rate_limit_with_20s() -> None:
    stderr = _transcript("gemini-429.stderr.txt")
    error = _error(_exit(1, stderr, cli="gemini"))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert error.retry_after == 20
    assert error.message.startswith("gemini exited with code 1")


def test_claude_429_result_is_a_rate_limit() -> None:
    objects = _transcript_objects("claude-429-max-retries-0.stream.jsonl")
    result = next(obj for obj in objects if obj["type"] == "result")
    assert result["is_error"] is True
    final = FinalResult(text=result["result"], is_error=True, raw=result)
    for exit_code in (0, 1):
        error = _error(_exit(exit_code, "", (final,), cli="claude"))
        assert error.category is ErrorCategory.RATE_LIMIT
        assert "per-minute rate limit" in error.message
        assert error.event == result


def test_claude_529_overloaded_is_retryable_not_permanent() -> None:
    objects = _transcript_objects("claude-529-max-retries-0.stream.jsonl")
    result = next(obj for obj in objects if obj["type"] == "result")
    final = FinalResult(text=result["result"], is_error=True, raw=result)
    error = _error(_exit(1, "", (final,), cli="claude"))
    assert error.category is ErrorCategory.RETRYABLE
    assert "529 Overloaded" in error.message
    assert error.retry_after is None  # "try again in a moment" is no number


def test_claude_ok_result_is_success() -> None:
    result = json.loads(_transcript("claude-ok.json"))
    final = FinalResult(text=result["result"], is_error=result["is_error"], raw=result)
    assert CLASSIFIER.classify(_exit(0, "", (final,), cli="claude")) is None


def test_codex_429_error_event_is_a_rate_limit() -> None:
    objects = _transcript_objects("codex-429.jsonl")
    events: tuple[Event, ...] = tuple(
        ErrorReport(message=obj["message"], raw=obj)
        if obj["type"] == "error"
        else RawEvent(line=json.dumps(obj), raw=obj)
        for obj in objects
    )
    error = _error(_exit(1, "", events, cli="codex"))
    assert error.category is ErrorCategory.RATE_LIMIT
    assert "429 Too Many Requests" in error.message


# -- properties ----------------------------------------------------------------------------

exit_codes = st.one_of(st.none(), st.integers(min_value=-300, max_value=300))
plain_events = st.lists(
    st.one_of(
        st.builds(TextDelta, text=st.text(max_size=50)),
        st.builds(RawEvent, line=st.text(max_size=50)),
        st.builds(FinalResult, text=st.text(max_size=50)),
    ),
    max_size=4,
).map(tuple)
any_events = st.lists(
    st.one_of(
        st.builds(TextDelta, text=st.text(max_size=50)),
        st.builds(
            ErrorReport,
            message=st.text(max_size=50),
            category=st.one_of(
                st.none(), st.text(max_size=12), st.sampled_from([c.value for c in ErrorCategory])
            ),
            status=st.one_of(st.none(), st.integers(min_value=0, max_value=999)),
            retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
        ),
        st.builds(FinalResult, text=st.text(max_size=50), is_error=st.booleans()),
    ),
    max_size=4,
).map(tuple)


@settings(max_examples=300)
@given(stderr=st.text(max_size=300), exit_code=exit_codes, events=any_events)
def test_classify_never_raises_and_returns_a_typed_error(
    stderr: str, exit_code: int | None, events: tuple[Event, ...]
) -> None:
    outcome = CLASSIFIER.classify(_exit(exit_code, stderr, events))
    assert outcome is None or isinstance(outcome, LLMError)
    if outcome is None:
        assert exit_code == 0
        assert not any(isinstance(e, ErrorReport) for e in events)
    else:
        assert isinstance(outcome.category, ErrorCategory)
        assert outcome.message.startswith("mycli ")
        assert outcome.exit_code == exit_code
        if outcome.retry_after is not None:
            assert outcome.category is ErrorCategory.RATE_LIMIT


@settings(max_examples=200)
@given(stderr=st.text(max_size=300), events=plain_events)
def test_exit_0_without_error_events_is_always_success(
    stderr: str, events: tuple[Event, ...]
) -> None:
    assert CLASSIFIER.classify(_exit(0, stderr, events)) is None


@settings(max_examples=200)
@given(stderr=st.text(max_size=300), exit_code=st.integers(min_value=1, max_value=255))
def test_nonzero_exit_is_always_a_failure(stderr: str, exit_code: int) -> None:
    error = _error(_exit(exit_code, stderr))
    assert f"exited with code {exit_code}" in error.message
