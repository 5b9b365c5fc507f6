"""The tally of a run: what finished, how, on which CLI, with what tokens, cost and latency."""

from __future__ import annotations

import array
import math
from collections import Counter

import attrs

from actors import Usage


@attrs.define
class Tally:
    total: int
    ok: int = 0
    failed: Counter[str] = attrs.Factory(Counter)
    moved: int = 0
    by_cli: Counter[str] = attrs.Factory(Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None  # as the CLIs reported it (Result.cost_usd), summed
    cost_items: int = 0  # items whose CLI reported a cost
    latencies: array.array[float] = attrs.Factory(lambda: array.array("d"))

    @property
    def done(self) -> int:
        return self.ok + self.failed.total()

    def count(
        self,
        failure: str | None,
        cli: str,
        duration_s: float,
        usage: Usage | None,
        cost: float | None,
    ) -> None:
        """Count one finished item; ``failure`` is its error category, None when it is ok."""
        if failure is None:
            self.ok += 1
        else:
            self.failed[failure] += 1
        self.by_cli[cli] += 1
        self.latencies.append(duration_s)
        if usage is not None:
            self.tokens_in += usage.input_tokens
            self.tokens_out += usage.output_tokens
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
            self.cost_items += 1

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

    def rate(self, elapsed: float) -> float:
        return self.done / elapsed if elapsed > 0 else 0.0
