"""The prompts: JSON lines or --template with --files, checked first, then streamed lazily."""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

import attrs

from .._options import BadUsage

STDIN = "-"
"""INPUT and ``-o`` OUTPUT name standard input and output so."""
MAX_INPUT_DEPTH = 64
"""How deeply the other fields of an input line may nest (they are written back out)."""
PROMPT_FIELD = "prompt"


def id_key(item_id: str | int) -> str:
    """The one id an input or output id stands for: an integer id is the same id as its
    decimal digits as a string (``1`` and ``"1"`` are one id; ``"01"`` is another)."""
    return item_id if isinstance(item_id, str) else str(item_id)


@attrs.define
class MapItem:
    id: str | int
    prompt: str
    problem: str | None = None  # could not even build the prompt (an unreadable file)
    attempts: int = 0
    duration_s: float = 0.0
    started: float = 0.0
    extra: dict[str, Any] | None = None  # the input line's other fields, written back out


class PromptSource(Protocol):
    def check(self) -> set[str]:
        """First pass: every id's `id_key` (raises `BadUsage` on the first bad line)."""
        ...

    def items(self, skip: set[str]) -> Iterator[MapItem]:
        """Second pass: the items, lazily, except those whose `id_key` is in ``skip``."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None:
        """Remove what the source made for itself (stdin's spool file)."""
        ...


def _depth_over(value: object, limit: int) -> bool:
    """Whether ``value`` nests containers deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


@attrs.frozen
class _JsonlSource:
    path: str
    name: str | None = None  # what to call the input (stdin's spool file is not its name)
    spooled: bool = False  # remove the file on close

    def describe(self) -> str:
        return self.name or self.path

    def close(self) -> None:
        if self.spooled:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def check(self) -> set[str]:
        ids: set[str] = set()
        try:
            with open(self.path, "rb") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    item = self._parse(line, number)
                    key = id_key(item.id)
                    if key in ids:
                        raise BadUsage(f"{self._where(number)}: duplicate id {_shown(item.id)}")
                    ids.add(key)
        except OSError as exc:
            raise BadUsage(f"cannot read {self.describe()}: {exc.strerror or exc}") from exc
        return ids

    def _where(self, number: int) -> str:
        return f"{self.describe()} line {number}"

    def _parse(self, line: bytes, number: int) -> MapItem:
        where = self._where(number)
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise BadUsage(f"{where}: not valid JSON ({exc})") from exc
        except RecursionError:
            raise BadUsage(f"{where}: not usable JSON (nested too deeply)") from None
        if not isinstance(obj, dict):
            raise BadUsage(f"{where}: not a JSON object")
        if "id" not in obj or obj["id"] is None:
            raise BadUsage(f'{where}: missing "id"')
        item_id = obj.pop("id")
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            raise BadUsage(f'{where}: "id" must be a string or an integer, got {item_id!r}')
        prompt = obj.pop(PROMPT_FIELD, None)
        if not isinstance(prompt, str):
            what = "missing" if prompt is None else f"a {type(prompt).__name__}"
            raise BadUsage(f'{where}: "prompt" must be a string ({what}) for id {item_id!r}')
        if not prompt.strip():
            raise BadUsage(f'{where}: "prompt" is empty for id {item_id!r}')
        if _depth_over(obj, MAX_INPUT_DEPTH):
            raise BadUsage(
                f"{where}: not usable JSON (nested too deeply: the fields other than "
                f'"prompt" may nest {MAX_INPUT_DEPTH} levels)'
            )
        return MapItem(item_id, prompt, extra=obj or None)

    def items(self, skip: set[str]) -> Iterator[MapItem]:
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = self._parse(line, number)
                except BadUsage:
                    continue  # the file changed since the first pass
                if id_key(item.id) not in skip:
                    yield item


def _shown(item_id: str | int) -> str:
    """An id as a duplicate-id error shows it, saying the rule when it is made of digits."""
    key = id_key(item_id)
    if re.fullmatch(r"-?[0-9]+", key):
        return f'{item_id!r} ({key} and "{key}" are one id)'
    return repr(item_id)


def spool_stdin(stream: BinaryIO | None = None) -> str:
    """Copy standard input to a private temporary file (0600), so that it can be read twice
    in bounded memory; returns its path (the caller removes it)."""
    source = stream if stream is not None else sys.stdin.buffer
    fd, path = tempfile.mkstemp(prefix="llmsup-map-stdin-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "wb") as spool:
            shutil.copyfileobj(source, spool, 1024 * 1024)
    except BaseException:
        os.unlink(path)
        raise
    return path


_ESCAPES = re.compile(r"\\([nt\\])")
_PLACEHOLDERS = re.compile(r"\{(path|content)\}")


def unescape_template(template: str) -> str:
    r"""``\n``, ``\t`` and ``\\`` as typed on a command line, made real."""
    return _ESCAPES.sub(lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], template)


def render_template(template: str, path: str, content: str) -> str:
    """Substitute ``{path}`` and ``{content}`` in one pass (a file's own braces stay put)."""
    values = {"path": path, "content": content}
    return _PLACEHOLDERS.sub(lambda m: values[m.group(1)], template)


@attrs.frozen
class _FilesSource:
    template: str
    pattern: str

    def describe(self) -> str:
        return f"files {self.pattern}"

    def _paths(self) -> Iterator[str]:
        for path in sorted(glob.iglob(self.pattern, recursive=True)):
            if os.path.isfile(path):
                yield path

    def close(self) -> None:
        return None

    def check(self) -> set[str]:
        ids: set[str] = set(self._paths())
        if not ids:
            raise BadUsage(f"--files {self.pattern!r} matches no file")
        return ids

    def items(self, skip: set[str]) -> Iterator[MapItem]:
        for path in self._paths():
            if path in skip:
                continue
            try:
                with open(path, "rb") as f:
                    content = f.read().decode("utf-8", errors="replace")
            except OSError as exc:
                yield MapItem(path, "", problem=f"cannot read {path}: {exc.strerror or exc}")
                continue
            yield MapItem(path, render_template(self.template, path, content))


def source_from_args(args: argparse.Namespace) -> PromptSource:
    if args.template is not None or args.files is not None:
        if args.input is not None:
            raise BadUsage("give either INPUT or --template with --files, not both")
        if args.template is None or args.files is None:
            raise BadUsage("--template and --files go together")
        if not args.template.strip():
            raise BadUsage("--template is empty")
        return _FilesSource(unescape_template(args.template), args.files)
    if args.input is None:
        raise BadUsage("map needs INPUT (JSON lines, or - for stdin) or --template with --files")
    if args.input == STDIN:
        return _JsonlSource(spool_stdin(), name="stdin", spooled=True)
    return _JsonlSource(args.input)
