"""The fake CLI's behaviour as a pure script of actions.

API STABILITY: the names below are a stable interface, shared by the fake CLI executable
(``_cli.py``, which executes the actions with ``os.write``/``time.sleep``/``os.fork``) and the
in-process simulated backend (which executes them on memory streams and ``trio.sleep``)::

    script(plan, prompt, call_index, dialect, rng_seed, *, prompt_calls=0, serve=False,
           first_turn=True) -> Iterator[Action]
    Action = Out | Err | Sleep | Exit | Hang | Grandchild | IgnoreSigterm
    validate_plan(raw) -> Plan            # PlanError naming the key
    process_actions(plan) -> list[Action] # serve mode: what the base plan does once per process
    serve_actions(plan, answered, line)   # serve mode: one stdin line -> actions
    CallCounter                           # the in-memory call count (per prompt and overall)
    needs_count(plan) -> bool             # whether the plan reads the call count

``call_index`` is the 1-based number of this call among all calls of the plan (0 if unknown:
then no ``calls`` rule matches); ``prompt_calls`` is how many earlier calls had the same
prompt (for ``fail_first``). ``rng_seed`` makes the session id (when the plan gives none) and
any random choice deterministic. Dialects: ``native``, ``claude``, ``codex``, ``gemini``.

Standard library only and no relative or package imports: the fake CLI, run with ``python
-S``, imports this file as ``_script`` from its own folder; the package imports it as
``actors._fakes._script``.
"""

from __future__ import annotations

import json
import math

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing at run time costs start-up time
    from collections.abc import Generator, Iterator, Mapping
    from typing import Any

    Plan = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Actions


class _Action:
    """A frozen value, like a frozen dataclass (``dataclasses`` costs start-up time)."""

    __slots__: tuple[str, ...] = ()
    __match_args__: tuple[str, ...] = ()

    def __init__(self, *values: object) -> None:
        if len(values) != len(self.__slots__):
            raise TypeError(f"{type(self).__name__} takes {len(self.__slots__)} arguments")
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Action)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"


class Out(_Action):
    """Write ``data`` to stdout."""

    __slots__ = __match_args__ = ("data",)
    data: bytes

    def __init__(self, data: bytes) -> None:
        object.__setattr__(self, "data", data)  # the generic init, inlined: hot path


class Err(_Action):
    """Write ``data`` to stderr."""

    __slots__ = __match_args__ = ("data",)
    data: bytes

    def __init__(self, data: bytes) -> None:
        object.__setattr__(self, "data", data)  # the generic init, inlined: hot path


class Sleep(_Action):
    """Wait ``seconds``."""

    __slots__ = __match_args__ = ("seconds",)
    seconds: float

    def __init__(self, seconds: float) -> None:
        object.__setattr__(self, "seconds", seconds)  # the generic init, inlined: hot path


class Exit(_Action):
    """End the process with status ``code`` (nothing after it runs)."""

    __slots__ = __match_args__ = ("code",)
    code: int

    def __init__(self, code: int) -> None:
        object.__setattr__(self, "code", code)  # the generic init, inlined: hot path


class Hang(_Action):
    """Wait forever (until killed)."""

    __slots__ = ()


class Grandchild(_Action):
    """Process only: fork a grandchild holding stdout/stderr for ``holds_stdout_s`` seconds."""

    __slots__ = __match_args__ = ("holds_stdout_s", "ignores_sigterm")
    holds_stdout_s: float
    ignores_sigterm: bool

    def __init__(self, holds_stdout_s: float, ignores_sigterm: bool) -> None:
        super().__init__(holds_stdout_s, ignores_sigterm)


class IgnoreSigterm(_Action):
    """Process only: ignore SIGTERM from now on."""

    __slots__ = ()


Action = Out | Err | Sleep | Exit | Hang | Grandchild | IgnoreSigterm

DIALECTS: tuple[str, ...] = ("native", "claude", "codex", "gemini")

# ---------------------------------------------------------------------------------------------
# The plan

# key -> (kind, default). Kinds: "float", "int", "bool", "str", "dir" (non-empty str), "rules",
# a tuple of allowed strings; a trailing "?" means null is allowed too.
_FIELDS: dict[str, tuple[object, object]] = {
    "latency_s": ("float", 0.0),
    "chunks": ("int", 3),
    "chunk_gap_s": ("float", 0.0),
    "text": ("str?", None),
    "session_id": ("str?", None),
    "input_tokens": ("int?", None),
    "output_tokens": ("int?", None),
    "exit_code": ("int", 0),
    "crash_after_chunks": ("int?", None),
    "hang": ("bool", False),
    "hang_after_chunks": ("int?", None),
    "ignore_sigterm": ("bool", False),
    "grandchild_holds_stdout_s": ("float?", None),
    "grandchild_ignores_sigterm": ("bool", False),
    "rate_limit_retry_after_s": ("float?", None),
    "auth_failure": ("bool", False),
    "server_error": ("bool", False),
    "lost_session": ("bool", False),
    "error_exit_code": ("int?", None),
    "rate_limit_events": ("bool", False),
    "malformed_line": ("bool", False),
    "oversized_line_bytes": ("int?", None),
    "invalid_utf8": ("bool", False),
    "stderr_bytes": ("int", 0),
    "format": (("jsonl", "text"), "jsonl"),
    "fail_first": ("int", 0),
    "state_dir": ("dir?", None),
    "fail_with": (
        ("retryable", "rate_limit", "auth", "crash", "hang", "server_error", "lost_session"),
        "retryable",
    ),
    "fail_retry_after_s": ("float", 1.0),
    "serve": ("bool", False),
    "crash_after_requests": ("int?", None),
    "startup_s": ("float", 0.0),
    "startup_marker": ("dir?", None),
    "rules": ("rules", []),
}

PLAN_KEYS: frozenset[str] = frozenset(_FIELDS)
"""Every key a fault plan may have (the fields of ``actors._fakes._plan.FaultPlan``)."""

PROCESS_KEYS: frozenset[str] = frozenset(
    {"rules", "serve", "crash_after_requests", "startup_s", "startup_marker"}
)
"""Keys that describe the whole process, so a rule may not set them."""

RULE_KEYS: frozenset[str] = (PLAN_KEYS - PROCESS_KEYS) | {"match", "calls"}
"""Every key a rule may have (the fields of ``actors._fakes._plan.FaultRule``)."""

_KIND_NAMES = {
    "float": "a non-negative number",
    "int": "a non-negative integer",
    "bool": "true or false",
    "str": "a string",
    "dir": "a non-empty string",
}

RATE_LIMIT_MESSAGE = "429 Too Many Requests: rate limit exceeded. Please retry after {:g}s"
AUTH_MESSAGE = "401 Unauthorized: invalid API key"
TRANSIENT_MESSAGE = "transient failure"
SERVER_ERROR_MESSAGE = "500 Internal Server Error: the server had an error"
LOST_SESSION_MESSAGE = "No conversation found with session ID: {}"


class PlanError(Exception):
    """The fault plan is invalid; the message names the key."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


json_type = _json_type
"""The JSON type name of a value ("object", "array", ...), for error messages."""


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_value(where: str, kind: object, value: object) -> None:
    if isinstance(kind, tuple):
        if not (isinstance(value, str) and value in kind):
            choices = ", ".join(json.dumps(choice) for choice in kind)
            raise PlanError(f"'{where}' must be one of {choices}, got {_shown(value)}")
        return
    assert isinstance(kind, str)
    nullable = kind.endswith("?")
    base = kind.rstrip("?")
    if value is None:
        if nullable:
            return
        raise PlanError(f"'{where}' must be {_KIND_NAMES[base]}, got null")
    if base == "float":
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        if isinstance(value, int) and ok and where.endswith("exit_code") and value > 255:
            raise PlanError(f"'{where}' must be between 0 and 255, got {value}")
    elif base == "bool":
        ok = isinstance(value, bool)
    elif base == "str":
        ok = isinstance(value, str)
    elif base == "dir":
        ok = isinstance(value, str) and value != ""
    else:  # pragma: no cover - table error
        raise AssertionError(kind)
    if not ok:
        got = _shown(value) if _json_type(value) in ("number", "string") else _json_type(value)
        raise PlanError(f"'{where}' must be {_KIND_NAMES[base]}, got {got}")


def _check_calls(where: str, value: object) -> None:
    """``calls`` is ``[first, last]`` (1-based, inclusive) or ``[first, null]`` (from first on)."""
    message = f"'{where}' must be [first, last] or [first, null] with 1 <= first <= last"
    if not isinstance(value, list) or len(value) != 2:
        raise PlanError(f"{message}, got {_shown(value)}")
    first, last = value
    if not (isinstance(first, int) and not isinstance(first, bool) and first >= 1):
        raise PlanError(f"{message}, got {_shown(value)}")
    if last is not None and not (
        isinstance(last, int) and not isinstance(last, bool) and last >= first
    ):
        raise PlanError(f"{message}, got {_shown(value)}")


def _check_rule(where: str, rule: object) -> None:
    if not isinstance(rule, dict):
        raise PlanError(f"'{where}' must be an object, got {_json_type(rule)}")
    for key, value in rule.items():
        if key in PROCESS_KEYS:
            raise PlanError(f"'{where}.{key}' is not allowed in a rule (it is process-wide)")
        if key not in RULE_KEYS:
            raise PlanError(f"unknown key '{where}.{key}'")
        if key == "calls":
            _check_calls(f"{where}.calls", value)
        else:
            kind = "str" if key == "match" else _FIELDS[key][0]
            _check_value(f"{where}.{key}", kind, value)
    if "match" not in rule and "calls" not in rule:
        raise PlanError(f"'{where}.match' (or '{where}.calls') is required")


def _check_counting(where: str, plan: Plan) -> None:
    if plan["fail_first"] > 0 and plan["state_dir"] is None:
        raise PlanError(f"{where}'state_dir' is required when 'fail_first' > 0")


def validate_plan(raw: object) -> Plan:
    """The plan with defaults filled in, or `PlanError` naming the offending key."""
    if not isinstance(raw, dict):
        raise PlanError(f"the plan must be a JSON object, got {_json_type(raw)}")
    for key, value in raw.items():
        if key not in _FIELDS:
            raise PlanError(f"unknown key '{key}'")
        kind = _FIELDS[key][0]
        if kind != "rules":
            _check_value(key, kind, value)
    plan: Plan = {key: default for key, (_kind, default) in _FIELDS.items()}
    plan.update(raw)
    rules = plan["rules"]
    if not isinstance(rules, list):
        raise PlanError(f"'rules' must be an array of objects, got {_json_type(rules)}")
    for index, rule in enumerate(rules):
        where = f"rules[{index}]"
        _check_rule(where, rule)
        merged = _apply_rule(plan, rule)
        _check_counting(f"{where}: ", merged)
        if "calls" in rule and merged["state_dir"] is None:
            raise PlanError(f"{where}: 'state_dir' is required when a rule has 'calls'")
    _check_counting("", plan)
    return plan


def needs_count(plan: Plan) -> bool:
    """True when the plan reads the call count (``fail_first`` or a ``calls`` rule)."""
    if plan["fail_first"] > 0:
        return True
    return any("calls" in rule or rule.get("fail_first", 0) > 0 for rule in plan["rules"])


def _apply_rule(plan: Plan, rule: dict[str, object]) -> Plan:
    merged = dict(plan)
    merged.update((key, value) for key, value in rule.items() if key not in ("match", "calls"))
    return merged


def _rule_applies(rule: dict[str, Any], prompt: str, call_index: int) -> bool:
    match = rule.get("match")
    if match is not None and match not in prompt:
        return False
    calls = rule.get("calls")
    if calls is not None:
        first, last = calls
        if call_index < first or (last is not None and call_index > last):
            return False
    return True


def effective_plan(plan: Plan, prompt: str, call_index: int = 0) -> Plan:
    """The base plan with the first rule that applies to this call put on top.

    A rule applies when its ``match`` is in the prompt (if it has one) and ``call_index`` is in
    its ``calls`` range (if it has one; an unknown index, 0, is in no range).
    """
    for rule in plan["rules"]:
        if _rule_applies(rule, prompt, call_index):
            return _apply_rule(plan, rule)
    return plan


class CallCounter:
    """The call count of one plan, in memory: overall and per prompt (not thread-safe)."""

    __slots__ = ("calls", "per_prompt")

    def __init__(self) -> None:
        self.calls = 0
        self.per_prompt: dict[str, int] = {}

    def record(self, prompt: str) -> tuple[int, int]:
        """Count one call: ``(call_index, prompt_calls)``, 1-based index and earlier same-prompt."""
        self.calls += 1
        earlier = self.per_prompt.get(prompt, 0)
        self.per_prompt[prompt] = earlier + 1
        return self.calls, earlier


# ---------------------------------------------------------------------------------------------
# Helpers


def encode(text: str) -> bytes:
    """UTF-8, keeping surrogate-escaped bytes (a prompt read from stdin) as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def json_line(obj: Mapping[str, object]) -> bytes:
    """One compact JSON line."""
    return encode(json.dumps(obj, ensure_ascii=False, separators=(",", ":"))) + b"\n"


class Rng:
    """splitmix64: a tiny seeded generator (``random`` costs start-up time)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK64

    def next64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * (self.next64() >> 11) / float(1 << 53)


_MASK64 = (1 << 64) - 1


def uuid4(rng: Rng) -> str:
    """A version-4 UUID drawn from ``rng``."""
    raw = bytearray(((rng.next64() << 64) | rng.next64()).to_bytes(16, "big"))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def split_text(text: str, chunks: int) -> list[str]:
    """``text`` in ``chunks`` roughly equal non-empty pieces (fewer if it is shorter)."""
    count = min(chunks, len(text))
    if count <= 0:
        return []
    size, extra = divmod(len(text), count)
    pieces: list[str] = []
    pos = 0
    for index in range(count):
        end = pos + size + (1 if index < extra else 0)
        pieces.append(text[pos:end])
        pos = end
    return pieces


def _stderr_blocks(total: int) -> Iterator[Action]:
    block = (b"E" * 1023 + b"\n") * 64  # 64 KiB
    while total > 0:
        yield Err(block[:total])
        total -= len(block)


def session_id_for(plan: Plan, rng_seed: int) -> str:
    """The session id a call reports: the plan's, or a uuid4 drawn from the seed."""
    given = plan["session_id"]
    return given if given is not None else uuid4(Rng(rng_seed))


def _usage(plan: Plan, prompt: str, text: str) -> tuple[int, int]:
    input_tokens = plan["input_tokens"]
    output_tokens = plan["output_tokens"]
    return (
        len(prompt.split()) if input_tokens is None else input_tokens,
        len(text.split()) if output_tokens is None else output_tokens,
    )


# ---------------------------------------------------------------------------------------------
# Dialects: how one plan is rendered as each CLI's output


class _Call:
    """What one call knows while it is rendered."""

    __slots__ = ("first_turn", "plan", "prompt", "rng", "serve", "session_id")

    def __init__(
        self, plan: Plan, prompt: str, rng_seed: int, *, serve: bool, first_turn: bool
    ) -> None:
        self.plan = plan
        self.prompt = prompt
        self.serve = serve
        self.first_turn = first_turn
        self.session_id = session_id_for(plan, rng_seed)
        self.rng = Rng(rng_seed + 1)


def error_exit(call: _Call, usual: int) -> int:
    """The exit status of an injected error: the plan's ``error_exit_code``, else ``usual``."""
    chosen = call.plan["error_exit_code"]
    return usual if chosen is None else int(chosen)


class Native:
    """The native JSON-lines dialect (``actors._events``)."""

    name = "native"

    def start(self, call: _Call) -> Iterator[Action]:
        if call.plan["format"] == "jsonl" and call.first_turn:
            yield Out(
                json_line(
                    {"type": "session_started", "session_id": call.session_id, "model": "fake"}
                )
            )

    def delta(self, call: _Call, piece: str, bad_utf8: bool) -> bytes:
        if call.plan["format"] != "jsonl":
            return encode(piece) + (b"\xff\xfe" if bad_utf8 else b"")
        data = json_line({"type": "text_delta", "text": piece})
        if bad_utf8:  # raw invalid bytes inside the JSON string
            data = data[:-3] + b"\xff\xfe" + data[-3:]
        return data

    def result(self, call: _Call, text: str) -> Iterator[Action]:
        if call.plan["format"] != "jsonl":
            yield Out(b"\n")
            return
        input_tokens, output_tokens = _usage(call.plan, call.prompt, text)
        yield Out(
            json_line(
                {
                    "type": "result",
                    "text": text,
                    "session_id": call.session_id,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                    "cost_usd": 0.0,
                }
            )
        )

    def failure(self, call: _Call, mode: str, retry_after: float) -> Iterator[Action]:
        """The injected error: stderr line, then exit 1 (or an in-band event when serving)."""
        if mode == "rate_limit":
            message = RATE_LIMIT_MESSAGE.format(retry_after)
            extra: dict[str, object] = {"category": "rate_limit", "status": 429}
            extra["retry_after"] = retry_after
            stderr_line = f"Error: {message}\n"
        elif mode == "auth":
            message = AUTH_MESSAGE
            extra = {"category": "auth_failure", "status": 401}
            stderr_line = f"Error: {message}\n"
        elif mode == "server_error":
            message = SERVER_ERROR_MESSAGE
            extra = {"category": "retryable", "status": 500}
            stderr_line = f"Error: {message}\n"
        elif mode == "lost_session":
            message = LOST_SESSION_MESSAGE.format(call.session_id)
            extra = {"category": "lost_session"}
            stderr_line = f"Error: {message}\n"
        else:
            message = TRANSIENT_MESSAGE
            extra = {"category": "retryable"}
            stderr_line = f"fake: {message}\n"
        yield Err(encode(stderr_line))
        if call.serve:  # terminal: a warm turn ends here (the supervisor decides what next)
            yield Out(json_line({"type": "error", "message": message, **extra, "terminal": True}))
        else:
            yield Exit(error_exit(call, 1))

    def crash(self, call: _Call) -> Iterator[Action]:
        yield Err(b"fake: crashed mid-stream\n")
        yield Exit(3)

    def finish(self, call: _Call) -> Iterator[Action]:
        exit_code = call.plan["exit_code"]
        if exit_code:
            yield Err(encode(f"fake: failing with exit code {exit_code}\n"))
        yield Exit(exit_code)


# What each failure mode is, as an HTTP exchange with the provider: (status, claude error kind).
_HTTP = {
    "rate_limit": (429, "rate_limit"),
    "auth": (401, "authentication_failed"),
    "server_error": (500, "server_error"),
    "retryable": (None, "unknown"),
}


class Claude(Native):
    """``claude -p --output-format stream-json --verbose --include-partial-messages``.

    A rate limit is rendered as claude with its own retries on: an ``api_retry`` line whose
    ``retry_delay_ms`` is the plan's retry-after, then (as when the retries run out) the
    ``<synthetic>`` assistant message and a ``result`` with ``is_error`` true and
    ``api_error_status``; exit 1. Other API errors come as with ``CLAUDE_CODE_MAX_RETRIES=0``
    (no ``api_retry`` line). A lost session is the ``error_during_execution`` result that
    ``--resume`` with an unknown id gives.
    """

    name = "claude"

    def _line(self, call: _Call, obj: Mapping[str, object]) -> bytes:
        return json_line({**obj, "session_id": call.session_id, "uuid": uuid4(call.rng)})

    def start(self, call: _Call) -> Iterator[Action]:
        if call.first_turn:
            init: dict[str, object] = {"type": "system", "subtype": "init", "cwd": "/", "tools": []}
            init.update({"mcp_servers": [], "model": "claude-fake", "permissionMode": "default"})
            init.update({"apiKeySource": "ANTHROPIC_API_KEY", "claude_code_version": "2.1.197"})
            yield Out(self._line(call, init))
        if call.plan["rate_limit_events"]:  # as claude prints for a subscription login
            info = {"status": "allowed", "rateLimitType": "five_hour", "isUsingOverage": False}
            yield Out(self._line(call, {"type": "rate_limit_event", "rate_limit_info": info}))
        message: dict[str, object] = {"id": "msg_fake", "type": "message", "role": "assistant"}
        message.update({"model": "claude-fake", "content": [], "stop_reason": None})
        yield Out(self._stream_event(call, {"type": "message_start", "message": message}))
        block = {"type": "content_block_start", "index": 0}
        yield Out(
            self._stream_event(call, {**block, "content_block": {"type": "text", "text": ""}})
        )

    def _stream_event(self, call: _Call, event: Mapping[str, object]) -> bytes:
        return self._line(
            call, {"type": "stream_event", "event": event, "parent_tool_use_id": None}
        )

    def delta(self, call: _Call, piece: str, bad_utf8: bool) -> bytes:
        delta = {"type": "text_delta", "text": piece}
        data = self._stream_event(call, {"type": "content_block_delta", "index": 0, "delta": delta})
        if bad_utf8:  # raw invalid bytes inside the JSON text
            marker = json.dumps(piece, ensure_ascii=False).encode()
            data = data.replace(marker, marker[:-1] + b"\xff\xfe" + marker[-1:], 1)
        return data

    def _usage(self, call: _Call, text: str) -> dict[str, object]:
        input_tokens, output_tokens = _usage(call.plan, call.prompt, text)
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        }

    def result(self, call: _Call, text: str) -> Iterator[Action]:
        message: dict[str, object] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": "claude-fake",
        }
        message["content"] = [{"type": "text", "text": text}]
        yield Out(self._line(call, {"type": "assistant", "message": message}))
        yield Out(self._stream_event(call, {"type": "content_block_stop", "index": 0}))
        stop = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
        yield Out(self._stream_event(call, stop))
        yield Out(self._stream_event(call, {"type": "message_stop"}))
        yield Out(self._result(call, text, is_error=False, status=None, usage=True))

    def _result(
        self, call: _Call, text: str, *, is_error: bool, status: int | None, usage: bool
    ) -> bytes:
        result: dict[str, object] = {"type": "result", "subtype": "success", "is_error": is_error}
        result.update({"api_error_status": status, "duration_ms": 0, "num_turns": 1})
        result.update({"result": text, "stop_reason": "stop_sequence" if is_error else "end_turn"})
        result["total_cost_usd"] = 0 if is_error else 0.00035
        result["usage"] = self._usage(call, text) if usage else self._usage(call, "")
        if is_error:
            result["usage"] = {"input_tokens": 0, "output_tokens": 0}
        return self._line(call, result)

    def failure(self, call: _Call, mode: str, retry_after: float) -> Iterator[Action]:
        if mode == "lost_session":
            words = LOST_SESSION_MESSAGE.format(call.session_id)
            result: dict[str, object] = {
                "type": "result",
                "subtype": "error_during_execution",
                "is_error": True,
            }
            result.update({"duration_ms": 0, "num_turns": 0, "errors": [words]})
            yield Out(self._line(call, result))
            yield Err(encode(words + "\n"))
            yield Exit(error_exit(call, 1))
            return
        status, kind = _HTTP.get(mode, _HTTP["retryable"])
        yield from self.start_for_error(call)
        if mode == "rate_limit":
            retry: dict[str, object] = {
                "type": "system",
                "subtype": "api_retry",
                "attempt": 1,
                "max_retries": 10,
            }
            retry.update({"retry_delay_ms": retry_after * 1000.0, "error_status": 429})
            yield Out(self._line(call, {**retry, "error": kind}))
            text = "API Error: Request rejected (429) · Rate limited: please retry later"
        elif mode == "auth":
            text = "Invalid API key · Please run /login"
        elif mode == "server_error":
            text = "API Error: 500 Internal Server Error. This is a server-side issue"
        else:
            text = "API Error: Unable to connect to API (ConnectionRefused)"
        message: dict[str, object] = {"id": uuid4(call.rng), "type": "message", "role": "assistant"}
        message.update({"model": "<synthetic>", "content": [{"type": "text", "text": text}]})
        yield Out(self._line(call, {"type": "assistant", "message": message, "error": kind}))
        yield Out(self._result(call, text, is_error=True, status=status, usage=False))
        if not call.serve:
            yield Exit(error_exit(call, 1))

    def start_for_error(self, call: _Call) -> Iterator[Action]:
        if call.first_turn:
            init: dict[str, object] = {"type": "system", "subtype": "init", "cwd": "/", "tools": []}
            init.update({"mcp_servers": [], "model": "claude-fake", "permissionMode": "default"})
            yield Out(self._line(call, init))


class Codex(Native):
    """``codex exec --json``: the answer is one ``agent_message`` item (codex does not stream
    tokens), so ``chunks`` only decide where a crash or a hang falls. API errors are the
    ``error`` event and the ``turn.failed`` codex prints when its retries are off or run out,
    exit 1; a lost session is "no rollout found for thread id" on stderr."""

    name = "codex"

    def start(self, call: _Call) -> Iterator[Action]:
        if call.first_turn:
            yield Out(json_line({"type": "thread.started", "thread_id": call.session_id}))
        yield Out(json_line({"type": "turn.started"}))

    def delta(self, call: _Call, piece: str, bad_utf8: bool) -> bytes:
        return b"\xff\xfe\n" if bad_utf8 else b""

    def result(self, call: _Call, text: str) -> Iterator[Action]:
        item = {"id": "item_0", "type": "agent_message", "text": text}
        yield Out(json_line({"type": "item.completed", "item": item}))
        input_tokens, output_tokens = _usage(call.plan, call.prompt, text)
        usage: dict[str, object] = {"input_tokens": input_tokens, "cached_input_tokens": 0}
        usage.update({"output_tokens": output_tokens, "reasoning_output_tokens": 0})
        yield Out(json_line({"type": "turn.completed", "usage": usage}))

    def failure(self, call: _Call, mode: str, retry_after: float) -> Iterator[Action]:
        if mode == "lost_session":
            yield Err(
                encode(f"Error: thread/resume: no rollout found for thread id {call.session_id}\n")
            )
            yield Exit(error_exit(call, 1))
            return
        if mode == "rate_limit":
            message = "exceeded retry limit, last status: 429 Too Many Requests"
        elif mode == "auth":
            message = "unexpected status 401 Unauthorized: Incorrect API key provided"
        elif mode == "server_error":
            message = "exceeded retry limit, last status: 500 Internal Server Error"
        else:
            message = "stream disconnected before completion: error sending request"
        yield from self.start(call)
        yield Out(json_line({"type": "error", "message": message}))
        yield Out(json_line({"type": "turn.failed", "error": {"message": message}}))
        if not call.serve:
            yield Exit(error_exit(call, 1))


_GEMINI_STATUS = {429: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED", 500: "INTERNAL"}
_STAMP = "1970-01-01T00:00:00.000Z"


class Gemini(Native):
    """``gemini --output-format stream-json``. Errors it retries on its own (429, 5xx,
    connection) print "Attempt 1 failed ..." on stderr and, when the attempts run out, a
    ``result`` with status error and the HTTP status as exit code (429 → 173, 500 → 244); a
    401 is not retried (result error, exit 145); a lost session is "Error resuming session:
    Invalid session identifier" on stderr, exit 42."""

    name = "gemini"

    def start(self, call: _Call) -> Iterator[Action]:
        init: dict[str, object] = {
            "type": "init",
            "timestamp": _STAMP,
            "session_id": call.session_id,
        }
        yield Out(json_line({**init, "model": "gemini-fake"}))
        user = {"type": "message", "timestamp": _STAMP, "role": "user", "content": call.prompt}
        yield Out(json_line(user))

    def delta(self, call: _Call, piece: str, bad_utf8: bool) -> bytes:
        message: dict[str, object] = {"type": "message", "timestamp": _STAMP, "role": "assistant"}
        data = json_line({**message, "content": piece, "delta": True})
        if bad_utf8:
            marker = json.dumps(piece, ensure_ascii=False).encode()
            data = data.replace(marker, marker[:-1] + b"\xff\xfe" + marker[-1:], 1)
        return data

    def result(self, call: _Call, text: str) -> Iterator[Action]:
        input_tokens, output_tokens = _usage(call.plan, call.prompt, text)
        stats: dict[str, object] = {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
        }
        stats.update({"output_tokens": output_tokens, "cached": 0, "input": input_tokens})
        stats.update({"duration_ms": 0, "tool_calls": 0})
        result: dict[str, object] = {
            "type": "result",
            "timestamp": _STAMP,
            "status": "success",
            "stats": stats,
        }
        yield Out(json_line(result))

    def failure(self, call: _Call, mode: str, retry_after: float) -> Iterator[Action]:
        if mode == "lost_session":
            words = f'Error resuming session: Invalid session identifier "{call.session_id}".'
            yield Err(encode(words + "\n"))
            yield Exit(error_exit(call, 42))
            return
        yield from self.start(call)
        status = {"rate_limit": 429, "auth": 401, "server_error": 500}.get(mode)
        if status == 429:
            detail = f"Rate limit reached for requests. Please try again in {retry_after:g}s."
        elif status == 401:
            detail = "API key not valid. Please pass a valid API key."
        elif status == 500:
            detail = "Internal error encountered."
        else:
            detail = "exception TypeError: fetch failed sending request"
        body: dict[str, object] = {
            "code": status,
            "message": detail,
            "status": _GEMINI_STATUS.get(status or 0),
        }
        api_error = json.dumps({"error": body}, separators=(",", ":"))
        if status == 401:
            yield Err(encode(f"Error when talking to Gemini API {api_error} status: 401\n"))
        elif status is None:
            yield Err(
                b"Attempt 1 failed. Retrying with backoff... Error: exception TypeError:"
                b" fetch failed sending request\n"
            )
        else:
            yield Err(
                encode(
                    f"Attempt 1 failed with status {status}. Retrying with backoff..."
                    f" _ApiError: {api_error}\n"
                )
            )
        said = f"[API Error: {api_error}]" if status else detail
        error = {"type": "ApiError", "message": said}
        result: dict[str, object] = {
            "type": "result",
            "timestamp": _STAMP,
            "status": "error",
            "error": error,
        }
        yield Out(json_line(result))
        if not call.serve:
            yield Exit(error_exit(call, status % 256 if status else 1))


_RENDERERS: dict[str, Native] = {
    "native": Native(),
    "claude": Claude(),
    "codex": Codex(),
    "gemini": Gemini(),
}


# ---------------------------------------------------------------------------------------------
# The script


def _failure(plan: Plan, prompt_calls: int) -> tuple[str, float] | None:
    """The injected failure for this call: (mode, retry_after), or None for a normal answer."""
    if plan["fail_first"] > 0 and prompt_calls < plan["fail_first"]:
        return plan["fail_with"], float(plan["fail_retry_after_s"])
    if plan["rate_limit_retry_after_s"] is not None:
        return "rate_limit", float(plan["rate_limit_retry_after_s"])
    if plan["auth_failure"]:
        return "auth", 0.0
    if plan["server_error"]:
        return "server_error", 0.0
    if plan["lost_session"]:
        return "lost_session", 0.0
    return None


def process_actions(plan: Plan) -> list[Action]:
    """What a process does once at start, from ``plan``: ignore SIGTERM, fork a grandchild."""
    actions: list[Action] = []
    if plan["ignore_sigterm"]:
        actions.append(IgnoreSigterm())
    if plan["grandchild_holds_stdout_s"] is not None:
        actions.append(
            Grandchild(plan["grandchild_holds_stdout_s"], plan["grandchild_ignores_sigterm"])
        )
    return actions


def script(
    plan: Plan,
    prompt: str,
    call_index: int,
    dialect: str,
    rng_seed: int,
    *,
    prompt_calls: int = 0,
    serve: bool = False,
    first_turn: bool = True,
) -> Iterator[Action]:
    """The actions of one call of ``plan`` (already validated) for ``prompt``, in ``dialect``.

    One-shot (``serve=False``): the process actions of the call's plan first, and always an
    `Exit` (or a `Hang`) last. Serving: one turn, no process actions, no final `Exit` (unless it
    crashes); ``first_turn`` says whether the session start is still to be printed.
    """
    renderer = _RENDERERS.get(dialect)
    if renderer is None:
        raise PlanError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    plan = effective_plan(plan, prompt, call_index)
    if not serve:
        yield from process_actions(plan)
    failure = _failure(plan, prompt_calls)
    if failure is not None and failure[0] == "crash":
        plan, failure = {**plan, "crash_after_chunks": 1}, None
    elif failure is not None and failure[0] == "hang":
        plan, failure = {**plan, "hang": True}, None
    call = _Call(plan, prompt, rng_seed, serve=serve, first_turn=first_turn)

    if plan["latency_s"]:
        yield Sleep(plan["latency_s"])
    if plan["stderr_bytes"]:
        yield from _stderr_blocks(plan["stderr_bytes"])
    if failure is not None:
        yield from renderer.failure(call, *failure)
        return
    yield from renderer.start(call)
    if plan["hang"]:
        yield Hang()
        return
    if plan["malformed_line"]:
        yield Out(b"<<this is not json>>\n")
    if plan["oversized_line_bytes"] is not None:
        yield Out(b"x" * plan["oversized_line_bytes"] + b"\n")
    text = plan["text"] if plan["text"] is not None else "echo: " + prompt
    if not (yield from _stream(renderer, call, text)):
        return
    yield from renderer.result(call, text)
    if not serve:
        yield from renderer.finish(call)


def _stream(renderer: Native, call: _Call, text: str) -> Generator[Action, None, bool]:
    """The answer in chunks, crashing, hanging or corrupting UTF-8 where the plan says.

    Its return value is False when the call ended here (a crash or a hang).
    """
    plan = call.plan
    pieces = split_text(text, plan["chunks"])
    crash_at = plan["crash_after_chunks"]
    hang_at = plan["hang_after_chunks"]
    bad_utf8 = plan["invalid_utf8"]
    if bad_utf8 and not pieces:
        pieces = [""]
    for index, piece in enumerate(pieces):
        if crash_at == index:
            yield from renderer.crash(call)
            return False
        if hang_at == index:
            yield Hang()
            return False
        if index and plan["chunk_gap_s"]:
            yield Sleep(plan["chunk_gap_s"])
        yield Out(renderer.delta(call, piece, bad_utf8 and index == 0))
    if crash_at is not None and crash_at >= len(pieces):
        yield from renderer.crash(call)
        return False
    if hang_at is not None and hang_at >= len(pieces):
        yield Hang()
        return False
    return True


def serve_actions(plan: Plan, answered: int, line: bytes) -> tuple[str | None, list[Action]]:
    """Serve mode, one stdin line: ``(prompt, actions)``; the prompt is None if none was asked.

    The caller runs `script` for the prompt (the actions here are what comes instead: a crash
    after ``crash_after_requests``, or an error event for a bad request line).
    """
    limit = plan["crash_after_requests"]
    if limit is not None and answered >= limit:
        message = f"fake: crashed after {answered} requests\n"
        return None, [Err(encode(message)), Exit(3)]
    try:
        request = json.loads(line)
    except ValueError:
        request = None
    if not isinstance(request, dict) or not isinstance(request.get("prompt"), str):
        return None, [Out(json_line({"type": "error", "message": "bad request line"}))]
    return request["prompt"], []


def serve_end(plan: Plan) -> list[Action]:
    """Serve mode, at end of input: the exit status of the base plan."""
    exit_code = plan["exit_code"]
    actions: list[Action] = []
    if exit_code:
        actions.append(Err(encode(f"fake: failing with exit code {exit_code}\n")))
    actions.append(Exit(exit_code))
    return actions
