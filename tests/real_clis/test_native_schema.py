"""`ask(output=Model)` with the real claude and codex: the schema reaches the provider.

`actors.claude()` passes ``--json-schema`` and `actors.codex()` passes ``--output-schema``
(see tests/processes/test_structured.py for their argv); here the real CLIs run through the
supervisor against the emulator, whose request log shows the schema each one sent: claude as
its ``StructuredOutput`` tool's input schema, codex as the Responses API ``text.format``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from pydantic import BaseModel

from actors._fakes._emulator import open_emulator
from actors._fakes._emulator._homes import cli_environment
from supervisor import LLMError, RetryConfig, open_supervisor

from .test_real_clis import _installed, _spec


class Verdict(BaseModel):
    score: float
    reasons: list[str]


def _sent_schema(name: str, body: Any) -> Any:
    if name == "claude":
        (tool,) = [t for t in body["tools"] if t.get("name") == "StructuredOutput"]
        return tool["input_schema"]
    assert body["text"]["format"]["type"] == "json_schema"
    return body["text"]["format"]["schema"]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=pytest.mark.skipif(
                not _installed(n), reason="real CLIs not installed: run .ci/install-clis.sh"
            ),
        )
        for n in ("claude", "codex")
    ],
)
async def test_real_cli_receives_the_output_schema(name: str, tmp_path: Path) -> None:
    schema = Verdict.model_json_schema()
    async with open_emulator() as emulator:
        env = cli_environment(name, emulator.base_url, tmp_path / "home", inherit=os.environ)  # type: ignore[arg-type]
        spec = _spec(name, env, cwd=str(tmp_path))  # type: ignore[arg-type]
        async with open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup:
            # The emulator echoes the prompt: no valid Verdict, and that is fine here.
            with trio.fail_after(240), contextlib.suppress(LLMError):  # a hang guard
                await sup.ask("Judge this", output=Verdict, max_reasks=0)
        requests = emulator.generation_requests()
    assert requests, f"{name} never asked the emulator"
    sent = _sent_schema(name, requests[0].body)
    assert sent["properties"] == schema["properties"]
    assert sorted(sent["required"]) == sorted(schema["required"])
