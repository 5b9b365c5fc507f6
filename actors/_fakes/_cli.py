"""llmsup-fake: a fake LLM command-line program for fault injection.

Usage: ``_fake_cli.py [--plan JSON] [--plan-file PATH] [--prompt-stdin] [--serve] [--] [PROMPT]``

It answers ``"echo: " + PROMPT`` in the native JSON-lines dialect (see ``actors._events``) and
misbehaves exactly as its fault plan says. The plan keys are documented on
``actors._fakes._plan.FaultPlan``; ``PLAN_KEYS`` below is the set this script accepts.

Standard library only, on purpose: it is started with ``python -S`` thousands of times in tests,
so it must not import pydantic, attrs, trio or the library itself. Keep start-up cheap.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing at run time costs start-up time
    from typing import Any, NoReturn

    Plan = dict[str, Any]

USAGE = (
    "usage: llmsup-fake [--plan JSON] [--plan-file PATH] [--prompt-stdin] [--serve] [--] [PROMPT]\n"
    "A fake LLM CLI for fault injection. The fault plan keys are documented on\n"
    "actors._fakes._plan.FaultPlan. Options after '--' are taken as the prompt, verbatim.\n"
)

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
    "malformed_line": ("bool", False),
    "oversized_line_bytes": ("int?", None),
    "invalid_utf8": ("bool", False),
    "stderr_bytes": ("int", 0),
    "format": (("jsonl", "text"), "jsonl"),
    "fail_first": ("int", 0),
    "state_dir": ("dir?", None),
    "fail_with": (("retryable", "rate_limit", "auth", "crash", "hang"), "retryable"),
    "fail_retry_after_s": ("float", 1.0),
    "serve": ("bool", False),
    "crash_after_requests": ("int?", None),
    "rules": ("rules", []),
}

PLAN_KEYS: frozenset[str] = frozenset(_FIELDS)
"""Every key a fault plan may have (the fields of ``actors._fakes._plan.FaultPlan``)."""

PROCESS_KEYS: frozenset[str] = frozenset({"rules", "serve", "crash_after_requests"})
"""Keys that describe the whole process, so a rule may not set them."""

RULE_KEYS: frozenset[str] = (PLAN_KEYS - PROCESS_KEYS) | {"match"}
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


class PlanError(Exception):
    """The fault plan is invalid; the message names the key."""


class UsageError(Exception):
    """The command line is invalid."""


# ---------------------------------------------------------------------------------------------
# Plan validation


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


def _check_fail_first(where: str, plan: Plan) -> None:
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
        if not isinstance(rule, dict):
            raise PlanError(f"'{where}' must be an object, got {_json_type(rule)}")
        for key, value in rule.items():
            if key in PROCESS_KEYS:
                raise PlanError(f"'{where}.{key}' is not allowed in a rule (it is process-wide)")
            if key not in RULE_KEYS:
                raise PlanError(f"unknown key '{where}.{key}'")
            kind = "str" if key == "match" else _FIELDS[key][0]
            _check_value(f"{where}.{key}", kind, value)
        if "match" not in rule:
            raise PlanError(f"'{where}.match' is required")
        _check_fail_first(f"{where}: ", _apply_rule(plan, rule))
    _check_fail_first("", plan)
    return plan


def _apply_rule(plan: Plan, rule: dict[str, object]) -> Plan:
    merged = dict(plan)
    merged.update((key, value) for key, value in rule.items() if key != "match")
    return merged


def effective_plan(plan: Plan, prompt: str) -> Plan:
    """The base plan with the first rule whose ``match`` is in the prompt applied on top."""
    for rule in plan["rules"]:
        if rule["match"] in prompt:
            return _apply_rule(plan, rule)
    return plan


# ---------------------------------------------------------------------------------------------
# Output


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _write(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def _line(obj: dict[str, object]) -> bytes:
    return _encode(json.dumps(obj, ensure_ascii=False, separators=(",", ":"))) + b"\n"


def _emit(obj: dict[str, object]) -> None:
    _write(_line(obj))


def _err(text: str) -> None:
    try:
        sys.stderr.flush()
        sys.stderr.buffer.write(_encode(text))
        sys.stderr.buffer.flush()
    except (OSError, ValueError):
        pass


def _crash(message: str) -> NoReturn:
    _err(f"fake: {message}\n")
    os._exit(3)


def _hang_forever() -> NoReturn:
    while True:
        time.sleep(3600)


def _uuid4() -> str:
    raw = bytearray(os.urandom(16))
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


def _write_stderr_bytes(total: int) -> None:
    block = (b"E" * 1023 + b"\n") * 64  # 64 KiB
    err = sys.stderr.buffer
    sys.stderr.flush()
    while total > 0:
        err.write(block[:total])
        err.flush()
        total -= len(block)


# ---------------------------------------------------------------------------------------------
# Failures


def _count_invocation(state_dir: str, prompt: str) -> int:
    """How many times this prompt ran before (and record this run), under an exclusive lock."""
    import fcntl
    import hashlib

    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, hashlib.sha256(_encode(prompt)).hexdigest())
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = b""
        while chunk := os.read(fd, 4096):
            data += chunk
        try:
            count = int(data.strip() or b"0")
        except ValueError:
            count = 0
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(count + 1).encode())
        return count
    finally:
        os.close(fd)  # also releases the lock


def _failure(plan: Plan, prompt: str) -> tuple[str, float] | None:
    """The injected failure for this call: (mode, retry_after), or None for a normal answer."""
    if plan["fail_first"] > 0:
        try:
            count = _count_invocation(plan["state_dir"], prompt)
        except OSError as exc:
            _err(f"llmsup-fake: cannot use state_dir: {exc}\n")
            raise SystemExit(2) from None
        if count < plan["fail_first"]:
            return plan["fail_with"], float(plan["fail_retry_after_s"])
    if plan["rate_limit_retry_after_s"] is not None:
        return "rate_limit", float(plan["rate_limit_retry_after_s"])
    if plan["auth_failure"]:
        return "auth", 0.0
    return None


def _error_event(mode: str, retry_after: float) -> tuple[str, dict[str, object]]:
    """The stderr line and the in-band error event (serve mode) for a failure."""
    if mode == "rate_limit":
        message = RATE_LIMIT_MESSAGE.format(retry_after)
        extra: dict[str, object] = {"category": "rate_limit", "status": 429}
        extra["retry_after"] = retry_after
        stderr_line = f"Error: {message}\n"
    elif mode == "auth":
        message = AUTH_MESSAGE
        extra = {"category": "auth_failure", "status": 401}
        stderr_line = f"Error: {message}\n"
    else:
        message = TRANSIENT_MESSAGE
        extra = {"category": "retryable"}
        stderr_line = f"fake: {message}\n"
    return stderr_line, {"type": "error", "message": message, **extra}


# ---------------------------------------------------------------------------------------------
# Answering


class Session:
    """Per-process state: one session id; session_started is printed once."""

    __slots__ = ("id", "serve", "started")

    def __init__(self, session_id: str, serve: bool) -> None:
        self.id = session_id
        self.serve = serve
        self.started = False


def respond(plan: Plan, prompt: str, session: Session) -> int:
    """Answer one prompt as the plan says. Returns 0, or 1 for an injected error exit."""
    failure = _failure(plan, prompt)
    if failure is not None and failure[0] == "crash":
        plan, failure = {**plan, "crash_after_chunks": 1}, None
    elif failure is not None and failure[0] == "hang":
        plan, failure = {**plan, "hang": True}, None

    if plan["latency_s"]:
        time.sleep(plan["latency_s"])
    if plan["stderr_bytes"]:
        _write_stderr_bytes(plan["stderr_bytes"])
    if failure is not None:
        stderr_line, event = _error_event(*failure)
        _err(stderr_line)
        if not session.serve:
            return 1
        _emit(event)
        return 0

    _start_output(plan, session)
    text = plan["text"] if plan["text"] is not None else "echo: " + prompt
    _stream_text(plan, text)
    if plan["format"] != "jsonl":
        _write(b"\n")
        return 0
    _emit_result(plan, prompt, text, session)
    return 0


def _start_output(plan: Plan, session: Session) -> None:
    """What comes before the answer: the session line, then any injected hang or bad line."""
    if plan["format"] == "jsonl" and not session.started:
        session.started = True
        _emit({"type": "session_started", "session_id": session.id, "model": "fake"})
    if plan["hang"]:
        _hang_forever()
    if plan["malformed_line"]:
        _write(b"<<this is not json>>\n")
    if plan["oversized_line_bytes"] is not None:
        _write(b"x" * plan["oversized_line_bytes"] + b"\n")


def _stream_text(plan: Plan, text: str) -> None:
    """The answer in chunks, crashing, hanging or corrupting UTF-8 where the plan says."""
    jsonl = plan["format"] == "jsonl"
    pieces = split_text(text, plan["chunks"])
    crash_at = plan["crash_after_chunks"]
    hang_at = plan["hang_after_chunks"]
    bad_utf8 = plan["invalid_utf8"]
    if bad_utf8 and not pieces:
        pieces = [""]
    for index, piece in enumerate(pieces):
        if crash_at == index:
            _crash("crashed mid-stream")
        if hang_at == index:
            _hang_forever()
        if index and plan["chunk_gap_s"]:
            time.sleep(plan["chunk_gap_s"])
        if jsonl:
            data = _line({"type": "text_delta", "text": piece})
            if bad_utf8 and index == 0:  # raw invalid bytes inside the JSON string
                data = data[:-3] + b"\xff\xfe" + data[-3:]
        else:
            data = _encode(piece) + (b"\xff\xfe" if bad_utf8 and index == 0 else b"")
        _write(data)
    if crash_at is not None and crash_at >= len(pieces):
        _crash("crashed mid-stream")
    if hang_at is not None and hang_at >= len(pieces):
        _hang_forever()


def _emit_result(plan: Plan, prompt: str, text: str, session: Session) -> None:
    input_tokens = plan["input_tokens"]
    output_tokens = plan["output_tokens"]
    usage = {
        "input_tokens": len(prompt.split()) if input_tokens is None else input_tokens,
        "output_tokens": len(text.split()) if output_tokens is None else output_tokens,
    }
    _emit(
        {
            "type": "result",
            "text": text,
            "session_id": session.id,
            "usage": usage,
            "cost_usd": 0.0,
        }
    )


def serve(plan: Plan, session: Session) -> int:
    """Answer ``{"prompt": ...}`` lines from stdin until EOF."""
    limit = plan["crash_after_requests"]
    answered = 0
    stdin = sys.stdin.buffer
    while True:
        raw = stdin.readline()
        if not raw:
            break
        if not raw.strip():
            continue
        if limit is not None and answered >= limit:
            _crash(f"crashed after {answered} requests")
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("prompt"), str):
            _emit({"type": "error", "message": "bad request line"})
            continue
        prompt: str = request["prompt"]
        respond(effective_plan(plan, prompt), prompt, session)
        answered += 1
    return _finish(plan["exit_code"])


def _finish(exit_code: int) -> int:
    if exit_code:
        _err(f"fake: failing with exit code {exit_code}\n")
    return exit_code


# ---------------------------------------------------------------------------------------------
# Process set-up


def _spawn_grandchild(seconds: float, ignores_sigterm: bool) -> None:
    """Fork a grandchild that keeps our stdout/stderr open for ``seconds``, then exits."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            handler = signal.SIG_IGN if ignores_sigterm else signal.SIG_DFL
            signal.signal(signal.SIGTERM, handler)
            time.sleep(seconds)
        finally:
            os._exit(0)
    _err(f"fake: grandchild pid {pid}\n")


def _parse_args(args: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {"plan": [], "prompt": None, "prompt_stdin": False, "serve": False}
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            if index < len(args):
                options["prompt"] = args[-1]
            break
        name, eq, value = arg.partition("=")
        if name in ("--plan", "--plan-file"):
            if not eq:
                if index >= len(args):
                    raise UsageError(f"{name} needs a value")
                value = args[index]
                index += 1
            options["plan"].append((name, value))
        elif arg == "--prompt-stdin":
            options["prompt_stdin"] = True
        elif arg == "--serve":
            options["serve"] = True
        elif arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        elif arg.startswith("-") and arg != "-":
            continue  # unknown options are ignored, like flags a real CLI would take
        else:
            options["prompt"] = arg
    return options


def _load_plan(sources: list[tuple[str, str]]) -> Plan:
    """Plan files and ``--plan`` texts, merged in order (later keys win), then validated."""
    raw: dict[str, object] = {}
    for kind, value in sources:
        if kind == "--plan-file":
            try:
                with open(value, encoding="utf-8") as handle:
                    value = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise PlanError(f"cannot read --plan-file {value!r}: {exc}") from None
        try:
            loaded = json.loads(value)
        except ValueError as exc:
            raise PlanError(f"invalid JSON in {kind}: {exc}") from None
        if not isinstance(loaded, dict):
            raise PlanError(f"the plan must be a JSON object, got {_json_type(loaded)}")
        raw.update(loaded)
    return validate_plan(raw)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``llmsup-fake``). Returns the exit status; may also exit the process."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a closed reader ends us quietly
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        options = _parse_args(sys.argv[1:] if argv is None else argv)
        plan = _load_plan(options["plan"])
    except UsageError as exc:
        _err(f"llmsup-fake: {exc}\n{USAGE}")
        return 2
    except PlanError as exc:
        _err(f"llmsup-fake: bad fault plan: {exc}\n")
        return 2
    if plan["ignore_sigterm"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    try:
        if options["serve"] or plan["serve"]:
            if options["prompt_stdin"]:
                _err("llmsup-fake: --prompt-stdin cannot be used with --serve\n")
                return 2
            if plan["grandchild_holds_stdout_s"] is not None:
                _spawn_grandchild(
                    plan["grandchild_holds_stdout_s"], plan["grandchild_ignores_sigterm"]
                )
            return serve(plan, Session(plan["session_id"] or _uuid4(), serve=True))

        if options["prompt_stdin"]:
            prompt = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        else:
            prompt = options["prompt"] or ""
        plan = effective_plan(plan, prompt)
        if plan["ignore_sigterm"]:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if plan["grandchild_holds_stdout_s"] is not None:
            _spawn_grandchild(plan["grandchild_holds_stdout_s"], plan["grandchild_ignores_sigterm"])
        status = respond(plan, prompt, Session(plan["session_id"] or _uuid4(), serve=False))
        return status if status else _finish(plan["exit_code"])
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
