"""Claude Code (``claude -p``) as a supervised CLI: `claude()`, `ClaudeAdapter`,
`ClaudeClassifier`.

Pointing the library at it
    ``claude()`` finds the binary with `find_executable` (PATH, ``$LLMSUP_CLI_DIR``,
    ``./.clis``) or takes ``executable=``. Authentication is the CLI's own:
    ``ANTHROPIC_API_KEY`` (or a logged-in ``~/.claude``); ``ANTHROPIC_BASE_URL`` points it
    at a gateway or a local emulator. Pass these through ``env=``.

How it is run (verified with claude 2.1.197)
    ``claude -p --output-format stream-json --verbose --input-format stream-json
    [--include-partial-messages] TOOL-FLAGS [--model=M] [--system-prompt=S]
    [--append-system-prompt=S] [--max-turns=N] [--resume=ID] *extra_args`` with the prompt
    written to **stdin** as one stream-json user message line (then closed), as the Claude
    Agent SDK does (see ``_IO_FLAGS`` for each of its flags, adopted or not, and why).
    TOOL-FLAGS carry the tool policy (see `claude()`); under the default ``tools="none"``
    (``--tools= --strict-mcp-config``) the request defines no tool at all.
    The message's text reaches the model verbatim (``--help``, ``-p``, ``--model x``,
    ``$(touch y)``, newlines and all), so nothing in a prompt can become a flag, and
    prompts are not limited by the 128 KiB per-argument limit of ``execve``. Read this way,
    claude waits for its prompt however long it takes (in plain-text mode it gives stdin
    3 s, then fails "Input must be provided"), which a standby process needs.
    Option values use the ``--flag=value`` form so a value starting with ``-`` (a system
    prompt such as ``"- be terse"``) stays a value. An empty prompt reaches the model as
    claude's own "(no content)".

Its own retries
    For 429, 529, 5xx, 401 and connection errors the CLI retries **internally**, up to 10
    times with backoff (minutes). ``claude()`` sets ``CLAUDE_CODE_MAX_RETRIES=0`` so the
    error arrives at once, and the supervisor owns the retry policy. Should retries be
    on anyway (a user ``env`` overriding it), each retry is announced by a
    ``{"type":"system","subtype":"api_retry",...}`` line: the adapter turns it into a
    *terminal* `ErrorReport`, so the actor stops the CLI at the first one and classifies
    (``retry_delay_ms`` of a rate limit, which honours ``retry-after``, becomes
    ``retry_after``).

What errors look like (and what they become)
    - With retries off: an ``assistant`` line from model ``"<synthetic>"`` carrying an
      ``error`` kind (``rate_limit``, ``authentication_failed``, ``server_error``, ...) and
      the text, then ``result`` with ``"is_error": true`` (``subtype`` may still say
      ``success``), ``api_error_status`` (429, 529, 401, ..., or null for connection
      errors: "API Error: Unable to connect to API (ConnectionRefused)"), exit code 1.
      → `FinalResult(is_error=True)` plus an `ErrorReport` (status, category).
      429 → RATE_LIMIT; 529, 5xx, connection → RETRYABLE; 401/403 → AUTH_FAILURE;
      400/404/413 → PERMANENT.
    - Plan limits: "Claude AI usage limit reached|1700000000" (epoch after ``|``),
      "You've hit your session limit · resets 3pm (Europe/Paris)", "... resets in 2h"
      → RATE_LIMIT with ``retry_after`` until the reset.
    - ``rate_limit_event`` lines (``rate_limit_info.status`` = ``allowed``,
      ``allowed_warning`` or ``rejected``, ``resetsAt`` epoch seconds): only ``rejected``
      (without overage credits in use) is an `ErrorReport` (RATE_LIMIT, retry_after until
      ``resetsAt``); the others are kept as `RawEvent`.
    - ``result`` with ``subtype`` ``error_max_turns``, ``error_max_budget_usd``, ... or
      ``error_during_execution`` with ``errors: [...]`` (e.g. "No conversation found with
      session ID", a bad ``--resume``) → PERMANENT. Resuming a session claude does not
      have ("No conversation found with session ID: ID", or "--resume requires a valid
      session ID ... Provided value "X" is not a UUID ...") is a lost session:
      ``LLMError(lost_session=ID)``, "session ID is not known to claude: <its words>".
    - The exit code alone says little: exit 0 with ``is_error`` is a failure, and a
      successful ``result`` is success whatever the exit code.

Streaming rule (`TextDelta` versus `AssistantMessage`)
    With ``--include-partial-messages`` the text arrives as ``stream_event`` text deltas
    (→ `TextDelta`), and the ``assistant`` line that follows repeats it (→
    `AssistantMessage` only, so deltas concatenate exactly to the answer). When no delta
    was seen for that message (partial messages off, or a CLI that skips them), its text
    is sent as a `TextDelta` too, so stream readers always get the text. A bare
    ``result`` object (``--output-format json``) with no text before it sends its text as
    a `TextDelta`. Not answer text: the ``<synthetic>`` error message, and messages of
    sub-agents (``parent_tool_use_id`` set), which are kept as `RawEvent`. In multi-step
    tool use the deltas span every step while ``result`` holds the last message only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
)
from .._spec import TOOL_POLICIES, CliSpec, ProcessExit, SessionSupport, ToolPolicy, WarmLaunch
from ._classify import (
    DEFAULT_AUTH_PATTERNS,
    DEFAULT_PERMANENT_PATTERNS,
    DEFAULT_RATE_LIMIT_PATTERNS,
    PatternClassifier,
)
from ._discovery import find_executable
from ._fields import (
    as_float,
    as_int,
    as_str,
    category_for_status,
    parse_json,
    retry_hint,
    seconds_until_clock,
    with_category,
)

logger = logging.getLogger("llmsup.claude")

Clock = Callable[[], float]

# What the CLI's own `error` kinds mean (api_retry lines and synthetic assistant lines).
_KIND_CATEGORY: dict[str, ErrorCategory] = {
    "rate_limit": ErrorCategory.RATE_LIMIT,
    "overloaded": ErrorCategory.RETRYABLE,
    "server_error": ErrorCategory.RETRYABLE,
    "authentication_failed": ErrorCategory.AUTH_FAILURE,
    "oauth_org_not_allowed": ErrorCategory.AUTH_FAILURE,
    "billing_error": ErrorCategory.PERMANENT,
    "invalid_request": ErrorCategory.PERMANENT,
    "model_not_found": ErrorCategory.PERMANENT,
}
# Result subtypes that trying again cannot fix.
_PERMANENT_SUBTYPES = frozenset(
    {"error_max_turns", "error_max_budget_usd", "error_max_structured_output_retries"}
)

CLAUDE_RATE_LIMIT_PATTERNS: tuple[str, ...] = (
    r"usage limit reached",
    r"limit reached\b.{0,80}\bresets?\b",
    r"(?:hit|reached) your .{0,40}\blimit\b.{0,40}\bresets?\b",
)
CLAUDE_PERMANENT_PATTERNS: tuple[str, ...] = (
    r"no conversation found with session id",
    r"--resume requires a valid session",
    r"input must be provided either through stdin or as a prompt",
    r"credit balance (?:is )?too low",
    r"prompt is too long",
    r"error: unknown option",
    r"path \".+\" does not exist",  # the working directory is gone
)

# What claude says when asked to resume a session it does not have (claude 2.1.197, in the
# result's ``errors`` and on stderr): an unknown UUID, or a value that is neither a UUID
# nor a stored session's title.
_LOST_SESSION = (
    re.compile(r"No conversation found with session ID:\s*(?P<id>[^\s\"]+)", re.I),
    re.compile(
        r"--resume requires a valid session ID.*?Provided value \"(?P<id>[^\"]*)\" is not a UUID",
        re.I | re.S,
    ),
)

# The tool policy, as claude's own flags (verified with claude 2.1.197 against the
# emulator; see `claude()`). ``--tools`` is the built-in set the model is offered at all:
# a tool left out is not defined in the request, so the model cannot ask for it and no
# settings file can allow it. ``--strict-mcp-config`` (with no ``--mcp-config``) drops
# MCP servers from settings and ``.mcp.json``, whose tools would come on top.
_READ_TOOLS = "Read,Glob,Grep"
_EDIT_TOOLS = _READ_TOOLS + ",Edit,Write,NotebookEdit"
_TOOL_FLAGS: dict[ToolPolicy, tuple[str, ...]] = {
    "none": ("--tools=", "--strict-mcp-config"),
    "read": (f"--tools={_READ_TOOLS}", "--permission-mode=default", "--strict-mcp-config"),
    "edit": (f"--tools={_EDIT_TOOLS}", "--permission-mode=acceptEdits", "--strict-mcp-config"),
    "full": ("--permission-mode=bypassPermissions",),
}
# How claude reads its prompt and writes its events, compared flag by flag with the Claude
# Agent SDK's ``query()`` (its subprocess transport runs ``claude --output-format stream-json
# --verbose --system-prompt "" --input-format stream-json`` with CLAUDE_CODE_ENTRYPOINT=sdk-py;
# measured side by side against the emulator with claude 2.1.197):
# - ``--output-format stream-json --verbose``: the same (one JSON event per line).
# - ``--input-format stream-json``: adopted. The prompt is one stream-json user message on
#   stdin (`_user_message_line`), still never in argv. In text mode claude waits only 3 s for
#   the first stdin byte, then "proceeds without it" and fails ("Input must be provided"), so
#   a process started before its prompt (``standby=``) would lose it; this way it waits.
# - ``-p``: kept (the SDK leaves it out): print mode, said explicitly.
# - ``--system-prompt ""``: not adopted by default: it drops claude's own agent instructions
#   (the request shrinks from 6.9 KB to 1.1 KB) and so changes the answers; ``system_prompt=``
#   or ``spec.with_system(text)`` do it on request. Per-call CPU time -4 %, within noise.
# - ``--setting-sources``: not adopted (the SDK passes it only when asked): it would ignore
#   the user's own claude settings. -5 % CPU, within noise.
# - ``CLAUDE_CODE_ENTRYPOINT=sdk-py``: not adopted: it tells claude its caller is the Python
#   SDK, which this is not; no measurable change.
_IO_FLAGS = ("--output-format", "stream-json", "--verbose", "--input-format", "stream-json")
# Tools the runtime lets through under "none": ``--json-schema`` makes claude offer
# ``StructuredOutput``, whose input IS the structured answer (nothing runs).
CLAUDE_PERMITTED_TOOLS = frozenset({"StructuredOutput"})


def lost_session_of(texts: Iterable[str]) -> tuple[str, str] | None:
    """``(session id, claude's words)`` when one of `texts` says the session to resume is
    unknown, else None."""
    for text in texts:
        for pattern in _LOST_SESSION:
            match = pattern.search(text)
            if match:
                return match.group("id"), text.strip().splitlines()[0].strip()
    return None


_USAGE_LIMIT = re.compile("|".join(CLAUDE_RATE_LIMIT_PATTERNS), re.I | re.S)
_EPOCH_AFTER_BAR = re.compile(r"\|\s*(\d{9,11}(?:\.\d+)?)\b")


def usage_limit_retry_after(text: str, now: float) -> float | None:
    """Seconds until a plan limit resets, when ``text`` is such a message.

    Understands an epoch after ``|`` ("Claude AI usage limit reached|1700000000"),
    "resets in 2h"-style durations and "resets 3pm (Europe/Paris)"-style clock times.
    None when ``text`` is not a usage-limit message or names no reset.
    """
    if not _USAGE_LIMIT.search(text):
        return None
    match = _EPOCH_AFTER_BAR.search(text)
    if match:
        return max(0.0, float(match.group(1)) - now)
    hours = re.search(r"resets? in\s+(\d+(?:\.\d+)?)\s*(?:h|hours?)\b", text, re.I)
    if hours:
        return float(hours.group(1)) * 3600.0
    found = retry_hint(text)
    if found is not None:
        return found
    return seconds_until_clock(text, now)


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    return Usage(
        input_tokens=as_int(value.get("input_tokens")) or 0,
        output_tokens=as_int(value.get("output_tokens")) or 0,
        cache_read_input_tokens=as_int(value.get("cache_read_input_tokens")) or 0,
        cache_creation_input_tokens=as_int(value.get("cache_creation_input_tokens")) or 0,
    )


def _text_of(content: Any) -> str:
    """A tool result's content: a string, or the text of a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block.get("text", "")
            for block in content
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    return ""


def _category(
    status: int | None, kind: str | None, text: str, subtype: str | None
) -> ErrorCategory | None:
    if _USAGE_LIMIT.search(text):
        return ErrorCategory.RATE_LIMIT
    by_status = category_for_status(status)
    if by_status is not None:
        return by_status
    if kind in _KIND_CATEGORY:
        return _KIND_CATEGORY[kind]
    if subtype in _PERMANENT_SUBTYPES:
        return ErrorCategory.PERMANENT
    return None


class ClaudeAdapter:
    """Claude Code's ``stream-json`` lines (and a bare ``json`` result) → events.

    See the module docstring for the mapping and the streaming rule. Never raises: a line
    it cannot read is a `RawEvent`.
    """

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._current_message: str | None = None
        self._streamed: set[str | None] = set()
        self._text_sent = False
        self._error_kind: str | None = None

    def parse_line(self, line: str) -> Sequence[Event]:
        try:
            return self._parse(line)
        except Exception:  # a CLI's odd line must never kill the call
            logger.debug("claude line not understood: %.200s", line, exc_info=True)
            return [RawEvent(line=line)]

    def finish(self) -> Sequence[Event]:
        return []

    def _parse(self, line: str) -> list[Event]:
        value = parse_json(line)
        if isinstance(value, list):  # `--output-format json --verbose`: one array
            events: list[Event] = []
            for item in value:
                if isinstance(item, dict):
                    events.extend(self._object(item, json_line=line))
            return events or [RawEvent(line=line)]
        if not isinstance(value, dict):
            return [RawEvent(line=line)] if line.strip() else []
        return self._object(value, json_line=line)

    def _object(self, obj: dict[str, Any], json_line: str) -> list[Event]:
        kind = obj.get("type")
        events: list[Event] = []
        if kind == "system":
            events = self._system(obj)
        elif kind == "stream_event":
            events = self._stream_event(obj)
        elif kind == "assistant":
            events = self._assistant(obj)
        elif kind == "user":
            events = self._user(obj)
        elif kind == "result":
            events = self._result(obj)
        elif kind == "rate_limit_event":
            events = self._rate_limit(obj)
        return events or [RawEvent(line=json_line, raw=obj)]

    def _system(self, obj: dict[str, Any]) -> list[Event]:
        subtype = obj.get("subtype")
        if subtype == "init":
            session_id = as_str(obj.get("session_id"))
            if session_id:
                return [
                    SessionStarted(session_id=session_id, model=as_str(obj.get("model")), raw=obj)
                ]
        elif subtype == "api_retry":
            return [self._api_retry(obj)]
        return []

    def _api_retry(self, obj: dict[str, Any]) -> ErrorReport:
        status = as_int(obj.get("error_status"))
        kind = as_str(obj.get("error")) or "unknown"
        attempt, limit = as_int(obj.get("attempt")), as_int(obj.get("max_retries"))
        category = _KIND_CATEGORY.get(kind) or category_for_status(status)
        cause = f"HTTP {status}" if status is not None else "a connection error"
        if kind != "unknown":
            cause += f" ({kind})"
        counted = f", attempt {attempt}/{limit}" if attempt is not None and limit else ""
        delay_ms = as_float(obj.get("retry_delay_ms"))
        retry_after = None
        if category is ErrorCategory.RATE_LIMIT and delay_ms is not None and delay_ms >= 0:
            retry_after = delay_ms / 1000.0
        return ErrorReport(
            message=f"API request failed with {cause}; claude would retry on its own"
            f"{counted}: stopped so the supervisor decides",
            category=category.value if category else None,
            status=status,
            retry_after=retry_after,
            terminal=True,
            raw=obj,
        )

    def _stream_event(self, obj: dict[str, Any]) -> list[Event]:
        if obj.get("parent_tool_use_id"):
            return []  # a sub-agent's stream: kept raw
        event = obj.get("event")
        if not isinstance(event, dict):
            return []
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            self._current_message = as_str(message.get("id")) if isinstance(message, dict) else None
            self._streamed.discard(None)
            return []
        if kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = as_str(delta.get("text"))
                if text:
                    self._streamed.add(self._current_message)
                    self._text_sent = True
                    return [TextDelta(text=text, raw=obj)]
        return []

    def _assistant(self, obj: dict[str, Any]) -> list[Event]:
        message = obj.get("message")
        if not isinstance(message, dict) or obj.get("parent_tool_use_id"):
            return []
        error_kind = as_str(obj.get("error"))
        synthetic = error_kind is not None or message.get("model") == "<synthetic>"
        if error_kind:
            self._error_kind = error_kind
        message_id = as_str(message.get("id"))
        # Deltas under None came from a message_start without an id: they are this one's.
        streamed = message_id in self._streamed or None in self._streamed
        events: list[Event] = []
        content = message.get("content")
        blocks: Iterable[Any] = content if isinstance(content, list) else []
        if isinstance(content, str):
            blocks = [{"type": "text", "text": content}]
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                text = as_str(block.get("text"))
                if not text:
                    continue
                if not synthetic and not streamed:
                    events.append(TextDelta(text=text, raw=obj))
                    self._text_sent = True
                events.append(AssistantMessage(text=text, raw=obj))
            elif block.get("type") == "tool_use":
                name = as_str(block.get("name"))
                if name:
                    tool_input = block.get("input")
                    events.append(
                        ToolUse(
                            id=as_str(block.get("id")) or "",
                            name=name,
                            input=tool_input if isinstance(tool_input, dict) else {},
                            raw=obj,
                        )
                    )
        return events

    def _user(self, obj: dict[str, Any]) -> list[Event]:
        message = obj.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            return []
        events: list[Event] = []
        for block in message["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                events.append(
                    ToolResult(
                        tool_use_id=as_str(block.get("tool_use_id")) or "",
                        content=_text_of(block.get("content")),
                        is_error=block.get("is_error") is True,
                        raw=obj,
                    )
                )
        return events

    def _result(self, obj: dict[str, Any]) -> list[Event]:
        subtype = as_str(obj.get("subtype"))
        is_error = obj.get("is_error") is True or (subtype or "").startswith("error")
        text = as_str(obj.get("result")) or ""
        events: list[Event] = []
        if text and not is_error and not self._text_sent:
            events.append(TextDelta(text=text, raw=obj))  # a bare `json` result
            self._text_sent = True
        events.append(
            FinalResult(
                text=text,
                session_id=as_str(obj.get("session_id")),
                usage=_usage(obj.get("usage")),
                cost_usd=as_float(obj.get("total_cost_usd")),
                is_error=is_error,
                raw=obj,
            )
        )
        if is_error:
            errors = obj.get("errors")
            details = [e for e in errors if isinstance(e, str)] if isinstance(errors, list) else []
            message = text or "; ".join(details) or f"claude result {subtype or 'error'}"
            status = as_int(obj.get("api_error_status"))
            category = _category(status, self._error_kind, message, subtype)
            retry_after = None
            if category is ErrorCategory.RATE_LIMIT:
                retry_after = usage_limit_retry_after(message, self._clock())
                if retry_after is None:
                    retry_after = retry_hint(message)
            events.append(
                ErrorReport(
                    message=message,
                    category=category.value if category else None,
                    status=status,
                    retry_after=retry_after,
                    raw=obj,
                )
            )
        # A result ends a turn; a warm process (stream-json input) starts the next afresh.
        self._text_sent = False
        self._error_kind = None
        return events

    def _rate_limit(self, obj: dict[str, Any]) -> list[Event]:
        info = obj.get("rate_limit_info")
        if not isinstance(info, dict) or info.get("status") != "rejected":
            return []  # allowed / allowed_warning: information, kept raw
        if info.get("isUsingOverage") is True or info.get("overageStatus") in (
            "allowed",
            "allowed_warning",
        ):
            return []  # the call goes on, paid from overage credits
        resets_at = as_float(info.get("resetsAt"))
        retry_after = max(0.0, resets_at - self._clock()) if resets_at is not None else None
        limit = as_str(info.get("rateLimitType")) or "usage"
        when = ""
        if resets_at is not None:
            when = " until " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(resets_at))
        return [
            ErrorReport(
                message=f"claude {limit} rate limit reached: requests rejected{when}",
                category=ErrorCategory.RATE_LIMIT.value,
                retry_after=retry_after,
                raw=obj,
            )
        ]


@attrs.frozen
class ClaudeClassifier:
    """Judges a finished ``claude -p``: `PatternClassifier` plus what claude's output means.

    - A successful ``result`` (``is_error`` false) is success whatever the exit code,
      unless a terminal report stopped the process; ``is_error`` is a failure even with
      exit code 0. No ``result`` at all (and no other error) is RETRYABLE.
    - The category comes from ``api_error_status`` / the CLI's error kind / usage-limit
      messages (see the module docstring); `PatternClassifier` judges the rest, with
      claude's extra patterns ADDED to its defaults. Evidence (event, stderr) is kept.
    """

    base: PatternClassifier = attrs.field(
        factory=lambda: PatternClassifier(
            rate_limit_patterns=DEFAULT_RATE_LIMIT_PATTERNS + CLAUDE_RATE_LIMIT_PATTERNS,
            auth_patterns=DEFAULT_AUTH_PATTERNS,
            permanent_patterns=DEFAULT_PERMANENT_PATTERNS + CLAUDE_PERMANENT_PATTERNS,
        )
    )
    clock: Clock = attrs.field(default=time.time, eq=False, repr=False)

    def classify(self, exit: ProcessExit) -> LLMError | None:
        reports = [e for e in exit.events if isinstance(e, ErrorReport)]
        finals = [e for e in exit.events if isinstance(e, FinalResult)]
        last = finals[-1] if finals else None
        stopped = any(r.terminal for r in reports)
        if last is not None and not last.is_error and not stopped and exit.exit_code is not None:
            return None
        error = self.base.classify(_without_rate_limit_info(exit))
        if error is not None:
            said = [r.message for r in reports] + [exit.stderr_tail]
            lost = lost_session_of(t for t in said if t)
            if lost is not None:
                session_id, words = lost
                return error.evolve(
                    message=f"session {session_id} is not known to claude: {words}",
                    category=ErrorCategory.PERMANENT,
                    lost_session=session_id,
                )
        if error is None:
            if last is None:
                return LLMError(
                    f"{exit.cli} ended without a result line (exit code {exit.exit_code})",
                    ErrorCategory.RETRYABLE,
                    exit_code=exit.exit_code,
                    stderr=exit.stderr_tail,
                    cli=exit.cli,
                    secrets=exit.secrets,
                )
            return None
        texts = [r.message for r in reports] + ([last.text] if last and last.is_error else [])
        for text in texts:
            if _USAGE_LIMIT.search(text):
                reset = usage_limit_retry_after(text, self.clock())
                return with_category(error, ErrorCategory.RATE_LIMIT, reset)
        for report in reports:
            decided = _category(report.status, None, report.message, None)
            if report.category is None and decided is not None:
                return with_category(error, decided, report.retry_after)
        return error


def claude(
    executable: str | None = None,
    *,
    model: str | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    resume: str | None = None,
    system_prompt: str | None = None,
    append_system_prompt: str | None = None,
    max_turns: int | None = None,
    cwd: str | None = None,
    partial_messages: bool = True,
    json_schema: Mapping[str, Any] | None = None,
    name: str = "claude",
    tools: ToolPolicy = "none",
) -> CliSpec:
    """A `CliSpec` for Claude Code in print mode (``claude -p``), streaming JSON events.

    Args:
        executable: the ``claude`` binary (default: `find_executable("claude")`).
        model: ``--model`` (an alias such as ``"sonnet"`` or a full model name).
        env: extra environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``, ...), on
            top of ``CLAUDE_CODE_MAX_RETRIES=0``, which it may override.
        extra_args: more CLI arguments, placed last (e.g. ``["--allowedTools", "Read"]``);
            not ``--output-format``, which the adapter depends on.
        resume: a session id to continue (``--resume``); every `Result` carries the id to
            pass here next time (it may change on resume: always use the latest).
        system_prompt / append_system_prompt: replace / extend the system prompt.
        max_turns: ``--max-turns``; running out is a PERMANENT error.
        cwd: the working directory claude runs (and edits files) in.
        partial_messages: token streaming (``--include-partial-messages``).
        json_schema: ``--json-schema`` (claude's structured output); `Supervisor.ask` with
            ``output=Model`` sets it for you through ``CliSpec.output_schema``.
        name: the name in errors, logs and statistics.
        tools: what the agent may do (`ToolPolicy`), on claude's own flags:

            - ``"none"`` (default): ``--tools= --strict-mcp-config``: no tool is defined
              in the request at all (``StructuredOutput`` still is with ``json_schema``;
              its input is the answer, nothing runs), so nothing can run.
            - ``"read"``: ``--tools=Read,Glob,Grep --permission-mode=default
              --strict-mcp-config``: reading within ``cwd`` (claude refuses paths outside
              it in print mode); an allow rule in your claude settings can widen that.
            - ``"edit"``: ``--tools=Read,Glob,Grep,Edit,Write,NotebookEdit
              --permission-mode=acceptEdits --strict-mcp-config``: also writing within
              ``cwd``; no shell, no web.
            - ``"full"``: every tool, ``--permission-mode=bypassPermissions`` (shell, web,
              any path; logs a WARNING). claude refuses it as root unless ``IS_SANDBOX=1``
              is set, so as root without it the factory raises ValueError.

    System prompt: ``spec.with_system(text)`` is the spec with ``--system-prompt=text``,
    which replaces claude's own agent instructions (about 6 KB, and 77 KB of tool
    definitions with all tools on); what claude always keeps is a one-line preamble ("You
    are a Claude agent, built on Anthropic's Claude Agent SDK."), a billing header line
    and a ``currentDate`` reminder before the prompt: a one-line prompt under ``"none"``
    with a system prompt is a request of about 1.2 KB.

    Multi-turn: the spec's `SessionSupport` resumes with ``--resume`` and keeps a warm
    process with ``--input-format stream-json`` (one user message per stdin line), so a
    conversation pays the start-up cost once.

    The prompt goes to stdin, so it can never be taken for an option.
    """
    # Long because: the docstring is the reference for every option and each tool level.
    _check_tools(tools, env)
    options = _ClaudeOptions(
        model=model,
        env=env,
        extra_args=tuple(extra_args),
        resume=resume,
        system_prompt=system_prompt,
        append_system_prompt=append_system_prompt,
        max_turns=max_turns,
        cwd=cwd,
        partial_messages=partial_messages,
        json_schema=json_schema,
        name=name,
        tools=tools,
    )
    spec = _claude_spec(find_executable("claude", executable), options)
    if tools == "full":
        logger.warning(
            "%s runs with tools='full': every tool claude has (shell, web, files anywhere) "
            "runs without asking (--permission-mode=bypassPermissions)",
            name,
        )
    return spec


def _check_tools(tools: object, env: Mapping[str, str] | None) -> None:
    """Refuse a tool policy claude cannot run: an unknown one, or "full" as root."""
    if tools not in TOOL_POLICIES:
        raise ValueError(
            f"claude: tools must be one of {', '.join(map(repr, TOOL_POLICIES))}, got {tools!r}"
        )
    sandbox = (env or {}).get("IS_SANDBOX", os.environ.get("IS_SANDBOX"))
    # claude accepts exactly "1" here ("yes" and "true" are refused, as measured).
    if tools == "full" and os.geteuid() == 0 and sandbox != "1":
        raise ValueError(
            "claude: tools='full' needs --permission-mode=bypassPermissions, which claude "
            "refuses to run as root ('cannot be used with root/sudo privileges'); run as "
            "another user, or pass env={'IS_SANDBOX': '1'} if this is a sandbox"
        )


@attrs.frozen(eq=False)
class _ClaudeOptions:
    """`claude`'s options, kept so resumed, warm and schema variants change only one."""

    model: str | None
    env: Mapping[str, str] | None
    extra_args: Sequence[str]
    resume: str | None
    system_prompt: str | None
    append_system_prompt: str | None
    max_turns: int | None
    cwd: str | None
    partial_messages: bool
    json_schema: Mapping[str, Any] | None
    name: str
    tools: ToolPolicy = "none"

    def argv(self, program: str) -> tuple[str, ...]:
        argv = [program, "-p", *_IO_FLAGS]
        if self.partial_messages:
            argv.append("--include-partial-messages")
        argv.extend(_TOOL_FLAGS[self.tools])
        if self.model is not None:
            argv.append(f"--model={self.model}")
        if self.system_prompt is not None:
            argv.append(f"--system-prompt={self.system_prompt}")
        if self.append_system_prompt is not None:
            argv.append(f"--append-system-prompt={self.append_system_prompt}")
        turns = self.max_turns
        if turns is not None:
            if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
                raise ValueError(f"max_turns must be a positive int, got {turns!r}")
            argv.append(f"--max-turns={turns}")
        if self.resume is not None:
            if not self.resume or self.resume.startswith("-"):
                raise ValueError(f"resume must be a session id, got {self.resume!r}")
            argv.append(f"--resume={self.resume}")
        if self.json_schema is not None:
            argv.append(f"--json-schema={json.dumps(self.json_schema, separators=(',', ':'))}")
        argv.extend(self.extra_args)
        return tuple(argv)


def _claude_spec(program: str, options: _ClaudeOptions) -> CliSpec:
    argv = options.argv(program)

    def variant(**changes: Any) -> CliSpec:
        return _claude_spec(program, attrs.evolve(options, **changes))

    def warm(session_id: str | None) -> WarmLaunch:
        base = variant(resume=session_id)
        # The same argv: it already reads stream-json user messages, one per stdin line.
        return WarmLaunch(argv=base.argv, encode_turn=_user_message_line)

    return CliSpec(
        sweep_session=True,  # helpers may leave the group (codex's sandbox does)
        name=options.name,
        argv=argv,
        adapter_factory=ClaudeAdapter,
        classifier=ClaudeClassifier(),
        prompt_via="stdin",
        stdin_encoder=_user_message_line,
        env={"CLAUDE_CODE_MAX_RETRIES": "0", **(options.env or {})},
        cwd=options.cwd,
        output_schema=lambda schema: variant(json_schema=schema),
        session=SessionSupport(resume=lambda sid: variant(resume=sid), warm=warm),
        tools=options.tools,
        permitted_tools=CLAUDE_PERMITTED_TOOLS,
        with_system=lambda system: variant(system_prompt=system),
    )


def _user_message_line(prompt: str) -> bytes:
    message = {"type": "user", "message": {"role": "user", "content": prompt}}
    return (json.dumps(message) + "\n").encode()


def _without_rate_limit_info(exit: ProcessExit) -> ProcessExit:
    """``exit`` without claude's informational ``rate_limit_event`` lines.

    An "allowed" line says the account is fine; its words ("rate_limit") must not make
    the generic pattern scan call a crash after it a rate limit.
    """
    kept = tuple(
        e
        for e in exit.events
        if not (isinstance(e, RawEvent) and (e.raw or {}).get("type") == "rate_limit_event")
    )
    return exit if len(kept) == len(exit.events) else attrs.evolve(exit, events=kept)
