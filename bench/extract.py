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
from tests.unit.test_json_extract import CodeAnalysis, megabyte_answer, megabyte_of_prose


def median_ms(text: str, strict: bool, rounds: int) -> float:
    extractor = JSONExtractor()
    runs = []
    for _ in range(rounds):
        started = time.perf_counter()
        extractor.extract_json(text, CodeAnalysis, strict=strict)
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main(rounds: int) -> None:
    cases = {"megabyte answer": megabyte_answer(), "megabyte of prose": megabyte_of_prose()}
    print(f"{'case':20} {'chars':>9} {'strict ms':>10} {'repair ms':>10}")
    for name, text in cases.items():
        strict, repair = median_ms(text, True, rounds), median_ms(text, False, rounds)
        print(f"{name:20} {len(text):9} {strict:10.1f} {repair:10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args().rounds)
