"""Test your own pipeline: Hypothesis strategies for fault plans, retry and timeout configs.

Needs Hypothesis (``pip install 'llm-cli-supervisor[testing]'``); ``import supervisor`` never
does. A property test draws a plan and runs the pipeline on the simulated backend (in process,
on trio's clock) or on fake processes (one line apart)::

    from hypothesis import given
    from supervisor.testing import fault_plans

    @given(plan=fault_plans(kinds=["rate_limit", "crash"]))
    def test_nothing_is_lost(plan):
        spec = actors.simulated(plan)       # or actors.fake(plan): real processes
        ...

Each plan is a plain, JSON-able dict: a falsifying example prints as a plan you can paste
into ``actors.fake(...)`` or ``actors.simulated(...)`` as it is, e.g.
``{'rules': [{'calls': [1, 1], 'rate_limit_retry_after_s': 0.0}]}``. Plans shrink to fewer
rules, to the simplest fault (`FAULT_KINDS` is ordered simplest first), to the first calls and
to short latencies.

The pytest plugin (registered on install) adds the fixtures ``llmsup_no_leaks``,
``llmsup_emulator`` and ``llmsup_seed`` and the option ``--llmsup-seed``; see the README's
"Testing your pipeline".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import trio
import trio.testing

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "supervisor.testing needs Hypothesis: pip install 'llm-cli-supervisor[testing]'"
    ) from error

from actors import CliSpec, ErrorCategory, TimeoutConfig

from ._policy._backoff import RetryConfig

if TYPE_CHECKING:
    from actors import Fault

__all__ = [
    "DIALECTS",
    "FAULT_KINDS",
    "emulator_faults",
    "fault_plans",
    "retry_configs",
    "run",
    "timeout_configs",
]

_R = TypeVar("_R")

FAULT_KINDS: tuple[str, ...] = (
    "crash",
    "retryable",
    "rate_limit",
    "auth",
    "malformed",
    "prose",
    "bad_json",
    "invalid_utf8",
    "slow",
    "stderr_flood",
    "oversized_line",
    "hang",
    "grandchild",
)
"""Every fault kind `fault_plans` knows, simplest first (the order shrinking moves towards)."""

DIALECTS: tuple[str, ...] = ("native", "claude", "codex", "gemini")
"""The dialects a fake or simulated CLI can speak."""

DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
"""A spec's default line limit; an ``oversized_line`` fault prints a longer line."""

# Answers for the "bad_json" kind (valid JSON that fails any schema with a required key) and
# the "prose" kind (no JSON at all), simplest first.
BAD_JSON_ANSWERS = ("{}", "[]", "null", '{"unexpected": true}', '"a bare string"')
PROSE_ANSWERS = (
    "Sorry, I can't help with that.",
    "The answer is forty-two.",
    "Here is what I found: nothing conclusive.",
)


_STEPS = 1000  # every parameter is one draw in [0, _STEPS], scaled to its own range


def _scaled(step: int, low: float, high: float) -> float:
    """``step`` in ``[0, _STEPS]`` mapped onto ``[low, high]``, monotonic (0 gives ``low``)."""
    return low + (high - low) * step / _STEPS


def _count(step: int, low: int, high: int) -> int:
    return low + (high - low) * step // _STEPS


def _seconds(step: int, high: float) -> float:
    """Seconds in tenths, up to ``high``: short, readable, shrinking to 0."""
    return round(_scaled(step, 0.0, high), 1)


def _fault_keys(kind: str, a: int, b: int, max_line_bytes: int) -> dict[str, Any]:
    """The `FaultRule` keys of one fault of ``kind``, from two parameter steps."""
    if kind == "crash":
        return {"crash_after_chunks": _count(a, 0, 3)}
    if kind == "retryable":
        return {"exit_code": _count(a, 1, 255)}
    if kind == "rate_limit":
        return {"rate_limit_retry_after_s": float(_count(a, 0, 10))}
    if kind == "slow":
        return {"latency_s": _seconds(a, 3.0), "chunk_gap_s": _seconds(b, 1.0)}
    if kind in ("prose", "bad_json"):
        answers = PROSE_ANSWERS if kind == "prose" else BAD_JSON_ANSWERS
        return {"text": answers[_count(a, 0, len(answers) - 1)]}
    if kind == "stderr_flood":
        return {"stderr_bytes": _count(a, 1 << 16, 1 << 20)}
    if kind == "oversized_line":
        return {"oversized_line_bytes": max_line_bytes + _count(a, 1, 1024)}
    if kind == "hang":
        after = _count(a, 0, 3)
        return {"hang_after_chunks": after} if after else {"hang": True}
    if kind == "grandchild":
        return {
            "grandchild_holds_stdout_s": float(_count(a, 1, 30)),
            "grandchild_ignores_sigterm": True,
        }
    flags = {"auth": "auth_failure", "malformed": "malformed_line", "invalid_utf8": "invalid_utf8"}
    return {flags[kind]: True}


def _checked_kinds(kinds: Iterable[str] | None) -> list[str]:
    if kinds is None:
        return list(FAULT_KINDS)
    if isinstance(kinds, str):
        raise TypeError(f"kinds must be a list of fault kinds, not the string {kinds!r}")
    wanted = list(kinds)
    unknown = sorted(set(wanted) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(FAULT_KINDS)}"
        )
    if not wanted:
        raise ValueError("kinds is empty: name at least one fault kind, or pass None for all")
    return [kind for kind in FAULT_KINDS if kind in wanted]  # simplest first, whatever order


_OPEN = 4  # a span of 4 stands for "every later call": the last thing shrinking keeps


@st.composite
def _rules(
    draw: st.DrawFn, kinds: Sequence[str], prompts: Sequence[str] | None, max_line_bytes: int
) -> dict[str, Any]:
    # Every rule makes the same draws, whatever its kind: Hypothesis shrinks a shorter run of
    # choices first, so a kind with fewer parameters would otherwise beat a simpler one. With
    # equal lengths, the kind's index (simplest first) and then smaller parameters win.
    kind = kinds[draw(st.integers(0, len(kinds) - 1))]
    if prompts is not None:
        where: dict[str, Any] = {"match": prompts[draw(st.integers(0, len(prompts) - 1))]}
    else:
        first = draw(st.integers(1, 8))
        span = draw(st.integers(0, _OPEN))
        where = {"calls": [first, None if span == _OPEN else first + span]}
    steps = draw(st.integers(0, _STEPS)), draw(st.integers(0, _STEPS))
    return where | _fault_keys(kind, *steps, max_line_bytes)


def _shadowed(rule: dict[str, Any], earlier: Sequence[dict[str, Any]]) -> bool:
    """Whether no call can reach ``rule``: the first rule that applies wins, and ``earlier``
    rules apply to every call (or prompt) it would."""
    if "match" in rule:
        return any(other["match"] in rule["match"] for other in earlier)
    ranges = [other["calls"] for other in earlier]

    def covered(call: int) -> bool:
        return any(first <= call and (last is None or call <= last) for first, last in ranges)

    first, last = rule["calls"]
    if last is not None:
        return all(covered(call) for call in range(first, last + 1))
    open_starts = [start for start, end in ranges if end is None]
    if not open_starts:
        return False
    return all(covered(call) for call in range(first, max(first, min(open_starts))))


def _without_dead_rules(drawn: list[dict[str, Any]]) -> dict[str, Any]:
    # A rule no call reaches changes nothing: leaving it out keeps falsifying plans minimal.
    rules: list[dict[str, Any]] = []
    for rule in drawn:
        if not _shadowed(rule, rules):
            rules.append(rule)
    return {"rules": rules} if rules else {}


def fault_plans(
    *,
    kinds: Iterable[str] | None = None,
    dialect: str = "native",
    max_rules: int = 3,
    prompts: Sequence[str] | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> st.SearchStrategy[dict[str, Any]]:
    """Fault plans (plain dicts) that ``actors.fake(plan, dialect=...)`` and
    ``actors.simulated(plan, dialect=...)`` both accept.

    Args:
        kinds: the fault kinds to draw from (`FAULT_KINDS`); None means all of them.
        dialect: the dialect the plan is meant for (one of `DIALECTS`); every kind renders
            in every dialect, so this only checks the name.
        max_rules: at most this many rules (0 gives only clean plans).
        prompts: with prompts, each rule matches one of them (``"match"``); without, each
            rule selects calls by their order (``"calls": [first, last]``, 1-based and
            inclusive; ``last`` None means every later call too).
        max_line_bytes: the line limit of the spec under test, which an ``oversized_line``
            fault exceeds (default: a spec's default, 8 MiB).

    Raises ValueError naming what is wrong (an unknown kind or dialect, an empty ``prompts``,
    a negative ``max_rules``).
    """
    chosen = _checked_kinds(kinds)
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    if max_rules < 0:
        raise ValueError(f"max_rules must be >= 0, got {max_rules!r}")
    if prompts is not None:
        if isinstance(prompts, str):
            raise TypeError(f"prompts must be a list of prompts, not the string {prompts!r}")
        if not prompts:
            raise ValueError("prompts is empty: give the prompts rules may match, or None")
    if max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be >= 1, got {max_line_bytes!r}")
    rules = _rules(chosen, None if prompts is None else list(prompts), max_line_bytes)
    return st.lists(rules, max_size=max_rules).map(_without_dead_rules)


def _delays_ms(max_value: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.just(0.0),
        st.floats(min_value=0.0, max_value=max_value, allow_nan=False, allow_infinity=False),
    )


@st.composite
def retry_configs(
    draw: st.DrawFn, *, jitter: bool | None = None, any_retry_on: bool = False
) -> RetryConfig:
    """Valid `RetryConfig`s. `jitter` fixes the flag; None draws it.

    `retry_on` is a subset of the default (so never holds a permanent category) unless
    `any_retry_on`, which draws it from every category, permanent ones included (a user may
    opt in to retrying anything).
    """
    pool = frozenset(ErrorCategory) if any_retry_on else RetryConfig().retry_on
    initial = draw(_delays_ms(10_000.0))
    return RetryConfig(
        max_attempts=draw(st.integers(min_value=1, max_value=10)),
        initial_delay_ms=initial,
        exponential_base=draw(
            st.one_of(st.just(1.0), st.just(2.0), st.floats(min_value=1.0, max_value=10.0))
        ),
        max_delay_ms=initial + draw(_delays_ms(100_000.0)),
        jitter=draw(st.booleans()) if jitter is None else jitter,
        max_retry_after_s=draw(st.floats(min_value=0.0, max_value=3600.0)),
        retry_on=draw(st.frozensets(st.sampled_from(sorted(pool, key=str)))),
    )


def _limits(max_s: float) -> st.SearchStrategy[float | None]:
    positive = st.floats(
        min_value=0.0, max_value=max_s, exclude_min=True, allow_nan=False, allow_infinity=False
    )
    return st.one_of(st.none(), positive)


@st.composite
def timeout_configs(draw: st.DrawFn, *, max_s: float = 600.0) -> TimeoutConfig:
    """Valid `TimeoutConfig`s: each limit None (no limit) or in ``(0, max_s]`` seconds."""
    if not max_s > 0:
        raise ValueError(f"max_s must be > 0, got {max_s!r}")
    chunk_receive = draw(_limits(max_s))
    return TimeoutConfig(
        total_execution=draw(_limits(max_s)),
        chunk_receive=chunk_receive,
        graceful_shutdown=draw(
            st.floats(min_value=0.0, max_value=min(max_s, 30.0), allow_nan=False)
        ),
        first_output=draw(st.one_of(st.just(chunk_receive), _limits(max_s))),
    )


EMULATOR_FAULT_KINDS: tuple[str, ...] = (
    "status",
    "malformed",
    "disconnect",
    "slow",
    "stall",
    "tool_call",
)
"""The emulator's fault kinds, simplest first."""


_STATUSES = (429, 500, 529, 401, 400, 503, 403)
_TOOLS = ("Read", "Bash", "Write", "WebFetch")


def _emulator_fault_fields(kind: str, a: int, b: int, c: int) -> dict[str, Any]:
    """The `Fault` fields of ``kind`` from three parameter steps (see `_rules`)."""
    if kind == "status":
        fields: dict[str, Any] = {"status": _STATUSES[_count(a, 0, len(_STATUSES) - 1)]}
        if b:
            fields["retry_after"] = float(_count(b, 0, 60))
        if c:
            fields["gemini_retry_info"] = True
        return fields
    if kind == "slow":
        return {"chunk_delay_s": _seconds(a, 2.0)}
    if kind in ("stall", "disconnect"):
        return {f"{kind}_after_chunks": _count(a, 0, 3)}
    if kind == "tool_call":
        fields = {"tool_name": _TOOLS[_count(a, 0, len(_TOOLS) - 1)]}
        return fields | ({"tool_input": {"path": "notes.txt"}} if b else {})
    return {}


@st.composite
def _emulator_fault(draw: st.DrawFn, kinds: Sequence[str]) -> Fault:
    import actors  # the emulator pulls in an HTTP stack: only when this is used

    kind = kinds[draw(st.integers(0, len(kinds) - 1))]
    a, b, c = (draw(st.integers(0, _STEPS)) for _ in range(3))
    fault: Fault = actors.Fault.model_validate(
        {"kind": kind, **_emulator_fault_fields(kind, a, b, c)}
    )
    return fault


def emulator_faults(*, kinds: Iterable[str] | None = None) -> st.SearchStrategy[Fault]:
    """Valid provider-emulator `actors.Fault`s (``kinds``: some of `EMULATOR_FAULT_KINDS`)."""
    wanted = list(EMULATOR_FAULT_KINDS) if kinds is None else list(kinds)
    unknown = sorted(set(wanted) - set(EMULATOR_FAULT_KINDS))
    if unknown or not wanted:
        raise ValueError(
            f"bad emulator fault kinds {wanted!r}; known: {', '.join(EMULATOR_FAULT_KINDS)}"
        )
    ordered = [kind for kind in EMULATOR_FAULT_KINDS if kind in wanted]
    return _emulator_fault(ordered)


def run(spec: CliSpec, main: Callable[..., Awaitable[_R]], *args: Any) -> _R:
    """``trio.run(main, *args)`` on the clock that suits ``spec``, for synchronous (and
    ``@given``) tests: simulated time (an autojump `trio.testing.MockClock`) when ``spec``
    is simulated (``actors.simulated``), so sleeps, backoffs and hangs cost nothing; the
    real clock for real processes (``actors.fake``, a real CLI), which the mock clock would
    time out at once. Switching a test between backends is then changing its spec alone.
    """
    if spec.backend is not None:
        return trio.run(main, *args, clock=trio.testing.MockClock(autojump_threshold=0))
    return trio.run(main, *args)
