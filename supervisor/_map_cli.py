"""``llmsup map INPUT -o OUTPUT``: run many prompts, one JSON line out per prompt.

Input
    A JSON-lines file of ``{"id": ..., "prompt": "..."}`` objects (ids are strings or
    integers; blank lines are skipped), or ``--template 'Analyze {path}:\\n{content}' --files
    'src/**/*.py'``: one prompt per matching file (``**`` is recursive), whose id is the path.
    ``{path}`` and ``{content}`` are substituted in one pass (other braces are left alone, so
    JSON examples in a template need no escaping), and the ``\\n``/``\\t`` escapes of a
    template typed on a command line become a newline/tab (``\\\\`` is a backslash).

    The input is read twice: a first pass checks every line and keeps only the set of ids
    (a bad JSON line, a missing, duplicate or non-string/integer id, or a missing or
    non-string prompt is a one-line usage error naming the line, exit status 2, before
    anything runs or any output is written); a second pass streams the prompts lazily into
    `Supervisor.map_stream`, so 100k-line inputs run in bounded memory.

Output
    One JSON line per input, appended (one ``write()`` per line, then flushed) as each item
    finishes, in completion order: ``id``, ``ok``, ``text`` (``data`` instead with
    ``--output-schema``), ``error`` (``{category, message, retry_after}``, null when ok),
    ``attempts`` (across every CLI that was tried), ``cli`` (who answered, or who failed
    last), ``duration_s`` (wall time of the calls, queueing for a process slot included),
    ``usage`` and ``cost`` (USD) when the CLI reported them. An existing non-empty output
    file is refused unless ``--resume`` is given.

``--output-schema``
    ``module:Model`` (a pydantic model; the current directory is importable) or the path of
    a JSON Schema file. A schema file is both shown to the model (in the prompt) and checked
    with a small validator that knows ``type``, ``enum``, ``const``, ``properties``,
    ``required``, ``additionalProperties``, ``items``, ``minimum``/``maximum``,
    ``minLength``/``maxLength`` and ``minItems``/``maxItems``; other keywords (``$ref``,
    ``anyOf``, ``pattern``, ...) are not checked.

``--resume``
    Skips every id already present in the output file, whether it succeeded or failed
    (delete a failed line to run it again); a torn last line (no newline: the previous run
    was killed mid-write, which a single ``write()`` makes unlikely) is cut off first. The
    exit status still counts the failures kept from before.

Ctrl+C / SIGTERM
    Stops the run: every CLI process tree is ended (the supervisors' stop sequence), no line
    is half-written, items in flight are not written (``--resume`` runs them), exit status
    130 (143 for SIGTERM).

Fallbacks
    ``--fallback NAME`` (repeatable) opens one supervisor per CLI for the whole run. An item
    whose call fails with RATE_LIMIT, AUTH_FAILURE or CIRCUIT_OPEN (the CLI's breaker, from
    ``--failure-threshold``, is open) moves on to the next CLI. Every CLI but the last fails
    fast on an open breaker (so items move at once); the last one lets items wait up to
    `LAST_BREAKER_WAIT_S` for its breaker instead of failing them en masse.

Memory
    Concurrency is bounded by ``--concurrency`` and by ``--memory-budget`` (``2G``, ``500M``,
    ...; default: `BUDGET_SHARE` of MemAvailable in /proc/meminfo): each CLI runs at most
    ``budget // estimate`` processes at once (at least one). The estimate starts at a
    per-CLI default (`DEFAULT_ESTIMATES_MIB`) and follows observation: the process trees
    this run spawns are sampled every `SAMPLE_EVERY_S` through /proc (``VmHWM``, the peak
    resident size, summed over each tree); once `TRUSTED_AFTER` processes of a CLI were
    seen, its estimate is the largest observed peak times `OBSERVED_MARGIN`, and the
    process limit is adjusted while the run goes on. Each CLI's limit is computed against
    the whole budget; CLIs that run at the same time (fallbacks) do not split it.

Progress and summary go to stderr: a rich progress bar on a terminal, else a plain line
every `PLAIN_EVERY_S` seconds or 10 %. Exit status: 0 when every item succeeded, 1 when
any failed, 2 for usage errors, 130/143 when interrupted.
"""

from __future__ import annotations

import argparse
import array
import glob
import importlib
import json
import math
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol, TextIO

import attrs
import trio
from pydantic import BaseModel, RootModel, model_validator

from actors._errors import ErrorCategory, LLMError
from actors._spec import CliSpec

from ._cli_options import (
    Policies,
    UsageError,
    add_cli_options,
    fallback_specs,
    policies_from_args,
    spec_from_args,
)
from ._result import Result
from ._supervisor import Supervisor, open_supervisor

MIB = 1024 * 1024
DEFAULT_ESTIMATES_MIB: dict[str, int] = {"claude": 320, "gemini": 260, "codex": 150}
"""Starting per-process memory estimates; any other CLI (fake, --command) starts at 30 MiB."""
OTHER_ESTIMATE_MIB = 30
BUDGET_SHARE = 0.5
"""The default memory budget, as a share of MemAvailable."""
SAMPLE_EVERY_S = 0.2
TRUSTED_AFTER = 3
"""Processes of a CLI to observe before its observed peak replaces the default estimate."""
OBSERVED_MARGIN = 1.2
PLAIN_EVERY_S = 2.0
LAST_BREAKER_WAIT_S = 120.0
MOVE_TO_FALLBACK = frozenset(
    {ErrorCategory.RATE_LIMIT, ErrorCategory.AUTH_FAILURE, ErrorCategory.CIRCUIT_OPEN}
)
INTERRUPT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def add_map_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``map`` subcommand's own arguments plus the shared CLI and policy options."""
    parser.add_argument(
        "input", nargs="?", metavar="INPUT", help='JSON lines: {"id": ..., "prompt": ...}'
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT", help="JSON lines out, one per input"
    )
    parser.add_argument(
        "--template",
        help=r"prompt template for --files: {path} and {content} are substituted; \n is a newline",
    )
    parser.add_argument(
        "--files", metavar="GLOB", help="one prompt per matching file (** is recursive); id = path"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip the ids already in OUTPUT (answered or failed) and append the rest",
    )
    parser.add_argument(
        "--output-schema",
        metavar="module:Model|FILE",
        help="answers must be JSON of this pydantic model or JSON Schema file; written as data",
    )
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="memory for CLI processes, e.g. 2G or 500M (default: half of MemAvailable)",
    )
    add_cli_options(parser, concurrency=8)


# ------------------------------------------------------------------------------ input


@attrs.define
class _Item:
    id: str | int
    prompt: str
    problem: str | None = None  # could not even build the prompt (an unreadable file)
    attempts: int = 0
    duration_s: float = 0.0
    started: float = 0.0


class _Source(Protocol):
    def check(self) -> set[str | int]:
        """First pass: every id (raises `UsageError` on the first bad line)."""
        ...

    def items(self, skip: set[str | int]) -> Iterator[_Item]:
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
                        raise UsageError(f"{self.path} line {number}: duplicate id {item_id!r}")
                    ids.add(item_id)
        except OSError as exc:
            raise UsageError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        return ids

    def _parse(self, line: bytes, number: int) -> tuple[str | int, str]:
        where = f"{self.path} line {number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(obj, dict):
            raise UsageError(f"{where}: not a JSON object")
        if "id" not in obj or obj["id"] is None:
            raise UsageError(f'{where}: missing "id"')
        item_id = obj["id"]
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            raise UsageError(f'{where}: "id" must be a string or an integer, got {item_id!r}')
        prompt = obj.get("prompt")
        if not isinstance(prompt, str):
            what = "missing" if prompt is None else f"a {type(prompt).__name__}"
            raise UsageError(f'{where}: "prompt" must be a string ({what}) for id {item_id!r}')
        return item_id, prompt

    def items(self, skip: set[str | int]) -> Iterator[_Item]:
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item_id, prompt = self._parse(line, number)
                except UsageError:
                    continue  # the file changed since the first pass
                if item_id not in skip:
                    yield _Item(item_id, prompt)


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
            raise UsageError(f"--files {self.pattern!r} matches no file")
        return ids

    def items(self, skip: set[str | int]) -> Iterator[_Item]:
        for path in self._paths():
            if path in skip:
                continue
            try:
                with open(path, "rb") as f:
                    content = f.read().decode("utf-8", errors="replace")
            except OSError as exc:
                yield _Item(path, "", problem=f"cannot read {path}: {exc.strerror or exc}")
                continue
            yield _Item(path, render_template(self.template, path, content))


def _source_from_args(args: argparse.Namespace) -> _Source:
    if args.template is not None or args.files is not None:
        if args.input is not None:
            raise UsageError("give either INPUT or --template with --files, not both")
        if args.template is None or args.files is None:
            raise UsageError("--template and --files go together")
        return _FilesSource(unescape_template(args.template), args.files)
    if args.input is None:
        raise UsageError("map needs INPUT (JSON lines) or --template with --files")
    return _JsonlSource(args.input)


# ----------------------------------------------------------------------------- output


class _Output:
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
class _Previous:
    done: set[str | int] = attrs.Factory(set)
    failed: int = 0
    unreadable_lines: int = 0
    torn: bool = False


def _scan_output(path: str, input_ids: set[str | int]) -> _Previous:
    """What an earlier run wrote (for ``--resume``); cuts off a torn last line."""
    previous = _Previous()
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
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    item_id = record.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        return None
    return record


# ----------------------------------------------------------------------------- schema


def load_output_model(spec: str) -> type[BaseModel]:
    """``module:Model`` (importable from the current directory) or a JSON Schema file."""
    if os.path.isfile(spec):
        try:
            with open(spec, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--output-schema {spec}: not a readable JSON file ({exc})") from exc
        if not isinstance(schema, dict):
            raise UsageError(f"--output-schema {spec}: a JSON Schema must be an object")
        return schema_model(schema, Path(spec).stem)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--output-schema {spec!r}: no such file, and not module:Model")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"--output-schema: cannot import {module_name}: {exc}") from exc
    model = getattr(module, attr, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise UsageError(f"--output-schema: {spec} is not a pydantic model")
    return model


def schema_model(schema: dict[str, Any], title: str = "Output") -> type[BaseModel]:
    """A model whose JSON schema is ``schema`` and that checks values with `schema_problems`."""

    class SchemaOutput(RootModel[Any]):
        @model_validator(mode="after")
        def _matches_schema(self) -> SchemaOutput:
            problems = schema_problems(self.root, schema)
            if problems:
                more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
                raise ValueError("; ".join(problems[:5]) + more)
            return self

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return schema

    SchemaOutput.__name__ = SchemaOutput.__qualname__ = re.sub(r"\W", "_", title) or "Output"
    return SchemaOutput


_JSON_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = _JSON_TYPES.get(name)
    return expected is None or isinstance(value, expected)


def schema_problems(value: Any, schema: Any, where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the subset described in the module docstring)."""
    if not isinstance(schema, dict):
        return []
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, name) for name in names):
            return [f"{where}: expected {' or '.join(names)}, got {json.dumps(value)[:60]}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {json.dumps(value)[:60]} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: must be {json.dumps(schema['const'])}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: more than {schema['maxItems']} items")
        for index, element in enumerate(value):
            problems += schema_problems(element, schema.get("items"), f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        problems += [
            f"{where}: missing {name!r}" for name in schema.get("required", ()) if name not in value
        ]
        extra = schema.get("additionalProperties", True)
        for key, element in value.items():
            if key in properties:
                problems += schema_problems(element, properties[key], f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: unexpected {key!r}")
            else:
                problems += schema_problems(element, extra, f"{where}.{key}")
    return problems


# ----------------------------------------------------------------------------- memory

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``2G``, ``500M``, ``1.5GiB``, ``64k`` or plain bytes; binary multiples."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"--memory-budget {text!r}: expected a size such as 2G or 500M")
    power = " kmgt".index(match.group(2).lower() or " ")
    size = int(float(match.group(1)) * 1024**power)
    if size < 1:
        raise UsageError(f"--memory-budget {text!r}: must be more than 0")
    return size


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_peak_bytes(pid: int) -> int | None:
    """Peak resident size (VmHWM) of a live process plus its descendants; None if gone."""
    kib = _tree_peak_kib(pid)
    return None if kib is None else kib * 1024


def _tree_peak_kib(pid: int) -> int | None:
    own = _status_kib(pid, "VmHWM:")
    if own is None:
        return None
    return own + sum(_tree_peak_kib(child) or 0 for child in _children(pid))


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie: no memory any more


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        pass
    return found


def _mib(size: float) -> str:
    if size >= 1024 * MIB:
        return f"{size / (1024 * MIB):.1f} GiB"
    return f"{size / MIB:.0f} MiB" if size >= 10 * MIB else f"{size / MIB:.1f} MiB"


# ------------------------------------------------------------------------------ stages


@attrs.define
class _Stage:
    """One CLI of the chain, with its supervisor and its memory observations."""

    index: int
    spec: CliSpec
    limit: int  # --concurrency
    budget: int | None
    default_estimate: int
    concurrency: int = 0
    start_concurrency: int = 0
    sup: Supervisor | None = None
    pids: dict[int, bool] = attrs.Factory(dict)  # pid -> seen alive at least once
    peak: int = 0
    observed: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def estimate(self) -> int:
        observed = int(self.peak * OBSERVED_MARGIN)
        if self.observed >= TRUSTED_AFTER:
            return max(observed, MIB)
        return max(self.default_estimate, observed)

    def allowed(self) -> int:
        if self.budget is None:
            return self.limit
        return max(1, min(self.limit, self.budget // self.estimate()))

    def on_spawn(self, pid: int) -> None:
        self.pids[pid] = False

    def sample(self) -> None:
        for pid, seen in list(self.pids.items()):
            peak = tree_peak_bytes(pid)
            if peak is None:
                del self.pids[pid]
                continue
            if not seen:
                self.pids[pid] = True
                self.observed += 1
            self.peak = max(self.peak, peak)
        self.adjust()

    def adjust(self) -> None:
        allowed = self.allowed()
        if allowed != self.concurrency and self.sup is not None:
            self.concurrency = allowed
            # The supervisor was opened with --concurrency slots of read-ahead; its process
            # limiter is what the memory budget narrows.
            self.sup.set_concurrency(allowed)

    def breaker_state(self) -> str:
        breaker = self.sup.breaker if self.sup is not None else None
        return breaker.state.value if breaker is not None else "off"


class _Feed:
    """The prompts of one stage's ``map_stream``, remembering which item each index is."""

    def __init__(
        self,
        items: Iterator[_Item] | trio.MemoryReceiveChannel[_Item],
        on_problem: Callable[[_Item], None],
    ) -> None:
        self._items = items
        self._on_problem = on_problem
        self._next_index = 0
        self.pending: dict[int, _Item] = {}

    def __aiter__(self) -> _Feed:
        return self

    async def __anext__(self) -> str:
        while True:
            if isinstance(self._items, trio.MemoryReceiveChannel):
                try:
                    item = await self._items.receive()
                except trio.EndOfChannel:
                    raise StopAsyncIteration from None
            else:
                try:
                    item = next(self._items)
                except StopIteration:
                    raise StopAsyncIteration from None
            if item.problem is None:
                break
            self._on_problem(item)
        item.started = trio.current_time()
        self.pending[self._next_index] = item
        self._next_index += 1
        return item.prompt


# ------------------------------------------------------------------- tally and progress


@attrs.define
class _Tally:
    total: int
    ok: int = 0
    failed: Counter[str] = attrs.Factory(Counter)
    moved: int = 0
    by_cli: Counter[str] = attrs.Factory(Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    latencies: array.array[float] = attrs.Factory(lambda: array.array("d"))

    @property
    def done(self) -> int:
        return self.ok + self.failed.total()

    def failures(self) -> str:
        count = self.failed.total()
        if not count:
            return "0 failed"
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items()))
        return f"{count} failed ({parts})"

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


class _Progress(Protocol):
    def update(self, now: float) -> None: ...

    def close(self) -> None: ...


def _breakers(stages: list[_Stage]) -> str:
    if len(stages) == 1:
        state = stages[0].breaker_state()
        return "no breaker" if state == "off" else f"breaker {state}"
    return "breakers " + ", ".join(f"{s.name} {s.breaker_state()}" for s in stages)


def _rate(tally: _Tally, elapsed: float) -> float:
    return tally.done / elapsed if elapsed > 0 else 0.0


class _PlainProgress:
    """A line every `PLAIN_EVERY_S` seconds or every 10 % of the items, whichever first."""

    def __init__(self, tally: _Tally, stages: list[_Stage], started: float, stream: TextIO) -> None:
        self._tally = tally
        self._stages = stages
        self._started = started
        self._stream = stream
        self._last_time = started
        self._last_tenth = 0

    def update(self, now: float) -> None:
        tally = self._tally
        tenth = tally.done * 10 // tally.total if tally.total else 10
        if tenth <= self._last_tenth and now - self._last_time < PLAIN_EVERY_S:
            return
        self._last_tenth = max(tenth, self._last_tenth)
        self._last_time = now
        moved = f", {tally.moved} moved" if tally.moved else ""
        print(
            f"map: {tally.done}/{tally.total} done, {tally.failures()}{moved}, "
            f"{_rate(tally, now - self._started):.1f}/s, {_breakers(self._stages)}",
            file=self._stream,
            flush=True,
        )

    def close(self) -> None:
        return None


class _RichProgress:
    """A live progress bar (done/total, rate, ETA, failures, breakers) on a terminal."""

    def __init__(
        self, tally: _Tally, stages: list[_Stage], started: float, console: Any = None
    ) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._tally = tally
        self._stages = stages
        self._started = started
        self._progress = Progress(
            TextColumn("map"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console or Console(stderr=True),
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("map", total=tally.total, rate="", status="")
        self._progress.start()

    def update(self, now: float) -> None:
        tally = self._tally
        moved = f" · {tally.moved} moved" if tally.moved else ""
        self._progress.update(
            self._task,
            completed=tally.done,
            rate=f"{_rate(tally, now - self._started):.1f}/s",
            status=f"{tally.failures()}{moved} · {_breakers(self._stages)}",
        )

    def close(self) -> None:
        self._progress.stop()


def _progress(tally: _Tally, stages: list[_Stage], started: float) -> _Progress:
    if sys.stderr.isatty():
        try:
            return _RichProgress(tally, stages, started)
        except ImportError:
            pass
    return _PlainProgress(tally, stages, started, sys.stderr)


# -------------------------------------------------------------------------------- run


@attrs.define
class _Job:
    source: _Source
    skip: set[str | int]
    total: int
    previous: _Previous
    output: str
    output_model: type[BaseModel] | None
    specs: list[CliSpec]
    policies: Policies
    budget: int | None
    budget_note: str


def _prepare(args: argparse.Namespace) -> _Job:
    """Everything that can be a usage error, before anything runs or is written."""
    specs = [spec_from_args(args), *fallback_specs(args)]
    policies = policies_from_args(args)
    output_model = load_output_model(args.output_schema) if args.output_schema else None
    if args.memory_budget is not None:
        budget: int | None = parse_size(args.memory_budget)
        note = "--memory-budget"
    else:
        available = mem_available()
        budget = int(available * BUDGET_SHARE) if available else None
        note = f"{BUDGET_SHARE:.0%} of MemAvailable" if budget else "unknown MemAvailable"
    source = _source_from_args(args)
    input_ids = source.check()
    output = args.output
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise UsageError(f"-o {output}: no directory {parent}")
    previous = _Previous()
    if os.path.exists(output) and os.path.getsize(output) > 0:
        if not args.resume:
            raise UsageError(f"{output} exists; use --resume to complete it, or remove it")
        try:
            previous = _scan_output(output, input_ids)
        except OSError as exc:
            raise UsageError(f"cannot read {output}: {exc.strerror or exc}") from exc
    total = len(input_ids) - len(previous.done)
    return _Job(
        source=source,
        skip=previous.done,
        total=total,
        previous=previous,
        output=output,
        output_model=output_model,
        specs=specs,
        policies=policies,
        budget=budget,
        budget_note=note,
    )


@attrs.define
class _Run:
    job: _Job
    stages: list[_Stage]
    out: _Output
    tally: _Tally
    progress: _Progress | None = None

    def record(self, item: _Item, outcome: Result | LLMError, cli: str) -> None:
        ok = isinstance(outcome, Result)
        line: dict[str, Any] = {"id": item.id, "ok": ok}
        if self.job.output_model is not None:
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
        cost = outcome.cost_usd if isinstance(outcome, Result) else None
        line.update(
            attempts=item.attempts,
            cli=outcome.cli or cli,
            duration_s=round(item.duration_s, 3),
            usage=usage.model_dump(mode="json") if usage is not None else None,
            cost=cost,
        )
        self.out.write(line)
        tally = self.tally
        if isinstance(outcome, Result):
            tally.ok += 1
        else:
            tally.failed[outcome.category.value] += 1
        tally.by_cli[line["cli"]] += 1
        tally.latencies.append(item.duration_s)
        if usage is not None:
            tally.tokens_in += usage.input_tokens
            tally.tokens_out += usage.output_tokens
        if cost is not None:
            tally.cost = (tally.cost or 0.0) + cost
        if self.progress is not None:
            self.progress.update(trio.current_time())

    def unreadable(self, item: _Item) -> None:
        error = LLMError(item.problem or "unreadable", ErrorCategory.PERMANENT)
        self.record(item, error, self.stages[0].name)

    async def run_stage(
        self,
        stage: _Stage,
        items: Iterator[_Item] | trio.MemoryReceiveChannel[_Item],
        forward: trio.MemorySendChannel[_Item] | None,
    ) -> None:
        assert stage.sup is not None
        feed = _Feed(items, self.unreadable)
        try:
            async with stage.sup.map_stream(feed, self.job.output_model) as results:
                async for done in results:
                    item = feed.pending.pop(done.index)
                    outcome = done.outcome
                    item.attempts += outcome.attempts
                    if isinstance(outcome, Result):
                        item.duration_s += outcome.duration_s
                    else:
                        item.duration_s += trio.current_time() - item.started
                    if (
                        forward is not None
                        and isinstance(outcome, LLMError)
                        and outcome.category in MOVE_TO_FALLBACK
                    ):
                        self.tally.moved += 1
                        await forward.send(item)
                    else:
                        self.record(item, outcome, stage.name)
        finally:
            if forward is not None:
                forward.close()


async def _sample_memory(stages: list[_Stage]) -> None:
    while True:
        for stage in stages:
            stage.sample()
        await trio.sleep(SAMPLE_EVERY_S)


async def _tick(progress: _Progress) -> None:
    while True:
        await trio.sleep(0.5)
        progress.update(trio.current_time())


async def _watch_signals(
    signals: AsyncIterator[int], work: trio.CancelScope, interrupted: list[int], stream: TextIO
) -> None:
    async for signum in signals:
        if not interrupted:
            interrupted.append(signum)
            work.cancel()
        else:
            print("map: still stopping the CLI processes...", file=stream, flush=True)


def _stages(job: _Job, limit: int) -> list[_Stage]:
    stages = []
    for index, spec in enumerate(job.specs):
        default = DEFAULT_ESTIMATES_MIB.get(spec.name, OTHER_ESTIMATE_MIB) * MIB
        stage = _Stage(index, spec, limit, job.budget, default)
        stage.concurrency = stage.start_concurrency = stage.allowed()
        stages.append(stage)
    return stages


def _start_lines(job: _Job, stages: list[_Stage], stream: TextIO) -> None:
    kept = len(job.previous.done)
    resumed = f" ({kept} already in {job.output}, skipped)" if kept else ""
    print(
        f"map: {job.total} items from {job.source.describe()}{resumed} -> {job.output}",
        file=stream,
    )
    budget = (
        f"memory budget {_mib(job.budget)} ({job.budget_note})"
        if job.budget is not None
        else "no memory budget (MemAvailable unknown)"
    )
    for stage in stages:
        role = "cli" if stage.index == 0 else "fallback"
        print(
            f"map: {role} {stage.name}: concurrency {stage.concurrency} "
            f"(--concurrency {stage.limit}; {budget}, "
            f"{_mib(stage.default_estimate)} per process estimated)",
            file=stream,
        )
    stream.flush()


def _summary(run: _Run, elapsed: float, interrupted: bool, stream: TextIO) -> None:
    tally = run.tally
    job = run.job
    head = "interrupted after" if interrupted else "finished"
    print(
        f"map: {head} {tally.done}/{tally.total} in {elapsed:.1f}s "
        f"({_rate(tally, elapsed):.1f}/s): {tally.ok} ok, {tally.failures()}",
        file=stream,
    )
    if job.previous.done:
        print(
            f"map: kept from before: {len(job.previous.done)} "
            f"({job.previous.failed} of them failed)",
            file=stream,
        )
    if tally.by_cli:
        clis = ", ".join(f"{name} {count}" for name, count in tally.by_cli.most_common())
        moved = f"; {tally.moved} moved to a fallback" if len(run.stages) > 1 else ""
        print(f"map: by cli: {clis}{moved}", file=stream)
    cost = f"${tally.cost:.4f}" if tally.cost is not None else "unknown"
    print(f"map: tokens in {tally.tokens_in}, out {tally.tokens_out}; cost {cost}", file=stream)
    p50, p95 = tally.percentile(0.5), tally.percentile(0.95)
    if p50 is not None and p95 is not None:
        print(f"map: latency p50 {p50:.2f}s, p95 {p95:.2f}s; wall {elapsed:.1f}s", file=stream)
    else:
        print(f"map: latency p50 -, p95 -; wall {elapsed:.1f}s", file=stream)
    budget = _mib(job.budget) if job.budget is not None else "none"
    for stage in run.stages:
        peak = _mib(stage.peak) if stage.observed else "not observed"
        change = (
            f"{stage.start_concurrency} -> {stage.concurrency}"
            if stage.concurrency != stage.start_concurrency
            else str(stage.concurrency)
        )
        print(
            f"map: memory {stage.name}: budget {budget}, per-process peak {peak} "
            f"({stage.observed} processes sampled), estimate {_mib(stage.estimate())}, "
            f"concurrency {change}",
            file=stream,
        )
    if interrupted:
        print(
            f"map: every CLI process was stopped; {run.out.lines} lines written; "
            "run again with --resume to finish",
            file=stream,
        )
    stream.flush()


async def run_map(args: argparse.Namespace) -> int:
    """``llmsup map``; returns the exit status (see the module docstring)."""
    job = _prepare(args)
    stream = sys.stderr
    stages = _stages(job, job.policies.concurrency)
    _start_lines(job, stages, stream)
    out = _Output(job.output)
    run = _Run(job, stages, out, _Tally(job.total))
    interrupted: list[int] = []
    started = trio.current_time()
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as guard:
                work = trio.CancelScope()
                guard.start_soon(_watch_signals, signals, work, interrupted, stream)
                with work:
                    await _run_stages(run, job, stages, started)
                guard.cancel_scope.cancel()
    finally:
        if run.progress is not None:
            run.progress.close()
        out.close()
    _summary(run, trio.current_time() - started, bool(interrupted), stream)
    if interrupted:
        return INTERRUPT_STATUS.get(signal.Signals(interrupted[0]), 130)
    return 1 if run.tally.failed or job.previous.failed else 0


async def _run_stages(run: _Run, job: _Job, stages: list[_Stage], started: float) -> None:
    policies = job.policies
    last = len(stages) - 1
    async with AsyncExitStack() as stack:
        for stage in stages:
            sup = await stack.enter_async_context(
                open_supervisor(
                    stage.spec,
                    retry=policies.retry,
                    timeouts=policies.timeouts,
                    breaker=policies.breaker(stage.name),
                    # Read-ahead sized for the most the memory budget could allow.
                    concurrency=stage.limit,
                    breaker_wait=LAST_BREAKER_WAIT_S if stage.index == last else 0.0,
                )
            )
            stage.sup = sup
            sup.set_concurrency(stage.concurrency)
            # Every process the supervisor spawns is sampled for its memory.
            sup.add_spawn_listener(stage.on_spawn)
        run.progress = _progress(run.tally, stages, started)
        async with trio.open_nursery() as helpers:
            helpers.start_soon(_sample_memory, stages)
            helpers.start_soon(_tick, run.progress)
            async with trio.open_nursery() as pipeline:
                items: Iterator[_Item] | trio.MemoryReceiveChannel[_Item]
                items = job.source.items(job.skip)
                for stage in stages:
                    forward: trio.MemorySendChannel[_Item] | None = None
                    next_items: trio.MemoryReceiveChannel[_Item] | None = None
                    if stage.index < last:
                        forward, next_items = trio.open_memory_channel[_Item](0)
                    pipeline.start_soon(run.run_stage, stage, items, forward)
                    if next_items is not None:
                        items = next_items
            helpers.cancel_scope.cancel()
