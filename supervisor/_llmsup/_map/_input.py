"""The prompts: JSON lines or --template with --files, checked first, then streamed lazily."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
from collections.abc import Iterator
from typing import Protocol

import attrs

from .._options import BadUsage


@attrs.define
class MapItem:
    id: str | int
    prompt: str
    problem: str | None = None  # could not even build the prompt (an unreadable file)
    attempts: int = 0
    duration_s: float = 0.0
    started: float = 0.0


class PromptSource(Protocol):
    def check(self) -> set[str | int]:
        """First pass: every id (raises `BadUsage` on the first bad line)."""
        ...

    def items(self, skip: set[str | int]) -> Iterator[MapItem]:
        """Second pass: the items, lazily, except those in ``skip``."""
        ...

    def describe(self) -> str: ...


@attrs.frozen
class _JsonlSource:
    path: str

    def describe(self) -> str:
        return self.path

    def check(self) -> set[str | int]:
        ids: set[str | int] = set()
        try:
            with open(self.path, "rb") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    item_id, _prompt = self._parse(line, number)
                    if item_id in ids:
                        raise BadUsage(f"{self.path} line {number}: duplicate id {item_id!r}")
                    ids.add(item_id)
        except OSError as exc:
            raise BadUsage(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        return ids

    def _parse(self, line: bytes, number: int) -> tuple[str | int, str]:
        where = f"{self.path} line {number}"
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
        item_id = obj["id"]
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            raise BadUsage(f'{where}: "id" must be a string or an integer, got {item_id!r}')
        prompt = obj.get("prompt")
        if not isinstance(prompt, str):
            what = "missing" if prompt is None else f"a {type(prompt).__name__}"
            raise BadUsage(f'{where}: "prompt" must be a string ({what}) for id {item_id!r}')
        return item_id, prompt

    def items(self, skip: set[str | int]) -> Iterator[MapItem]:
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item_id, prompt = self._parse(line, number)
                except BadUsage:
                    continue  # the file changed since the first pass
                if item_id not in skip:
                    yield MapItem(item_id, prompt)


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

    def check(self) -> set[str | int]:
        ids: set[str | int] = set(self._paths())
        if not ids:
            raise BadUsage(f"--files {self.pattern!r} matches no file")
        return ids

    def items(self, skip: set[str | int]) -> Iterator[MapItem]:
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
        return _FilesSource(unescape_template(args.template), args.files)
    if args.input is None:
        raise BadUsage("map needs INPUT (JSON lines) or --template with --files")
    return _JsonlSource(args.input)
