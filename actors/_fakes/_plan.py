"""Fault injection: a fake LLM CLI that misbehaves exactly as you tell it to.

``llmsup-fake`` (the script ``actors/_fakes/_cli.py``) is a real executable that behaves like an
LLM command-line program: it answers ``"echo: " + prompt`` in the native JSON-lines dialect
(one ``actors._events`` object per line)::

    {"type":"session_started","session_id":"…","model":"fake"}
    {"type":"text_delta","text":"echo"}
    {"type":"text_delta","text":": h"}
    {"type":"text_delta","text":"i"}
    {"type":"result","text":"echo: hi","session_id":"…","usage":{…},"cost_usd":0.0}

A `FaultPlan` says how it should go wrong: slowly (``latency_s``, ``chunk_gap_s``), not at all
(``hang``, ``hang_after_chunks``), fatally (``crash_after_chunks``, ``exit_code``), with the
errors real CLIs print (``rate_limit_retry_after_s``, ``auth_failure``), with bad output
(``malformed_line``, ``oversized_line_bytes``, ``invalid_utf8``, ``stderr_bytes``), or by
leaving processes behind (``ignore_sigterm``, ``grandchild_holds_stdout_s``). ``fail_first``
makes the first N calls for a prompt fail and later ones succeed, which is how retries are
tested; ``rules`` give different prompts (``match``) or different calls (``calls: [3, 5]``,
calls 3 to 5; ``[11, None]``, every call from the 11th) different faults; ``serve`` turns it
into a long-lived process answering one ``{"prompt": ...}`` JSON line at a time.

Calls are counted across every process of a plan, in ``state_dir`` (one line per call,
appended under an exclusive lock). A plan that counts and names no ``state_dir`` needs no
set-up: `fake()` makes a folder once per spec, `fake_argv` once per command line.

Dialects: ``fake_argv(plan, dialect="claude")`` (and ``actors.fake(plan, dialect=...)``)
makes the fake print what claude, codex or gemini print for the same plan: their stdout
lines, stderr and exit codes, for the answer, streaming and every fault
(``rate_limit_retry_after_s``, ``auth_failure``, ``server_error``, ``lost_session``, ...).
What each dialect prints is in ``actors/_fakes/_script.py`` (a pure script of actions that
the fake CLI executes and the simulated backend runs in-process).

Use `fake_argv` to get the command line::

    argv = fake_argv(FaultPlan(latency_s=0.5, crash_after_chunks=2))
    argv = fake_argv({"rules": [{"match": "slow", "hang": True}]})
    # ... run argv + ("--", prompt)

From a shell: ``llmsup-fake --plan '{"rate_limit_retry_after_s": 3}' -- "hello"``.

Order of events in one call: ``startup_s`` sleep (before the prompt is read: the start-up
cost a standby process hides), ``latency_s`` sleep, ``stderr_bytes``, then either the injected
error (stderr line, exit 1) or ``session_started``, ``hang``, ``malformed_line``,
``oversized_line_bytes``, the deltas (with ``crash_after_chunks``/``hang_after_chunks``
checked before each one), the result, and finally ``exit_code``. A bad plan makes the script
print ``llmsup-fake: bad fault plan: …`` naming the key, and exit 2.

In ``serve`` mode each request gets the normal sequence (``session_started`` once per process);
injected errors become in-band ``{"type":"error",...}`` events and the process keeps serving;
``exit_code`` is the status at end of input; ``session_id``, ``ignore_sigterm`` and the
grandchild keys come from the base plan only.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["FAKE_CLI_PATH", "FailWith", "FaultPlan", "FaultRule", "as_plan", "fake_argv"]

FAKE_CLI_PATH: str = os.path.abspath(os.path.join(os.path.dirname(__file__), "_cli.py"))
"""Absolute path of the fake CLI script (run it with ``sys.executable -S``)."""

FailWith = Literal[
    "retryable", "rate_limit", "auth", "crash", "hang", "server_error", "lost_session"
]
"""How a ``fail_first`` failure fails."""

_Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=0)]
_ExitCode = Annotated[int, Field(ge=0, le=255)]
_StateDir = Annotated[str, Field(min_length=1)]
_Index = Annotated[int, Field(ge=1)]

_DOC = {
    "latency_s": "Seconds to sleep before the first byte of output (also before injected errors).",
    "chunks": "How many text_delta events the answer is split into (fewer if the text is shorter;"
    " 0 means no deltas, only the result).",
    "chunk_gap_s": "Seconds to sleep between text deltas.",
    "text": 'The final answer text. None means "echo: " + prompt.',
    "session_id": "The session id to report. None means a fresh uuid4.",
    "input_tokens": "usage.input_tokens in the result. None means the prompt's word count.",
    "output_tokens": "usage.output_tokens in the result. None means the answer's word count.",
    "exit_code": "Exit status after a normal run; nonzero also prints"
    " 'fake: failing with exit code N' to stderr.",
    "crash_after_chunks": "After this many deltas, print 'fake: crashed mid-stream' to stderr and"
    " die with exit status 3 (no result line).",
    "hang": "After latency_s and the session_started event, sleep forever.",
    "hang_after_chunks": "Print this many deltas, then sleep forever (a stall mid-stream).",
    "ignore_sigterm": "Ignore SIGTERM, so only SIGKILL stops the process.",
    "grandchild_holds_stdout_s": "At start, fork a grandchild that inherits stdout/stderr and"
    " sleeps this many seconds; its pid goes to stderr as 'fake: grandchild pid N'.",
    "grandchild_ignores_sigterm": "The grandchild ignores SIGTERM.",
    "rate_limit_retry_after_s": "Instead of answering, print 'Error: 429 Too Many Requests: rate"
    " limit exceeded. Please retry after Ns' to stderr and exit 1.",
    "auth_failure": "Instead of answering, print 'Error: 401 Unauthorized: invalid API key' to"
    " stderr and exit 1.",
    "server_error": "Instead of answering, fail as after an HTTP 500 from the provider (native:"
    " 'Error: 500 Internal Server Error: ...' on stderr, exit 1).",
    "lost_session": "Instead of answering, fail as a CLI that no longer knows the session id"
    " (native: 'Error: No conversation found with session ID: ID' on stderr, exit 1).",
    "error_exit_code": "The exit status of an injected error. None: the CLI's own (native, claude"
    " and codex 1; gemini the HTTP status modulo 256, 42 for a lost session). 0 makes, for"
    " example, claude exit 0 with an error result.",
    "rate_limit_events": "claude dialect: print an 'allowed' rate_limit_event line after init,"
    " as claude does for a subscription login (other dialects: no effect).",
    "malformed_line": "Print the non-JSON line '<<this is not json>>' after the session event.",
    "oversized_line_bytes": "Print one line of this many 'x' bytes (plus newline) before the"
    " answer.",
    "invalid_utf8": "Put the invalid UTF-8 bytes FF FE inside the first text delta.",
    "stderr_bytes": "Write this many bytes of 'E' lines to stderr before the answer.",
    "format": "'jsonl' (the native dialect) or 'text' (only the raw answer, then a newline).",
    "fail_first": "The first N calls for the same prompt fail with fail_with; later ones succeed."
    " The count is kept in state_dir.",
    "state_dir": "Directory for the call count (fail_first, rules with calls), shared by every"
    " process of the plan. None: `fake()` and `fake_argv()` make one automatically.",
    "fail_with": "How fail_first calls fail: 'retryable' (stderr 'fake: transient failure', exit"
    " 1), 'rate_limit', 'auth', 'server_error', 'lost_session', 'crash' (crash_after_chunks=1)"
    " or 'hang'.",
    "fail_retry_after_s": "The retry-after seconds of a fail_with='rate_limit' failure.",
    "serve": "Long-lived mode: answer one {'prompt': ...} JSON line from stdin at a time, until"
    " EOF. Same as the --serve flag.",
    "crash_after_requests": "Serve mode: after answering this many requests, exit with status 3"
    " when the next request arrives.",
    "startup_s": "Seconds of start-up work before the fake reads its prompt (from stdin or"
    " argv), as a real CLI loads itself: the cost a standby process hides. The simulated"
    " backend sleeps it on trio's clock.",
    "startup_marker": "A file the fake appends 'ready PID' to when its start-up is done and"
    " 'prompt PID' to when it has read its prompt (tests show a call did not pay start-up).",
    "rules": "Per-call overrides: the first rule that applies to a call (by match and/or calls)"
    " has its keys applied on top of this plan.",
    "match": "Apply this rule when this string is a substring of the prompt ('' matches all)."
    " None: any prompt (then calls is required).",
    "calls": "Apply this rule to calls first..last of the plan (1-based, inclusive, counted across"
    " all its processes); [first, None] means every call from first on.",
}

_NULLABLE = frozenset(
    {
        "text",
        "session_id",
        "input_tokens",
        "output_tokens",
        "crash_after_chunks",
        "hang_after_chunks",
        "grandchild_holds_stdout_s",
        "rate_limit_retry_after_s",
        "oversized_line_bytes",
        "state_dir",
        "error_exit_code",
        "startup_marker",
    }
)


def _doc(name: str) -> str:
    return _DOC[name]


class FaultRule(BaseModel):
    """Faults for the prompts that contain ``match``; unset keys inherit the base plan.

    Every `FaultPlan` key except the process-wide ``rules``, ``serve``,
    ``crash_after_requests``, ``startup_s`` and ``startup_marker`` may be set. Keys that
    are not nullable in the plan may not be set to None here (leave them out instead).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str | None = Field(default=None, description=_doc("match"))
    calls: tuple[_Index, _Index | None] | None = Field(default=None, description=_doc("calls"))
    latency_s: _Seconds | None = Field(default=None, description=_doc("latency_s"))
    chunks: _Count | None = Field(default=None, description=_doc("chunks"))
    chunk_gap_s: _Seconds | None = Field(default=None, description=_doc("chunk_gap_s"))
    text: str | None = Field(default=None, description=_doc("text"))
    session_id: str | None = Field(default=None, description=_doc("session_id"))
    input_tokens: _Count | None = Field(default=None, description=_doc("input_tokens"))
    output_tokens: _Count | None = Field(default=None, description=_doc("output_tokens"))
    exit_code: _ExitCode | None = Field(default=None, description=_doc("exit_code"))
    crash_after_chunks: _Count | None = Field(default=None, description=_doc("crash_after_chunks"))
    hang: bool | None = Field(default=None, description=_doc("hang"))
    hang_after_chunks: _Count | None = Field(default=None, description=_doc("hang_after_chunks"))
    ignore_sigterm: bool | None = Field(default=None, description=_doc("ignore_sigterm"))
    grandchild_holds_stdout_s: _Seconds | None = Field(
        default=None, description=_doc("grandchild_holds_stdout_s")
    )
    grandchild_ignores_sigterm: bool | None = Field(
        default=None, description=_doc("grandchild_ignores_sigterm")
    )
    rate_limit_retry_after_s: _Seconds | None = Field(
        default=None, description=_doc("rate_limit_retry_after_s")
    )
    auth_failure: bool | None = Field(default=None, description=_doc("auth_failure"))
    server_error: bool | None = Field(default=None, description=_doc("server_error"))
    lost_session: bool | None = Field(default=None, description=_doc("lost_session"))
    error_exit_code: _ExitCode | None = Field(default=None, description=_doc("error_exit_code"))
    rate_limit_events: bool | None = Field(default=None, description=_doc("rate_limit_events"))
    malformed_line: bool | None = Field(default=None, description=_doc("malformed_line"))
    oversized_line_bytes: _Count | None = Field(
        default=None, description=_doc("oversized_line_bytes")
    )
    invalid_utf8: bool | None = Field(default=None, description=_doc("invalid_utf8"))
    stderr_bytes: _Count | None = Field(default=None, description=_doc("stderr_bytes"))
    format: Literal["jsonl", "text"] | None = Field(default=None, description=_doc("format"))
    fail_first: _Count | None = Field(default=None, description=_doc("fail_first"))
    state_dir: _StateDir | None = Field(default=None, description=_doc("state_dir"))
    fail_with: FailWith | None = Field(default=None, description=_doc("fail_with"))
    fail_retry_after_s: _Seconds | None = Field(
        default=None, description=_doc("fail_retry_after_s")
    )

    @model_validator(mode="after")
    def _no_null_for_required_keys(self) -> FaultRule:
        for name in sorted(self.model_fields_set - _NULLABLE):
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be None in a rule (leave it out to inherit)")
        if self.match is None and self.calls is None:
            raise ValueError("a rule needs match, calls or both")
        if self.calls is not None and self.calls[1] is not None and self.calls[1] < self.calls[0]:
            raise ValueError(f"calls {list(self.calls)}: the last call is before the first")
        return self

    def overrides(self) -> dict[str, object]:
        """The keys this rule sets (JSON-ready), ``match`` included."""
        return self.model_dump(mode="json", exclude_unset=True)


class FaultPlan(BaseModel):
    """What the fake CLI should do wrong. Every key is optional; the default is a clean run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_s: _Seconds = Field(default=0.0, description=_doc("latency_s"))
    chunks: _Count = Field(default=3, description=_doc("chunks"))
    chunk_gap_s: _Seconds = Field(default=0.0, description=_doc("chunk_gap_s"))
    text: str | None = Field(default=None, description=_doc("text"))
    session_id: str | None = Field(default=None, description=_doc("session_id"))
    input_tokens: _Count | None = Field(default=None, description=_doc("input_tokens"))
    output_tokens: _Count | None = Field(default=None, description=_doc("output_tokens"))
    exit_code: _ExitCode = Field(default=0, description=_doc("exit_code"))
    crash_after_chunks: _Count | None = Field(default=None, description=_doc("crash_after_chunks"))
    hang: bool = Field(default=False, description=_doc("hang"))
    hang_after_chunks: _Count | None = Field(default=None, description=_doc("hang_after_chunks"))
    ignore_sigterm: bool = Field(default=False, description=_doc("ignore_sigterm"))
    grandchild_holds_stdout_s: _Seconds | None = Field(
        default=None, description=_doc("grandchild_holds_stdout_s")
    )
    grandchild_ignores_sigterm: bool = Field(
        default=False, description=_doc("grandchild_ignores_sigterm")
    )
    rate_limit_retry_after_s: _Seconds | None = Field(
        default=None, description=_doc("rate_limit_retry_after_s")
    )
    auth_failure: bool = Field(default=False, description=_doc("auth_failure"))
    server_error: bool = Field(default=False, description=_doc("server_error"))
    lost_session: bool = Field(default=False, description=_doc("lost_session"))
    error_exit_code: _ExitCode | None = Field(default=None, description=_doc("error_exit_code"))
    rate_limit_events: bool = Field(default=False, description=_doc("rate_limit_events"))
    malformed_line: bool = Field(default=False, description=_doc("malformed_line"))
    oversized_line_bytes: _Count | None = Field(
        default=None, description=_doc("oversized_line_bytes")
    )
    invalid_utf8: bool = Field(default=False, description=_doc("invalid_utf8"))
    stderr_bytes: _Count = Field(default=0, description=_doc("stderr_bytes"))
    format: Literal["jsonl", "text"] = Field(default="jsonl", description=_doc("format"))
    fail_first: _Count = Field(default=0, description=_doc("fail_first"))
    state_dir: _StateDir | None = Field(default=None, description=_doc("state_dir"))
    fail_with: FailWith = Field(default="retryable", description=_doc("fail_with"))
    fail_retry_after_s: _Seconds = Field(default=1.0, description=_doc("fail_retry_after_s"))
    serve: bool = Field(default=False, description=_doc("serve"))
    crash_after_requests: _Count | None = Field(
        default=None, description=_doc("crash_after_requests")
    )
    startup_s: _Seconds = Field(default=0.0, description=_doc("startup_s"))
    startup_marker: _StateDir | None = Field(default=None, description=_doc("startup_marker"))
    rules: Sequence[FaultRule] = Field(default=(), description=_doc("rules"))

    @field_validator("rules", mode="after")
    @classmethod
    def _rules_as_tuple(cls, rules: Sequence[FaultRule]) -> tuple[FaultRule, ...]:
        return tuple(rules)  # keeps the frozen plan hashable

    def needs_count(self) -> bool:
        """True when the plan reads the call count (fail_first, or a rule with calls)."""
        if self.fail_first > 0:
            return True
        return any(rule.calls is not None or (rule.fail_first or 0) > 0 for rule in self.rules)

    def with_state_dir(self, state_dir: str) -> FaultPlan:
        """This plan counting its calls in ``state_dir`` (if it counts and has no folder yet)."""
        if self.state_dir is not None or not self.needs_count():
            return self
        return self.model_copy(update={"state_dir": state_dir})

    def to_json(self) -> str:
        """The compact JSON the script takes as ``--plan`` (keys at their default left out)."""
        data = self.model_dump(mode="json", exclude_defaults=True, exclude={"rules"})
        if self.rules:
            data["rules"] = [rule.overrides() for rule in self.rules]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def as_plan(plan: FaultPlan | Mapping[str, object] | None) -> FaultPlan:
    """``plan`` as a `FaultPlan` (a mapping is validated, raising pydantic's ValidationError)."""
    if plan is None:
        return FaultPlan()
    if isinstance(plan, FaultPlan):
        return plan
    return FaultPlan.model_validate(dict(plan))


def auto_state_dir() -> str:
    """A fresh folder for one plan's call count, removed when the interpreter exits."""
    path = tempfile.mkdtemp(prefix="llmsup-fake-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def fake_argv(
    plan: FaultPlan | Mapping[str, object] | None = None, *, dialect: str = "native"
) -> tuple[str, ...]:
    """The command line that runs the fake CLI with ``plan``; append ``"--", prompt``.

    A mapping is validated as a `FaultPlan` first (raising pydantic's ``ValidationError``). A
    plan that counts calls (``fail_first``, rules with ``calls``) and names no ``state_dir``
    gets a fresh one: each call of `fake_argv` starts a new count.
    """
    plan = as_plan(plan)
    if plan.needs_count() and plan.state_dir is None:
        plan = plan.with_state_dir(auto_state_dir())
    argv: tuple[str, ...] = (sys.executable, "-S", FAKE_CLI_PATH, "--plan", plan.to_json())
    if dialect != "native":
        argv += ("--dialect", dialect)
    return argv
