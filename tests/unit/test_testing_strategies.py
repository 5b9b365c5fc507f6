"""`supervisor.testing`: the public strategies draw valid plans and configs that shrink to the
simplest case; the leak check's decisions (pure, over synthetic process tables)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import find, given, settings

import actors
from actors import FaultPlan, TimeoutConfig
from supervisor import RetryConfig
from supervisor._testing import _leaks
from supervisor.testing import (
    FAULT_KINDS,
    emulator_faults,
    fault_plans,
    retry_configs,
    timeout_configs,
)

# The keys each kind may set on a rule (besides the selector).
KIND_KEYS = {
    "crash": {"crash_after_chunks"},
    "retryable": {"exit_code"},
    "rate_limit": {"rate_limit_retry_after_s"},
    "auth": {"auth_failure"},
    "malformed": {"malformed_line"},
    "prose": {"text"},
    "bad_json": {"text"},
    "invalid_utf8": {"invalid_utf8"},
    "slow": {"latency_s", "chunk_gap_s"},
    "stderr_flood": {"stderr_bytes"},
    "oversized_line": {"oversized_line_bytes"},
    "hang": {"hang", "hang_after_chunks"},
    "grandchild": {"grandchild_holds_stdout_s", "grandchild_ignores_sigterm"},
}
PROMPTS = ["alpha", "beta", "gamma"]


def test_every_kind_of_the_issue_is_known() -> None:
    assert set(FAULT_KINDS) == set(KIND_KEYS)


@settings(max_examples=200)
@given(plan=fault_plans())
def test_call_order_plans_are_valid_json_and_paste_back_as_they_print(plan: dict[str, Any]) -> None:
    FaultPlan.model_validate(plan)
    assert json.loads(json.dumps(plan)) == plan
    assert eval(repr(plan)) == plan  # the falsifying example can be pasted as it prints
    for rule in plan.get("rules", []):
        first, last = rule["calls"]
        assert first >= 1 and (last is None or last >= first)
        assert "match" not in rule


@settings(max_examples=100)
@given(plan=fault_plans(prompts=PROMPTS, max_rules=2))
def test_prompt_plans_match_the_given_prompts(plan: dict[str, Any]) -> None:
    FaultPlan.model_validate(plan)
    rules = plan.get("rules", [])
    assert len(rules) <= 2
    assert all(rule["match"] in PROMPTS and "calls" not in rule for rule in rules)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_kinds_restrict_the_faults(kind: str) -> None:
    @settings(max_examples=20, database=None)
    @given(plan=fault_plans(kinds=[kind]))
    def check(plan: dict[str, Any]) -> None:
        for rule in plan.get("rules", []):
            assert set(rule) - {"calls"} <= KIND_KEYS[kind]
            assert set(rule) - {"calls"}

    check()


@pytest.mark.parametrize("dialect", ["native", "claude", "codex", "gemini"])
def test_the_fake_and_the_simulated_backend_of_every_dialect_accept_the_plans(dialect: str) -> None:
    @settings(max_examples=15, database=None)
    @given(plan=fault_plans(dialect=dialect))
    def check(plan: dict[str, Any]) -> None:
        assert isinstance(actors.fake(plan, dialect=dialect), actors.CliSpec)  # type: ignore[arg-type]
        assert isinstance(actors.simulated(plan, dialect=dialect), actors.CliSpec)

    check()


def _shrunk(condition: Any, **options: Any) -> dict[str, Any]:
    plan: dict[str, Any] = find(
        fault_plans(**options), condition, settings=settings(database=None, max_examples=2000)
    )
    return plan


def test_a_plan_with_a_fault_shrinks_to_one_rule_of_the_simplest_kind_on_the_first_call() -> None:
    assert _shrunk(lambda plan: bool(plan)) == {
        "rules": [{"calls": [1, 1], "crash_after_chunks": 0}]
    }


def test_a_rate_limit_shrinks_to_a_zero_second_hint_on_the_first_call() -> None:
    def rate_limited(plan: dict[str, Any]) -> bool:
        return any("rate_limit_retry_after_s" in rule for rule in plan.get("rules", []))

    assert _shrunk(rate_limited) == {"rules": [{"calls": [1, 1], "rate_limit_retry_after_s": 0.0}]}


def test_latencies_shrink_to_zero_and_prompts_to_the_first() -> None:
    def slow(plan: dict[str, Any]) -> bool:
        return any("latency_s" in rule for rule in plan.get("rules", []))

    assert _shrunk(slow, prompts=PROMPTS) == {
        "rules": [{"match": "alpha", "latency_s": 0.0, "chunk_gap_s": 0.0}]
    }


def test_two_needed_rules_shrink_to_exactly_two() -> None:
    def two_faulty(plan: dict[str, Any]) -> bool:
        return len(plan.get("rules", [])) >= 2

    assert len(_shrunk(two_faulty)["rules"]) == 2


def test_max_rules_zero_gives_clean_plans_only() -> None:
    @settings(max_examples=10, database=None)
    @given(plan=fault_plans(max_rules=0))
    def check(plan: dict[str, Any]) -> None:
        assert plan == {}

    check()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kinds": ["rate_limit", "flood"]}, "unknown fault kind(s) 'flood'"),
        ({"kinds": []}, "kinds is empty"),
        ({"dialect": "copilot"}, "unknown dialect 'copilot'"),
        ({"max_rules": -1}, "max_rules must be >= 0"),
        ({"prompts": []}, "prompts is empty"),
    ],
)
def test_bad_arguments_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fault_plans(**options)


def test_a_string_is_not_a_list_of_kinds_or_prompts() -> None:
    with pytest.raises(TypeError, match="not the string 'crash'"):
        fault_plans(kinds="crash")
    with pytest.raises(TypeError, match="not the string 'hi'"):
        fault_plans(prompts="hi")


@given(config=retry_configs())
def test_retry_configs_are_valid_and_never_retry_permanent_errors(config: RetryConfig) -> None:
    assert isinstance(config, RetryConfig)
    assert config.retry_on <= RetryConfig().retry_on


@given(config=timeout_configs(max_s=30.0))
def test_timeout_configs_are_valid_and_bounded(config: TimeoutConfig) -> None:
    for limit in (config.total_execution, config.chunk_receive, config.first_output):
        assert limit is None or 0 < limit <= 30.0
    assert 0 <= config.graceful_shutdown <= 30.0


@given(fault=emulator_faults())
def test_emulator_faults_are_valid(fault: Any) -> None:
    assert isinstance(fault, actors.Fault)
    assert actors.Fault.model_validate(fault.model_dump(exclude_none=True)) == fault


@given(fault=emulator_faults(kinds=["status"]))
def test_emulator_faults_keep_to_their_kinds(fault: Any) -> None:
    assert fault.kind == "status" and fault.status is not None


def test_an_emulator_fault_shrinks_to_a_429() -> None:
    fault = find(emulator_faults(), lambda f: True, settings=settings(database=None))
    assert (fault.kind, fault.status, fault.retry_after) == ("status", 429, None)


def test_supervisor_testing_without_hypothesis_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "supervisor.testing")
    with pytest.raises(ImportError, match=r"pip install 'llm-cli-supervisor\[testing\]'"):
        importlib.import_module("supervisor.testing")


# The leak check's decisions.


def _record(
    pid: int, ppid: int, *, start: int = 100, state: str = "S", marked: bool = False
) -> Any:
    return _leaks.ProcessRecord(pid, ppid, start, state, f"cli {pid}", marked)


def test_leftovers_are_new_live_descendants_and_marked_escapees() -> None:
    root = 10
    table = [
        _record(10, 1),  # the test process itself
        _record(11, 10),  # a child started by the test
        _record(12, 11),  # its grandchild
        _record(13, 1, marked=True),  # escaped (setsid, reparented) but carries the mark
        _record(14, 13),  # the escapee's child
        _record(15, 10, state="Z"),  # dead
        _record(16, 10, start=5),  # was there before the test
        _record(17, 1),  # someone else's
    ]
    before = {(16, 5), (10, 100), (17, 100)}
    found = _leaks.leftover_processes(before, table, root)
    assert [r.pid for r in found] == [11, 12, 13, 14]


def test_a_reused_pid_is_a_new_process() -> None:
    found = _leaks.leftover_processes({(11, 50)}, [_record(11, 10, start=60)], 10)
    assert [r.pid for r in found] == [11]


def test_only_more_descriptors_than_before_count_and_the_new_ones_are_named() -> None:
    before = {0: "/dev/null", 1: "pipe:[1]", 5: "/tmp/a"}
    assert _leaks.leftover_fds(before, {0: "/dev/null", 1: "pipe:[1]", 6: "/tmp/b"}) == {}
    after = {**before, 7: "pipe:[9]", 8: "socket:[3]"}
    assert _leaks.leftover_fds(before, after) == {7: "pipe:[9]", 8: "socket:[3]"}


def test_the_message_names_each_leftover() -> None:
    message = _leaks.describe_leaks([_record(42, 10)], {7: "pipe:[9]"}, before_fds=3)
    assert "1 process(es) started by the test still run" in message
    assert "pid 42 (parent 10): cli 42" in message
    assert "holds 4 file descriptors, 3 at the start" in message
    assert "fd 7 -> pipe:[9]" in message


def test_the_mark_is_the_one_the_spawn_sets() -> None:
    from actors._subreaper import SUPERVISOR_MARK

    assert _leaks.SUPERVISOR_MARK == SUPERVISOR_MARK


@settings(max_examples=200)
@given(plan=fault_plans(max_rules=4), prompts_plan=fault_plans(prompts=PROMPTS, max_rules=4))
def test_no_rule_is_shadowed_by_earlier_ones(
    plan: dict[str, Any], prompts_plan: dict[str, Any]
) -> None:
    rules = plan.get("rules", [])
    for index, rule in enumerate(rules):
        first, last = rule["calls"]
        reachable = range(first, (last if last is not None else first + 20) + 1)
        assert any(
            not any(
                a <= call and (b is None or call <= b)
                for a, b in (r["calls"] for r in rules[:index])
            )
            for call in reachable
        ), f"rule {index} of {rules} is never reached"
    matches = [rule["match"] for rule in prompts_plan.get("rules", [])]
    assert len(matches) == len(set(matches))
