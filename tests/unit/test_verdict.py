"""The actors' verdicts, from evidence built by hand: no process, no pipe, no clock."""

from __future__ import annotations

import attrs
import pytest

from actors import (
    CliSpec,
    ErrorCategory,
    ErrorReport,
    Event,
    FinalResult,
    LLMError,
    ProcessExit,
    SessionStarted,
    TextAdapter,
    TextDelta,
)
from actors._framing import LineTooLong
from actors._messages import CallOutcome
from actors._spawn import line_too_long
from actors._verdict import (
    ReaderFailure,
    RunEvidence,
    TurnEvidence,
    TurnStop,
    outcome_from_events,
    run_verdict,
    turn_verdict,
)

SECRET = "sk-verdict-secret-123456"


@attrs.define
class StubClassifier:
    """Says what it is told to, and keeps what it was shown."""

    error: LLMError | None = None
    seen: list[ProcessExit] = attrs.Factory(list)

    def classify(self, exit: ProcessExit) -> LLMError | None:
        self.seen.append(exit)
        return self.error


def spec_with(classifier: StubClassifier, **changes: object) -> CliSpec:
    return CliSpec(
        name="stub",
        argv=("stub-cli",),
        adapter_factory=TextAdapter,
        classifier=classifier,
        env={"STUB_API_KEY": SECRET},
        **changes,  # type: ignore[arg-type]
    )


FINAL = FinalResult(text="the answer", session_id="s-1")


def ran(**changes: object) -> RunEvidence:
    fields: dict[str, object] = {
        "exit_code": 0,
        "pid": 4242,
        "events": (FINAL,),
        "stderr_tail": "",
        "ended_at": 10.0,
        "total_deadline": 100.0,
        "total_execution": 90.0,
    }
    fields.update(changes)
    return RunEvidence(**fields)  # type: ignore[arg-type]


# --- the one-shot run -------------------------------------------------------------------


def test_a_clean_exit_is_the_outcome_of_its_events() -> None:
    classifier = StubClassifier()
    verdict = run_verdict(spec_with(classifier), ran(stdin_bytes=12))
    assert isinstance(verdict, CallOutcome)
    assert (verdict.text, verdict.session_id, verdict.exit_code, verdict.pid) == (
        "the answer",
        "s-1",
        0,
        4242,
    )
    (shown,) = classifier.seen
    assert (shown.cli, shown.exit_code, shown.events, shown.stdin_bytes) == (
        "stub",
        0,
        (FINAL,),
        12,
    )
    assert shown.secrets == (SECRET,)


def test_the_classifier_error_is_the_verdict() -> None:
    error = LLMError("rate limited", ErrorCategory.RATE_LIMIT, cli="stub")
    verdict = run_verdict(spec_with(StubClassifier(error)), ran(exit_code=1, stderr_tail="429"))
    assert verdict is error


def test_a_reader_failure_wins_and_gets_the_evidence_redacted() -> None:
    classifier = StubClassifier()
    failure = ReaderFailure("stub sent no output for chunk_receive=5s", ErrorCategory.TIMEOUT)
    # Cancelled at the total deadline as well: the first reason stands.
    seen = ran(failure=failure, exit_code=None, cancelled=True, ended_at=100.0)
    verdict = run_verdict(spec_with(classifier), replace_stderr(seen, f"key={SECRET}"))
    assert isinstance(verdict, LLMError)
    assert verdict.category is ErrorCategory.TIMEOUT
    assert verdict.message == failure.message
    assert verdict.cli == "stub"
    assert SECRET not in verdict.stderr and verdict.stderr.startswith("key=")
    assert classifier.seen == []  # a failed run is not the classifier's to judge


def replace_stderr(seen: RunEvidence, tail: str) -> RunEvidence:
    return attrs.evolve(seen, stderr_tail=tail)


def test_the_total_deadline_is_a_timeout_naming_the_limit() -> None:
    seen = ran(exit_code=None, cancelled=True, ended_at=100.0, stderr_tail="working...")
    verdict = run_verdict(spec_with(StubClassifier()), seen)
    assert isinstance(verdict, LLMError)
    assert verdict.category is ErrorCategory.TIMEOUT
    assert verdict.message == "stub did not finish within total_execution=90s"
    assert verdict.stderr == "working..."


@pytest.mark.parametrize(
    ("cancelled", "ended_at", "stopped_early"),
    [(True, 99.9, False), (False, 100.0, False), (True, 100.0, True)],
    ids=["cancelled-before-the-deadline", "not-cancelled", "stopped-on-a-terminal-report"],
)
def test_only_a_cancellation_at_the_deadline_is_a_timeout(
    cancelled: bool, ended_at: float, stopped_early: bool
) -> None:
    error = LLMError("auth", ErrorCategory.AUTH_FAILURE, cli="stub")
    seen = ran(exit_code=1, cancelled=cancelled, ended_at=ended_at, stopped_early=stopped_early)
    assert run_verdict(spec_with(StubClassifier(error)), seen) is error


def test_a_line_too_long_has_one_wording() -> None:
    spec = spec_with(StubClassifier(), max_line_bytes=1024)
    exc = LineTooLong(1024, 2048)
    failure = line_too_long(spec, exc)
    verdict = run_verdict(spec, ran(failure=failure))
    assert isinstance(verdict, LLMError)
    assert verdict.category is ErrorCategory.MALFORMED_OUTPUT
    assert verdict.message == "stub printed a line longer than max_line_bytes=1024"
    assert verdict.original_error is exc


# --- the warm turn ----------------------------------------------------------------------


def turned(stop: TurnStop, **changes: object) -> TurnEvidence:
    fields: dict[str, object] = {
        "stop": stop,
        "events": (FINAL,),
        "stderr_tail": "",
        "pid": 77,
        "total_execution": 30.0,
    }
    fields.update(changes)
    return TurnEvidence(**fields)  # type: ignore[arg-type]


def test_a_turn_that_reaches_its_result_is_its_outcome() -> None:
    classifier = StubClassifier()
    verdict = turn_verdict(spec_with(classifier), turned(TurnStop.RESULT))
    assert isinstance(verdict, CallOutcome)
    assert (verdict.text, verdict.exit_code, verdict.pid) == ("the answer", 0, 77)
    assert classifier.seen[0].exit_code == 0  # the process is alive: judged as a clean exit


def test_a_turn_result_the_classifier_rejects_fails() -> None:
    error = LLMError("refused", ErrorCategory.PERMANENT, cli="stub")
    assert turn_verdict(spec_with(StubClassifier(error)), turned(TurnStop.RESULT)) is error


def test_a_terminal_report_is_the_classifier_error_else_a_death() -> None:
    error = LLMError("overloaded", ErrorCategory.RETRYABLE, cli="stub")
    report = ErrorReport(message="overloaded", terminal=True)
    seen = turned(TurnStop.TERMINAL_REPORT, events=(report,), exit_code=3)
    assert turn_verdict(spec_with(StubClassifier(error)), seen) is error
    died = turn_verdict(spec_with(StubClassifier()), seen)
    assert isinstance(died, LLMError)
    assert died.category is ErrorCategory.RETRYABLE
    assert died.message == "warm stub process ended (exit code 3)"
    assert died.exit_code == 3


@pytest.mark.parametrize(
    ("stop", "exit_code", "message"),
    [
        (
            TurnStop.NOT_SENT,
            1,
            "warm stub process ended before the turn could be sent (exit code 1)",
        ),
        (TurnStop.DIED, None, "warm stub process ended mid-turn"),
    ],
)
def test_a_dead_process_fails_the_turn_as_retryable(
    stop: TurnStop, exit_code: int | None, message: str
) -> None:
    classifier = StubClassifier()
    seen = turned(stop, events=(), exit_code=exit_code, stderr_tail=f"crash {SECRET}")
    verdict = turn_verdict(spec_with(classifier), seen)
    assert isinstance(verdict, LLMError)
    assert (verdict.category, verdict.message, verdict.exit_code) == (
        ErrorCategory.RETRYABLE,
        message,
        exit_code,
    )
    assert SECRET not in verdict.stderr
    assert classifier.seen == []


def test_a_turn_past_its_deadline_times_out() -> None:
    verdict = turn_verdict(spec_with(StubClassifier()), turned(TurnStop.TIMED_OUT, events=()))
    assert isinstance(verdict, LLMError)
    assert verdict.category is ErrorCategory.TIMEOUT
    assert verdict.message == "stub did not finish the turn within total_execution=30s"


def test_a_reader_failure_fails_the_turn_with_the_stderr_tail() -> None:
    failure = ReaderFailure("stub printed nothing within first_output=5s", ErrorCategory.TIMEOUT)
    seen = turned(TurnStop.FAILED, events=(), failure=failure, stderr_tail="starting")
    verdict = turn_verdict(spec_with(StubClassifier()), seen)
    assert isinstance(verdict, LLMError)
    assert (verdict.category, verdict.message, verdict.stderr) == (
        ErrorCategory.TIMEOUT,
        failure.message,
        "starting",
    )


# --- the outcome ------------------------------------------------------------------------


def test_without_a_final_result_the_outcome_is_the_streamed_text() -> None:
    events: tuple[Event, ...] = (
        SessionStarted(session_id="s-9"),
        TextDelta(text="hel"),
        TextDelta(text="lo"),
    )
    outcome = outcome_from_events(events, 0, 1)
    assert (outcome.text, outcome.session_id, outcome.usage, outcome.cost_usd) == (
        "hello",
        "s-9",
        None,
        None,
    )


def test_forbidden_tool_under_none_names_the_tool_and_the_policy() -> None:
    import actors
    from actors import ToolUse
    from actors._verdict import forbidden_tool

    spec = attrs.evolve(actors.command(["true"]), permitted_tools={"StructuredOutput"})
    failure = forbidden_tool(spec, ToolUse(name="Bash"))
    assert failure is not None and failure.category is ErrorCategory.PERMANENT
    assert "'Bash'" in failure.message and "'none'" in failure.message
    assert forbidden_tool(spec, ToolUse(name="StructuredOutput")) is None
    assert forbidden_tool(attrs.evolve(spec, tools="read"), ToolUse(name="Bash")) is None
    assert forbidden_tool(spec, TextDelta(text="Bash")) is None
