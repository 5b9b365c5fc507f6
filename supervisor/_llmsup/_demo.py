"""``llmsup demo``: the main job, fan-out under faults, on the embedded fake CLI.

Each prompt's name picks its fault through the fake CLI's rules, so the run shows every
policy at work: retries that heal, timeouts, an auth failure that is not retried, garbage
output, and a rate limit whose ``retry after`` opens the circuit breaker until the announced
time, after which half-open trials close it again.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from typing import Any

import trio

from actors import ErrorCategory, LLMError, TimeoutConfig, fake
from supervisor import (
    CircuitBreaker,
    CircuitState,
    Result,
    RetryConfig,
    Supervisor,
    open_supervisor,
)

# (name, share of prompts, fault-plan rule, what the user should see)
SCENARIOS: tuple[tuple[str, int, dict[str, Any], str], ...] = (
    ("ok", 10, {}, "answers"),
    ("flaky", 4, {"fail_first": 2, "fail_with": "retryable"}, "fails twice, then answers"),
    ("crashy", 2, {"fail_first": 1, "fail_with": "crash"}, "crashes mid-stream once"),
    (
        "ratelimited",
        2,
        {"fail_first": 1, "fail_with": "rate_limit", "fail_retry_after_s": 1.0},
        "429 with 'retry after 1s' once",
    ),
    ("stalled", 2, {"hang_after_chunks": 1}, "stalls mid-stream every time"),
    ("badkey", 2, {"auth_failure": True}, "401 invalid API key"),
    ("garbled", 2, {"oversized_line_bytes": 300_000}, "prints a 300 kB line"),
)


def _fault_plan(state_dir: str) -> dict[str, Any]:
    rules = [{"match": f"[{name}]", **rule} for name, _share, rule, _what in SCENARIOS if rule]
    return {
        "latency_s": 0.15,
        "chunks": 4,
        "chunk_gap_s": 0.05,
        "state_dir": state_dir,
        "rules": rules,
    }


def _prompts(count: int, seed: int) -> list[str]:
    names = [name for name, share, _rule, _what in SCENARIOS for _ in range(share)]
    rng = random.Random(seed)
    chosen = [names[i % len(names)] for i in range(count)]
    rng.shuffle(chosen)
    return [f"[{name}] question {i + 1:02d}" for i, name in enumerate(chosen)]


# The prompt the current task is asking: each prompt's task sets it, and the retry log
# records its call emits (in that same task) are printed under the prompt's own name, the
# one its progress row shows.
_ASKING: contextvars.ContextVar[str] = contextvars.ContextVar("llmsup_demo_asking")


class _RetryPrinter(logging.Handler):
    """Prints the supervisor's structured retry log records as progress lines."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("attempt"):
            name = _ASKING.get(None) or getattr(record, "request_id", "?")
            print(f"  ↻ {name}: {record.getMessage()}")


async def run_demo(count: int = 24, concurrency: int = 8, seed: int = 7) -> int:
    """Run the demo; returns the process exit status (0 when the demo itself worked)."""
    print(f"llmsup demo: {count} prompts, concurrency {concurrency}, fake CLI with faults:")
    for name, _share, _rule, what in SCENARIOS:
        print(f"  [{name}] {what}")
    print()
    breaker = _demo_breaker()
    results: list[tuple[str, Result | LLMError]] = []
    started = trio.current_time()
    with _retries_printed(), tempfile.TemporaryDirectory(prefix="llmsup-demo-") as state_dir:
        spec = fake(_fault_plan(state_dir), max_line_bytes=64 * 1024)
        async with open_supervisor(
            spec,
            retry=RetryConfig(max_attempts=3, initial_delay_ms=200, max_delay_ms=1000),
            timeouts=TimeoutConfig(total_execution=5.0, chunk_receive=1.0, graceful_shutdown=0.5),
            breaker=breaker,
            breaker_wait=10.0,
            concurrency=concurrency,
        ) as sup:
            await _ask_all(sup, _prompts(count, seed), results)
            stats = sup.statistics()
    elapsed = trio.current_time() - started
    _print_summary(results, elapsed, stats.retries, stats.processes_spawned, breaker)
    return 0 if len(results) == count else 1


def _demo_breaker() -> CircuitBreaker:
    """A breaker that prints its transitions."""
    # The per-prompt faults (flaky, crashy, stalled...) are each prompt's own problem; what
    # says the *service* is unhealthy here is its rate limit, so that is what the breaker
    # counts (which errors count is configurable, as in resilience4j).
    breaker = CircuitBreaker(
        failure_threshold=3,
        success_threshold=2,
        timeout_seconds=1.0,
        counted_categories=frozenset({ErrorCategory.RATE_LIMIT}),
    )
    breaker.add_listener(
        lambda old, new: print(
            f"  ⚡ breaker {old.value} → {new.value}"
            + (
                f" (will try again in {breaker.retry_after():.1f}s)"
                if new is CircuitState.OPEN
                else ""
            )
        )
    )
    return breaker


@contextlib.contextmanager
def _retries_printed() -> Iterator[None]:
    """The supervisor's retry log records, printed as progress lines while the demo runs."""
    handler = _RetryPrinter()
    log = logging.getLogger("llmsup")
    log.addHandler(handler)
    previous_level = log.level
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)


async def _ask_all(
    sup: Supervisor, prompts: list[str], results: list[tuple[str, Result | LLMError]]
) -> None:
    """Ask every prompt at once, printing each outcome as it comes."""

    async def one(prompt: str) -> None:
        _ASKING.set(prompt)  # this task's own context: only its calls' records see it
        try:
            outcome: Result | LLMError = await sup.ask(prompt)
        except LLMError as error:
            outcome = error
        results.append((prompt, outcome))
        _print_progress(len(results), len(prompts), prompt, outcome)

    async with trio.open_nursery() as nursery:
        for prompt in prompts:
            nursery.start_soon(one, prompt)


def _print_progress(done: int, total: int, prompt: str, outcome: Result | LLMError) -> None:
    if isinstance(outcome, Result):
        status = "ok".ljust(16)
        detail = f"attempts={outcome.attempts} {outcome.duration_s:5.2f}s  {outcome.text[:40]!r}"
    else:
        status = outcome.category.value.ljust(16)
        detail = f"attempts={outcome.attempts}  {outcome.message[:70]}"
    print(f"[{done:2d}/{total}] {status} {prompt:<26} {detail}")


def _print_summary(
    results: list[tuple[str, Result | LLMError]],
    elapsed: float,
    retries: int,
    spawned: int,
    breaker: CircuitBreaker,
) -> None:
    by_outcome: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    durations: dict[str, list[float]] = {}
    for _prompt, outcome in results:
        key = "ok" if isinstance(outcome, Result) else outcome.category.value
        by_outcome[key] += 1
        attempts[key] += outcome.attempts
        if isinstance(outcome, Result):
            durations.setdefault(key, []).append(outcome.duration_s)
    print()
    print(f"{'outcome':<18}{'calls':>6}{'attempts':>10}{'median s':>10}")
    print("-" * 44)
    for key, calls in sorted(by_outcome.items(), key=lambda kv: (kv[0] != "ok", kv[0])):
        times = durations.get(key)
        median = f"{statistics.median(times):.2f}" if times else "-"
        print(f"{key:<18}{calls:>6}{attempts[key]:>10}{median:>10}")
    print("-" * 44)
    print(f"{'total':<18}{sum(by_outcome.values()):>6}{sum(attempts.values()):>10}")
    print()
    print(
        f"wall time {elapsed:.1f}s · processes spawned {spawned} · retries {retries} · "
        f"breaker opened {breaker.opened_count}x, now {breaker.state.value}"
    )
    sys.stdout.flush()
