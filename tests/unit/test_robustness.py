"""Never raise on unknown input: every adapter and classifier takes arbitrary JSON and
lines.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors import (
    Adapter,
    ClaudeAdapter,
    ClaudeClassifier,
    CodexAdapter,
    CodexClassifier,
    ErrorReport,
    Event,
    FieldMapAdapter,
    FinalResult,
    GeminiAdapter,
    GeminiClassifier,
    RawEvent,
    SessionStarted,
    TextDelta,
    gemini_stderr_watch,
)

from .transcripts import process_exit

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
KNOWN_TYPES = [
    "system", "stream_event", "assistant", "user", "result", "rate_limit_event",
    "thread.started", "item.started", "item.completed", "turn.completed", "turn.failed",
    "error", "init", "message", "tool_use", "tool_result",
]  # fmt: skip
KNOWN_KEYS = [
    "type", "subtype", "message", "event", "content", "result", "is_error", "api_error_status",
    "usage", "session_id", "item", "error", "rate_limit_info", "role", "delta", "stats",
    "status", "thread_id", "text", "errors", "response", "parent_tool_use_id", "severity",
]  # fmt: skip
typed_objects = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(KNOWN_TYPES),
    st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=6),
)


def _adapters() -> list[Adapter]:
    return [
        ClaudeAdapter(),
        CodexAdapter(),
        GeminiAdapter(),
        FieldMapAdapter(
            text_field="a.b", delta_field="content", session_field="session_id", error_field="error"
        ),
    ]


@settings(max_examples=300, deadline=None)
@given(objects=st.lists(typed_objects | json_values, max_size=6))
def test_arbitrary_json_never_makes_an_adapter_raise(objects: list[Any]) -> None:
    for adapter in _adapters():
        events: list[Event] = []
        for obj in objects:
            events.extend(adapter.parse_line(json.dumps(obj)))
        events.extend(adapter.finish())
        for classifier in (ClaudeClassifier(), CodexClassifier(), GeminiClassifier()):
            classifier.classify(process_exit(events, 1))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(max_size=80), max_size=6))
def test_arbitrary_lines_never_make_an_adapter_raise(lines: list[str]) -> None:
    for adapter in _adapters():
        for line in ["{", *lines, "}"]:
            for event in adapter.parse_line(line):
                assert isinstance(
                    event, RawEvent | SessionStarted | TextDelta | FinalResult | ErrorReport
                )
        adapter.finish()
    for line in lines:
        gemini_stderr_watch(line)
        gemini_stderr_watch("Attempt 1 failed" + line)
