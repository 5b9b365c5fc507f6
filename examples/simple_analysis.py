"""Code analysis with a typed answer: ``sup.ask(prompt, output=CodeAnalysis)``.

    python examples/simple_analysis.py [--cli fake|claude|codex|gemini]

The reference document's "Example 1: Simple Code Analysis", on this library. With
``output=Model`` the supervisor puts the model's JSON schema into the prompt (and into the
CLI's own schema option where it has one), extracts and validates the answer, re-asks with
the validation errors when it does not fit, and returns the instance as ``Result.data``.
An answer that never fits is an `LLMError` of category MALFORMED_OUTPUT that keeps the
last answer. The fake CLI plays the model: it answers JSON, except for the code that
contains ``def broken``, where it answers prose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from examples._common import cli_spec, make_parser, run
from supervisor import (
    LLMCliWrapper,
    LLMError,
    RetryConfig,
    TimeoutConfig,
    open_supervisor,
    schema_instructions,
)


class CodeAnalysis(BaseModel):
    """What we want back: the model's answer must validate as this."""

    issues: list[str] = Field(description="problems found in the code, one sentence each")
    score: float = Field(ge=0, le=10, description="overall quality, 0 (bad) to 10 (good)")


# The fake CLI's script: a valid analysis for any prompt, prose for one of them.
FAKE_PLAN: dict[str, object] = {
    "text": json.dumps({"issues": ["foo() has no docstring", "foo() does nothing"], "score": 4.5}),
    "rules": [{"match": "def broken", "text": "Looks fine to me, ship it!"}],
}

CODE = "def foo():\n    pass\n"
BROKEN_CODE = "def broken(x):\n    return x +\n"


def analysis_prompt(code: str) -> str:
    return f"Analyze this Python code. List its issues and score it.\n\n{code}"


async def main(cli: str = "fake") -> None:
    spec = cli_spec(cli, FAKE_PLAN)
    async with open_supervisor(
        spec,
        retry=RetryConfig(max_attempts=3, initial_delay_ms=200),
        timeouts=TimeoutConfig(total_execution=120, chunk_receive=60),
    ) as sup:
        # 1. A typed answer: result.data is a validated CodeAnalysis.
        result = await sup.ask(analysis_prompt(CODE), output=CodeAnalysis)
        analysis = result.data
        assert isinstance(analysis, CodeAnalysis)
        print(f"score: {analysis.score}")
        for issue in analysis.issues:
            print(f"issue: {issue}")
        print(f"attempts: {result.attempts}, re-asks: {result.reasks}, cli: {result.cli}")

        # 2. An answer that never validates: re-asked (at most max_reasks times), then a
        #    typed error that says why and keeps what the model said.
        try:
            await sup.ask(analysis_prompt(BROKEN_CODE), output=CodeAnalysis, max_reasks=1)
        except LLMError as error:
            print(f"error: {error.category.value}: {error.message}")
            print(f"last answer: {error.raw_text!r}")
        else:
            print("the model answered valid JSON for the broken code")

        print(f"statistics: {sup.statistics().reasks} re-asks in all")

    # 3. The reference document's own spelling: LLMCliWrapper.call_api_async returns the
    #    validated JSON as a dict, so CodeAnalysis(**data) works as it does there. It
    #    neither adds the schema to the prompt nor re-asks: that part is up to you.
    wrapper = LLMCliWrapper(spec)
    prompt = analysis_prompt(CODE) + schema_instructions(CodeAnalysis)
    data = await wrapper.call_api_async(input_data=prompt, output_model=CodeAnalysis)
    print(f"wrapper: score {CodeAnalysis(**data).score}")


if __name__ == "__main__":
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    run(main, args.cli)
