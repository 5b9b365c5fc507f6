"""Spec factories for generic programs and the embedded fake CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from ._clis._adapters import JsonLinesAdapter, TextAdapter
from ._clis._classify import GENERIC_CLASSIFIER
from ._fakes._plan import FaultPlan, fake_argv
from ._spec import (
    DEFAULT_MAX_LINE_BYTES,
    Adapter,
    Classifier,
    CliSpec,
    OutputFormat,
    PromptVia,
    SessionSupport,
    WarmLaunch,
)


def _adapter_for(output_format: OutputFormat) -> type[Adapter]:
    if output_format == "text":
        return TextAdapter
    if output_format == "jsonl":
        return JsonLinesAdapter
    raise ValueError(f"output_format must be 'text' or 'jsonl', got {output_format!r}")


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
        adapter_factory=_adapter_for(output_format),
        classifier=classifier or GENERIC_CLASSIFIER,
        prompt_via=prompt_via,
        env=env or {},
        cwd=cwd,
        max_line_bytes=max_line_bytes,
    )


def fake(
    plan: FaultPlan | Mapping[str, object] | None = None,
    *,
    name: str = "fake",
    prompt_via: PromptVia = "arg",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> CliSpec:
    """The embedded fake CLI, following a fault plan (see `FaultPlan`).

    It speaks the native JSON-lines dialect; a plan with ``format="text"`` makes it a plain
    text CLI instead. The prompt is passed after ``--`` so it can never become a flag.
    """
    plan = FaultPlan.model_validate(plan or {})
    argv = list(fake_argv(plan))
    if prompt_via == "stdin":
        argv.append("--prompt-stdin")

    def resume(session_id: str) -> CliSpec:
        # The fake has no stored sessions; continuing one means answering under its id.
        return fake(
            plan.model_copy(update={"session_id": session_id}),
            name=name,
            prompt_via=prompt_via,
            max_line_bytes=max_line_bytes,
        )

    def warm(session_id: str | None) -> WarmLaunch:
        served = plan.model_copy(update={"session_id": session_id}) if session_id else plan
        return WarmLaunch(argv=(*fake_argv(served), "--serve"), encode_turn=_serve_request)

    return CliSpec(
        name=name,
        argv=tuple(argv),
        adapter_factory=_adapter_for("text" if plan.format == "text" else "jsonl"),
        classifier=GENERIC_CLASSIFIER,
        prompt_via=prompt_via,
        prompt_prefix_args=("--",) if prompt_via == "arg" else (),
        max_line_bytes=max_line_bytes,
        session=SessionSupport(resume=resume, warm=warm),
    )


def _serve_request(prompt: str) -> bytes:
    return (json.dumps({"prompt": prompt}) + "\n").encode()
