"""The fake's pure script: actions per plan, call-order rules, dialects, determinism."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors._fakes import _script
from actors._fakes._script import (
    CallCounter,
    Err,
    Exit,
    Grandchild,
    Hang,
    IgnoreSigterm,
    Out,
    PlanError,
    Sleep,
    effective_plan,
    script,
    validate_plan,
)


def run(
    raw: dict[str, Any], prompt: str = "hi", call_index: int = 1, dialect: str = "native", **kw: Any
) -> list[_script.Action]:
    return list(script(validate_plan(raw), prompt, call_index, dialect, 42, **kw))


def stdout(actions: list[_script.Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Out))


def lines(actions: list[_script.Action]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout(actions).splitlines() if line.strip()]


def test_native_answer_actions() -> None:
    actions = run({"chunks": 2, "session_id": "s"})
    assert actions[-1] == Exit(0)
    assert lines(actions) == [
        {"type": "session_started", "session_id": "s", "model": "fake"},
        {"type": "text_delta", "text": "echo"},
        {"type": "text_delta", "text": ": hi"},
        {
            "type": "result",
            "text": "echo: hi",
            "session_id": "s",
            "usage": {"input_tokens": 1, "output_tokens": 2},
            "cost_usd": 0.0,
        },
    ]


def test_actions_are_frozen_values() -> None:
    assert Out(b"x") == Out(b"x") and Out(b"x") != Err(b"x")
    assert hash(Sleep(1.0)) == hash(Sleep(1.0))
    assert repr(Grandchild(1.0, True)) == "Grandchild(holds_stdout_s=1.0, ignores_sigterm=True)"
    with pytest.raises(AttributeError):
        Out(b"x").data = b"y"
    match Exit(3):
        case Exit(code):
            assert code == 3


def test_process_actions_come_first_then_sleep_and_failure() -> None:
    actions = run(
        {
            "ignore_sigterm": True,
            "grandchild_holds_stdout_s": 2,
            "latency_s": 0.5,
            "auth_failure": True,
        }
    )
    assert actions[:3] == [IgnoreSigterm(), Grandchild(2, False), Sleep(0.5)]
    assert actions[3:] == [Err(b"Error: 401 Unauthorized: invalid API key\n"), Exit(1)]


def test_hang_and_crash() -> None:
    assert run({"hang": True})[-1] == Hang()
    crashed = run({"crash_after_chunks": 1})
    assert crashed[-2:] == [Err(b"fake: crashed mid-stream\n"), Exit(3)]
    assert run({"hang_after_chunks": 0})[-1] == Hang()


def test_the_same_seed_gives_the_same_actions() -> None:
    plan = validate_plan({"chunks": 2})
    for dialect in _script.DIALECTS:
        first = list(script(plan, "hi", 1, dialect, 7))
        assert first == list(script(plan, "hi", 1, dialect, 7))
        assert first != list(script(plan, "hi", 1, dialect, 8))  # a different session id


def test_calls_rules_select_by_order() -> None:
    plan = validate_plan(
        {
            "state_dir": "/unused",
            "rules": [
                {"calls": [3, 5], "rate_limit_retry_after_s": 2},
                {"calls": [11, None], "hang": True},
                {"match": "slow", "latency_s": 1},
            ],
        }
    )
    chosen = [effective_plan(plan, "x", index) for index in range(1, 15)]
    limited = [i for i, p in enumerate(chosen, 1) if p["rate_limit_retry_after_s"] == 2]
    hung = [i for i, p in enumerate(chosen, 1) if p["hang"]]
    assert limited == [3, 4, 5]
    assert hung == [11, 12, 13, 14]
    assert effective_plan(plan, "slow one", 7)["latency_s"] == 1
    assert effective_plan(plan, "x", 0) is plan  # an unknown index is in no range


def test_calls_and_match_together() -> None:
    plan = validate_plan(
        {"state_dir": "d", "rules": [{"match": "a", "calls": [2, 2], "hang": True}]}
    )
    assert not effective_plan(plan, "a", 1)["hang"]
    assert effective_plan(plan, "a", 2)["hang"]
    assert not effective_plan(plan, "b", 2)["hang"]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"state_dir": "d", "rules": [{"calls": [0, 1]}]}, "'rules[0].calls'"),
        ({"state_dir": "d", "rules": [{"calls": [3, 2]}]}, "'rules[0].calls'"),
        ({"state_dir": "d", "rules": [{"calls": "3"}]}, "'rules[0].calls'"),
        ({"state_dir": "d", "rules": [{"calls": [True, 2]}]}, "'rules[0].calls'"),
        ({"rules": [{"calls": [1, 2]}]}, "'state_dir'"),
        ({"rules": [{"hang": True}]}, "'rules[0].match'"),
    ],
)
def test_bad_calls_rules(raw: dict[str, Any], needle: str) -> None:
    with pytest.raises(PlanError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        validate_plan(raw)


def test_call_counter() -> None:
    counter = CallCounter()
    assert [counter.record(p) for p in ("a", "b", "a", "a")] == [(1, 0), (2, 0), (3, 1), (4, 2)]


def test_fail_first_reads_the_prompt_count() -> None:
    raw = {"fail_first": 2, "state_dir": "d"}
    assert run(raw, prompt_calls=0)[-1] == Exit(1)
    assert run(raw, prompt_calls=1)[-1] == Exit(1)
    assert run(raw, prompt_calls=2)[-1] == Exit(0)


def test_serve_turns_have_no_exit_and_one_session_start() -> None:
    plan = {"session_id": "s", "rate_limit_retry_after_s": 3}
    turn = run(plan, serve=True)
    assert not any(isinstance(a, Exit) for a in turn)
    assert lines(turn)[-1]["category"] == "rate_limit"
    second = run({"session_id": "s"}, serve=True, first_turn=False)
    assert [e["type"] for e in lines(second)] == ["text_delta"] * 3 + ["result"]


# --- dialects -----------------------------------------------------------------------------


def test_claude_rate_limit_is_api_retry_then_error_result() -> None:
    actions = run({"rate_limit_retry_after_s": 7, "session_id": "s"}, dialect="claude")
    kinds = [(e["type"], e.get("subtype")) for e in lines(actions)]
    assert kinds == [
        ("system", "init"),
        ("system", "api_retry"),
        ("assistant", None),
        ("result", "success"),
    ]
    retry, result = lines(actions)[1], lines(actions)[-1]
    assert (retry["error_status"], retry["error"], retry["retry_delay_ms"]) == (
        429,
        "rate_limit",
        7000,
    )
    assert result["is_error"] is True and result["api_error_status"] == 429
    assert actions[-1] == Exit(1)


def test_claude_streams_partial_messages() -> None:
    evs = lines(run({"chunks": 2, "session_id": "s"}, dialect="claude"))
    deltas = [
        e["event"]["delta"]["text"]
        for e in evs
        if e["type"] == "stream_event" and e["event"]["type"] == "content_block_delta"
    ]
    assert deltas == ["echo", ": hi"]
    assert evs[-1]["result"] == "echo: hi" and evs[-1]["session_id"] == "s"


def test_claude_lost_session() -> None:
    actions = run({"lost_session": True, "session_id": "abc"}, dialect="claude")
    assert lines(actions)[-1]["errors"] == ["No conversation found with session ID: abc"]
    assert Err(b"No conversation found with session ID: abc\n") in actions


def test_codex_rate_limit_is_turn_failed() -> None:
    actions = run({"rate_limit_retry_after_s": 7}, dialect="codex")
    evs = lines(actions)
    assert [e["type"] for e in evs] == ["thread.started", "turn.started", "error", "turn.failed"]
    assert evs[-1]["error"]["message"] == "exceeded retry limit, last status: 429 Too Many Requests"
    assert actions[-1] == Exit(1)


def test_gemini_rate_limit_is_an_attempt_line_and_its_exit_code() -> None:
    actions = run({"rate_limit_retry_after_s": 20}, dialect="gemini")
    stderr = b"".join(a.data for a in actions if isinstance(a, Err)).decode()
    assert stderr.startswith("Attempt 1 failed with status 429. Retrying with backoff...")
    assert "Please try again in 20s." in stderr
    assert actions[-1] == Exit(173)
    assert run({"auth_failure": True}, dialect="gemini")[-1] == Exit(145)
    assert run({"lost_session": True}, dialect="gemini")[-1] == Exit(42)


def test_unknown_dialect() -> None:
    with pytest.raises(PlanError, match="unknown dialect"):
        run({}, dialect="cobol")
