"""How long JSON extraction takes on a megabyte answer, with and without JSON in it.

    python bench/extract.py [--rounds 5]

The figures the tests used to assert (``< 5 s``) live here instead: the tests only check
that the JSON is found (or that none is reported) under a hang guard. Prints the median
milliseconds per case, next to the algorithm before the lazy bracket pass ("old": every
bracket paired up front by a Python loop, failing dict literals stepped over one by one),
and checks only that both give the same outcome.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervisor import _json
from supervisor._json import JSONExtractor
from tests.unit.test_json_extract import (
    GOOD_JSON,
    CodeAnalysis,
    megabyte_answer,
    megabyte_of_prose,
)


def megabyte_of_code() -> str:
    """A megabyte of code full of braces (dict literals, JSON-looking but not JSON) before
    the answer's JSON."""
    line = "    cfg = {'name': [1, 2], \"x\": {k: v for k, v in items}, 'y': [a[i] for i in r]}\n"
    code = line * (1_000_000 // len(line) + 1)
    return f"```python\n{code}```\nFinal answer: {GOOD_JSON}\n"


def stray_brackets() -> str:
    """5,000 unmatched ``[`` and then valid JSON."""
    return "[" * 5000 + " " + GOOD_JSON


class _OldRun(_json._ExtractionRun):
    """The extraction before the lazy bracket pass: `_match_brackets` over the whole
    text at the first question, and no bulk step over failing dict literals."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._all_ends: dict[int, int] | None = None

    def matched_end(self, start: int) -> int | None:
        if self._all_ends is None:
            self._all_ends = _json._match_brackets(self.text)
        return self._all_ends.get(start)

    def _recorded_enough(self) -> bool:
        return False


@contextlib.contextmanager
def old_algorithm(old: bool) -> Iterator[None]:
    current = _json._ExtractionRun
    if old:
        _json._ExtractionRun = _OldRun  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        _json._ExtractionRun = current  # type: ignore[misc]


def median_ms(text: str, strict: bool, rounds: int, old: bool) -> float:
    extractor = JSONExtractor()
    runs = []
    with old_algorithm(old):
        for _ in range(rounds):
            started = time.perf_counter()
            extractor.extract_json(text, CodeAnalysis, strict=strict)
            runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main(rounds: int) -> None:
    cases = {
        "megabyte answer": megabyte_answer(),
        "megabyte of prose": megabyte_of_prose(),
        "megabyte of code": megabyte_of_code(),
        "5000 stray [": stray_brackets(),
    }
    print(
        f"{'case':18} {'chars':>9} {'strict ms':>10} {'(old)':>7} "
        f"{'repair ms':>10} {'(old)':>7}  found"
    )
    for name, text in cases.items():
        figures = [
            median_ms(text, strict, rounds, old)
            for strict in (True, False)
            for old in (False, True)
        ]
        outcomes = []
        for strict in (True, False):
            for old in (False, True):
                with old_algorithm(old):
                    outcomes.append(JSONExtractor().extract_json(text, CodeAnalysis, strict))
        same = "" if outcomes[0] == outcomes[1] and outcomes[2] == outcomes[3] else " OLD DIFFERS"
        problem = outcomes[0][1]
        found = "yes" if problem is None else f"no: {problem[:40]}"
        print(
            f"{name:18} {len(text):9} {figures[0]:10.1f} {figures[1]:7.1f} "
            f"{figures[2]:10.1f} {figures[3]:7.1f}  {found}{same}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args().rounds)
