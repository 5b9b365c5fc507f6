"""`generic()`: wrap any LLM command-line tool without writing code.

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

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .._events import ErrorReport, Event, FinalResult, RawEvent, SessionStarted, TextDelta
from .._spec import Adapter, CliSpec, OutputFormat, PromptVia
from ._adapters import adapter_for
from ._classify import (
    DEFAULT_AUTH_PATTERNS,
    DEFAULT_PERMANENT_PATTERNS,
    DEFAULT_RATE_LIMIT_PATTERNS,
    PatternClassifier,
)
from ._fields import as_int, as_str, get_path, http_status, parse_json


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

    Examples are in this module's docstring.
    """
    argv = _program(argv)
    field_map = functools.partial(
        FieldMapAdapter,
        text_field=text_field,
        delta_field=delta_field,
        session_field=session_field,
        error_field=error_field,
    )
    fields = (text_field, delta_field, session_field, error_field)
    return CliSpec(
        name=name or os.path.basename(argv[0]) or argv[0],
        argv=argv,
        adapter_factory=_native_adapter(output_format, any(fields)) or field_map,
        classifier=_classifier(rate_limit_patterns, auth_patterns, permanent_patterns),
        prompt_via=prompt_via,
        prompt_prefix_args=tuple(prompt_prefix_args),
        env=env or {},
        cwd=cwd,
    )


def _program(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str | bytes):
        raise TypeError("generic() takes an argv list such as ['llm', '-m', 'model'], not a string")
    program = tuple(argv)
    if not program:
        raise ValueError("generic() needs at least the program name in argv")
    return program


def _native_adapter(output_format: OutputFormat, has_fields: bool) -> type[Adapter] | None:
    """The adapter for ``output_format``; None when the fields call for a `FieldMapAdapter`."""
    if has_fields and output_format == "text":
        raise ValueError("text_field/delta_field/... need output_format='jsonl'")
    return None if has_fields and output_format == "jsonl" else adapter_for(output_format)


def _classifier(
    rate_limit_patterns: Sequence[str],
    auth_patterns: Sequence[str],
    permanent_patterns: Sequence[str],
) -> PatternClassifier:
    """`PatternClassifier`'s defaults plus the user's patterns, each checked first."""
    return PatternClassifier(
        rate_limit_patterns=DEFAULT_RATE_LIMIT_PATTERNS
        + _check_patterns("rate_limit_patterns", rate_limit_patterns),
        auth_patterns=DEFAULT_AUTH_PATTERNS + _check_patterns("auth_patterns", auth_patterns),
        permanent_patterns=DEFAULT_PERMANENT_PATTERNS
        + _check_patterns("permanent_patterns", permanent_patterns),
    )
