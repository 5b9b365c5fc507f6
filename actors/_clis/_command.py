"""`command()`: wrap any program as an LLM CLI, with the generic adapters."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .._spec import DEFAULT_MAX_LINE_BYTES, Classifier, CliSpec, OutputFormat, PromptVia
from ._adapters import adapter_for
from ._classify import GENERIC_CLASSIFIER


def command(
    argv: Sequence[str],
    *,
    prompt_via: PromptVia = "arg",
    output_format: OutputFormat = "text",
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    cwd: str | None = None,
    classifier: Classifier | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> CliSpec:
    """Wrap any program as an LLM CLI.

    Args:
        argv: the program and its fixed arguments, e.g. ``["llm", "-m", "gpt-4o"]``. A
            plain string is rejected rather than split: it would invite shell-style quoting.
        prompt_via: ``"arg"`` appends the prompt as the last argument, as one argv element,
            verbatim (``--help`` stays a prompt only if the program treats it so);
            ``"stdin"`` writes the prompt to stdin, then closes it.
        output_format: ``"text"`` (stdout is the answer) or ``"jsonl"`` (one native event
            object per line; see `actors.events`).
        env: extra environment for the child, overriding inherited values.
        name: the name used in errors and logs (default: the program's base name).
        classifier: how to judge a finished process (default: `PatternClassifier()`).
    """
    if isinstance(argv, str | bytes):
        raise TypeError(
            "command() takes an argv list such as ['llm', '-m', 'model'], not a string; "
            "nothing is ever run through a shell"
        )
    argv = tuple(argv)
    if not argv:
        raise ValueError("command() needs at least the program name in argv")
    return CliSpec(
        name=name or os.path.basename(argv[0]) or argv[0],
        argv=argv,
        adapter_factory=adapter_for(output_format),
        classifier=classifier or GENERIC_CLASSIFIER,
        prompt_via=prompt_via,
        env=env or {},
        cwd=cwd,
        max_line_bytes=max_line_bytes,
    )
