"""`fake()`: the spec of the embedded fake CLI, following a fault plan."""

from __future__ import annotations

import json
from collections.abc import Mapping

from .._clis._adapters import adapter_for
from .._clis._classify import GENERIC_CLASSIFIER
from .._spec import DEFAULT_MAX_LINE_BYTES, CliSpec, PromptVia, SessionSupport, WarmLaunch
from ._plan import FaultPlan, fake_argv


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
        adapter_factory=adapter_for("text" if plan.format == "text" else "jsonl"),
        classifier=GENERIC_CLASSIFIER,
        prompt_via=prompt_via,
        prompt_prefix_args=("--",) if prompt_via == "arg" else (),
        max_line_bytes=max_line_bytes,
        session=SessionSupport(resume=resume, warm=warm),
    )


def _serve_request(prompt: str) -> bytes:
    return (json.dumps({"prompt": prompt}) + "\n").encode()
