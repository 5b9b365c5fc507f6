"""A call's ``cwd=`` holds for every spec the call derives: one with a native system prompt, a
structured call's native schema option, an ``adapt``. The factories build those variants
from their own options, whose folder is the spec's original one, not the call's."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
from pydantic import BaseModel

import actors
from supervisor import open_supervisor

PRINT_CWD = "import json, os; print(json.dumps({'cwd': os.getcwd()}))"


def _rebuilt(cwd: str | None) -> actors.CliSpec:
    """A CLI printing its folder, whose variants are rebuilt as the factories do."""
    spec = actors.command([sys.executable, "-S", "-c", PRINT_CWD], cwd=cwd)
    return attrs.evolve(
        spec,
        with_system=lambda _system: _rebuilt(cwd),
        output_schema=lambda _schema: _rebuilt(cwd),
    )


class Where(BaseModel):
    cwd: str


async def test_a_call_folder_holds_with_a_native_system_prompt_and_schema(tmp_path: Path) -> None:
    home = tmp_path / "home"
    call = tmp_path / "call"
    home.mkdir()
    call.mkdir()
    async with open_supervisor(_rebuilt(str(home))) as sup:
        plain = await sup.ask("where", cwd=str(call))
        system = await sup.ask("where", system="be brief", cwd=str(call))
        structured = await sup.ask("where", Where, cwd=str(call))
        adapted = await sup.ask("where", cwd=str(call), adapt=lambda s: _rebuilt(str(home)))
        own = await sup.ask("where", system="be brief")
    assert Where.model_validate_json(plain.text).cwd == str(call)
    assert Where.model_validate_json(system.text).cwd == str(call)
    assert isinstance(structured.data, Where) and structured.data.cwd == str(call)
    assert Where.model_validate_json(adapted.text).cwd == str(call)
    assert Where.model_validate_json(own.text).cwd == str(home)  # no cwd=: the spec's own
