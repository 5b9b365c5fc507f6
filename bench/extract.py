"""How long JSON extraction takes on a megabyte answer, with and without JSON in it.

    python bench/extract.py [--rounds 5]

The figures the tests used to assert (``< 5 s``) live here instead: the tests only check
that the JSON is found (or that none is reported) under a hang guard. Prints the median
milliseconds per case; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def median_ms(text: str, strict: bool, rounds: int) -> float:
    extractor = JSONExtractor()
    runs = []
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
    print(f"{'case':20} {'chars':>9} {'strict ms':>10} {'repair ms':>10}  found")
    for name, text in cases.items():
        strict, repair = median_ms(text, True, rounds), median_ms(text, False, rounds)
        _, problem = JSONExtractor().extract_json(text, CodeAnalysis)
        found = "yes" if problem is None else f"no: {problem[:40]}"
        print(f"{name:20} {len(text):9} {strict:10.1f} {repair:10.1f}  {found}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args().rounds)
