"""`generic()` end to end: a JSON-lines tool run under the supervisor."""

from __future__ import annotations

import sys
from pathlib import Path

import actors
from supervisor import RetryConfig, open_supervisor

ONE_ATTEMPT = RetryConfig(max_attempts=1)


async def test_generic_jsonl_tool_runs_under_the_supervisor(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "prompt = sys.stdin.read()\n"
        "print(json.dumps({'session': 's9', 'chunk': {'text': 'you said: '}}))\n"
        "print(json.dumps({'chunk': {'text': prompt}}))\n"
    )
    spec = actors.generic(
        [sys.executable, "-S", "-c", code],
        output_format="jsonl",
        prompt_via="stdin",
        delta_field="chunk.text",
        session_field="session",
        name="tool",
    )
    async with open_supervisor(spec, retry=ONE_ATTEMPT) as sup:
        result = await sup.ask("--help")
    assert (result.text, result.session_id, result.cli) == ("you said: --help", "s9", "tool")
