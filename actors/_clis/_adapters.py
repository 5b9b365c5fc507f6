"""Generic adapters: plain text output, and the native JSON-lines event dialect."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import ValidationError

from .._events import EVENT_ADAPTER, Event, FinalResult, RawEvent, TextDelta
from .._spec import Adapter, OutputFormat


class TextAdapter:
    """Each stdout line is a text delta; the whole of stdout is the answer.

    Lines are joined with ``\\n`` and a single trailing newline is dropped (``echo hi``
    answers ``hi``). Each delta after the first starts with the newline that preceded it, so
    the deltas always concatenate to exactly the final text.
    """

    def __init__(self) -> None:
        self._lines: list[str] = []

    def parse_line(self, line: str) -> Sequence[Event]:
        text = "\n" + line if self._lines else line
        self._lines.append(line)
        return [TextDelta(text=text)]

    def finish(self) -> Sequence[Event]:
        return [FinalResult(text="\n".join(self._lines))]


class JsonLinesAdapter:
    """The native dialect: one `Event` JSON object per line.

    Lines that are not JSON, or JSON of an unknown type, become `RawEvent` and are skipped
    by the supervisor, never fatal. Lines that *are* a known type but fail validation are
    kept raw too, with the validation message, so nothing is silently dropped.
    """

    def parse_line(self, line: str) -> Sequence[Event]:
        stripped = line.strip()
        if not stripped:
            return []
        try:
            obj = json.loads(stripped)
        except ValueError:
            return [RawEvent(line=line)]
        if not isinstance(obj, dict):
            return [RawEvent(line=line)]
        try:
            event = EVENT_ADAPTER.validate_python(obj)
        except ValidationError:
            return [RawEvent(line=line, raw=obj)]
        return [event.model_copy(update={"raw": obj})]

    def finish(self) -> Sequence[Event]:
        return []


def adapter_for(output_format: OutputFormat) -> type[Adapter]:
    """The generic adapter for ``output_format`` (``"text"`` or ``"jsonl"``)."""
    if output_format == "text":
        return TextAdapter
    if output_format == "jsonl":
        return JsonLinesAdapter
    raise ValueError(f"output_format must be 'text' or 'jsonl', got {output_format!r}")
