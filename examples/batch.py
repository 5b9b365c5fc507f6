"""Batch analysis with concurrency control: one outcome per prompt, whatever fails.

    python examples/batch.py [--cli fake|claude|codex|gemini] [FILE ...]

The reference document's "Example 3: Batch Processing with Concurrency Control", on this
library. Instead of ``asyncio.Semaphore(3)`` plus ``gather`` over hand-written
try/except wrappers, the supervisor bounds the processes (``concurrency=3``) and
``sup.map`` returns a `Result` or an `LLMError` per prompt, in input order; one failure
never cancels the others. ``sup.map_stream`` yields the same outcomes as they complete,
reading its input lazily (a generator of any length runs in bounded memory).

Without FILE arguments it analyzes a few generated sample files, and the fake CLI's fault
plan makes some of them fail: ``flaky.py`` fails once and is retried, ``crashy.py``
crashes on every attempt, ``locked.py`` gets an authentication error (never retried) and
``stuck.py`` hangs until the per-attempt timeout.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from examples._common import cli_spec, make_parser, run
from supervisor import LLMError, Result, RetryConfig, TimeoutConfig, open_supervisor

SAMPLES = {
    "mean.py": "def mean(xs):\n    return sum(xs) / len(xs)\n",
    "flaky.py": "import random\n\ndef coin():\n    return random.random() > 0.5\n",
    "greet.py": "def greet(name):\n    print('hello ' + name)\n",
    "crashy.py": "def f(x):\n    return f(x)\n",
    "locked.py": "PASSWORD = 'hunter2'\n",
    "parse.py": "def parse(s):\n    return eval(s)\n",
    "stuck.py": "while True:\n    pass\n",
    "fib.py": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
}


def fake_plan(state_dir: str) -> dict[str, object]:
    """The fake CLI's script: 0.2 s per answer, and a fault for some of the files."""
    return {
        "latency_s": 0.2,
        "chunks": 2,
        "state_dir": state_dir,  # where fail_first keeps its counters
        "rules": [
            {"match": "flaky.py", "fail_first": 1, "fail_with": "retryable"},
            {"match": "crashy.py", "crash_after_chunks": 1},
            {"match": "locked.py", "auth_failure": True},
            {"match": "stuck.py", "hang": True},
        ],
    }


def prompt_for(name: str, code: str) -> str:
    return f"Analyze {name} and list its bugs:\n{code}"


def describe(outcome: Result | LLMError) -> str:
    if isinstance(outcome, LLMError):
        return (
            f"FAILED {outcome.category.value} after {outcome.attempts} attempt(s): "
            f"{outcome.message[:60]}"
        )
    first_line = outcome.text.strip().splitlines()[0] if outcome.text.strip() else ""
    return f"ok after {outcome.attempts} attempt(s): {first_line[:50]}"


async def main(cli: str = "fake", paths: list[str] | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="llmsup-example-") as tmp:
        if paths:
            files = {path: await trio.Path(path).read_text(encoding="utf-8") for path in paths}
        else:
            files = SAMPLES
        spec = cli_spec(cli, fake_plan(tmp))
        async with open_supervisor(
            spec,
            concurrency=3,  # at most 3 CLI processes at once, like Semaphore(3)
            retry=RetryConfig(max_attempts=2, initial_delay_ms=100),
            # The fake answers in 0.2 s: a 1 s limit shows the timeout without a long wait.
            timeouts=TimeoutConfig(total_execution=1.0 if cli == "fake" else 120),
        ) as sup:
            # 1. map: every outcome, in input order.
            started = trio.current_time()
            outcomes = await sup.map(prompt_for(name, code) for name, code in files.items())
            elapsed = trio.current_time() - started
            print(f"map: {len(files)} prompts -> {len(outcomes)} outcomes in {elapsed:.1f}s")
            for name, outcome in zip(files, outcomes, strict=True):
                print(f"  {name:<10} {describe(outcome)}")
            failed = sum(isinstance(o, LLMError) for o in outcomes)
            print(f"map: {len(outcomes) - failed} ok, {failed} failed")

            # 2. map_stream: outcomes as they complete (completion order, with the index).
            #    The generator is read only as fast as work finishes. (flaky.py spent its
            #    one failure in the first pass, so it succeeds at once this time.)
            names = list(files)
            prompts = (prompt_for(name, code) for name, code in files.items())
            async with sup.map_stream(prompts) as results:
                async for done in results:
                    name = names[done.index]
                    print(f"map_stream: #{done.index} {name:<10} {describe(done.outcome)}")

            stats = sup.statistics()
            print(
                f"statistics: {stats.started} calls, {stats.succeeded} ok, {stats.failed} failed "
                f"{dict(stats.failures_by_category)}, {stats.retries} retries, "
                f"{stats.processes_spawned} processes"
            )


if __name__ == "__main__":
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="files to analyze (default: built-in samples)")
    args = parser.parse_args()
    run(main, args.cli, args.files)
