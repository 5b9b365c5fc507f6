"""Turning a finished process into an `LLMError` (or success), from the evidence it left.

The generic classifier reads what any CLI leaves behind: in-band error events, the exit code,
and the text of stderr and stdout. Patterns are data on a frozen value, so a user can wrap a
new tool by supplying their own without writing code.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable

import attrs

from .._errors import ErrorCategory, LLMError
from .._events import ErrorReport, FinalResult, RawEvent, TextDelta
from .._spec import ProcessExit


def _status(codes: str) -> str:
    """An HTTP status only where the text says so, never a bare number.

    A bare ``401`` is as likely a line number ("file.js:401:12", "line 401") as a status.
    Accepted: a code after a word that introduces one ("status: 429", "HTTP 401", "failed:
    403", ``"code":429``), in parentheses ("(429)"), at the start of a line ("429: slow
    down"), or followed by its reason phrase ("401 Unauthorized").
    """
    group = r"(?:" + codes + r")"
    lead = r"(?:status|http|code|failed|failure|error|rejected|returned|response)"
    return (
        r"(?im:\b" + lead + r"[\s\"':=]{0,4}(?:code[\s\"':=]{0,4})?" + group + r"\b(?![.:]\d)"
        r"|\(" + group + r"\)"
        r"|^\s*" + group + r"\b(?![.:]\d)"
        r"|\b" + group + r"\s+(?:unauthori[sz]ed|forbidden|too many|bad request|overloaded))"
    )


DEFAULT_RATE_LIMIT_PATTERNS: tuple[str, ...] = (
    r"rate[ _\-]?limit",
    _status("429"),
    r"too many requests",
    r"\bquota\b",
    r"resource[_ ]exhausted",
)
DEFAULT_AUTH_PATTERNS: tuple[str, ...] = (
    r"(?:invalid|bad|incorrect|missing)[ _\-](?:x-)?api[ _\-]?key",
    r"unauthori[sz]ed",
    r"authentication[ _](?:failed|error)",
    _status("401|403"),
    r"\bforbidden\b",
)
DEFAULT_PERMANENT_PATTERNS: tuple[str, ...] = (
    _status("400"),
    r"bad request",
    r"invalid[ _]request",
    r"billing",
)

_DURATION = r"(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?\b"
_RETRY_HINTS: tuple[re.Pattern[str], ...] = (
    re.compile(r"retry[ \-_]?after[\"']?\s*[:=]?\s*" + _DURATION, re.IGNORECASE),
    re.compile(r"try again in\s+" + _DURATION, re.IGNORECASE),
    re.compile(r"resets? in\s+" + _DURATION, re.IGNORECASE),
)


def parse_retry_after(text: str) -> float | None:
    """Seconds from a "retry after N", "try again in N s" or "resets in N" hint, if any."""
    for pattern in _RETRY_HINTS:
        match = pattern.search(text)
        if match:
            value = float(match.group(1))
            unit = (match.group(2) or "s").lower()
            if unit.startswith("ms") or unit.startswith("milli"):
                return value / 1000.0
            if unit.startswith("m"):
                return value * 60.0
            return value
    return None


def _compile(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "was stopped early"
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


@attrs.frozen
class PatternClassifier:
    """Classifies by exit code, in-band error events and text patterns.

    Order: an in-band error event with a category wins; then rate limit, auth and permanent
    patterns over the error text, stderr and (for failures) stdout; otherwise a failed
    process is RETRYABLE. Success needs a success exit code and no in-band error.
    """

    rate_limit_patterns: tuple[str, ...] = DEFAULT_RATE_LIMIT_PATTERNS
    auth_patterns: tuple[str, ...] = DEFAULT_AUTH_PATTERNS
    permanent_patterns: tuple[str, ...] = DEFAULT_PERMANENT_PATTERNS
    success_exit_codes: frozenset[int] = frozenset({0})
    _compiled: tuple[tuple[ErrorCategory, tuple[re.Pattern[str], ...]], ...] = attrs.field(
        init=False, repr=False, eq=False
    )

    def __attrs_post_init__(self) -> None:
        compiled = (
            (ErrorCategory.RATE_LIMIT, _compile(self.rate_limit_patterns)),
            (ErrorCategory.AUTH_FAILURE, _compile(self.auth_patterns)),
            (ErrorCategory.PERMANENT, _compile(self.permanent_patterns)),
        )
        object.__setattr__(self, "_compiled", compiled)

    def category_of(self, text: str) -> ErrorCategory | None:
        """The first category whose patterns match ``text``."""
        for category, patterns in self._compiled:
            if any(p.search(text) for p in patterns):
                return category
        return None

    def classify(self, exit: ProcessExit) -> LLMError | None:
        reports = [e for e in exit.events if isinstance(e, ErrorReport)]
        finals = [e for e in exit.events if isinstance(e, FinalResult)]
        failed_result = finals[-1] if finals and finals[-1].is_error else None
        exited_ok = exit.exit_code is not None and exit.exit_code in self.success_exit_codes
        if exited_ok and not reports and failed_result is None:
            return None

        in_band = [r.message for r in reports]
        if failed_result is not None:
            in_band.append(failed_result.text)
        stdout_text = ""
        if not in_band:
            # A plain-text CLI may put its complaint on stdout.
            stdout_text = "".join(
                e.text if isinstance(e, TextDelta) else e.line
                for e in exit.events
                if isinstance(e, TextDelta | RawEvent)
            )[-4096:]
        evidence = "\n".join([*in_band, exit.stderr_tail[-8192:], stdout_text])

        category: ErrorCategory | None = None
        for report in reports:
            if report.category:
                try:
                    category = ErrorCategory(report.category)
                    break
                except ValueError:
                    pass
            if report.status is not None:
                category = self.category_of(f"status {report.status}")
        if category is None:
            category = self.category_of(evidence) or ErrorCategory.RETRYABLE

        retry_after = next((r.retry_after for r in reports if r.retry_after is not None), None)
        if retry_after is None:
            retry_after = parse_retry_after(evidence)

        message = next((m.strip() for m in in_band if m.strip()), "")
        if not message:
            stderr_lines = [line for line in exit.stderr_tail.splitlines() if line.strip()]
            message = stderr_lines[-1].strip()[:500] if stderr_lines else ""
        headline = f"{exit.cli} {_describe_exit(exit.exit_code)}"
        message = f"{headline}: {message}" if message else headline
        event = reports[0].raw if reports else (failed_result.raw if failed_result else None)
        return LLMError(
            message,
            category,
            exit_code=exit.exit_code,
            stderr=exit.stderr_tail,
            retry_after=retry_after if category is ErrorCategory.RATE_LIMIT else None,
            event=event,
            cli=exit.cli,
            secrets=exit.secrets,
        )


GENERIC_CLASSIFIER = PatternClassifier()
