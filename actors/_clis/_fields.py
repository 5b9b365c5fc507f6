"""The small helpers the CLI adapters share (claude, codex, gemini, generic).

JSON line parsing, dotted field paths, type-safe reads of untrusted JSON, HTTP status and
retry-hint extraction, and re-categorising an `LLMError` while keeping its evidence.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._errors import ErrorCategory, LLMError
from .._events import ErrorReport
from ._classify import parse_retry_after

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


def private_text_file(cli: str, text: str) -> Path:
    """A file holding ``text`` in this user's private folder for ``cli`` (one per text).

    The folder (``$TMPDIR/llmsup-<cli>-<uid>``, mode 0700) is checked to be ours and private,
    since it holds system prompts; the file is written atomically, so concurrent writers of
    the same text produce the same bytes.
    """
    folder = Path(tempfile.gettempdir()) / f"llmsup-{cli}-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise ValueError(
            f"{cli}: {folder} must be a directory owned by this user with mode 0700 "
            "(it holds system prompts); remove it or fix its permissions"
        )
    data = text.encode("utf-8")
    path = folder / f"system-{hashlib.sha256(data).hexdigest()[:32]}.md"
    if not path.is_file() or path.read_bytes() != data:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(data)
        os.replace(partial, path)
    return path
