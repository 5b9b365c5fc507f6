"""Feeding sample CLI output to an adapter and judging the exit, for the adapter tests.

Golden files are real CLI output (``tests/data/transcripts``); the other
sample lines were captured from the real CLIs (claude 2.1.197, codex 0.169.0, gemini 0.61.0)
against a local stub server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from actors import Adapter, ErrorReport, Event, FinalResult, LLMError, ProcessExit

# The project's own copy: the tests must not depend on a path outside the repository.
TRANSCRIPTS = Path(__file__).resolve().parents[1] / "data" / "transcripts"


def transcript_text(name: str) -> str:
    """A golden transcript's text; a missing one is a failure, never a skip."""
    return (TRANSCRIPTS / name).read_text(encoding="utf-8")


def transcript_lines(name: str) -> list[str]:
    return transcript_text(name).splitlines()


def feed(adapter: Adapter, lines: Iterable[str], *, stop_on_terminal: bool = True) -> list[Event]:
    """Events for ``lines`` the way the actor collects them: it stops reading at the first
    terminal report (it then stops the CLI) and only asks ``finish()`` after a full read."""
    events: list[Event] = []
    for line in lines:
        events.extend(adapter.parse_line(line))
        if stop_on_terminal and any(isinstance(e, ErrorReport) and e.terminal for e in events):
            return events
    events.extend(adapter.finish())
    return events


def process_exit(
    events: Sequence[Event], exit_code: int | None, stderr: str = "", cli: str = "cli"
) -> ProcessExit:
    return ProcessExit(cli=cli, exit_code=exit_code, stderr_tail=stderr, events=tuple(events))


def failure_of(classifier: Any, exit: ProcessExit) -> LLMError:
    error = classifier.classify(exit)
    assert isinstance(error, LLMError), f"expected a failure for {exit!r}"
    return error


def events_of(events: Sequence[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def final_result(events: Sequence[Event]) -> FinalResult:
    finals = events_of(events, FinalResult)
    assert len(finals) == 1, events
    result = finals[0]
    assert isinstance(result, FinalResult)
    return result


def json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj)
