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
    [--config=model_providers.<P>.request_max_retries=0 ...] TOOL-LEVEL-OPTIONS
    [--config=model_instructions_file=F] [--output-schema=F] *extra_args
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
    items → `ToolUse` (when started) and `ToolResult` (when completed); ``file_change``,
    ``web_search`` (run by the provider) and ``collab_tool_call`` items → `ToolUse`
    (``view_image`` prints no item: "none" grants it no file instead); ``turn.completed``
    → `UsageReport`; at the end, a `FinalResult` (agent messages joined by blank lines,
    thread id, usage) only if the turn completed.
"""

from __future__ import annotations

import functools
import glob
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
from .._spec import TOOL_POLICIES, CliSpec, ProcessExit, SessionSupport, ToolPolicy
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
    private_text_file,
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


# codex 0.169.0, resuming a thread id it has no rollout for (stderr, exit code 1):
# "Error: thread/resume: thread/resume failed: no rollout found for thread id ID
# (code -32600)" and a stack backtrace.
_LOST_SESSION = re.compile(r"^(?:Error: )?(.*no rollout found for thread id[^\n]*)", re.M)


_ERROR_LINE = re.compile(r"^Error: (.+)$", re.M)


def lost_session_words(stderr: str) -> str | None:
    """codex's own words when it does not know the thread it was asked to resume."""
    match = _LOST_SESSION.search(stderr)
    return match.group(1).strip() if match else None


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


# Items for tools codex (or the provider, for web_search) runs, besides commands and MCP
# tools: each becomes a `ToolUse` named after the item type, so the runtime sees it.
_OTHER_TOOL_ITEMS = frozenset({"file_change", "web_search", "collab_tool_call"})


def _tool_input(kind: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """What a tool item asked for: its own fields, without the bookkeeping ones."""
    return {k: v for k, v in item.items() if k not in ("id", "type", "status")}


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
        if kind in _OTHER_TOOL_ITEMS:
            self._tools_started.add(item_id)
            return ToolUse(id=item_id, name=kind, input=_tool_input(kind, item), raw=obj)
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
        if kind in _OTHER_TOOL_ITEMS:
            item_id = as_str(item.get("id")) or ""
            if item_id in self._tools_started:
                return []
            tool = self._tool_use(item, obj)
            return [tool] if tool is not None else []
        # `error` items are warnings; reasoning, todo_list: raw.
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

    # The thread codex was asked to continue (``exec resume``): when codex says it has no
    # such thread, the error carries ``lost_session`` so a conversation starts afresh.
    resume: str | None = None

    def classify(self, exit: ProcessExit) -> LLMError | None:
        error = self.base.classify(exit)
        reports = [e for e in exit.events if isinstance(e, ErrorReport)]
        lost = lost_session_words(exit.stderr_tail) if self.resume and error else None
        if error is not None and lost is not None:
            return error.evolve(
                message=f"session {self.resume} is not known to {exit.cli}: {lost}",
                category=ErrorCategory.PERMANENT,
                lost_session=self.resume,
            )
        if error is not None and error.message.endswith("<unknown>"):
            # codex's stderr ends in a Rust stack backtrace of "N: <unknown>" frames: its
            # own words are on the "Error: ..." line before it.
            said = _ERROR_LINE.search(exit.stderr_tail)
            if said is not None:
                error = error.evolve(
                    message=f"{exit.cli} exited with code {exit.exit_code}: {said.group(1)}"
                )
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
    base = _codex_home(env)
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
    tools: ToolPolicy = "none",
) -> CliSpec:
    # Long because: the docstring records what each tool level does, as verified.
    """A `CliSpec` for the Codex CLI in exec mode (``codex exec --json``).

    Args:
        executable: the ``codex`` launcher (default: `find_executable("codex")`).
        model: ``--model``.
        env: extra environment (``CODEX_HOME``, the provider's key variable, ...).
        extra_args: more ``codex exec`` arguments, placed before ``resume`` and the
            prompt; not ``--json``-changing ones and, below ``tools="full"``, nothing that
            changes what tools may run (``--sandbox``, ``--add-dir``, ``--enable``,
            ``--dangerously-*``, ``--config`` of the sandbox, permissions, approvals,
            features, web search, MCP servers): ValueError.
        resume: a thread id to continue (``codex exec resume ID``).
        output_schema_file: ``--output-schema`` (a JSON Schema file); `Supervisor.ask`
            with ``output=Model`` writes and passes it for you.
        cwd: the agent's working root (``--cd``); the process also runs there, and it is
            the one folder "read"/"edit" may act in.
        name: the name in errors, logs and statistics.
        profile: ``--profile`` (layers ``$CODEX_HOME/<profile>.config.toml``).
        tools: what the model may run (verified with codex 0.169.0 against the emulator),
            through a permission profile passed as ``--config`` (it wins over the user's
            ``sandbox_mode``/``default_permissions``), enforced by codex's bubblewrap
            sandbox, network off, approvals never, MCP servers of config.toml disabled:
            "none": shell, sub-agents, goals, web search, image generation, apps, hooks
            and skills off; the profile grants no file at all, so the two tools codex
            still offers (``view_image``, ``request_user_input``: no switch removes them)
            find nothing and nothing runs; "read": commands run read-only, seeing only
            cwd, system folders (/usr, /etc, /bin, /lib, /dev, a private /proc) and
            codex's own install (its sandbox re-runs it), no writes, no web search or
            sub-agents; "edit": the same, plus writing within cwd; "full":
            ``--dangerously-bypass-approvals-and-sandbox``, everything codex can do
            anywhere this user can reach (logs a WARNING).

    The prompt goes to stdin (``-``), so it can never be taken for an option.
    ``with_system(text)`` gives a spec whose codex gets ``text`` instead of its built-in
    agent instructions (``model_instructions_file``, a private file per distinct text;
    codex sends it as the first ``developer`` message). Without it codex sends its own,
    about 17 KB (measured body of a one-line call, codex 0.169.0: "none" 20.8 KB without,
    3.5 KB with a one-line system prompt; "read"/"edit" 27.7/10.4 KB; "full" 39.5/22.2 KB).
    """
    if tools not in TOOL_POLICIES:
        raise ValueError(f"codex: tools must be one of {', '.join(TOOL_POLICIES)}, got {tools!r}")
    options = _CodexOptions(
        model=model,
        env=env,
        extra_args=tuple(extra_args),
        resume=resume,
        cwd=cwd,
        name=name,
        profile=profile,
        output_schema_file=output_schema_file,
        tools=tools,
    )
    if tools == "full":
        logger.warning(
            "codex spec %r built with tools='full' (--dangerously-bypass-approvals-and-"
            "sandbox): the model may run any command, anywhere this user can reach",
            name,
        )
    return _codex_spec(find_executable("codex", executable), options)


# The permission profile the factory defines (through --config) for "none"/"read"/"edit".
POLICY_PROFILE = "llmsup"
# Features that let the model reach beyond the working folder (or run anything at all).
_FEATURES_OFF_UNLESS_FULL = ("multi_agent", "image_generation", "apps")
_FEATURES_OFF_FOR_NONE = ("shell_tool", "unified_exec", "goals", "hooks")
# Instructions that describe what "none" removed (sandbox, folder, apps, modes, skills).
_NONE_INSTRUCTIONS_OFF = (
    "include_permissions_instructions",
    "include_environment_context",
    "include_apps_instructions",
    "include_collaboration_mode_instructions",
)
# Options that change what may run: refused in extra_args below tools="full".
_TOOL_FLAGS = (
    "-s",
    "--sandbox",
    "--add-dir",
    "--enable",
    "--approve-for-me",
    "--dangerously-bypass-approvals-and-sandbox",
    "--dangerously-bypass-hook-trust",
    "--trust",
    "--worktree",
)
_TOOL_CONFIG_KEYS = re.compile(
    r"^\s*(sandbox_mode|sandbox_workspace_write|default_permissions|permissions|"
    r"approval_policy|approvals_reviewer|features|web_search|tools|mcp_servers|"
    r"shell_environment_policy|skills|model_instructions_file)\b"
)
_MCP_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def codex_tool_args(
    tools: ToolPolicy, helper_dirs: Sequence[str] = (), mcp_servers: Sequence[str] = ()
) -> tuple[str, ...]:
    """The ``codex exec`` arguments for a tool level (pure; see `codex`'s docstring).

    ``helper_dirs``: folders holding codex's own binary, which its sandbox must be able to
    read to start a command; ``mcp_servers``: names defined in config.toml, disabled.
    """
    if tools == "full":
        return ("--dangerously-bypass-approvals-and-sandbox",)
    if tools == "none":
        filesystem = "{}"
    else:
        access = "read" if tools == "read" else "write"
        entries = ['":minimal"="read"'] + [f'{_toml_str(d)}="read"' for d in helper_dirs]
        entries.append(f'":workspace_roots"={{"."="{access}"}}')
        filesystem = "{" + ",".join(entries) + "}"
    args = [
        '--config=approval_policy="never"',
        f'--config=default_permissions="{POLICY_PROFILE}"',
        f"--config=permissions.{POLICY_PROFILE}.filesystem={filesystem}",
        '--config=web_search="disabled"',
        "--config=skills.include_instructions=false",
        "--config=skills.bundled.enabled=false",
    ]
    off = _FEATURES_OFF_UNLESS_FULL + (_FEATURES_OFF_FOR_NONE if tools == "none" else ())
    args.extend(f"--disable={feature}" for feature in off)
    if tools == "none":
        args.extend(f"--config={key}=false" for key in _NONE_INSTRUCTIONS_OFF)
    for server in mcp_servers:
        if not _MCP_NAME.match(server):
            raise ValueError(
                f"codex: the MCP server name {server!r} in config.toml cannot be disabled "
                f"from the command line, so tools={tools!r} cannot be enforced"
            )
        args.append(f"--config=mcp_servers.{server}.enabled=false")
    return tuple(args)


def check_tool_args(tools: ToolPolicy, extra_args: Sequence[str]) -> None:
    """Refuse ``extra_args`` that would change what may run, below ``tools="full"``."""
    if tools == "full":
        return
    for index, arg in enumerate(extra_args):
        flag, _, value = arg.partition("=")
        config = None
        if flag in ("-c", "--config"):
            config = value if value else (extra_args[index + 1 : index + 2] or [""])[0]
        elif flag.startswith("-c") and not flag.startswith("--"):
            config = arg[2:]
        if flag in _TOOL_FLAGS or (config is not None and _TOOL_CONFIG_KEYS.match(config)):
            raise ValueError(
                f"codex: extra_args {arg!r} would change which tools run, which "
                f"tools={tools!r} decides (use tools='full' for anything goes)"
            )


@functools.lru_cache(maxsize=32)
def sandbox_helper_dirs(program: str) -> tuple[str, ...]:
    """Folders holding the native codex binary behind ``program`` (the npm launcher's
    platform package, or the binary's own folder): codex's Linux sandbox re-runs that
    binary inside the sandbox, so "read"/"edit" must let it be read."""
    real = os.path.realpath(program)
    if not real.endswith(".js"):
        return (os.path.dirname(real),)
    package = os.path.dirname(os.path.dirname(real))  # .../@openai/codex
    patterns = (
        os.path.join(os.path.dirname(package), "codex-*", "vendor", "*"),
        os.path.join(package, "node_modules", "@openai", "codex-*", "vendor", "*"),
        os.path.join(package, "vendor", "*"),
    )
    found = sorted({os.path.realpath(d) for p in patterns for d in glob.glob(p)})
    return tuple(d for d in found if os.path.isdir(d))


def configured_mcp_servers(
    env: Mapping[str, str] | None = None, profile: str | None = None
) -> tuple[str, ...]:
    """Names of the MCP servers codex's config.toml (and the profile layer) defines."""
    base = _codex_home(env)
    names = set(_read_toml(base / "config.toml").get("mcp_servers") or {})
    if profile:
        names |= set(_read_toml(base / f"{profile}.config.toml").get("mcp_servers") or {})
    return tuple(sorted(str(n) for n in names))


def _codex_home(env: Mapping[str, str] | None) -> Path:
    home = (env or {}).get("CODEX_HOME") or os.environ.get("CODEX_HOME")
    return Path(home) if home else Path.home() / ".codex"


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
    tools: ToolPolicy = "none"
    system_file: str | None = None

    def argv(self, program: str) -> tuple[str, ...]:
        argv = [program, "exec", "--json", "--skip-git-repo-check"]
        if self.model is not None:
            argv.append(f"--model={self.model}")
        if self.cwd is not None:
            # Absolute: codex resolves --cd from its own working directory, which is cwd.
            argv.append(f"--cd={os.path.abspath(self.cwd)}")
        if self.profile is not None:
            argv.append(f"--profile={self.profile}")
        user_config = "--ignore-user-config" not in self.extra_args
        if user_config:
            provider = configured_provider(self.env, self.profile)
            if provider is not None:
                for key in ("request_max_retries", "stream_max_retries"):
                    argv.append(f"--config=model_providers.{provider}.{key}=0")
        check_tool_args(self.tools, self.extra_args)
        helpers = sandbox_helper_dirs(program) if self.tools in ("read", "edit") else ()
        servers = configured_mcp_servers(self.env, self.profile) if user_config else ()
        argv.extend(codex_tool_args(self.tools, helpers, servers if self.tools != "full" else ()))
        if self.system_file is not None:
            argv.append(f"--config=model_instructions_file={_toml_str(self.system_file)}")
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
        sweep_session=True,  # helpers may leave the group (codex's sandbox does)
        name=options.name,
        argv=options.argv(program),
        adapter_factory=CodexAdapter,
        classifier=CodexClassifier(resume=options.resume),
        prompt_via="stdin",
        env=dict(options.env or {}),
        cwd=options.cwd,
        output_schema=lambda schema: variant(output_schema_file=schema_file(schema)),
        session=SessionSupport(resume=lambda thread_id: variant(resume=thread_id)),
        tools=options.tools,
        with_system=lambda text: variant(system_file=str(codex_system_file(text))),
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


def codex_system_file(text: str) -> Path:
    """A private file holding ``text`` for ``model_instructions_file`` (one per text)."""
    if not text.strip():
        raise ValueError("codex: the system prompt is empty (codex would keep its own)")
    return private_text_file("codex", text)
