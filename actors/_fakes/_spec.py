"""`fake()`: the spec of the embedded fake CLI, following a fault plan, in a CLI's dialect."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Literal

from .._clis._adapters import adapter_for
from .._clis._classify import GENERIC_CLASSIFIER
from .._clis._claude import ClaudeAdapter, ClaudeClassifier
from .._clis._codex import CodexAdapter, CodexClassifier
from .._clis._gemini import GeminiAdapter, GeminiClassifier, gemini_stderr_watch
from .._events import ErrorReport
from .._spec import (
    DEFAULT_MAX_LINE_BYTES,
    Adapter,
    Classifier,
    CliSpec,
    PromptVia,
    SessionSupport,
    WarmLaunch,
)
from ._plan import FaultPlan, as_plan, auto_state_dir, fake_argv

Dialect = Literal["native", "claude", "codex", "gemini"]
"""Which CLI the fake speaks like: its own JSON lines, or what claude/codex/gemini print."""

DIALECTS: tuple[Dialect, ...] = ("native", "claude", "codex", "gemini")
_WARM = frozenset({"native", "claude"})


def fake(
    plan: FaultPlan | Mapping[str, object] | None = None,
    *,
    dialect: Dialect = "native",
    name: str | None = None,
    prompt_via: PromptVia | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> CliSpec:
    """The embedded fake CLI, following a fault plan (see `FaultPlan`).

    ``dialect="native"`` (the default) speaks the native JSON-lines dialect; a plan with
    ``format="text"`` makes it a plain text CLI instead. ``"claude"``, ``"codex"`` and
    ``"gemini"`` make it print what that real CLI prints (stdout, stderr, exit code) for the
    answer and every fault, and the spec uses that CLI's own adapter and classifier (and
    gemini's stderr watch), so a pipeline written against `claude()` goes through the same
    parsing and classification in a test as in production.

    A plan that counts calls (``fail_first``, rules with ``calls``) and names no
    ``state_dir`` gets a fresh folder, made once for this spec and shared by every process
    it starts (and by its resumed and warm variants); it is removed at interpreter exit.
    The prompt goes after ``--`` (native) or to stdin (the CLI dialects, as the real ones),
    so it can never become a flag.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    checked = as_plan(plan)
    if dialect != "native" and checked.format != "jsonl":
        raise ValueError(f"format={checked.format!r} is for the native dialect only")
    if checked.needs_count() and checked.state_dir is None:
        checked = checked.with_state_dir(auto_state_dir())
    return _spec(
        checked,
        dialect,
        name or ("fake" if dialect == "native" else f"fake-{dialect}"),
        prompt_via or ("arg" if dialect == "native" else "stdin"),
        max_line_bytes,
        None,
    )


def _spec(
    plan: FaultPlan,
    dialect: Dialect,
    name: str,
    prompt_via: PromptVia,
    max_line_bytes: int,
    resumed: str | None,
) -> CliSpec:
    argv = list(fake_argv(plan, dialect=dialect))
    if prompt_via == "stdin":
        argv.append("--prompt-stdin")

    def resume(session_id: str) -> CliSpec:
        # The fake has no stored sessions; continuing one means answering under its id.
        served = plan.model_copy(update={"session_id": session_id})
        return _spec(served, dialect, name, prompt_via, max_line_bytes, session_id)

    def warm(session_id: str | None) -> WarmLaunch:
        served = plan.model_copy(update={"session_id": session_id}) if session_id else plan
        argv = (*fake_argv(served, dialect=dialect), "--serve")
        return WarmLaunch(argv=argv, encode_turn=_serve_request)

    adapter_factory, classifier, stderr_watch = _parsing(plan, dialect, resumed)
    return CliSpec(
        name=name,
        argv=tuple(argv),
        adapter_factory=adapter_factory,
        classifier=classifier,
        prompt_via=prompt_via,
        prompt_prefix_args=("--",) if prompt_via == "arg" else (),
        max_line_bytes=max_line_bytes,
        stderr_watch=stderr_watch,
        # Like the real CLIs: claude keeps a warm process (stream-json input); codex and
        # gemini only resume a session in a new process.
        session=SessionSupport(resume=resume, warm=warm if dialect in _WARM else None),
    )


def _parsing(
    plan: FaultPlan, dialect: Dialect, resumed: str | None
) -> tuple[Callable[[], Adapter], Classifier, Callable[[str], ErrorReport | None] | None]:
    """The adapter factory, classifier and stderr watch the real CLI's spec uses."""
    if dialect == "claude":
        return ClaudeAdapter, ClaudeClassifier(), None
    if dialect == "codex":
        return CodexAdapter, CodexClassifier(resume=resumed), None
    if dialect == "gemini":
        return GeminiAdapter, GeminiClassifier(resume=resumed), gemini_stderr_watch
    return adapter_for("text" if plan.format == "text" else "jsonl"), GENERIC_CLASSIFIER, None


def _serve_request(prompt: str) -> bytes:
    return (json.dumps({"prompt": prompt}) + "\n").encode()
