"""Pull one JSON value out of an LLM's answer, validate it, and repair only when asked.

`JSONExtractor.extract_json` keeps the reference API (``data, error = extract_json(...)``);
`JSONExtractor.extract_model` raises `LLMError` (``MALFORMED_OUTPUT``) instead.

The order that holds up (json-repair alone invents structure: prose like ``Use {name}.``
becomes an object, two fenced blocks yield the last one, plain prose becomes ``''``):

1. a strict `json.loads` of each fenced block (```` ```json ````, bare ```` ``` ````, ``~~~``);
2. a `json.JSONDecoder.raw_decode` scan from every ``{`` and ``[`` of the answer, skipping
   starts inside a value already decoded (or inside JSON that visibly failed to parse), so
   a megabyte of prose costs milliseconds;
3. the first of those candidates that validates against the pydantic model wins (with no
   model: the first object or array, fenced blocks first);
4. only with ``strict=False``, and only when 1–3 found nothing valid: `json_repair` on the
   fenced blocks and on the text from the first JSON-looking ``{``/``[`` to its closing
   bracket, within ``max_repair_chars``. A repaired value is accepted only if it is a
   non-empty object or array of the same kind as the bracket it started at, and it
   validates against the model when one is given, so prose never turns into an object.

Every failure says why: no JSON at all, JSON that does not parse (and where), or the
pydantic errors of the candidate that came closest to the model.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import re
from collections.abc import Iterator
from typing import Any, TypeVar

import attrs
from pydantic import BaseModel, ValidationError

from actors import ErrorCategory, LLMError

__all__ = ["JSONExtractor", "schema_instructions"]

M = TypeVar("M", bound=BaseModel)

_DECODER = json.JSONDecoder()

_OPEN_RE = re.compile(r"[\[{]")
"""Where a JSON object or array may start."""

_JSONISH_RE = re.compile(
    r"""\{\s*(?:["'}]|[A-Za-z_$][\w$-]*\s*:)"""
    r"""|\[\s*(?:["'{\[\]\d-]|true\b|false\b|null\b)"""
)
"""A bracket that looks like the start of JSON (``{"``, ``{'``, ``{key:``, ``[1``, ...),
as opposed to prose such as ``{name}`` or ``[citation]``."""

_BRACKET_RE = re.compile(r"[\[\]{}]")
_BRACKET_OR_QUOTE_RE = re.compile(r'[\[\]{}"]')
_STRING_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"')
"""A double-quoted JSON string on one line."""

_VALID_START_RE = re.compile(r"""\{\s*["}]|\[\s*(?:["{\[\]\d-]|true|false|null)""")
"""A bracket followed by a token that can start valid JSON."""

_WS_RE = re.compile(r"\s*")

_FIRST_TOKEN_ERRORS = {
    "{": "Expecting property name enclosed in double quotes",
    "[": "Expecting value",
}
"""What `json` says when the first token after the bracket is wrong."""

_FENCE_OPEN_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)

_FIRST_WINDOW = 512
"""Characters decoded from a start before trying a longer window (see `_decode_at`)."""

_LOOKAHEAD = 64
"""A decode error this close to a window's end may be the window's fault."""

_MAX_REPORTED_ERRORS = 5
"""Validation errors listed in a message before "... and N more"."""

_REPAIR_BUDGET_FACTOR = 4
"""All repair attempts of one answer together read at most this many `max_repair_chars`."""


def schema_instructions(model: type[BaseModel]) -> str:
    """A prompt suffix asking for JSON that matches ``model.model_json_schema()``.

    Append it to a prompt; it starts with a blank line.
    """
    schema = json.dumps(model.model_json_schema(), separators=(",", ":"), ensure_ascii=False)
    return (
        "\n\nRespond with a single JSON value that validates against this JSON Schema:\n"
        f"{schema}\n"
        "Put the JSON in one ```json fenced block. Use double quotes; "
        "no comments, no trailing commas."
    )


def _positive(inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{type(inst).__name__}.{attribute.name} must be a positive int, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class JSONExtractor:
    """Finds, validates and (only when asked) repairs the JSON in an LLM's answer.

    Attributes:
        max_repair_chars: the longest text handed to json-repair; a longer JSON-looking
            span is reported as too large to repair.
        max_candidates: how many decoded objects/arrays to consider before giving up.
    """

    max_repair_chars: int = attrs.field(default=200_000, validator=_positive)
    max_candidates: int = attrs.field(default=200, validator=_positive)

    def extract_json(
        self, text: str, model: type[BaseModel] | None = None, strict: bool = True
    ) -> tuple[Any, str | None]:
        """``(data, None)`` with the plain JSON value (a dict, or a list for a top-level
        array) that validates against `model` when one is given; ``(None, reason)`` when
        there is none. ``strict=False`` lets json-repair fix malformed JSON as a last resort.
        """
        data, _, error = self._extract(text, model, strict)
        return data, error

    def extract_model(self, text: str, model: type[M], strict: bool = True) -> M:
        """The answer's JSON as an instance of `model`.

        Raises:
            LLMError: category ``MALFORMED_OUTPUT``, with the reason as the message.
        """
        _, instance, error = self._extract(text, model, strict)
        if error is not None or not isinstance(instance, model):
            raise LLMError(error or "no valid JSON found", ErrorCategory.MALFORMED_OUTPUT)
        return instance

    def _extract(
        self, text: str, model: type[BaseModel] | None, strict: bool
    ) -> tuple[Any, BaseModel | None, str | None]:
        run = _ExtractionRun(self, text, model)
        for value in run.strict_candidates():
            if run.offer(value, repaired=False):
                return run.data, run.instance, None
        if not strict:
            for value in run.repaired_candidates():
                if run.offer(value, repaired=True):
                    return run.data, run.instance, None
        return None, None, run.error(strict)


@attrs.frozen
class _Fence:
    number: int
    """1-based, among all fenced blocks of the answer."""
    label: str
    """The first word of the info string, lowercased ("" when unlabelled)."""
    start: int
    end: int

    @property
    def jsonish(self) -> bool:
        """Labelled json (``json``, ``jsonc``, ...) or unlabelled."""
        return self.label == "" or self.label.startswith("json")


@attrs.frozen
class _Failure:
    """JSON-looking text that did not parse."""

    where: str
    message: str
    progress: int
    """How far the decoder got; the furthest failure is the one reported."""
    pos: int | None = None
    """Where in the answer it failed (None: `message` already says where)."""

    def describe(self, text: str) -> str:
        if self.pos is None:
            return f"{self.where}{self.message}"
        line = text.count("\n", 0, self.pos) + 1
        column = self.pos - text.rfind("\n", 0, self.pos)
        return f"{self.where}{self.message}: line {line} column {column} (char {self.pos})"


@attrs.frozen
class _Rejected:
    """A candidate that parsed but failed validation."""

    n_errors: int
    number: int
    repaired: bool
    summary: str


@functools.lru_cache(maxsize=32)
def _closing_fence_re(marker: str) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*{re.escape(marker)}{re.escape(marker[0])}*[ \t\r]*$", re.MULTILINE)


def _find_fences(text: str) -> list[_Fence]:
    """Fenced blocks in order. An unclosed fence runs to the end of the text; a closing
    fence glued to the end of the JSON's last line is accepted when no line closes it."""
    fences: list[_Fence] = []
    pos = 0
    while (m := _FENCE_OPEN_RE.search(text, pos)) is not None:
        marker, info = m.group(1), m.group(2).strip()
        if marker[0] == "`" and "`" in info:  # an inline code span, not a fence
            pos = m.end()
            continue
        body_start = min(m.end() + 1, len(text))
        close = _closing_fence_re(marker).search(text, body_start)
        if close is not None:
            body_end, pos = close.start(), close.end()
        else:
            glued = text.find(marker, body_start)
            if glued >= 0:
                body_end, pos = glued, glued + len(marker)
            else:
                body_end = pos = len(text)
        label = info.split()[0].lower() if info else ""
        fences.append(_Fence(len(fences) + 1, label, body_start, body_end))
        if pos <= m.start():  # pragma: no cover - defensive, the search always advances
            pos = m.end() + 1
    return fences


def _match_brackets(text: str) -> dict[int, int]:
    """Map each matched ``{``/``[`` to the index just past its closing bracket.

    One linear pass. Outside brackets nothing is special (prose quotes do not pair up);
    inside them, double-quoted strings on one line are skipped, a closer that does not
    match is ignored, or closes the bracket below an unclosed one (``{"a": [1, 2}``).
    """
    ends: dict[int, int] = {}
    stack: list[tuple[str, int]] = []
    skip_to = 0  # past a string inside brackets
    string_at = _STRING_RE.match
    # One finditer instead of a search per bracket: the loop body is the whole cost.
    for m in _BRACKET_OR_QUOTE_RE.finditer(text):
        i = m.start()
        if i < skip_to:
            continue
        c = text[i]
        if c == '"':
            if stack:  # outside brackets, quotes are prose
                s = string_at(text, i)
                if s is not None:
                    skip_to = s.end()
        elif c == "{" or c == "[":
            stack.append((c, i))
        elif stack:
            want = "{" if c == "}" else "["
            if stack[-1][0] == want:
                ends[stack.pop()[1]] = i + 1
            elif len(stack) >= 2 and stack[-2][0] == want:
                stack.pop()
                ends[stack.pop()[1]] = i + 1
    return ends


def _group_pattern(depth: int) -> re.Pattern[str]:
    """A bracket whose inside is only plain text, one-line strings (exactly `_STRING_RE`)
    and properly nested brackets, at most `depth` deep.

    Such a group pairs the same way in `_match_brackets` whatever is below it on the
    stack: nothing inside it can close anything outside. Possessive quantifiers and
    alternatives told apart by their first character keep a match linear.
    """
    string = r'"(?:[^"\\\n]++|\\.)*+"'
    inner = rf'(?:[^\[\]{{}}"]++|{string})*+'
    for _ in range(depth):
        inner = rf'(?:[^\[\]{{}}"]++|{string}|\[{inner}\]|\{{{inner}\}})*+'
    return re.compile(rf"\[{inner}\]|\{{{inner}\}}")


_GROUP_RE = _group_pattern(4)


@functools.lru_cache(maxsize=32)
def _failures_re(max_ws: int) -> re.Pattern[str]:
    """Text without ``{``/``[``, and whole `_GROUP_RE` groups that are JSON-looking but
    wrong from the first token (``{'a': 1}``) with at most `max_ws` spaces before it:
    what `_ExtractionRun._scanned` steps over one by one without a new candidate."""
    first_token_wrong = (
        rf"(?={_JSONISH_RE.pattern})(?!{_VALID_START_RE.pattern})"
        rf"(?=[\[{{]\s{{0,{max_ws}}}+(?!\s))"
    )
    return re.compile(rf"(?:[^\[{{]++|{first_token_wrong}(?:{_GROUP_RE.pattern}))*+")


class _Brackets:
    """``_match_brackets(text).get(start)``, computed lazily and mostly by regex.

    The same pass as `_match_brackets`, run only as far as a question needs, with one
    shortcut: at an opener that `_GROUP_RE` matches, the whole group is skipped in one
    regex match (its own pairs are worked out only if asked about). A megabyte of code
    full of dict literals then costs one match per top-level literal, not a Python step
    per bracket and quote.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        """Everything before `pos` has been through the pass."""
        self.stack: list[tuple[str, int]] = []
        self.pending: set[int] = set()
        """Openers on the stack."""
        self.ends: dict[int, int] = {}
        self.group_starts: list[int] = []
        self.group_ends: list[int] = []
        self.inner: dict[int, dict[int, int]] = {}
        """Pairs inside a group, by the group's start, once asked for."""
        self.region_starts: list[int] = []
        self.region_ends: list[int] = []
        self.region_passes: dict[int, _Brackets] = {}
        """Stretches skipped by `skip_top_level`, by start; each has its own lazy pass."""

    def end(self, start: int) -> int | None:
        """Where the bracket at `start` closes (just past it), or None."""
        if start >= self.pos:
            self._advance(start + 1, None)
        if start in self.pending:
            if self.pos < len(self.text):
                self._advance(len(self.text), start)
            if start in self.pending:  # never closed
                return None
        found = self.ends.get(start)
        if found is not None:
            return found
        k = bisect.bisect_right(self.region_starts, start) - 1
        if k >= 0 and start < self.region_ends[k]:
            r_start = self.region_starts[k]
            region = self.region_passes.get(r_start)
            if region is None:
                region = _Brackets(self.text[r_start : self.region_ends[k]])
                self.region_passes[r_start] = region
            local_end = region.end(start - r_start)
            return None if local_end is None else r_start + local_end
        k = bisect.bisect_right(self.group_starts, start) - 1
        if k < 0 or self.group_ends[k] <= start:
            return None
        g_start, g_end = self.group_starts[k], self.group_ends[k]
        if g_start == start:
            return g_end
        inner = self.inner.get(g_start)
        if inner is None:
            local = _match_brackets(self.text[g_start:g_end])
            inner = self.inner[g_start] = {g_start + a: g_start + b for a, b in local.items()}
        return inner.get(start)

    def skip_top_level(self, pos: int, pattern: re.Pattern[str], endpos: int) -> int:
        """Where `pattern` (matching only text with no opener and `_GROUP_RE` groups)
        stops when matched from `pos`, if the pass is between brackets there; else `pos`.

        The skipped stretch starts and ends with an empty stack, so a separate pass over
        it alone answers questions about the brackets inside.
        """
        if pos > self.pos:
            self._advance(pos, None)
        if self.pos != pos or self.stack:
            return pos
        m = pattern.match(self.text, pos, endpos)
        end = pos if m is None else m.end()
        if end > pos:
            self.region_starts.append(pos)
            self.region_ends.append(end)
            self.pos = end
        return end

    def _advance(self, limit: int, watch: int | None) -> None:
        """Run the pass over the tokens before `limit`, or until `watch` leaves the stack."""
        text, stack, pending, ends = self.text, self.stack, self.pending, self.ends
        pos = self.pos
        limit = min(limit, len(text))
        while pos < limit:
            m = (_BRACKET_OR_QUOTE_RE if stack else _OPEN_RE).search(text, pos, limit)
            if m is None:
                pos = limit
                break
            i = m.start()
            c = text[i]
            pos = i + 1
            if c == '"':  # only searched for inside brackets
                s = _STRING_RE.match(text, i)
                if s is not None:
                    pos = s.end()
            elif c == "{" or c == "[":
                # Not at "[[": a run of stray openers would try (and fail) at each one.
                g = None if text[i + 1 : i + 2] in "[{" else _GROUP_RE.match(text, i)
                if g is not None:
                    self.group_starts.append(i)
                    self.group_ends.append(g.end())
                    pos = g.end()
                else:
                    stack.append((c, i))
                    pending.add(i)
            else:
                want = "{" if c == "}" else "["
                if stack[-1][0] == want:
                    opener = stack.pop()[1]
                    pending.discard(opener)
                    ends[opener] = i + 1
                elif len(stack) >= 2 and stack[-2][0] == want:
                    pending.discard(stack.pop()[1])
                    opener = stack.pop()[1]
                    pending.discard(opener)
                    ends[opener] = i + 1
                if watch is not None and watch not in pending:
                    break
        self.pos = max(self.pos, pos)


class _DecodeFailed(Exception):
    """A `json.JSONDecodeError` without the (costly) line and column."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(msg, pos)
        self.msg = msg
        self.pos = pos


def _decode_at(text: str, start: int) -> tuple[Any, int]:
    """`raw_decode` from `start`, on a window of the text that doubles while the failure
    could be due to the window's end.

    Decoding the whole text at every start would be quadratic: a `JSONDecodeError` counts
    the newlines before its position. Windows keep each attempt proportional to how far
    it got. Raises `_DecodeFailed` (position in `text`) or `RecursionError`.
    """
    size = _FIRST_WINDOW
    while True:
        stop = min(len(text), start + size)
        try:
            value, end = _DECODER.raw_decode(text[start:stop])
        except json.JSONDecodeError as exc:
            cut = stop < len(text)
            if cut and (exc.pos >= stop - start - _LOOKAHEAD or exc.msg.startswith("Unterm")):
                size *= 2
                continue
            raise _DecodeFailed(exc.msg, start + exc.pos) from None
        return value, start + end


def _decode_message(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    return str(exc)


def _format_validation(exc: ValidationError) -> tuple[int, str]:
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for err in errors[:_MAX_REPORTED_ERRORS]:
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        msg = str(err["msg"])
        if len(msg) > 200:
            msg = msg[:200] + "…"
        parts.append(f"{loc}: {msg}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return len(errors), "; ".join(parts)


class _ExtractionRun:
    """The state of one extraction: candidates offered, failures seen, the result."""

    def __init__(self, extractor: JSONExtractor, text: str, model: type[BaseModel] | None) -> None:
        self.x = extractor
        self.text = text
        self.model = model
        self.fences = _find_fences(text)
        self.fence_failures: list[_Failure] = []
        self.scan_failure: _Failure | None = None
        """The malformed JSON the decoder got furthest into."""
        self.failed_fences: list[_Fence] = []
        self.failed_starts: list[int] = []
        self.offered: list[Any] = []
        self.best: _Rejected | None = None
        self.capped = False
        self.repair_notes: list[str] = []
        self.data: Any = None
        self.instance: BaseModel | None = None
        self._brackets = _Brackets(text)

    # -- candidates -------------------------------------------------------------------

    def offer(self, value: Any, *, repaired: bool) -> bool:
        """Accept `value` if it validates (or there is no model); remember why not."""
        if repaired and any(value == seen for seen in self.offered):
            return False
        self.offered.append(value)
        if self.model is None:
            self.data = value
            return True
        try:
            instance = self.model.model_validate(value)
        except ValidationError as exc:
            n_errors, summary = _format_validation(exc)
            if self.best is None or n_errors < self.best.n_errors:
                self.best = _Rejected(n_errors, len(self.offered), repaired, summary)
            return False
        self.data, self.instance = value, instance
        return True

    def matched_end(self, start: int) -> int | None:
        return self._brackets.end(start)

    def strict_candidates(self) -> Iterator[Any]:
        """Steps 1 and 2: fenced blocks, then a raw_decode scan of the whole text."""
        decoded: list[tuple[int, int]] = []  # fence bodies already parsed
        # chain() is lazy: the scan starts once every fence has been looked at.
        values = itertools.chain(self._fenced(decoded), self._scanned(decoded))
        for count, value in enumerate(values, start=1):
            yield value
            if count >= self.x.max_candidates:
                self.capped = True
                return

    def _fenced(self, decoded: list[tuple[int, int]]) -> Iterator[Any]:
        """JSON objects and arrays in fenced blocks; their spans go into ``decoded``."""
        text = self.text
        for fence in self.fences:
            if not fence.jsonish:
                continue
            body = text[fence.start : fence.end]
            stripped = body.strip()
            if not stripped:
                continue
            try:
                value = json.loads(body)
            except (ValueError, RecursionError) as exc:
                if stripped[0] in "{[" or fence.label.startswith("json"):
                    self.fence_failures.append(
                        _Failure(f"fenced block {fence.number}: ", _decode_message(exc), 0)
                    )
                    self.failed_fences.append(fence)
                continue
            if isinstance(value, dict | list):
                decoded.append((fence.start, fence.end))
                yield value

    def _scanned(self, decoded: list[tuple[int, int]]) -> Iterator[Any]:
        """JSON objects and arrays found by scanning the text outside ``decoded`` fences.

        Values inside paired brackets that failed to decode are parts of that JSON, not
        answers: the scan goes on past them. After an unpaired opener that failed (a stray
        ``[``, a cut-off object, 5,000 ``[`` too deep to decode) it goes on just after
        it, not past the failure: a complete value may follow (``see [ [1, 2]``). Inside
        such a failed span only brackets that `_match_brackets` pairs can start a
        complete value, so the unpaired ones are skipped without decoding, which keeps
        5,000 stray brackets linear.
        """
        text = self.text
        pos, skip = 0, 0
        failed_until = -1  # inside a failed span, only paired brackets are decoded
        while m := _OPEN_RE.search(text, self._skip_failures(pos, failed_until, decoded)):
            start = m.start()
            while skip < len(decoded) and decoded[skip][1] <= start:
                skip += 1
            if skip < len(decoded) and decoded[skip][0] <= start:
                pos = decoded[skip][1]
                continue
            pos = start + 1
            if start < failed_until and self.matched_end(start) is None:
                continue  # an unpaired bracket inside JSON that failed: no value starts here
            if _JSONISH_RE.match(text, start) is None:
                continue  # prose such as "{name}": not even a first JSON token
            if _VALID_START_RE.match(text, start) is None:
                # JSON-looking but wrong from its first token ({'a': 1}, {a: 1}, ['x']):
                # say what json would say, without the cost of decoding.
                at = _WS_RE.match(text, start + 1).end()  # type: ignore[union-attr]
                message = _FIRST_TOKEN_ERRORS[text[start]]
                self._scan_failed(start, message, at)
                pos = max(start + 1, self.matched_end(start) or 0)
                continue
            try:
                value, end = _decode_at(text, start)
            except _DecodeFailed as exc:
                self._scan_failed(start, exc.msg, exc.pos)
                matched = self.matched_end(start)
                if matched is not None:
                    # Paired brackets that failed: the values inside are parts of that
                    # JSON, not answers ({"a": {"b": 1}, oops}).
                    pos = max(start + 1, exc.pos, matched)
                else:
                    # A stray or cut-off opener: a complete value may follow it.
                    failed_until = max(failed_until, exc.pos)
                continue
            except RecursionError:
                self._scan_failed(start, "nesting too deep", start)
                matched = self.matched_end(start)
                if matched is not None:
                    pos = matched  # a paired bracket: everything inside is deeper still
                else:
                    failed_until = len(text)
                continue
            pos = max(end, start + 1)
            if isinstance(value, dict | list):  # pragma: no branch - starts at a bracket
                yield value

    def _recorded_enough(self) -> bool:
        """Whether a first-token failure could no longer change the report: as many
        failed starts as kept, and a failure at least one character in."""
        failure = self.scan_failure
        return (
            failure is not None
            and failure.progress >= 1
            and len(self.failed_starts) >= self.x.max_candidates
        )

    def _skip_failures(self, pos: int, failed_until: int, decoded: list[tuple[int, int]]) -> int:
        """Where `_scanned` goes on from `pos`: past text it would step over without a
        candidate or a failure worth recording (a megabyte of dict literals), found in
        one regex match, when there is nothing left worth recording."""
        if pos < failed_until or pos < self._brackets.pos or not self._recorded_enough():
            return pos  # (past the bracket pass: not between brackets, see skip_top_level)
        endpos = len(self.text)
        for d_start, d_end in decoded:
            if d_end > pos:
                if d_start <= pos:
                    return pos
                endpos = d_start
                break
        assert self.scan_failure is not None
        pattern = _failures_re(self.scan_failure.progress - 1)
        return self._brackets.skip_top_level(pos, pattern, endpos)

    def _scan_failed(self, start: int, message: str, at: int) -> None:
        if self.scan_failure is None or at - start > self.scan_failure.progress:
            self.scan_failure = _Failure("", message, at - start, at)
        if len(self.failed_starts) < self.x.max_candidates:
            self.failed_starts.append(start)

    def _first_jsonish(self, start: int, end: int) -> int | None:
        pos = start
        while (m := _OPEN_RE.search(self.text, pos, end)) is not None:
            if _JSONISH_RE.match(self.text, m.start(), end) is not None:
                return m.start()
            pos = m.start() + 1
        return None

    def _spans_from(self, start: int, end: int) -> list[tuple[int, int]]:
        """The tight span (to the matching bracket) and the broad one (to the last
        closing bracket of that kind, or to `end` when the JSON was cut off)."""
        spans = []
        tight = self.matched_end(start)
        if tight is not None and tight <= end:
            spans.append((start, tight))
        closer = "}" if self.text[start] == "{" else "]"
        last = self.text.rfind(closer, start + 1, end)
        spans.append((start, last + 1 if last >= 0 else end))
        return spans

    def _repair_spans(self) -> Iterator[tuple[int, int]]:
        for fence in self.failed_fences:
            q = self._first_jsonish(fence.start, fence.end)
            if q is not None:
                yield from self._spans_from(q, fence.end)
        q = self._first_jsonish(0, len(self.text))
        if q is not None:
            yield from self._spans_from(q, len(self.text))
        for start in self.failed_starts:
            yield from self._spans_from(start, len(self.text))

    def repaired_candidates(self) -> Iterator[Any]:
        """Step 4: json-repair on the spans where JSON visibly starts; never on prose."""
        try:
            import json_repair
        except ImportError:  # pragma: no cover - installed wherever repair is used
            self._note("repair needs the json-repair package")
            return
        seen: set[tuple[int, int]] = set()
        budget = _REPAIR_BUDGET_FACTOR * self.x.max_repair_chars
        tried = 0
        for start, end in self._repair_spans():
            if (start, end) in seen:
                continue
            seen.add((start, end))
            size = end - start
            if size > self.x.max_repair_chars:
                self._note(
                    f"too large to repair ({size} chars > "
                    f"max_repair_chars={self.x.max_repair_chars})"
                )
                continue
            if size > budget or tried >= self.x.max_candidates:
                self._note("repair budget exhausted")
                return
            budget -= size
            tried += 1
            try:
                value = json_repair.repair_json(self.text[start:end], return_objects=True)
            except Exception:  # a repair bug (or RecursionError) must not hide the reason
                continue
            opener = self.text[start]
            if opener == "{" and isinstance(value, dict) and value:
                yield value
            elif opener == "{" and isinstance(value, list):
                # json-repair returns several top-level values as a list; only the objects
                # can be what a "{" started (the rest is often prose it turned into lists).
                yield from (v for v in value if isinstance(v, dict) and v)
            elif opener == "[" and isinstance(value, list) and value:
                yield value
        self._note("repair produced no usable JSON")

    def _note(self, note: str) -> None:
        """Remember why repair did not help, once per kind ("too large ..." is one kind)."""
        kind = note.split(" (")[0]
        if all(n.split(" (")[0] != kind for n in self.repair_notes):
            self.repair_notes.append(note)

    # -- the reason -------------------------------------------------------------------

    def _malformed(self) -> str | None:
        failure = self.fence_failures[0] if self.fence_failures else self.scan_failure
        if failure is None:
            return None
        return failure.describe(self.text)

    def error(self, strict: bool) -> str:
        malformed = self._malformed()
        if strict:
            after = " (strict mode; pass strict=False to attempt repair)"
        elif self.repair_notes:
            after = "; " + "; ".join(self.repair_notes)
        else:
            after = ""
        if self.best is not None and self.model is not None:
            best = self.best
            repaired = " (repaired)" if best.repaired else ""
            message = (
                f"candidate {best.number} of {len(self.offered)}{repaired} failed validation "
                f"against {self.model.__name__}: {best.summary}"
            )
            if malformed is not None:
                message += f"; also found malformed JSON: {malformed}{after}"
        elif malformed is not None:
            message = f"JSON found but malformed: {malformed}{after}"
        else:
            message = (
                f"no JSON object or array found in the answer ({len(self.text)} chars of prose)"
            )
        if self.capped:
            message += f" (stopped after max_candidates={self.x.max_candidates})"
        return message
