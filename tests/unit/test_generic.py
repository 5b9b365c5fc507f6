"""`generic()` and `FieldMapAdapter`: dotted field paths and the user's classifier patterns."""

from __future__ import annotations

import pytest

import actors
from actors import ErrorCategory, FieldMapAdapter, TextDelta

from .transcripts import events_of, failure_of, feed, final_result, process_exit


def test_field_map_adapter_reads_dotted_paths() -> None:
    adapter = FieldMapAdapter(
        delta_field="message.content", session_field="id", error_field="error"
    )
    lines = [
        '{"id": "s1", "message": {"role": "assistant", "content": "Hel"}, "error": null}',
        '{"id": "s1", "message": {"content": "lo"}}',
        "not json at all",
        '{"done": true}',
    ]
    events = feed(adapter, lines)
    assert [type(e).__name__ for e in events] == [
        "SessionStarted",
        "TextDelta",
        "TextDelta",
        "RawEvent",
        "RawEvent",
        "FinalResult",
    ]
    final = final_result(events)
    assert (final.text, final.session_id) == ("Hello", "s1")
    lists = FieldMapAdapter(delta_field="choices.0.delta.content")
    assert final_result(feed(lists, ['{"choices": [{"delta": {"content": "x"}}]}'])).text == "x"


def test_field_map_text_field_is_the_whole_answer() -> None:
    events = feed(FieldMapAdapter(text_field="response"), ['{"response": "all of it"}'])
    assert [d.text for d in events_of(events, TextDelta)] == ["all of it"]
    assert final_result(events).text == "all of it"


def test_generic_user_patterns_are_added_to_the_defaults() -> None:
    spec = actors.generic(
        ["mytool"],
        output_format="jsonl",
        delta_field="text",
        error_field="error",
        rate_limit_patterns=[r"slow down, friend"],
        permanent_patterns=[r"model \S+ not found"],
    )
    classifier = spec.classifier
    adapter = spec.adapter_factory()
    events = feed(adapter, ['{"error": {"message": "slow down, friend", "code": 0}}'])
    assert failure_of(classifier, process_exit(events, 1)).category is ErrorCategory.RATE_LIMIT
    assert (
        failure_of(classifier, process_exit([], 1, "model llama9 not found")).category
        is ErrorCategory.PERMANENT
    )
    # The defaults still apply.
    assert (
        failure_of(classifier, process_exit([], 1, "HTTP 429 Too Many Requests")).category
        is ErrorCategory.RATE_LIMIT
    )
    assert (
        failure_of(classifier, process_exit([], 1, "invalid api key")).category
        is ErrorCategory.AUTH_FAILURE
    )
    with pytest.raises(ValueError, match="not a valid regular expression"):
        actors.generic(["x"], auth_patterns=["(unclosed"])
    with pytest.raises(ValueError, match="jsonl"):
        actors.generic(["x"], text_field="a")
    assert actors.generic(["/usr/bin/llm"]).name == "llm"
