"""Structured answers: sup.ask(prompt, output=Model) with re-asks, against real processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from pydantic import BaseModel

from actors import CliSpec
from supervisor import ErrorCategory, LLMError, Result, open_supervisor

from ..helpers import fake, python_cli


class CodeAnalysis(BaseModel):
    issues: list[str]
    score: float


EXPECTED = CodeAnalysis(issues=["unused variable x"], score=0.5)
GOOD = EXPECTED.model_dump()


async def test_valid_answer_becomes_a_model_instance() -> None:
    text = f"Sure! Here is the analysis:\n```json\n{json.dumps(GOOD)}\n```\nAnything else?"
    async with open_supervisor(fake({"text": text})) as sup:
        result = await sup.ask("Analyze x = 1", output=CodeAnalysis)
    assert isinstance(result.data, CodeAnalysis)
    assert result.data == EXPECTED
    assert result.reasks == 0
    analysis: CodeAnalysis = result.data_as(CodeAnalysis)  # typed for mypy --strict
    assert analysis.score == 0.5


async def test_data_as_names_what_data_really_is() -> None:
    async with open_supervisor(fake()) as sup:
        plain = await sup.ask("no schema here")
    with pytest.raises(TypeError, match=r"Result\.data is no structured answer, not CodeAnalysis"):
        plain.data_as(CodeAnalysis)


async def test_schema_goes_into_the_prompt(tmp_path: Path) -> None:
    log = tmp_path / "prompt"
    code = (
        f"import sys, json; open({str(log)!r}, 'w').write(sys.argv[1]); print(json.dumps({GOOD!r}))"
    )
    async with open_supervisor(python_cli(code)) as sup:
        result = await sup.ask("Analyze x = 1", output=CodeAnalysis)
    sent = log.read_text()
    assert sent.startswith("Analyze x = 1")
    assert json.dumps(CodeAnalysis.model_json_schema(), separators=(",", ":")) in sent
    assert result.data == EXPECTED


async def test_invalid_answer_is_reasked_with_the_validation_error(tmp_path: Path) -> None:
    plan = {
        "text": '{"issues": "none", "score": "high"}',
        "rules": [{"match": "could not be used", "text": json.dumps(GOOD)}],
    }
    async with open_supervisor(fake(plan)) as sup:
        result = await sup.ask("Analyze", output=CodeAnalysis)
        stats = sup.statistics()
    assert result.data == EXPECTED
    assert result.reasks == 1
    assert stats.reasks == 1
    assert stats.retries == 0  # re-asks are not transport retries
    # One structured call, however many re-asks (issue 12 bug 4): counted once.
    assert stats.started == 1
    assert (stats.succeeded, stats.failed) == (1, 0)
    assert stats.processes_spawned == 2


async def test_reask_prompt_carries_the_errors_and_the_bad_answer(tmp_path: Path) -> None:
    log = tmp_path / "prompts"
    code = (
        f"import sys; open({str(log)!r}, 'a').write(sys.argv[1] + '\\0'); "
        'print(\'{"issues": [], "score": "high"}\')'
    )
    async with open_supervisor(python_cli(code)) as sup:
        with pytest.raises(LLMError):
            await sup.ask("Analyze", output=CodeAnalysis, max_reasks=1)
    first, second = log.read_text().split("\0")[:2]
    assert "could not be used" not in first
    assert "score" in second and "valid number" in second
    assert '"score": "high"' in second  # the bad answer is quoted back


async def test_cap_reached_is_malformed_output_keeping_the_last_answer() -> None:
    async with open_supervisor(fake({"text": "I cannot produce JSON, sorry."})) as sup:
        with pytest.raises(LLMError) as info:
            await sup.ask("Analyze", output=CodeAnalysis, max_reasks=2)
        stats = sup.statistics()
    error = info.value
    assert error.category is ErrorCategory.MALFORMED_OUTPUT
    assert "after 2 re-asks" in error.message
    assert "no JSON" in error.message
    assert error.raw_text == "I cannot produce JSON, sorry."
    assert stats.reasks == 2
    # One failed structured call, counted once (issue 12 bug 4), as a malformed failure.
    assert stats.started == 1
    assert (stats.succeeded, stats.failed) == (0, 1)
    assert stats.failures_by_category == {"malformed_output": 1}
    assert stats.processes_spawned == 3


async def test_the_cli_native_schema_option_is_used_when_the_spec_has_one() -> None:
    seen: list[dict[str, Any]] = []

    def with_schema(schema: dict[str, Any]) -> CliSpec:
        seen.append(schema)
        return fake({"text": json.dumps(GOOD)})

    plain = fake({"text": "no json here"})
    spec = attrs.evolve(plain, output_schema=with_schema)
    async with open_supervisor(spec) as sup:
        result = await sup.ask("Analyze", output=CodeAnalysis, max_reasks=0)
    assert seen == [CodeAnalysis.model_json_schema()]
    assert result.data == EXPECTED


async def test_map_with_an_output_model_validates_every_item() -> None:
    plan = {"text": json.dumps(GOOD), "rules": [{"match": "bad", "text": "nope"}]}
    async with open_supervisor(fake(plan)) as sup:
        outcomes = await sup.map(["a", "bad", "c"], output=CodeAnalysis)
    assert isinstance(outcomes[0], Result) and outcomes[0].data == EXPECTED
    assert isinstance(outcomes[1], LLMError)
    assert outcomes[1].category is ErrorCategory.MALFORMED_OUTPUT
    assert isinstance(outcomes[2], Result)


async def test_top_level_array_models_work() -> None:
    from pydantic import RootModel

    Items = RootModel[list[int]]
    async with open_supervisor(fake({"text": "The numbers: [1, 2, 3]."})) as sup:
        result = await sup.ask("List numbers", output=Items)
    assert result.data.root == [1, 2, 3]


# -- the real specs' native schema options -----------------------------------------------------


def test_claude_output_schema_passes_json_schema_with_the_schema() -> None:
    import actors

    schema = CodeAnalysis.model_json_schema()
    spec = actors.claude("/opt/bin/claude")
    assert spec.output_schema is not None
    argv = list(spec.output_schema(schema).build_argv("Analyze"))
    flags = [a for a in argv if a.startswith("--json-schema")]
    assert len(flags) == 1, argv
    assert json.loads(flags[0].removeprefix("--json-schema=")) == schema
    assert not any(a.startswith("--json-schema") for a in spec.build_argv("Analyze"))
    assert "Analyze" not in argv  # the prompt still goes to stdin


def test_codex_output_schema_passes_output_schema_with_a_file_holding_the_schema() -> None:
    import actors

    schema = CodeAnalysis.model_json_schema()
    spec = actors.codex("/opt/bin/codex")
    assert spec.output_schema is not None
    argv = list(spec.output_schema(schema).build_argv("Analyze"))
    flags = [a for a in argv if a.startswith("--output-schema")]
    assert len(flags) == 1, argv
    path = Path(flags[0].removeprefix("--output-schema="))
    assert path.is_absolute()
    assert json.loads(path.read_text()) == schema
    assert not any(a.startswith("--output-schema") for a in spec.build_argv("Analyze"))
    assert "Analyze" not in argv
