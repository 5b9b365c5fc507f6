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
tested; ``rules`` give different prompts different faults; ``serve`` turns it into a
long-lived process answering one ``{"prompt": ...}`` JSON line at a time.

Use `fake_argv` to get the command line::

    argv = fake_argv(FaultPlan(latency_s=0.5, crash_after_chunks=2))
    argv = fake_argv({"rules": [{"match": "slow", "hang": True}]})
    # ... run argv + ("--", prompt)

From a shell: ``llmsup-fake --plan '{"rate_limit_retry_after_s": 3}' -- "hello"``.

Order of events in one call: ``latency_s`` sleep, ``stderr_bytes``, then either the injected
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

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["FAKE_CLI_PATH", "FailWith", "FaultPlan", "FaultRule", "fake_argv"]

FAKE_CLI_PATH: str = os.path.abspath(os.path.join(os.path.dirname(__file__), "_cli.py"))
"""Absolute path of the fake CLI script (run it with ``sys.executable -S``)."""

FailWith = Literal["retryable", "rate_limit", "auth", "crash", "hang"]
"""How a ``fail_first`` failure fails."""

_Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=0)]
_ExitCode = Annotated[int, Field(ge=0, le=255)]
_StateDir = Annotated[str, Field(min_length=1)]

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
    "malformed_line": "Print the non-JSON line '<<this is not json>>' after the session event.",
    "oversized_line_bytes": "Print one line of this many 'x' bytes (plus newline) before the"
    " answer.",
    "invalid_utf8": "Put the invalid UTF-8 bytes FF FE inside the first text delta.",
    "stderr_bytes": "Write this many bytes of 'E' lines to stderr before the answer.",
    "format": "'jsonl' (the native dialect) or 'text' (only the raw answer, then a newline).",
    "fail_first": "The first N calls for the same prompt fail with fail_with; later ones succeed."
    " The count is kept in state_dir.",
    "state_dir": "Directory for the fail_first counters (required when fail_first > 0).",
    "fail_with": "How fail_first calls fail: 'retryable' (stderr 'fake: transient failure', exit"
    " 1), 'rate_limit', 'auth', 'crash' (crash_after_chunks=1) or 'hang'.",
    "fail_retry_after_s": "The retry-after seconds of a fail_with='rate_limit' failure.",
    "serve": "Long-lived mode: answer one {'prompt': ...} JSON line from stdin at a time, until"
    " EOF. Same as the --serve flag.",
    "crash_after_requests": "Serve mode: after answering this many requests, exit with status 3"
    " when the next request arrives.",
    "rules": "Per-prompt overrides: the first rule whose match is a substring of the prompt has"
    " its keys applied on top of this plan.",
    "match": "Apply this rule when this string is a substring of the prompt ('' matches all).",
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
    }
)


def _doc(name: str) -> str:
    return _DOC[name]


class FaultRule(BaseModel):
    """Faults for the prompts that contain ``match``; unset keys inherit the base plan.

    Every `FaultPlan` key except the process-wide ``rules``, ``serve`` and
    ``crash_after_requests`` may be set. Keys that are not nullable in the plan may not be
    set to None here (leave them out instead).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(description=_doc("match"))
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
    rules: Sequence[FaultRule] = Field(default=(), description=_doc("rules"))

    @field_validator("rules", mode="after")
    @classmethod
    def _rules_as_tuple(cls, rules: Sequence[FaultRule]) -> tuple[FaultRule, ...]:
        return tuple(rules)  # keeps the frozen plan hashable

    @model_validator(mode="after")
    def _state_dir_for_fail_first(self) -> FaultPlan:
        if self.fail_first > 0 and self.state_dir is None:
            raise ValueError("state_dir is required when fail_first > 0")
        for index, rule in enumerate(self.rules):
            overrides = rule.model_fields_set
            fail_first = rule.fail_first if "fail_first" in overrides else self.fail_first
            state_dir = rule.state_dir if "state_dir" in overrides else self.state_dir
            if fail_first and state_dir is None:
                raise ValueError(f"rules[{index}]: state_dir is required when fail_first > 0")
        return self

    def to_json(self) -> str:
        """The compact JSON the script takes as ``--plan`` (keys at their default left out)."""
        data = self.model_dump(mode="json", exclude_defaults=True, exclude={"rules"})
        if self.rules:
            data["rules"] = [rule.overrides() for rule in self.rules]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def fake_argv(plan: FaultPlan | Mapping[str, object] | None = None) -> tuple[str, ...]:
    """The command line that runs the fake CLI with ``plan``; append ``"--", prompt``.

    A mapping is validated as a `FaultPlan` first (raising pydantic's ``ValidationError``).
    """
    if plan is None:
        plan = FaultPlan()
    elif not isinstance(plan, FaultPlan):
        plan = FaultPlan.model_validate(dict(plan))
    return (sys.executable, "-S", FAKE_CLI_PATH, "--plan", plan.to_json())
