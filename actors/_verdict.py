"""The actors' verdicts: given what a run (or a warm turn) saw, success or which `LLMError`.

Pure functions of the evidence, with no process, no pipe and no clock of their own: the
loops in `actors._process` and `actors._warm` gather the evidence and call them, and
``tests/unit/test_verdict.py`` checks every branch without a process.
"""

from __future__ import annotations

import enum

import attrs

from ._errors import ErrorCategory, LLMError
from ._events import (
    AssistantMessage,
    Event,
    FinalResult,
    SessionStarted,
    TextDelta,
    ToolUse,
    UsageReport,
)
from ._messages import CallOutcome
from ._spec import CliSpec, ProcessExit


@attrs.frozen
class ReaderFailure:
    """Why a run was cut short (a reader's silence or overlong line, the owner gone, a
    deadline); the verdict makes it an `LLMError` with the evidence the reader lacks
    (the stderr tail, the secrets to redact), so the error is complete when raised."""

    message: str
    category: ErrorCategory
    original_error: BaseException | None = None
    # What the output looked like, when the output was the problem (a line's head and tail).
    raw_text: str | None = None

    def error(self, spec: CliSpec, stderr_tail: str) -> LLMError:
        return LLMError(
            self.message,
            self.category,
            stderr=stderr_tail,
            original_error=self.original_error,
            raw_text=self.raw_text,
            cli=spec.name,
            secrets=spec.secrets(),
        )


def forbidden_tool(spec: CliSpec, event: Event) -> ReaderFailure | None:
    """The failure that stops a CLI asking to run a tool its policy does not allow.

    The second line of defence behind each CLI's own flags: under ``tools="none"`` a
    `ToolUse` (other than ``spec.permitted_tools``) means the CLI is about to run it.
    """
    if spec.tools != "none" or not isinstance(event, ToolUse):
        return None
    if event.name in spec.permitted_tools:
        return None
    return ReaderFailure(
        f"{spec.name} asked to run the tool {event.name!r}, but its tool policy is 'none': "
        "the process was stopped (pass tools='read', 'edit' or 'full' to allow tools)",
        ErrorCategory.PERMANENT,
    )


@attrs.frozen
class RunEvidence:
    """What the one-shot actor saw by the end of one process's run."""

    exit_code: int | None  # None: the run was cut before the process exited
    pid: int
    events: tuple[Event, ...]
    stderr_tail: str
    stdin_bytes: int | None = None  # bytes of prompt written to stdin (None: not a pipe)
    failure: ReaderFailure | None = None  # the first reason a reader stopped the run
    cancelled: bool = False  # the run's scope caught a cancellation
    stopped_early: bool = False  # a terminal ErrorReport stopped the process on purpose
    ended_at: float = 0.0
    total_deadline: float = float("inf")
    total_execution: float | None = None


def run_verdict(spec: CliSpec, seen: RunEvidence) -> CallOutcome | LLMError:
    """The end of a one-shot run: a reader's failure, the total timeout, the classifier's
    error, or the outcome."""
    failure = seen.failure
    timed_out = seen.cancelled and seen.ended_at >= seen.total_deadline and not seen.stopped_early
    if failure is None and timed_out:
        failure = ReaderFailure(
            f"{spec.name} did not finish within total_execution={seen.total_execution:g}s",
            ErrorCategory.TIMEOUT,
        )
    if failure is not None:
        return failure.error(spec, seen.stderr_tail)
    error = spec.classifier.classify(
        ProcessExit(
            cli=spec.name,
            exit_code=seen.exit_code,
            stderr_tail=seen.stderr_tail,
            events=seen.events,
            secrets=spec.secrets(),
            stdin_bytes=seen.stdin_bytes,
        )
    )
    if error is not None:
        return error
    assert seen.exit_code is not None  # a cut run is a failure, or the classifier says why
    return outcome_from_events(seen.events, seen.exit_code, seen.pid)


class TurnStop(enum.Enum):
    """How a warm turn stopped."""

    RESULT = "result"  # the CLI's FinalResult: the turn's normal end
    TERMINAL_REPORT = "terminal_report"  # an ErrorReport the CLI will not recover from
    FAILED = "failed"  # a reader's `ReaderFailure` (silence, a line too long)
    NOT_SENT = "not_sent"  # the process was gone before the turn could be written
    DIED = "died"  # stdout ended mid-turn
    TIMED_OUT = "timed_out"  # total_execution passed


@attrs.frozen
class TurnEvidence:
    """What the warm actor saw of one turn."""

    stop: TurnStop
    events: tuple[Event, ...]
    stderr_tail: str
    pid: int
    exit_code: int | None = None  # the process's, if it had exited when the turn stopped
    failure: ReaderFailure | None = None  # for `TurnStop.FAILED`
    total_execution: float | None = None


def turn_verdict(spec: CliSpec, seen: TurnEvidence) -> CallOutcome | LLMError:
    """The end of a warm turn: success, or the error the turn fails with (the process is
    then replaced, since its state is unknown)."""
    if seen.stop is TurnStop.TIMED_OUT:
        return ReaderFailure(
            f"{spec.name} did not finish the turn within total_execution={seen.total_execution:g}s",
            ErrorCategory.TIMEOUT,
        ).error(spec, seen.stderr_tail)
    if seen.stop is TurnStop.FAILED:
        assert seen.failure is not None
        return seen.failure.error(spec, seen.stderr_tail)
    if seen.stop is TurnStop.NOT_SENT:
        return _warm_died(spec, seen, "before the turn could be sent")
    if seen.stop is TurnStop.DIED:
        return _warm_died(spec, seen, "mid-turn")
    error = spec.classifier.classify(
        ProcessExit(
            cli=spec.name,
            exit_code=0,
            stderr_tail=seen.stderr_tail,
            events=seen.events,
            secrets=spec.secrets(),
        )
    )
    if error is not None:
        return error
    if seen.stop is TurnStop.TERMINAL_REPORT:
        return _warm_died(spec, seen, "")
    return outcome_from_events(seen.events, 0, seen.pid)


def _warm_died(spec: CliSpec, seen: TurnEvidence, when: str) -> LLMError:
    status = f"(exit code {seen.exit_code})" if seen.exit_code is not None else ""
    message = " ".join(part for part in (f"warm {spec.name} process ended", when, status) if part)
    return LLMError(
        message,
        ErrorCategory.RETRYABLE,
        exit_code=seen.exit_code,
        stderr=seen.stderr_tail,
        cli=spec.name,
        secrets=spec.secrets(),
    )


def outcome_from_events(events: tuple[Event, ...], exit_code: int, pid: int) -> CallOutcome:
    """A successful call's outcome: the final result's text, else the streamed text."""
    final = next((e for e in reversed(events) if isinstance(e, FinalResult)), None)
    if final is not None:
        text = final.text
    else:
        deltas = [e.text for e in events if isinstance(e, TextDelta)]
        text = "".join(deltas) or "\n".join(
            e.text for e in events if isinstance(e, AssistantMessage)
        )
    session_id = final.session_id if final is not None else None
    if session_id is None:
        session_id = next((e.session_id for e in events if isinstance(e, SessionStarted)), None)
    usage = final.usage if final is not None else None
    if usage is None:
        usage = next((e.usage for e in reversed(events) if isinstance(e, UsageReport)), None)
    return CallOutcome(
        text=text,
        session_id=session_id,
        usage=usage,
        cost_usd=final.cost_usd if final is not None else None,
        events=events,
        exit_code=exit_code,
        pid=pid,
    )
