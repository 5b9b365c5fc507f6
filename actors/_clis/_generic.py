"""`generic()`: wrap any LLM command-line tool without writing code.

Also home of the small helpers the CLI adapters share (claude, codex, gemini): JSON line
parsing, dotted field paths, HTTP status and retry-hint extraction, and re-categorising an
`LLMError` while keeping its evidence.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._errors import ErrorCategory, LLMError
from .._events import ErrorReport, Event, FinalResult, RawEvent, SessionStarted, TextDelta
from .._spec import Adapter, CliSpec, OutputFormat, PromptVia
from ._adapters import JsonLinesAdapter, TextAdapter
from ._classify import (
    DEFAULT_AUTH_PATTERNS,
    DEFAULT_PERMANENT_PATTERNS,
    DEFAULT_RATE_LIMIT_PATTERNS,
    PatternClassifier,
    parse_retry_after,
)

# --------------------------------------------------------------------------------------
# Helpers shared by the CLI adapters
# --------------------------------------------------------------------------------------

_MISSING: Any = object()


def parse_json(line: str) -> Any:
    """The JSON value on ``line``, or `_MISSING` when it is not JSON."""
    stripped = line.strip()
    if not stripped or stripped[0] not in "{[":
        return _MISSING
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return _MISSING


def get_path(obj: Any, path: str) -> Any:
    """``obj["a"]["b"][0]`` for ``"a.b.0"``; None when any step is missing."""
    current = obj
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return None
            current = current[index]
        else:
            return None
    return current


def as_str(value: Any) -> str | None:
    """``value`` if it is a string, else None (CLI JSON is not to be trusted for types)."""
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    """``value`` as an int when it is a (non-bool) integral number, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def category_for_status(status: int | None) -> ErrorCategory | None:
    """What an HTTP status says about retrying: the one table every adapter uses."""
    if status is None:
        return None
    if status == 429:
        return ErrorCategory.RATE_LIMIT
    if status in (401, 403, 407):
        return ErrorCategory.AUTH_FAILURE
    if status in (400, 404, 405, 413, 422):
        return ErrorCategory.PERMANENT
    if status in (408, 409, 425, 529) or 500 <= status <= 599:
        return ErrorCategory.RETRYABLE
    return None


# A status needs HTTP context (as in `_classify._status`): a bare number is too often a line
# number. These are the shapes CLIs print: "status 429", "status: 429", "last status: 429",
# "unexpected status 401", "HTTP 503", '"code":429', "(429)", "429 Too Many Requests".
_STATUS_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\b(?:status(?:[ _]?code)?|http)[\"'\s:=]{0,4}([1-5]\d\d)\b(?![.:]\d)", re.I),
    re.compile(r"[\"']code[\"']\s*:\s*([1-5]\d\d)\b"),
    re.compile(r"\(([1-5]\d\d)\)"),
    re.compile(
        r"\b([1-5]\d\d)\s+(?:too many requests|unauthori[sz]ed|forbidden|bad request|"
        r"overloaded|service unavailable|internal server error|not found)",
        re.I,
    ),
)


def http_status(text: str) -> int | None:
    """The first HTTP status code ``text`` states with context, if any."""
    best: tuple[int, int] | None = None
    for pattern in _STATUS_PATTERNS:
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), int(match.group(1)))
    return best[1] if best else None


_EXTRA_RETRY_HINTS: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"\bretry in\s+(\d+(?:\.\d+)?)\s*s\b", re.I), 1.0),
    (re.compile(r"\bretry in\s+(\d+(?:\.\d+)?)\s*ms\b", re.I), 0.001),
    (re.compile(r"[\"']retryDelay[\"']\s*:\s*[\"'](\d+(?:\.\d+)?)s[\"']", re.I), 1.0),
    (re.compile(r"\bsuggested retry after\s+(\d+(?:\.\d+)?)\s*s\b", re.I), 1.0),
)


def retry_hint(text: str) -> float | None:
    """Seconds a message asks us to wait ("try again in 20s", "retry in 20.5s", ...)."""
    found = parse_retry_after(text)
    if found is not None:
        return found
    for pattern, scale in _EXTRA_RETRY_HINTS:
        match = pattern.search(text)
        if match:
            return float(match.group(1)) * scale
    return None


_CLOCK = re.compile(
    r"\b(?:resets?|try again)\s+(?:at\s+)?"
    r"(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?(?![\w:])"
    r"(?:\s*\(([A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*)\))?",
    re.I,
)


def seconds_until_clock(text: str, now: float) -> float | None:
    """Seconds until a wall-clock reset such as "resets 3pm (Europe/Paris)" or "try again at
    15:30"; the next such time after ``now``, in the named zone or else local time.

    Needs either am/pm or a ``HH:MM`` form, so "resets 5 times" is not a clock.
    """
    match = _CLOCK.search(text)
    if not match:
        return None
    hour_s, minute_s, meridiem, zone_name = match.groups()
    if minute_s is None and meridiem is None:
        return None
    hour, minute = int(hour_s), int(minute_s or 0)
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem.lower().startswith("p") else 0)
    if hour > 23 or minute > 59:
        return None
    zone: _dt.tzinfo | None = None
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
    current = _dt.datetime.fromtimestamp(now, tz=zone).astimezone(zone)
    target = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= current:
        target += _dt.timedelta(days=1)
    return max(0.0, target.timestamp() - now)


def with_category(
    error: LLMError,
    category: ErrorCategory,
    retry_after: float | None = None,
    *,
    message: str | None = None,
) -> LLMError:
    """A copy of ``error`` with another category (and retry hint), evidence kept.

    ``retry_after`` is kept only for RATE_LIMIT, as `PatternClassifier` does; when None,
    the error's own hint is kept.
    """
    hint = retry_after if retry_after is not None else error.retry_after
    return LLMError(
        message if message is not None else error.message,
        category,
        exit_code=error.exit_code,
        stderr=error.stderr,
        retry_after=hint if category is ErrorCategory.RATE_LIMIT else None,
        original_error=error.original_error,
        event=error.event,
        cli=error.cli,
        attempts=error.attempts,
    )


def report_category(reports: Sequence[ErrorReport]) -> ErrorCategory | None:
    """The category of the first report that names a valid one."""
    for report in reports:
        if report.category:
            try:
                return ErrorCategory(report.category)
            except ValueError:
                continue
    return None


# --------------------------------------------------------------------------------------
# The generic factory
# --------------------------------------------------------------------------------------


class FieldMapAdapter:
    """JSON lines whose fields are named by dotted paths, for tools with their own dialect.

    Per line (a JSON object; anything else is a `RawEvent`):

    - ``delta_field``: a chunk of the answer → `TextDelta`; chunks concatenate to the answer.
    - ``text_field``: the complete answer; the last value seen wins. When no delta came
      before it, it is also sent as a `TextDelta`, so stream readers always see the text.
    - ``session_field``: the session id → `SessionStarted` (once per distinct id).
    - ``error_field``: a non-empty value is an error → `ErrorReport` (a string, or an object
      with ``message`` and optional ``code``/``status``).

    A line none of these fields matches is kept as a `RawEvent`. At the end: one
    `FinalResult` with the answer and the last session id.

    Paths index lists with numbers: ``"choices.0.delta.content"``.
    """

    def __init__(
        self,
        *,
        text_field: str | None = None,
        delta_field: str | None = None,
        session_field: str | None = None,
        error_field: str | None = None,
    ) -> None:
        self._text_field = text_field
        self._delta_field = delta_field
        self._session_field = session_field
        self._error_field = error_field
        self._deltas: list[str] = []
        self._text: str | None = None
        self._session: str | None = None

    def parse_line(self, line: str) -> Sequence[Event]:
        obj = parse_json(line)
        if not isinstance(obj, dict):
            return [RawEvent(line=line)] if line.strip() else []
        events: list[Event] = []
        if self._session_field:
            session = get_path(obj, self._session_field)
            if isinstance(session, str | int) and not isinstance(session, bool):
                session_id = str(session)
                if session_id and session_id != self._session:
                    self._session = session_id
                    events.append(SessionStarted(session_id=session_id, raw=obj))
        if self._delta_field:
            delta = as_str(get_path(obj, self._delta_field))
            if delta:
                self._deltas.append(delta)
                events.append(TextDelta(text=delta, raw=obj))
        if self._text_field:
            text = as_str(get_path(obj, self._text_field))
            if text is not None:
                if not self._deltas and text:
                    self._deltas.append(text)
                    events.append(TextDelta(text=text, raw=obj))
                self._text = text
        if self._error_field:
            report = _error_report(get_path(obj, self._error_field), obj)
            if report is not None:
                events.append(report)
        return events or [RawEvent(line=line, raw=obj)]

    def finish(self) -> Sequence[Event]:
        text = self._text if self._text is not None else "".join(self._deltas)
        return [FinalResult(text=text, session_id=self._session)]


def _error_report(value: Any, obj: dict[str, Any]) -> ErrorReport | None:
    if value is None or value is False or value == "" or value == {} or value == []:
        return None
    status: int | None = None
    if isinstance(value, Mapping):
        message = as_str(value.get("message")) or json.dumps(value, default=str)[:2000]
        status = as_int(value.get("code")) or as_int(value.get("status"))
    else:
        message = str(value) if not isinstance(value, bool) else json.dumps(obj)[:2000]
    if status is not None and not 100 <= status <= 599:
        status = None
    if status is None:
        status = http_status(message)
    return ErrorReport(message=message, status=status, raw=obj)


def _check_patterns(kind: str, patterns: Sequence[str]) -> tuple[str, ...]:
    if isinstance(patterns, str):
        raise TypeError(f"{kind} must be a sequence of regular expressions, not one string")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"{kind}: {pattern!r} is not a valid regular expression: {exc}"
            ) from exc
    return tuple(patterns)


def generic(
    argv: Sequence[str],
    *,
    output_format: OutputFormat = "text",
    prompt_via: PromptVia = "arg",
    prompt_prefix_args: Sequence[str] = (),
    text_field: str | None = None,
    delta_field: str | None = None,
    session_field: str | None = None,
    error_field: str | None = None,
    rate_limit_patterns: Sequence[str] = (),
    auth_patterns: Sequence[str] = (),
    permanent_patterns: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    cwd: str | None = None,
) -> CliSpec:
    """Wrap an LLM command-line tool (``llm``, ``ollama run``, your own) as data, not code.

    Args:
        argv: the program and its fixed arguments (never run through a shell).
        output_format: ``"text"``: stdout is the answer. ``"jsonl"``: one JSON object per
            line; with any ``*_field`` given, fields are read by dotted path (see
            `FieldMapAdapter`), otherwise the lines must be the native event dialect.
        prompt_via: ``"arg"`` appends the prompt as one argv element (after
            ``prompt_prefix_args``, e.g. ``("--",)`` so it can never become a flag);
            ``"stdin"`` writes it to stdin and closes it: the safest choice when the tool
            reads stdin, as nothing in the prompt can be parsed as an option.
        text_field / delta_field / session_field / error_field: dotted paths into each
            JSON line (``"message.content"``, ``"choices.0.delta.content"``).
        rate_limit_patterns / auth_patterns / permanent_patterns: regular expressions
            (case-insensitive) ADDED to `PatternClassifier`'s defaults, matched against
            error events, stderr and (for failures) stdout.
        env: extra environment for the tool. name: for errors and logs (default: the
            program's base name). cwd: its working directory.

    Examples::

        # Simon Willison's `llm`: reads the prompt from stdin when none is given.
        spec = generic(["llm", "-m", "gpt-4o-mini"], prompt_via="stdin",
                       rate_limit_patterns=[r"RateLimitError"])

        # Ollama: `ollama run MODEL` answers a piped prompt and exits.
        spec = generic(["ollama", "run", "llama3"], prompt_via="stdin",
                       permanent_patterns=[r"model .* not found", r"pull model manifest"])

        # A tool that prints {"message": {"content": "..."}, "error": null} lines:
        spec = generic(["mytool", "--stream-json", "--"], output_format="jsonl",
                       delta_field="message.content", error_field="error")
    """
    if isinstance(argv, str | bytes):
        raise TypeError("generic() takes an argv list such as ['llm', '-m', 'model'], not a string")
    argv = tuple(argv)
    if not argv:
        raise ValueError("generic() needs at least the program name in argv")
    fields = (text_field, delta_field, session_field, error_field)
    adapter_factory: type[Adapter] | None = None
    if output_format == "text":
        if any(fields):
            raise ValueError("text_field/delta_field/... need output_format='jsonl'")
        adapter_factory = TextAdapter
    elif output_format == "jsonl":
        if not any(fields):
            adapter_factory = JsonLinesAdapter
    else:
        raise ValueError(f"output_format must be 'text' or 'jsonl', got {output_format!r}")
    classifier = PatternClassifier(
        rate_limit_patterns=DEFAULT_RATE_LIMIT_PATTERNS
        + _check_patterns("rate_limit_patterns", rate_limit_patterns),
        auth_patterns=DEFAULT_AUTH_PATTERNS + _check_patterns("auth_patterns", auth_patterns),
        permanent_patterns=DEFAULT_PERMANENT_PATTERNS
        + _check_patterns("permanent_patterns", permanent_patterns),
    )

    def field_map() -> Adapter:
        return FieldMapAdapter(
            text_field=text_field,
            delta_field=delta_field,
            session_field=session_field,
            error_field=error_field,
        )

    return CliSpec(
        name=name or os.path.basename(argv[0]) or argv[0],
        argv=argv,
        adapter_factory=adapter_factory or field_map,
        classifier=classifier,
        prompt_via=prompt_via,
        prompt_prefix_args=tuple(prompt_prefix_args),
        env=env or {},
        cwd=cwd,
    )
