"""Structured answers: ``sup.ask(prompt, output=Model)`` returns a validated ``Model``.

The schema goes into the prompt (and into the CLI's own schema option where it has one,
through ``CliSpec.output_schema``). The answer is extracted with `JSONExtractor` and
validated; on failure the model is asked again with the validation errors. Re-asks are
capped and counted apart from transport retries (each re-ask is a full call, with its own
retries). When the cap is reached the error is MALFORMED_OUTPUT and keeps the last answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from actors import CliSpec, ErrorCategory, LLMError

from ._engine import Engine
from ._json import JSONExtractor, schema_instructions
from ._result import Result

M = TypeVar("M", bound=BaseModel)

DEFAULT_MAX_REASKS = 2
_QUOTE_LIMIT = 4000  # how much of a bad answer to quote back to the model


def reask_prompt(prompt: str, instructions: str, answer: str, problem: str) -> str:
    """The follow-up prompt after an answer failed validation."""
    quoted = answer if len(answer) <= _QUOTE_LIMIT else answer[:_QUOTE_LIMIT] + " [...]"
    return (
        f"{prompt}{instructions}\n\n"
        f"Your previous answer could not be used: {problem}\n"
        f"Previous answer:\n{quoted}\n\n"
        "Answer again with only the corrected JSON."
    )


async def ask(
    engine: Engine,
    prompt: str,
    output: type[BaseModel] | None = None,
    *,
    max_reasks: int = DEFAULT_MAX_REASKS,
    system: str | None = None,
    cwd: str | None = None,
    adapt: Callable[[CliSpec], CliSpec] | None = None,
) -> Result:
    """One call (``Supervisor.ask``): plain, or validated as ``output`` when given."""
    if output is not None:
        return await ask_structured(
            engine, prompt, output, max_reasks=max_reasks, system=system, cwd=cwd, adapt=adapt
        )
    return await engine.run_call(prompt, system=system, cwd=cwd, adapt=adapt)


async def ask_structured(
    engine: Engine,
    prompt: str,
    output: type[M],
    *,
    max_reasks: int = DEFAULT_MAX_REASKS,
    strict: bool = True,
    system: str | None = None,
    cwd: str | None = None,
    adapt: Callable[[CliSpec], CliSpec] | None = None,
) -> Result:
    """Ask until the answer validates as ``output`` (at most ``max_reasks`` re-asks).

    Each CLI of the fallback chain gets its own native schema option where it has one
    (after ``adapt``, the caller's own derivation of each spec, when given).
    """
    if max_reasks < 0:
        raise ValueError(f"max_reasks must be >= 0, got {max_reasks}")
    extractor = JSONExtractor()
    schema = output.model_json_schema()
    instructions = schema_instructions(output)

    def with_schema(spec: CliSpec) -> CliSpec:
        if adapt is not None:
            spec = adapt(spec)
        return spec.output_schema(schema) if spec.output_schema else spec

    attempts = 0
    current = prompt + instructions
    for reask in range(max_reasks + 1):
        result = await engine.run_call(current, adapt=with_schema, system=system, cwd=cwd)
        attempts += result.attempts
        data, problem = extractor.extract_json(_answer_text(result), output, strict=strict)
        if problem is None:
            return result.model_copy(
                update={"data": output.model_validate(data), "reasks": reask, "attempts": attempts}
            )
        if reask < max_reasks:
            engine.note_reask()
            current = reask_prompt(prompt, instructions, result.text, problem)
        else:
            engine.note_answer_rejected()
    raise LLMError(
        f"the answer did not match {output.__name__} after {max_reasks} re-ask"
        f"{'s' if max_reasks != 1 else ''}: {problem}",
        ErrorCategory.MALFORMED_OUTPUT,
        cli=result.cli,
        attempts=attempts,
        raw_text=result.text,
    )


def _answer_text(result: Result) -> str:
    # CLIs with a native schema option may report the object apart from the text.
    for event in reversed(result.raw_events):
        raw = event.raw or {}
        structured = raw.get("structured_output")
        if structured is not None:
            return json.dumps(structured)
    return result.text
