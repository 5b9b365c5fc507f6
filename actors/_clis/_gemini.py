"""Google's Gemini CLI as a supervised CLI: `gemini()`, `GeminiAdapter`,
`gemini_stderr_watch`, `GeminiClassifier`.

Pointing the library at it
    ``gemini()`` finds the binary with `find_executable` or takes ``executable=``. With an
    API key: ``env={"GEMINI_API_KEY": ...}``. For a gateway or a local emulator, also
    ``GOOGLE_GEMINI_BASE_URL=http://HOST:PORT``; the CLI then also needs
    ``$HOME/.gemini/settings.json`` with
    ``{"security":{"auth":{"selectedType":"gemini-api-key"}}}`` (otherwise "Invalid auth
    method selected", exit 41). ``gemini()`` sets ``GEMINI_CLI_TRUST_WORKSPACE=true``
    (headless runs in an untrusted folder exit 55) unless ``env`` says otherwise, and
    always passes an explicit model (default ``gemini-2.5-flash``): with the CLI's
    ``auto`` model every call first asks a routing model.

How it is run (verified with gemini 0.61.0)
    ``gemini --output-format stream-json --model=M [--resume=ID] *extra_args`` with the
    prompt written to **stdin**, then closed. With stdin not a terminal and no
    ``--prompt``, gemini runs headless and takes stdin verbatim as the prompt
    (``--help``, ``-p``, ``--model x``, ``a=b``, newlines, leading spaces all verified), so
    nothing in a prompt can become an option, and there is no 128 KiB argument limit.
    (``--prompt=VALUE`` is safe too, but puts the prompt in the process list.) Limits
    of the CLI: stdin beyond 8 MiB is silently truncated, and an empty prompt is refused
    ("No input provided via stdin", exit 42 → PERMANENT). Under CPU starvation gemini can
    also miss a prompt that is already in the pipe, since it waits only 500 ms for stdin to
    turn readable; the same message after a non-empty write is then RETRYABLE.
    ``--resume`` takes a session id from an earlier result (or ``latest``, or an index).

Standby (``open_supervisor(standby=N)``): held with one newline (verified with 0.61.0)
    gemini's ``readStdin`` (packages/cli/src/utils/readStdin.ts in its bundle) arms a 500 ms
    timer (``pipedInputShouldBeAvailableInMs``) when it begins reading, which is after
    ``await config.initialize()`` in ``main()``, about 1.3-1.8 s after the spawn here; with
    no byte by then it resolves with no input and exits 42. Measured: a prompt written
    1-2 s after the spawn is answered, one written 4 s after is lost (exit 42 at ~2 s). So
    a standby gemini is sent a newline at once (``standby_prelude``): the timer is cleared
    by the first chunk and gemini then reads to EOF, however late the prompt comes. The
    model therefore gets a standby call's prompt after one newline (a cold call's
    verbatim). Its start-up warnings on stderr before it reads stdin ("256-color support
    not detected", "Ripgrep is not available") are expected (``standby_writes_stderr``).
    A pty is no way out: with a terminal on stdin gemini goes interactive.

Its own retries
    On 429, 5xx and connection errors gemini retries with backoff for minutes (up to 10
    attempts) and prints **nothing on stdout** meanwhile; stderr shows each attempt:
    ``Attempt 1 failed with status 429. Retrying with backoff... _ApiError: {...}``,
    ``Attempt 1 failed: You exceeded your current quota. Please retry in 20.5s.``,
    ``Attempt 1 failed. Retrying with backoff... Error: exception TypeError: fetch failed
    sending request``. No flag or environment variable turns this off (only
    ``general.maxAttempts`` in a settings file), so `gemini_stderr_watch` turns the first
    such line into a *terminal* `ErrorReport` (status, category, ``retry_after`` from
    "try again in 20s" / "retry in 20.5s"): the actor stops gemini at once, about as fast
    as ``maxAttempts: 1`` would, and the supervisor decides.

What errors look like (and what they become)
    - Not retried by the CLI (400, 401, 403): a stream-json ``result`` with
      ``"status":"error"`` and ``error: {type, message}`` (message such as ``[API Error:
      {"error":{"code":400,"message":"API key not valid...","status":"INVALID_ARGUMENT"}}]``),
      stderr ``Error when talking to Gemini API ... status: 401``, and an exit code equal
      to the HTTP status modulo 256 (400 → 144, 401 → 145, 403 → 147, 429 → 173).
      "API key not valid" / ``API_KEY_INVALID`` (Google answers 400), 401, 403,
      ``PERMISSION_DENIED`` → AUTH_FAILURE; other 400s → PERMANENT; 429 /
      ``RESOURCE_EXHAUSTED`` / quota → RATE_LIMIT; 5xx, ``UNAVAILABLE``, fetch failures →
      RETRYABLE.
    - Fatal exit codes: 41 (auth) → AUTH_FAILURE; 42 (input), 44 (sandbox), 52 (config),
      53 (turn limit), 54 (tool execution) → PERMANENT; 55 (untrusted folder) → PERMANENT,
      with a message saying to set ``GEMINI_CLI_TRUST_WORKSPACE=true``.
    - ``--resume`` of a session gemini does not have: exit 42 and ``Error resuming session:
      Invalid session identifier "ID".`` (or ``No previous sessions found for this
      project.``) → PERMANENT with ``lost_session=ID``, message "session ID is not known
      to gemini: <its words>".
    - ``error`` events with ``severity: "warning"`` (loop detected, ...) are kept raw;
      ``severity: "error"`` becomes an `ErrorReport`.

Events
    ``init`` → `SessionStarted`; ``message`` from the assistant → `TextDelta` (gemini
    streams chunks; they concatenate to the answer); the user's echo → `RawEvent`;
    ``tool_use`` / ``tool_result`` → `ToolUse` / `ToolResult`; ``result`` → `FinalResult`
    (text = the deltas joined, usage from ``stats``, ``is_error`` from ``status``).
    ``--output-format json`` (one pretty-printed object with ``session_id``,
    ``response``, ``stats``) is understood too.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._errors import ErrorCategory, LLMError
from .._events import (
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
    with_category,
)

logger = logging.getLogger("llmsup.gemini")

DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"
TRUST_HINT = (
    "set GEMINI_CLI_TRUST_WORKSPACE=true (gemini() does unless env overrides it) "
    "or pass --skip-trust"
)
AUTH_HINT = (
    "set GEMINI_API_KEY; with GOOGLE_GEMINI_BASE_URL also select the key in "
    '~/.gemini/settings.json: {"security":{"auth":{"selectedType":"gemini-api-key"}}}'
)

GEMINI_AUTH_PATTERNS: tuple[str, ...] = (
    r"api[ _]key not valid",
    r"API_KEY_INVALID",
    r"PERMISSION_DENIED",
    r"UNAUTHENTICATED",
    r"invalid auth method",
)
GEMINI_PERMANENT_PATTERNS: tuple[str, ...] = (
    r"INVALID_ARGUMENT",
    r"FAILED_PRECONDITION",
    r"no input provided via stdin",
    r"error resuming session",
    r"not running in a trusted directory",
    r"maximum session turns",
)
GEMINI_RATE_LIMIT_PATTERNS: tuple[str, ...] = (r"exceeded your current quota",)

_AUTH = re.compile("|".join(GEMINI_AUTH_PATTERNS), re.I)
_RATE = re.compile(r"RESOURCE_EXHAUSTED|\bquota\b|rate[ _-]?limit", re.I)
_TRANSIENT = re.compile(
    r"UNAVAILABLE|overloaded|fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|"
    r"\bINTERNAL\b|DEADLINE_EXCEEDED",
    re.I,
)
_PERMANENT = re.compile(r"INVALID_ARGUMENT|FAILED_PRECONDITION|\bNOT_FOUND\b", re.I)

# Fatal exit codes (packages/core FatalError subclasses).
_EXIT_CATEGORY: dict[int, ErrorCategory] = {
    41: ErrorCategory.AUTH_FAILURE,
    42: ErrorCategory.PERMANENT,
    44: ErrorCategory.PERMANENT,
    52: ErrorCategory.PERMANENT,
    53: ErrorCategory.PERMANENT,
    54: ErrorCategory.PERMANENT,
    55: ErrorCategory.PERMANENT,
}
_EXIT_MEANING = {
    41: "authentication failed",
    42: "bad input",
    44: "sandbox error",
    52: "configuration error",
    53: "session turn limit reached",
    54: "tool execution failed",
    55: "untrusted folder",
}
# gemini exits with the HTTP status of an API error (process.exit(status) → modulo 256);
# used only when nothing else names the status.
_EXIT_STATUS = {144: 400, 145: 401, 147: 403, 148: 404, 173: 429, 244: 500, 247: 503}

_ERROR_TYPE_CATEGORY = {
    "FatalAuthenticationError": ErrorCategory.AUTH_FAILURE,
    "FatalInputError": ErrorCategory.PERMANENT,
    "FatalSandboxError": ErrorCategory.PERMANENT,
    "FatalConfigError": ErrorCategory.PERMANENT,
    "FatalTurnLimitedError": ErrorCategory.PERMANENT,
    "FatalToolExecutionError": ErrorCategory.PERMANENT,
    "FatalUntrustedWorkspaceError": ErrorCategory.PERMANENT,
}

_NO_INPUT = "No input provided via stdin"
# gemini waits only 500 ms for piped stdin to turn readable (readStdin's
# pipedInputShouldBeAvailableInMs); a starved event loop misses the window even though
# the prompt is already in the pipe.
_LOST_PROMPT = (
    "gemini reported no input although the prompt was written to its stdin: it gives"
    " stdin only 500 ms to become readable, which a loaded machine can miss; a retry"
    " usually succeeds"
)

# A standby gemini's stdin gets one newline at once: readStdin's 500 ms timer is cleared by
# the first chunk, and gemini then reads to EOF however late the prompt comes.
GEMINI_STANDBY_PRELUDE = b"\n"

# What gemini 0.61.0 prints (stderr, exit 42) when ``--resume`` names a session it does not
# have: "Error resuming session: No previous sessions found for this project." (no session
# stored for this folder at all) or 'Error resuming session: Invalid session identifier
# "ID".' followed by where it searched and a hint to use --list-sessions.
_LOST_SESSION = re.compile(
    r"Error resuming session: ((?:No previous sessions found|Invalid session identifier)"
    r"[^\n]*)",
)


def lost_session_words(stderr: str) -> str | None:
    """gemini's own words when it does not know the session it was asked to resume."""
    match = _LOST_SESSION.search(stderr)
    return match.group(1).strip() if match else None


_ATTEMPT = re.compile(r"^\s*Attempt (\d+) failed(?: with status (\d{3}))?\b(.*)$", re.I)
_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def gemini_category(text: str, status: int | None) -> ErrorCategory | None:
    """What a gemini error message (and its HTTP status, if known) means."""
    if _AUTH.search(text):
        return ErrorCategory.AUTH_FAILURE  # Google answers a bad key with 400
    by_status = category_for_status(status)
    if by_status is not None:
        return by_status
    if _RATE.search(text):
        return ErrorCategory.RATE_LIMIT
    if _TRANSIENT.search(text):
        return ErrorCategory.RETRYABLE
    if _PERMANENT.search(text):
        return ErrorCategory.PERMANENT
    return None


def gemini_stderr_watch(line: str) -> ErrorReport | None:
    """A terminal `ErrorReport` for gemini's "Attempt N failed ..." stderr lines, else None.

    gemini prints one when a request failed and it is about to retry on its own (or has
    run out of attempts): either way the supervisor, not the CLI, decides what next.
    """
    match = _ATTEMPT.match(line)
    if not match:
        return None
    detail = line.strip()
    status = int(match.group(2)) if match.group(2) else http_status(match.group(3))
    category = gemini_category(detail, status)
    retry_after = retry_hint(detail) if category is ErrorCategory.RATE_LIMIT else None
    return ErrorReport(
        message=f"{detail[:1000]} [gemini would retry on its own: stopped so the supervisor "
        "decides]",
        category=category.value if category else None,
        status=status,
        retry_after=retry_after,
        terminal=True,
    )


def _stream_usage(stats: Any) -> Usage | None:
    if not isinstance(stats, dict):
        return None
    cached = as_int(stats.get("cached")) or 0
    fresh = as_int(stats.get("input"))
    if fresh is None:
        fresh = max(0, (as_int(stats.get("input_tokens")) or 0) - cached)
    return Usage(
        input_tokens=fresh,
        output_tokens=as_int(stats.get("output_tokens")) or 0,
        cache_read_input_tokens=cached,
    )


def _document_usage(stats: Any) -> Usage | None:
    models = stats.get("models") if isinstance(stats, dict) else None
    if not isinstance(models, dict):
        return None
    fresh = output = cached = thoughts = 0
    for model in models.values():
        tokens = model.get("tokens") if isinstance(model, dict) else None
        if not isinstance(tokens, dict):
            continue
        hit = as_int(tokens.get("cached")) or 0
        given = as_int(tokens.get("input"))
        if given is None:
            given = max(0, (as_int(tokens.get("prompt")) or 0) - hit)
        fresh += given
        cached += hit
        output += as_int(tokens.get("candidates")) or 0
        thoughts += as_int(tokens.get("thoughts")) or 0
    return Usage.model_validate(
        {
            "input_tokens": fresh,
            "output_tokens": output,
            "cache_read_input_tokens": cached,
            "thoughts_tokens": thoughts,
        }
    )


def _error_report(error: Any, obj: dict[str, Any]) -> ErrorReport:
    kind = as_str(error.get("type")) if isinstance(error, dict) else None
    message = as_str(error.get("message")) if isinstance(error, dict) else as_str(error)
    message = message or json.dumps(error, default=str)[:2000]
    status = http_status(message)
    code = as_int(error.get("code")) if isinstance(error, dict) else None
    if status is None and code is not None and 100 <= code <= 599:
        status = code
    category = _ERROR_TYPE_CATEGORY.get(kind or "") or gemini_category(message, status)
    retry_after = retry_hint(message) if category is ErrorCategory.RATE_LIMIT else None
    return ErrorReport(
        message=message,
        category=category.value if category else None,
        status=status,
        retry_after=retry_after,
        raw=obj,
    )


class GeminiAdapter:
    """``gemini --output-format stream-json`` lines (or the ``json`` document) → events.

    See the module docstring. Never raises: what it cannot read is a `RawEvent`.
    """

    def __init__(self) -> None:
        self._session: str | None = None
        self._deltas: list[str] = []
        self._document: list[str] | None = None
        self._document_bytes = 0

    def parse_line(self, line: str) -> Sequence[Event]:
        try:
            return self._parse(line)
        except Exception:
            logger.debug("gemini line not understood: %.200s", line, exc_info=True)
            return [RawEvent(line=line)]

    def finish(self) -> Sequence[Event]:
        if self._document is None:
            return []
        lines, self._document = self._document, None
        obj = parse_json("\n".join(lines))
        if isinstance(obj, dict):
            return self._json_document(obj, "\n".join(lines))
        return [RawEvent(line=line) for line in lines]

    def _parse(self, line: str) -> list[Event]:
        if self._document is not None:
            return self._document_line(line)
        if line.strip() == "{":  # `--output-format json`: a pretty-printed object
            self._document = [line]
            self._document_bytes = len(line)
            return []
        obj = parse_json(line)
        if not isinstance(obj, dict):
            return [RawEvent(line=line)] if line.strip() else []
        if "type" not in obj and ("response" in obj or "session_id" in obj or "error" in obj):
            return self._json_document(obj, line)
        return self._stream(obj) or [RawEvent(line=line, raw=obj)]

    def _document_line(self, line: str) -> list[Event]:
        assert self._document is not None
        self._document.append(line)
        self._document_bytes += len(line) + 1
        if line.rstrip() == "}":
            text = "\n".join(self._document)
            obj = parse_json(text)
            if isinstance(obj, dict):
                self._document = None
                return self._json_document(obj, text)
        if self._document_bytes > _MAX_DOCUMENT_BYTES:
            lines, self._document = self._document, None
            return [RawEvent(line=item) for item in lines]
        return []

    def _stream(self, obj: dict[str, Any]) -> list[Event]:
        kind = obj.get("type")
        if kind == "init":
            session_id = as_str(obj.get("session_id"))
            if session_id:
                self._session = session_id
                return [
                    SessionStarted(session_id=session_id, model=as_str(obj.get("model")), raw=obj)
                ]
        elif kind == "message":
            if obj.get("role") == "assistant":
                text = as_str(obj.get("content"))
                if text:
                    self._deltas.append(text)
                    return [TextDelta(text=text, raw=obj)]
        elif kind == "tool_use":
            name = as_str(obj.get("tool_name"))
            if name:
                parameters = obj.get("parameters")
                return [
                    ToolUse(
                        id=as_str(obj.get("tool_id")) or "",
                        name=name,
                        input=parameters if isinstance(parameters, dict) else {},
                        raw=obj,
                    )
                ]
        elif kind == "tool_result":
            error = obj.get("error")
            output = as_str(obj.get("output"))
            if output is None and isinstance(error, dict):
                output = as_str(error.get("message"))
            return [
                ToolResult(
                    tool_use_id=as_str(obj.get("tool_id")) or "",
                    content=output or "",
                    is_error=obj.get("status") == "error",
                    raw=obj,
                )
            ]
        elif kind == "error":
            if obj.get("severity") != "warning":
                return [_error_report({"message": obj.get("message")}, obj)]
        elif kind == "result":
            return self._result(obj)
        return []

    def _result(self, obj: dict[str, Any]) -> list[Event]:
        is_error = obj.get("status") == "error" or obj.get("error") is not None
        events: list[Event] = [
            FinalResult(
                text="".join(self._deltas),
                session_id=self._session or as_str(obj.get("session_id")),
                usage=_stream_usage(obj.get("stats")),
                is_error=is_error,
                raw=obj,
            )
        ]
        if is_error:
            events.append(_error_report(obj.get("error") or "gemini result: error", obj))
        return events

    def _json_document(self, obj: dict[str, Any], text: str) -> list[Event]:
        events: list[Event] = []
        session_id = as_str(obj.get("session_id"))
        if session_id:
            self._session = session_id
            events.append(SessionStarted(session_id=session_id, raw=obj))
        response = as_str(obj.get("response")) or ""
        error = obj.get("error")
        if response and not self._deltas:
            self._deltas.append(response)
            events.append(TextDelta(text=response, raw=obj))
        events.append(
            FinalResult(
                text=response,
                session_id=session_id,
                usage=_document_usage(obj.get("stats")),
                is_error=error is not None,
                raw=obj,
            )
        )
        if error is not None:
            events.append(_error_report(error, obj))
        return events


@attrs.frozen
class GeminiClassifier:
    """Judges a finished gemini: its fatal exit codes first (41 → AUTH_FAILURE; 42, 44,
    52, 53, 54 → PERMANENT; 55 → PERMANENT with the trust hint), then `PatternClassifier`
    with gemini's patterns ADDED to the defaults, refined by the HTTP status (from the
    error, stderr, or the exit code that mirrors it). Evidence is kept.
    """

    base: PatternClassifier = attrs.field(
        factory=lambda: PatternClassifier(
            rate_limit_patterns=DEFAULT_RATE_LIMIT_PATTERNS + GEMINI_RATE_LIMIT_PATTERNS,
            auth_patterns=DEFAULT_AUTH_PATTERNS + GEMINI_AUTH_PATTERNS,
            permanent_patterns=DEFAULT_PERMANENT_PATTERNS + GEMINI_PERMANENT_PATTERNS,
        )
    )
    # The session the CLI was asked to continue (``--resume``): when gemini says it does
    # not know it, the error carries ``lost_session`` so a conversation starts afresh.
    resume: str | None = None

    def classify(self, exit: ProcessExit) -> LLMError | None:
        error = self.base.classify(exit)
        if error is None:
            if not any(isinstance(e, FinalResult) for e in exit.events):
                return LLMError(
                    f"{exit.cli} exited with code {exit.exit_code} without a result",
                    ErrorCategory.RETRYABLE,
                    exit_code=exit.exit_code,
                    stderr=exit.stderr_tail,
                    cli=exit.cli,
                    secrets=exit.secrets,
                )
            return None
        code = exit.exit_code
        lost = lost_session_words(error.stderr) if self.resume else None
        if lost is not None:
            return error.evolve(
                message=f"session {self.resume} is not known to {exit.cli}: {lost}",
                category=ErrorCategory.PERMANENT,
                lost_session=self.resume,
            )
        if code == 42 and exit.stdin_bytes and _NO_INPUT in exit.stderr_tail:
            return with_category(error, ErrorCategory.RETRYABLE, message=_LOST_PROMPT)
        if code in _EXIT_CATEGORY:
            meaning = _EXIT_MEANING[code]
            hint = TRUST_HINT if code == 55 else AUTH_HINT if code == 41 else ""
            message = f"{error.message} [{meaning}" + (f"; {hint}]" if hint else "]")
            return with_category(error, _EXIT_CATEGORY[code], message=message)
        reports = [e for e in exit.events if isinstance(e, ErrorReport)]
        if report_category(reports) is not None:
            return error
        evidence = "\n".join([*(r.message for r in reports), exit.stderr_tail[-8192:]])
        status = next((r.status for r in reports if r.status is not None), None)
        if status is None:
            status = http_status(evidence)
        if status is None and code is not None:
            status = _EXIT_STATUS.get(code)
        decided = gemini_category(evidence, status)
        if decided is not None and decided is not error.category:
            return with_category(error, decided, retry_hint(evidence))
        return error


def gemini(
    executable: str | None = None,
    *,
    model: str = DEFAULT_GEMINI_MODEL,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    resume: str | None = None,
    cwd: str | None = None,
    name: str = "gemini",
    tools: ToolPolicy = "none",
) -> CliSpec:
    """A `CliSpec` for the Gemini CLI in headless mode, streaming JSON events.

    Args:
        executable: the ``gemini`` launcher (default: `find_executable("gemini")`).
        model: ``--model`` (always passed; ``"auto"`` would add a routing call).
        env: extra environment (``GEMINI_API_KEY``, ``GOOGLE_GEMINI_BASE_URL``, ``HOME``);
            ``GEMINI_CLI_TRUST_WORKSPACE=true`` is set unless this overrides it.
        extra_args: more CLI arguments, placed last (e.g. ``["--include-directories", D]``);
            not ``--output-format`` or ``--prompt``, which would change what it reads/prints,
            and, below ``tools="full"``, nothing that changes what tools may run
            (``--yolo``, ``--approval-mode``, ``--admin-policy``, ``--allowed-tools``):
            ValueError.
        resume: a session id to continue (``--resume``).
        cwd: the working directory (gemini's workspace, where "read"/"edit" may act).
        name: the name in errors, logs and statistics.
        tools: what the model may run (verified with gemini 0.61.0 against the emulator),
            through an ``--admin-policy`` file (the highest policy tier, above the user's
            own policies and settings; a denied tool is also left out of the request):
            "none": every tool denied, no tool definitions sent, nothing runs;
            "read": only read_file, read_many_files, list_directory, glob, grep_search,
            which gemini confines to the workspace (cwd, plus ``--include-directories``
            and its own project folder under ``~/.gemini/tmp``; elsewhere "Path not in
            workspace"); "edit": those plus write_file and replace, same confinement;
            no shell, web or sub-agents at either level; "full": ``--approval-mode=yolo``,
            every tool including the shell, anywhere the user can reach (logs a WARNING).

    The prompt goes to stdin, so it can never be taken for an option. ``with_system(text)``
    gives a spec whose gemini gets ``text`` as its whole system instruction
    (``GEMINI_SYSTEM_MD``, a private file per distinct text), replacing its ~21-23 KB
    agent instructions: a one-line call under "none" then sends about 1 KB. gemini
    expands ``${AgentSkills}``, ``${SubAgents}``, ``${AvailableTools}`` and
    ``${NAME_ToolName}`` in that text; everything else is sent verbatim.
    """
    options = _GeminiOptions(
        model=model,
        env=env,
        extra_args=tuple(extra_args),
        resume=resume,
        cwd=cwd,
        name=name,
        tools=tools,
    )
    _check_tools(tools, name)
    return _gemini_spec(find_executable("gemini", executable), options)


def _check_tools(tools: ToolPolicy, name: str) -> None:
    """Refuse an unknown level; warn when "full" lets the model run anything."""
    if tools not in TOOL_POLICIES:
        raise ValueError(f"gemini: tools must be one of {', '.join(TOOL_POLICIES)}, got {tools!r}")
    if tools == "full":
        logger.warning(
            "gemini spec %r built with tools='full' (--approval-mode=yolo): the model may run "
            "any tool, shell commands included, anywhere this user can reach",
            name,
        )


# Options that would change what tools may run, refused below tools="full".
_TOOL_OPTIONS = ("-y", "--yolo", "--approval-mode", "--admin-policy", "--allowed-tools")
_POLICY_DIR = Path(__file__).with_name("_gemini_policies")


def gemini_policy_file(tools: ToolPolicy) -> Path | None:
    """The ``--admin-policy`` file for a tool level (None for "full", which has none)."""
    if tools == "full":
        return None
    path = _POLICY_DIR / f"{tools}.toml"
    if not path.is_file():  # never run gemini unrestricted because a file went missing
        raise ValueError(f"gemini: the policy file for tools={tools!r} is missing: {path}")
    return path


def gemini_system_file(text: str) -> Path:
    """A private file holding ``text`` for ``GEMINI_SYSTEM_MD`` (one per distinct text)."""
    return private_text_file("gemini", text)


@attrs.frozen(eq=False)
class _GeminiOptions:
    """`gemini`'s options, kept so a resumed variant changes only the session."""

    model: str
    env: Mapping[str, str] | None
    extra_args: Sequence[str]
    resume: str | None
    cwd: str | None
    name: str
    tools: ToolPolicy = "none"
    system_file: str | None = None

    def argv(self, program: str) -> tuple[str, ...]:
        if not self.model or self.model.startswith("-"):
            raise ValueError(f"model must be a model name, got {self.model!r}")
        argv = [program, "--output-format", "stream-json", f"--model={self.model}"]
        if self.resume is not None:
            if not self.resume or self.resume.startswith("-"):
                raise ValueError(f"resume must be a session id, got {self.resume!r}")
            argv.append(f"--resume={self.resume}")
        policy = gemini_policy_file(self.tools)
        if policy is None:
            argv.append("--approval-mode=yolo")
        else:
            for arg in self.extra_args:
                if arg.split("=", 1)[0] in _TOOL_OPTIONS:
                    raise ValueError(
                        f"gemini: extra_args {arg!r} would change which tools run, which "
                        f"tools={self.tools!r} decides (use tools='full' for anything goes)"
                    )
            argv.append(f"--admin-policy={policy}")
        argv.extend(self.extra_args)
        return tuple(argv)

    def environment(self) -> dict[str, str]:
        env = {"GEMINI_CLI_TRUST_WORKSPACE": "true", **(self.env or {})}
        if self.system_file is not None:
            env["GEMINI_SYSTEM_MD"] = self.system_file
        return env


def _gemini_spec(program: str, options: _GeminiOptions) -> CliSpec:
    def resumed(session_id: str) -> CliSpec:
        return _gemini_spec(program, attrs.evolve(options, resume=session_id))

    def with_system(text: str) -> CliSpec:
        system_file = str(gemini_system_file(text))
        return _gemini_spec(program, attrs.evolve(options, system_file=system_file))

    return CliSpec(
        sweep_session=True,  # helpers may leave the group (codex's sandbox does)
        name=options.name,
        argv=options.argv(program),
        adapter_factory=GeminiAdapter,
        classifier=GeminiClassifier(resume=options.resume),
        prompt_via="stdin",
        env=options.environment(),
        cwd=options.cwd,
        stderr_watch=gemini_stderr_watch,
        # gemini has no schema option: structured output goes through the prompt alone.
        session=SessionSupport(resume=resumed),
        tools=options.tools,
        with_system=with_system,
        standby_prelude=GEMINI_STANDBY_PRELUDE,
        standby_writes_stderr=True,  # start-up warnings come before it reads stdin
    )
