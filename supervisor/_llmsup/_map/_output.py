"""The output: each item's line, one whole line per write(); what --resume and
--retry-failed find; --retry-failed's new file, renamed over the old one at the end."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import attrs
from pydantic import BaseModel

from actors import LLMError
from supervisor import Result

from ._input import MapItem, id_key

OUTPUT_FIELDS = frozenset(
    {"id", "ok", "text", "data", "error", "attempts", "cli", "duration_s", "usage", "cost"}
)
NODE_FIELD = "node"
"""With ``--ray``, the node that ran the item."""
INPUT_FIELD = "input"
"""Where an input line's fields that share a name with an output field (or ``node`` or
``input``) go."""
RESERVED_FIELDS = OUTPUT_FIELDS | {NODE_FIELD, INPUT_FIELD}


def with_input_fields(line: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """The output line plus the input line's other fields: at the top level, except those
    named like an output field (or ``node``, ``input``), which go under ``"input": {...}``."""
    if not extra:
        return line
    clashing = {}
    for name, value in extra.items():
        if name in RESERVED_FIELDS:
            clashing[name] = value
        else:
            line[name] = value
    if clashing:
        line[INPUT_FIELD] = clashing
    return line


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
    return with_input_fields(line, item.extra)


def encode_line(record: dict[str, Any]) -> bytes:
    """One output line, newline included."""
    try:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a \ud800 escape in the input
        return (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # one write() for a regular file; the loop only covers a short write
        view = view[os.write(fd, view) :]


class OutputFile:
    """The output file, appended one whole line per ``write()``; ``-`` is standard output.

    ``closed_reader`` turns true when standard output's reader went away (EPIPE): the line
    was not written, and the run should stop."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            sys.stdout.flush()
            self._fd = os.dup(sys.stdout.fileno())
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lines = 0
        self.closed_reader = False

    def write(self, record: dict[str, Any]) -> None:
        if self.closed_reader:
            return
        try:
            _write_all(self._fd, encode_line(record))
        except BrokenPipeError:
            self.closed_reader = True
            return
        self.lines += 1

    def close(self) -> None:
        os.close(self._fd)


class ReplacingOutput(OutputFile):
    """``--retry-failed``: a new file in the output's folder, renamed over the old one by
    `close` (the rename is the commit; until then the old file is untouched).

    It starts with the old lines that are kept (every line but those of ``retry``, the
    first line of each id only); the lines of this run are appended as they finish; `close`
    appends the old lines of the ``retry`` ids that got no new line (interrupted), then
    renames. Whatever stops the run, the output ends up one whole line per id."""

    def __init__(self, path: str, retry: set[str]) -> None:
        self.target = path
        self._retry = retry
        self.written: set[str] = set()
        folder, name = os.path.split(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".partial")
        self.path = tmp
        self._fd = fd
        self.lines = 0
        self.closed_reader = False
        try:
            os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
            for key, line in _old_lines(path):
                if key is None or key not in retry:
                    _write_all(fd, line)
        except BaseException:
            self._discard()
            raise

    def write(self, record: dict[str, Any]) -> None:
        super().write(record)
        self.written.add(id_key(record["id"]))

    def close(self) -> None:
        """Complete the new file and rename it over the old one."""
        try:
            for key, line in _old_lines(self.target):
                if key is not None and key in self._retry and key not in self.written:
                    _write_all(self._fd, line)
            os.fsync(self._fd)
        except BaseException:
            self._discard()
            raise
        os.close(self._fd)
        os.replace(self.path, self.target)
        _sync_folder(self.target)

    def _discard(self) -> None:
        os.close(self._fd)
        os.unlink(self.path)


def _old_lines(path: str) -> Iterator[tuple[str | None, bytes]]:
    """Each whole line of an output file once: (its id's key, or None when it is not one of
    our lines, and the line with its newline); a later line of an id already seen and a
    torn last line are left out."""
    seen: set[str] = set()
    with open(path, "rb") as f:
        for line in f:
            record = _record_of(line)
            if not line.endswith(b"\n"):
                if record is None:
                    return  # torn
                line += b"\n"
            if record is None:
                yield None, line
                continue
            key = id_key(record["id"])
            if key not in seen:
                seen.add(key)
                yield key, line


def _sync_folder(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@attrs.define
class PreviousRun:
    done: set[str] = attrs.Factory(set)  # id keys: skipped by this run
    failed: int = 0  # of those
    retry: set[str] = attrs.Factory(set)  # --retry-failed: id keys of failed lines to run
    unreadable_lines: int = 0
    torn: bool = False


def scan_output(path: str, input_ids: set[str], *, retry_failed: bool = False) -> PreviousRun:
    """What an earlier run wrote (for ``--resume``): the ids it holds (the first line of
    each), and how many failed; cuts off a torn last line. With ``retry_failed`` the failed
    ones are in ``retry`` instead of ``done``, and the file is not changed (the new file
    `ReplacingOutput` writes leaves a torn line out)."""
    previous = PreviousRun()
    good_end = 0
    fix_newline = False
    seen: set[str] = set()
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
            key = id_key(record["id"])
            if key not in input_ids or key in seen:
                continue
            seen.add(key)
            failed = record.get("ok") is not True
            if retry_failed and failed:
                previous.retry.add(key)
            else:
                previous.done.add(key)
                previous.failed += failed
    if retry_failed:
        return previous
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
