"""The output file: each item's line, one whole line per write(), and what --resume finds."""

from __future__ import annotations

import json
import os
from typing import Any

import attrs
from pydantic import BaseModel

from actors import LLMError
from supervisor import Result

from ._input import MapItem


def result_line(
    item: MapItem, outcome: Result | LLMError, cli: str, *, structured: bool
) -> dict[str, Any]:
    """The output line of a finished item (``cli``: the stage's, when the outcome names none).

    ``structured`` (``--output-schema``): the line has ``data`` instead of ``text``.
    """
    ok = isinstance(outcome, Result)
    line: dict[str, Any] = {"id": item.id, "ok": ok}
    if structured:
        data = outcome.data if isinstance(outcome, Result) else None
        line["data"] = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    else:
        line["text"] = outcome.text if isinstance(outcome, Result) else None
    if isinstance(outcome, Result):
        line["error"] = None
    else:
        line["error"] = {
            "category": outcome.category.value,
            "message": outcome.message,
            "retry_after": outcome.retry_after,
        }
    usage = outcome.usage if isinstance(outcome, Result) else None
    line.update(
        attempts=item.attempts,
        cli=outcome.cli or cli,
        duration_s=round(item.duration_s, 3),
        usage=usage.model_dump(mode="json") if usage is not None else None,
        cost=outcome.cost_usd if isinstance(outcome, Result) else None,
    )
    return line


class OutputFile:
    """The output file, appended one whole line per ``write()``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        try:
            text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            data = (text + "\n").encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from a \ud800 escape in the input
            data = (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")
        view = memoryview(data)
        while view:  # one write() for a regular file; the loop only covers a short write
            view = view[os.write(self._fd, view) :]
        self.lines += 1

    def close(self) -> None:
        os.close(self._fd)


@attrs.define
class PreviousRun:
    done: set[str | int] = attrs.Factory(set)
    failed: int = 0
    unreadable_lines: int = 0
    torn: bool = False


def scan_output(path: str, input_ids: set[str | int]) -> PreviousRun:
    """What an earlier run wrote (for ``--resume``); cuts off a torn last line."""
    previous = PreviousRun()
    good_end = 0
    fix_newline = False
    with open(path, "rb") as f:
        for line in f:
            record = _record_of(line)
            if not line.endswith(b"\n"):
                if record is None:
                    previous.torn = True
                    break
                fix_newline = True  # a whole record that only lacks its newline
            good_end += len(line)
            if record is None:
                previous.unreadable_lines += 1
                continue
            item_id = record["id"]
            if item_id in input_ids and item_id not in previous.done:
                previous.done.add(item_id)
                previous.failed += record.get("ok") is not True
    if previous.torn:
        os.truncate(path, good_end)
    elif fix_newline:
        with open(path, "ab") as f:
            f.write(b"\n")
    return previous


def _record_of(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not one of our lines
        return None
    if not isinstance(record, dict):
        return None
    item_id = record.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        return None
    return record
