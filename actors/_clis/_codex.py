"""OpenAI Codex CLI (``codex exec``) as a supervised CLI: `codex()`, `CodexAdapter`,
`CodexClassifier`.

Pointing the library at it
    ``codex()`` finds the binary with `find_executable` or takes ``executable=``. Codex
    reads ``$CODEX_HOME/config.toml`` (default ``~/.codex``); ``OPENAI_BASE_URL`` does
    *not* redirect its built-in provider. To use a gateway or a local emulator, define a
    provider there::

        model = "gpt-5"
        model_provider = "local"
        [model_providers.local]
        name = "local"
        base_url = "http://127.0.0.1:PORT/v1"
        env_key = "MY_KEY_VAR"
        wire_api = "responses"
        supports_websockets = false

    and pass ``env={"CODEX_HOME": DIR, "MY_KEY_VAR": ...}``; ``profile=`` layers
    ``$CODEX_HOME/<profile>.config.toml`` on top.

How it is run (verified with codex 0.169.0)
    ``codex exec --json --skip-git-repo-check [--model=M] [--cd=DIR] [--profile=P]
    [--config=model_providers.<P>.request_max_retries=0 ...] *extra_args
    [resume] -- [THREAD_ID] -`` with the prompt written to **stdin**, then closed.
    ``-`` makes codex read the whole prompt from stdin verbatim. Passing it as an argument
    after ``--`` keeps ``--help`` or ``-p`` a prompt, but the one-character prompt ``-``
    would still mean "read stdin" (and fail with "No prompt provided via stdin"), and an
    argument is capped at 128 KiB: stdin has neither problem. The stdin pipe is closed
    right after the prompt, so codex never waits for more input (with a prompt argument
    the actor gives it ``/dev/null``, for the same reason). An empty prompt is refused by
    codex ("No prompt provided via stdin."): PERMANENT.

Its own retries
    Codex retries requests and streams itself (per provider: ``request_max_retries``,
    ``stream_max_retries``), announcing each retry with an ``error`` event
    ``"Reconnecting... 1/5 (exceeded retry limit, last status: 429 ...)"``, and on a
    connection failure it waits for the network forever ("Reconnecting... waiting for
    network (Connection failed: ...)"), whatever the config says. So:

    - when the active provider is defined in ``config.toml`` (found from ``CODEX_HOME``
      in ``env`` or the environment, ``profile``), ``codex()`` adds
      ``--config=model_providers.<name>.request_max_retries=0`` and the same for
      ``stream_max_retries``. Top-level ``request_max_retries`` overrides are ignored by
      codex, and overriding a provider that is not defined (the built-in ``openai``) is a
      fatal config error, so nothing is added then;
    - every ``Reconnecting...`` event is a *terminal* `ErrorReport`: the actor stops codex
      at once and the supervisor decides.

What errors look like (and what they become)
    - ``{"type":"error","message":"exceeded retry limit, last status: 429 Too Many
      Requests"}`` then ``{"type":"turn.failed","error":{"message":...}}``, exit code 1
      → RATE_LIMIT (status 429). "unexpected status 401 Unauthorized: ..." →
      AUTH_FAILURE; 400 / "invalid_request_error" → PERMANENT; 5xx, 529, "high demand",
      connection failures → RETRYABLE; "Quota exceeded. Check your plan and billing
      details." → PERMANENT (billing, not a rate limit).
    - ``item.completed`` items of type ``error`` are warnings ("Model metadata for `m`
      not found", "Codex is ignoring N unrecognized configuration settings", a model
      mismatch on resume): kept as `RawEvent`, never failures.
    - Errors before any event go to stderr: "Error loading config.toml: ...", "no rollout
      found for thread id ..." (bad ``resume``) → PERMANENT.

Events
    ``thread.started`` → `SessionStarted` (the thread id is the session id, for
    ``resume``); ``agent_message`` items → `AssistantMessage` plus `TextDelta` (codex does
    not stream tokens; messages after the first are preceded by a blank line, so the
    deltas concatenate to the final text); ``command_execution`` / ``mcp_tool_call``
    items → `ToolUse` (when started) and `ToolResult` (when completed); ``turn.completed``
    → `UsageReport`; at the end, a `FinalResult` (agent messages joined by blank lines,
    thread id, usage) only if the turn completed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._errors import ErrorCategory, LLMError
from .._events import (
    AssistantMessage,
    ErrorReport,
    Event,
    FinalResult,
    RawEvent,
    SessionStarted,
    TextDelta,
    ToolResult,
    ToolUse,
    Usage,
    UsageReport,
)
from .._spec import CliSpec, ProcessExit, SessionSupport
from ._classify import (
    DEFAULT_AUTH_PATTERNS,
    DEFAULT_PERMANENT_PATTERNS,
    DEFAULT_RATE_LIMIT_PATTERNS,
    PatternClassifier,
)
from ._discovery import find_executable
from ._fields import (
    as_int,
    as_str,
    category_for_status,
    http_status,
    parse_json,
    report_category,
    retry_hint,
    seconds_until_clock,
    with_category,
)

logger = logging.getLogger("llmsup.codex")

CODEX_PERMANENT_PATTERNS: tuple[str, ...] = (
    r"no rollout found for thread id",
    r"no prompt provided via stdin",
    r"error loading config\.toml",
    r"check your plan and billing details",
    r"unexpected argument '",
    r"invalid_request_error",
    r"context_length_exceeded",
)
CODEX_RATE_LIMIT_PATTERNS: tuple[str, ...] = (r"you've hit your usage limit",)

_BILLING = re.compile(r"quota exceeded|check your plan and billing|insufficient_quota", re.I)
_TRANSIENT = re.compile(
    r"high demand|overloaded|server_error|connection failed|stream disconnected|timed? ?out",
    re.I,
)
_RETRYING = re.compile(r"^\s*reconnecting\.\.\.", re.I)


def _category(message: str, status: int | None) -> ErrorCategory | None:
    if _BILLING.search(message):
        return ErrorCategory.PERMANENT
    by_status = category_for_status(status)
    if by_status is not None:
        return by_status
    if re.search(r"usage limit|rate limit", message, re.I):
        return ErrorCategory.RATE_LIMIT
    if _TRANSIENT.search(message):
        return ErrorCategory.RETRYABLE
    return None


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    total_in = as_int(value.get("input_tokens")) or 0
    cached = as_int(value.get("cached_input_tokens")) or 0
    return Usage.model_validate(
        {
            # OpenAI counts cached tokens inside input_tokens; `Usage` keeps them apart.
            "input_tokens": max(0, total_in - cached),
            "output_tokens": as_int(value.get("output_tokens")) or 0,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": as_int(value.get("cache_write_input_tokens")) or 0,
            "reasoning_output_tokens": as_int(value.get("reasoning_output_tokens")) or 0,
        }
    )


def _dump(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


class CodexAdapter:
    """``codex exec --json`` lines → events (see the module docstring). Never raises."""

    def __init__(self) -> None:
        self._thread_id: str | None = None
        self._messages: list[str] = []
        self._usage: Usage | None = None
        self._completed = False
        self._tools_started: set[str] = set()

    def parse_line(self, line: str) -> Sequence[Event]:
        try:
            return self._parse(line)
        except Exception:
            logger.debug("codex line not understood: %.200s", line, exc_info=True)
            return [RawEvent(line=line)]

    def finish(self) -> Sequence[Event]:
        if not self._completed:
            return []
        return [
            FinalResult(
                text="\n\n".join(self._messages),
                session_id=self._thread_id,
                usage=self._usage,
            )
        ]

    def _parse(self, line: str) -> list[Event]:
        obj = parse_json(line)
        if not isinstance(obj, dict):
            return [RawEvent(line=line)] if line.strip() else []
        kind = obj.get("type")
        events: list[Event] = []
        if kind == "thread.started":
            thread_id = as_str(obj.get("thread_id"))
            if thread_id:
                self._thread_id = thread_id
                events = [SessionStarted(session_id=thread_id, raw=obj)]
        elif kind == "item.started":
            events = self._item_started(obj)
        elif kind == "item.completed":
            events = self._item_completed(obj)
        elif kind == "turn.completed":
            self._completed = True
            self._usage = _usage(obj.get("usage"))
            if self._usage is not None:
                events = [UsageReport(usage=self._usage, raw=obj)]
        elif kind == "error":
            events = [self._error(as_str(obj.get("message")) or json.dumps(obj), obj)]
        elif kind == "turn.failed":
            error = obj.get("error")
            message = as_str(error.get("message")) if isinstance(error, dict) else None
            events = [self._error(message or "codex turn failed", obj)]
        return events or [RawEvent(line=line, raw=obj)]

    def _error(self, message: str, obj: dict[str, Any]) -> ErrorReport:
        status = http_status(message)
        category = _category(message, status)
        retry_after = None
        if category is ErrorCategory.RATE_LIMIT:
            retry_after = retry_hint(message)
        return ErrorReport(
            message=message,
            category=category.value if category else None,
            status=status,
            retry_after=retry_after,
            # "Reconnecting... N/M (...)": codex retries (or waits for the network) on its
            # own; the supervisor owns retries, so stop it now.
            terminal=bool(_RETRYING.match(message)),
            raw=obj,
        )

    def _item_started(self, obj: dict[str, Any]) -> list[Event]:
        item = obj.get("item")
        if not isinstance(item, dict):
            return []
        tool = self._tool_use(item, obj)
        return [tool] if tool is not None else []

    def _tool_use(self, item: dict[str, Any], obj: dict[str, Any]) -> ToolUse | None:
        item_id = as_str(item.get("id")) or ""
        kind = item.get("type")
        if kind == "command_execution":
            self._tools_started.add(item_id)
            return ToolUse(
                id=item_id,
                name="command_execution",
                input={"command": item.get("command")},
                raw=obj,
            )
        if kind == "mcp_tool_call":
            self._tools_started.add(item_id)
            server, tool = as_str(item.get("server")) or "", as_str(item.get("tool")) or ""
            arguments = item.get("arguments")
            return ToolUse(
                id=item_id,
                name=f"{server}.{tool}" if server else tool or "mcp_tool_call",
                input=arguments if isinstance(arguments, dict) else {"arguments": arguments},
                raw=obj,
            )
        return None

    def _item_completed(self, obj: dict[str, Any]) -> list[Event]:
        item = obj.get("item")
        if not isinstance(item, dict):
            return []
        kind = item.get("type")
        if kind == "agent_message":
            text = as_str(item.get("text"))
            if text is None:
                return []
            delta = ("\n\n" + text) if self._messages else text
            self._messages.append(text)
            return [TextDelta(text=delta, raw=obj), AssistantMessage(text=text, raw=obj)]
        if kind in ("command_execution", "mcp_tool_call"):
            item_id = as_str(item.get("id")) or ""
            events: list[Event] = []
            if item_id not in self._tools_started:
                tool = self._tool_use(item, obj)
                if tool is not None:
                    events.append(tool)
            if kind == "command_execution":
                exit_code = as_int(item.get("exit_code"))
                failed = item.get("status") == "failed" or exit_code not in (None, 0)
                content = as_str(item.get("aggregated_output")) or ""
            else:
                failed = item.get("status") == "failed" or bool(item.get("error"))
                content = _dump(item.get("error") or item.get("result"))
            events.append(
                ToolResult(tool_use_id=item_id, content=content, is_error=failed, raw=obj)
            )
            return events
        # `error` items are warnings; reasoning, file_change, web_search, todo_list: raw.
        return []


@attrs.frozen
class CodexClassifier:
    """Judges a finished ``codex exec``: `PatternClassifier` (codex's patterns ADDED to the
    defaults), with the category of codex's own error events winning: 429 → RATE_LIMIT,
    401/403 → AUTH_FAILURE, 400 → PERMANENT, 5xx/overloaded → RETRYABLE. Exit code 0
    without a completed turn is RETRYABLE. Evidence (event, stderr) is kept.
    """

    base: PatternClassifier = attrs.field(
        factory=lambda: PatternClassifier(
            rate_limit_patterns=DEFAULT_RATE_LIMIT_PATTERNS + CODEX_RATE_LIMIT_PATTERNS,
            auth_patterns=DEFAULT_AUTH_PATTERNS,
            permanent_patterns=DEFAULT_PERMANENT_PATTERNS + CODEX_PERMANENT_PATTERNS,
        )
    )

    def classify(self, exit: ProcessExit) -> LLMError | None:
        error = self.base.classify(exit)
        reports = [e for e in exit.events if isinstance(e, ErrorReport)]
        if error is None:
            if not any(isinstance(e, FinalResult | UsageReport) for e in exit.events):
                return LLMError(
                    f"{exit.cli} exited with code {exit.exit_code} without completing a turn",
                    ErrorCategory.RETRYABLE,
                    exit_code=exit.exit_code,
                    stderr=exit.stderr_tail,
                    cli=exit.cli,
                    secrets=exit.secrets,
                )
            return None
        if report_category(reports) is None:
            for report in reports:
                decided = _category(report.message, report.status or http_status(report.message))
                if decided is not None:
                    return with_category(error, decided, retry_hint(report.message))
        if error.category is ErrorCategory.RATE_LIMIT and error.retry_after is None:
            evidence = "\n".join(r.message for r in reports) + "\n" + exit.stderr_tail
            reset = seconds_until_clock(evidence, time.time())
            if reset is not None:
                return with_category(error, ErrorCategory.RATE_LIMIT, reset)
        return error


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def configured_provider(
    env: Mapping[str, str] | None = None, profile: str | None = None
) -> str | None:
    """The active model provider when it is defined in codex's ``config.toml`` (so its
    retries can be overridden), else None (the built-in provider, or no config)."""
    home = (env or {}).get("CODEX_HOME") or os.environ.get("CODEX_HOME")
    base = Path(home) if home else Path.home() / ".codex"
    config = _read_toml(base / "config.toml")
    providers = dict(config.get("model_providers") or {})
    provider = config.get("model_provider")
    if profile:
        layered = _read_toml(base / f"{profile}.config.toml")
        providers.update(layered.get("model_providers") or {})
        provider = layered.get("model_provider", provider)
        legacy = (config.get("profiles") or {}).get(profile)
        if isinstance(legacy, dict):
            provider = legacy.get("model_provider", provider)
    if isinstance(provider, str) and provider in providers:
        return provider
    return None


def codex(
    executable: str | None = None,
    *,
    model: str | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    resume: str | None = None,
    cwd: str | None = None,
    name: str = "codex",
    profile: str | None = None,
    output_schema_file: str | None = None,
) -> CliSpec:
    """A `CliSpec` for the Codex CLI in exec mode (``codex exec --json``).

    Args:
        executable: the ``codex`` launcher (default: `find_executable("codex")`).
        model: ``--model``.
        env: extra environment (``CODEX_HOME``, the provider's key variable, ...).
        extra_args: more ``codex exec`` arguments, placed before ``resume`` and the
            prompt (e.g. ``["--sandbox", "read-only"]``); not ``--json``-changing ones.
        resume: a thread id to continue (``codex exec resume ID``).
        output_schema_file: ``--output-schema`` (a JSON Schema file); `Supervisor.ask`
            with ``output=Model`` writes and passes it for you.
        cwd: the agent's working root (``--cd``); the process also runs there.
        name: the name in errors, logs and statistics.
        profile: ``--profile`` (layers ``$CODEX_HOME/<profile>.config.toml``).

    The prompt goes to stdin (``-``), so it can never be taken for an option.
    """
    options = _CodexOptions(
        model=model,
        env=env,
        extra_args=tuple(extra_args),
        resume=resume,
        cwd=cwd,
        name=name,
        profile=profile,
        output_schema_file=output_schema_file,
    )
    return _codex_spec(find_executable("codex", executable), options)


@attrs.frozen(eq=False)
class _CodexOptions:
    """`codex`'s options, kept so resumed and schema variants change only one."""

    model: str | None
    env: Mapping[str, str] | None
    extra_args: Sequence[str]
    resume: str | None
    cwd: str | None
    name: str
    profile: str | None
    output_schema_file: str | None

    def argv(self, program: str) -> tuple[str, ...]:
        argv = [program, "exec", "--json", "--skip-git-repo-check"]
        if self.model is not None:
            argv.append(f"--model={self.model}")
        if self.cwd is not None:
            # Absolute: codex resolves --cd from its own working directory, which is cwd.
            argv.append(f"--cd={os.path.abspath(self.cwd)}")
        if self.profile is not None:
            argv.append(f"--profile={self.profile}")
        if "--ignore-user-config" not in self.extra_args:
            provider = configured_provider(self.env, self.profile)
            if provider is not None:
                for key in ("request_max_retries", "stream_max_retries"):
                    argv.append(f"--config=model_providers.{provider}.{key}=0")
        if self.output_schema_file is not None:
            argv.append(f"--output-schema={os.path.abspath(self.output_schema_file)}")
        argv.extend(self.extra_args)
        if self.resume is not None:
            if not self.resume or self.resume.startswith("-"):
                raise ValueError(f"resume must be a thread id, got {self.resume!r}")
            argv.extend(["resume", "--", self.resume, "-"])
        else:
            argv.extend(["--", "-"])
        return tuple(argv)


def _codex_spec(program: str, options: _CodexOptions) -> CliSpec:
    def variant(**changes: Any) -> CliSpec:
        return _codex_spec(program, attrs.evolve(options, **changes))

    return CliSpec(
        name=options.name,
        argv=options.argv(program),
        adapter_factory=CodexAdapter,
        classifier=CodexClassifier(),
        prompt_via="stdin",
        env=dict(options.env or {}),
        cwd=options.cwd,
        output_schema=lambda schema: variant(output_schema_file=schema_file(schema)),
        session=SessionSupport(resume=lambda thread_id: variant(resume=thread_id)),
    )


def schema_file(schema: Mapping[str, Any]) -> str:
    """A file holding ``schema`` for ``--output-schema``; one per distinct schema, reused."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    folder = os.path.join(tempfile.gettempdir(), f"llmsup-schemas-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(text.encode()).hexdigest()[:32] + ".json")
    if not os.path.exists(path):
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as f:
            f.write(text)
        os.replace(temporary, path)  # atomic: concurrent writers produce the same bytes
    return path
