"""The runtime's second line of defence: under ``tools="none"`` a CLI that asks to run a
tool is stopped before it can, and the call fails PERMANENT naming the tool and the policy.

The CLI here is a tiny program speaking claude's stream-json: it announces a ``Read`` tool
call, then (as an agent would) runs the "tool" a moment later by writing a file. The file
is the proof of whether the tool ran.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

import actors
from actors import ErrorCategory, LLMError, ToolPolicy, ToolUse
from supervisor import RetryConfig, open_supervisor

from ..helpers import live_processes_with, marker, python_cli

AGENT = """
import json, sys, time
ran, delay, tool = sys.argv[1], float(sys.argv[2]), sys.argv[3]
def say(obj): print(json.dumps(obj), flush=True)
say({"type": "system", "subtype": "init", "session_id": "s1", "tools": [tool]})
say({"type": "assistant", "message": {"role": "assistant", "content": [
    {"type": "tool_use", "id": "t1", "name": tool, "input": {"file_path": "/etc/hostname"}}]}})
time.sleep(delay)
open(ran, "w").write("the tool ran")
say({"type": "result", "subtype": "success", "is_error": False, "result": "done",
     "session_id": "s1"})
"""


def agent(tmp_path: Path, *, delay: float, tool: str = "Read", tools: ToolPolicy) -> actors.CliSpec:
    ran = tmp_path / "ran"
    spec = python_cli(AGENT + f"# {marker()}\n", output_format="jsonl")
    spec = attrs.evolve(
        spec,
        argv=(*spec.argv, str(ran), str(delay), tool),
        adapter_factory=actors.ClaudeAdapter,
        classifier=actors.ClaudeClassifier(),
        tools=tools,
        permitted_tools=frozenset({"StructuredOutput"}),
    )
    return spec


async def test_under_none_a_tool_call_stops_the_cli_before_the_tool_runs(tmp_path: Path) -> None:
    spec = agent(tmp_path, delay=30, tools="none")
    seen: list[object] = []
    async with open_supervisor(spec, retry=RetryConfig(max_attempts=3)) as sup:
        with trio.fail_after(60):  # a guard against a hang only: the CLI would sleep 30 s
            with pytest.raises(LLMError) as caught:
                async with sup.stream("summarize this document") as events:
                    async for event in events:
                        seen.append(event)
        stats = sup.statistics()
    error = caught.value
    assert error.category is ErrorCategory.PERMANENT
    assert "'Read'" in error.message and "tool policy is 'none'" in error.message
    assert error.attempts == 1 and stats.processes_spawned == 1  # never retried
    assert any(isinstance(e, ToolUse) and e.name == "Read" for e in seen)  # the evidence
    assert not (tmp_path / "ran").exists()
    assert live_processes_with(marker()) == []  # stopped, not left to run the tool


async def test_a_permitted_tool_and_a_policy_that_allows_tools_let_the_call_finish(
    tmp_path: Path,
) -> None:
    cases: list[tuple[ToolPolicy, str]] = [("full", "Read"), ("none", "StructuredOutput")]
    for tools, tool in cases:
        (tmp_path / "ran").unlink(missing_ok=True)
        async with open_supervisor(agent(tmp_path, delay=0, tool=tool, tools=tools)) as sup:
            result = await sup.ask("read it")
        assert result.text == "done"
        assert (tmp_path / "ran").read_text() == "the tool ran"


def test_the_policy_is_checked_where_the_spec_is_built() -> None:
    with pytest.raises(ValueError, match="tools"):
        attrs.evolve(actors.command(["true"]), tools="everything")  # type: ignore[arg-type]
    assert actors.command(["true"]).tools == "none"  # the safe default
