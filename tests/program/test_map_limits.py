"""Input ``llmsup map`` and ``llmsup serve`` refuse up front, in one line (exit status 2 / 422):
nesting deeper than Python can parse, ``$ref`` loops, numbers JSON cannot carry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..helpers import fake
from .test_map_cli import llmsup_map
from .test_serve import ONE_ATTEMPT, assert_error, running

DEEP = "[" * 200_000 + "]" * 200_000


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    return lines[0]


def _input(tmp_path: Path, *lines: str) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(line + "\n" for line in lines))
    return source


def test_a_deeply_nested_input_line_is_a_usage_error_naming_the_line(tmp_path: Path) -> None:
    ok = json.dumps({"id": 1, "prompt": "fine"})
    deep = '{"id": 2, "prompt": "x", "extra": ' + DEEP + "}"
    source = _input(tmp_path, ok, deep)
    out = tmp_path / "out.jsonl"
    proc = llmsup_map(str(source), "-o", str(out))
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert line.startswith(f"llmsup: {source} line 2: ")
    assert "nested too deeply" in line
    assert not out.exists() or out.read_text() == ""  # nothing ran


def _schema_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(text)
    return path


SCHEMA_FILES: list[tuple[str, str]] = [
    (DEEP, "nested too deeply"),
    ('{"items": ' * 5000 + "{}" + "}" * 5000, "nested too deeply"),
    ('{"$ref": "#"}', "$ref '#' loops back"),
    ('{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}', "$ref '#/$defs/a' loops"),
    ('{"type": "number", "maximum": 1e999}', "$.maximum: inf is not a finite number"),
]


@pytest.mark.parametrize(("text", "named"), SCHEMA_FILES)
def test_an_unusable_schema_file_is_one_usage_error_line(
    tmp_path: Path, text: str, named: str
) -> None:
    schema = _schema_file(tmp_path, text)
    source = _input(tmp_path, json.dumps({"id": 1, "prompt": "x"}))
    out = tmp_path / "out.jsonl"
    proc = llmsup_map(str(source), "-o", str(out), "--output-schema", str(schema))
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert line.startswith(f"llmsup: --output-schema {schema}: ")
    assert named in line
    assert not out.exists() or out.read_text() == ""


SERVE_SCHEMAS: list[tuple[Any, str]] = [
    ('{"$ref": "#"}', "$ref '#' loops back"),
    ('{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}', "$ref '#/$defs/a' loops"),
    ('{"type": "number", "maximum": 1e999}', "not a finite number"),
]


@pytest.mark.parametrize(("schema", "named"), SERVE_SCHEMAS)
async def test_serve_refuses_the_same_schemas_with_422(schema: str, named: str) -> None:
    body = '{"prompt": "hi", "output_schema": ' + schema + "}"
    headers = {"Content-Type": "application/json"}
    async with running(fake(), retry=ONE_ATTEMPT) as client:
        response = await client.post("/ask", content=body, headers=headers)
        streamed = await client.post("/stream", content=body, headers=headers)
    for answer in (response, streamed):
        error = assert_error(answer, 422, "invalid_request")
        assert named in error["message"]


def test_a_deeply_nested_plan_is_a_usage_error(tmp_path: Path) -> None:
    source = _input(tmp_path, json.dumps({"id": 1, "prompt": "x"}))
    plan = '{"rules": ' + "[" * 20_000 + "]" * 20_000 + "}"
    proc = llmsup_map(str(source), "-o", str(tmp_path / "out.jsonl"), "--plan", plan)
    assert proc.returncode == 2
    assert _one_line(proc.stderr) == "llmsup: --plan is not usable JSON: nested too deeply"


def test_resume_over_a_deeply_nested_output_line_runs_that_item_again(tmp_path: Path) -> None:
    source = _input(tmp_path, *(json.dumps({"id": i, "prompt": f"p{i}"}) for i in range(2)))
    out = tmp_path / "out.jsonl"
    kept = {"id": 0, "ok": True, "text": "echo: p0"}
    out.write_text(json.dumps(kept) + "\n" + DEEP + "\n")
    proc = llmsup_map(str(source), "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines() if line != DEEP]
    assert ids == [0, 1]
