"""llmsup-fake: a fake LLM command-line program for fault injection.

Usage: ``_fake_cli.py [--plan JSON] [--plan-file PATH] [--prompt-stdin] [--serve]
[--dialect NAME] [--] [PROMPT]``

It answers ``"echo: " + PROMPT`` in the native JSON-lines dialect (see ``actors._events``), or
as the real claude/codex/gemini CLI would (``--dialect``), and misbehaves exactly as its fault
plan says. What it prints is decided by the pure script in ``_script.py`` (beside this file);
this file only executes the script's actions and keeps the call count in ``state_dir``. The
plan keys are documented on ``actors._fakes._plan.FaultPlan``.

Standard library only, on purpose: it is started with ``python -S`` thousands of times in tests,
so it must not import pydantic, attrs, trio or the library itself. Keep start-up cheap.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING or __package__:  # imported as part of the package (or type-checked)
    from actors._fakes import _script
else:  # run as a script: its folder is sys.path[0]
    import _script

if TYPE_CHECKING:  # importing typing at run time costs start-up time
    from collections.abc import Iterable
    from typing import Any, NoReturn

    Plan = dict[str, Any]

PlanError = _script.PlanError
PLAN_KEYS = _script.PLAN_KEYS
PROCESS_KEYS = _script.PROCESS_KEYS
RULE_KEYS = _script.RULE_KEYS
validate_plan = _script.validate_plan
effective_plan = _script.effective_plan
split_text = _script.split_text

USAGE = (
    "usage: llmsup-fake [--plan JSON] [--plan-file PATH] [--prompt-stdin] [--serve]\n"
    "                   [--dialect native|claude|codex|gemini] [--] [PROMPT]\n"
    "A fake LLM CLI for fault injection. The fault plan keys are documented on\n"
    "actors._fakes._plan.FaultPlan. Options after '--' are taken as the prompt, verbatim.\n"
)


class UsageError(Exception):
    """The command line is invalid."""


# ---------------------------------------------------------------------------------------------
# Executing actions


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _err(data: bytes) -> None:
    try:  # noqa: SIM105 - contextlib costs start-up time
        _write_all(2, data)
    except OSError:
        pass


def _hang_forever() -> NoReturn:
    while True:
        time.sleep(3600)


def _spawn_grandchild(seconds: float, ignores_sigterm: bool) -> None:
    """Fork a grandchild that keeps our stdout/stderr open for ``seconds``, then exits."""
    pid = os.fork()
    if pid == 0:
        try:
            handler = signal.SIG_IGN if ignores_sigterm else signal.SIG_DFL
            signal.signal(signal.SIGTERM, handler)
            time.sleep(seconds)
        finally:
            os._exit(0)
    _err(f"fake: grandchild pid {pid}\n".encode())


def execute(actions: Iterable[_script.Action]) -> int | None:
    """Run the actions; the status of an `Exit` (None if they ran out without one)."""
    for action in actions:
        kind = type(action)
        if kind is _script.Out:
            _write_all(1, action.data)  # type: ignore[union-attr]
        elif kind is _script.Err:
            _err(action.data)  # type: ignore[union-attr]
        elif kind is _script.Sleep:
            time.sleep(action.seconds)  # type: ignore[union-attr]
        elif kind is _script.Exit:
            return action.code  # type: ignore[union-attr]
        elif kind is _script.Hang:
            _hang_forever()
        elif kind is _script.IgnoreSigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif kind is _script.Grandchild:
            assert isinstance(action, _script.Grandchild)
            _spawn_grandchild(action.holds_stdout_s, action.ignores_sigterm)
    return None


# ---------------------------------------------------------------------------------------------
# The call count, kept across the processes of one plan


def count_call(state_dir: str, prompt: str) -> tuple[int, int]:
    """Record this call: ``(call_index, prompt_calls)``, atomically under an exclusive lock.

    ``state_dir/calls`` holds one line per call (a digest of its prompt), so the 1-based call
    index is the line count and ``prompt_calls`` the number of earlier lines for this prompt.
    """
    import fcntl
    import hashlib

    os.makedirs(state_dir, exist_ok=True)
    digest = hashlib.sha256(_script.encode(prompt)).hexdigest()[:32].encode()
    fd = os.open(os.path.join(state_dir, "calls"), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        chunks: list[bytes] = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        lines = b"".join(chunks).splitlines()
        os.write(fd, digest + b"\n")
        return len(lines) + 1, lines.count(digest)
    finally:
        os.close(fd)  # also releases the lock


def _counted(plan: Plan, prompt: str) -> tuple[int, int]:
    if not _script.needs_count(plan):
        return 0, 0
    try:
        return count_call(plan["state_dir"], prompt)
    except OSError as exc:
        _err(_script.encode(f"llmsup-fake: cannot use state_dir: {exc}\n"))
        raise SystemExit(2) from None


# ---------------------------------------------------------------------------------------------
# Modes


def serve(plan: Plan, dialect: str, seed: int) -> int:
    """Answer ``{"prompt": ...}`` lines from stdin until EOF."""
    answered = 0
    stdin = sys.stdin.buffer
    while True:
        raw = stdin.readline()
        if not raw:
            break
        if not raw.strip():
            continue
        prompt, actions = _script.serve_actions(plan, answered, raw)
        status = execute(actions)
        if status is not None:
            os._exit(status)
        if prompt is None:
            continue
        call_index, prompt_calls = _counted(plan, prompt)
        steps = _script.script(
            plan,
            prompt,
            call_index,
            dialect,
            seed,
            prompt_calls=prompt_calls,
            serve=True,
            first_turn=answered == 0,
        )
        status = execute(steps)
        if status is not None:
            os._exit(status)
        answered += 1
    return execute(_script.serve_end(plan)) or 0


def one_shot(plan: Plan, prompt: str, dialect: str, seed: int) -> int:
    """Answer one prompt."""
    call_index, prompt_calls = _counted(plan, prompt)
    steps = _script.script(plan, prompt, call_index, dialect, seed, prompt_calls=prompt_calls)
    status = execute(steps)
    return 0 if status is None else status


def _parse_args(args: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "plan": [],
        "prompt": None,
        "prompt_stdin": False,
        "serve": False,
        "dialect": "native",
    }
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
        elif name == "--dialect":
            if not eq:
                if index >= len(args):
                    raise UsageError("--dialect needs a value")
                value = args[index]
                index += 1
            if value not in _script.DIALECTS:
                raise UsageError(f"--dialect must be one of {', '.join(_script.DIALECTS)}")
            options["dialect"] = value
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
            raise PlanError(f"the plan must be a JSON object, got {_script.json_type(loaded)}")
        raw.update(loaded)
    return validate_plan(raw)


def _mark(plan: Plan, what: bytes) -> None:
    """Append ``what PID`` to the plan's ``startup_marker`` file, if it has one."""
    path = plan["startup_marker"]
    if path is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        _write_all(fd, what + b" " + str(os.getpid()).encode() + b"\n")
    finally:
        os.close(fd)


def _start_up(plan: Plan) -> None:
    """The plan's start-up work (``startup_s``), before the prompt is read; then the marker."""
    if plan["startup_s"]:
        time.sleep(plan["startup_s"])
    _mark(plan, b"ready")


def main(argv: list[str] | None = None) -> int:
    """Entry point (``llmsup-fake``). Returns the exit status; may also exit the process."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a closed reader ends us quietly
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        options = _parse_args(sys.argv[1:] if argv is None else argv)
        plan = _load_plan(options["plan"])
    except UsageError as exc:
        _err(_script.encode(f"llmsup-fake: {exc}\n{USAGE}"))
        return 2
    except PlanError as exc:
        _err(_script.encode(f"llmsup-fake: bad fault plan: {exc}\n"))
        return 2
    if plan["ignore_sigterm"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seed = int.from_bytes(os.urandom(8), "big")
    _start_up(plan)
    try:
        if options["serve"] or plan["serve"]:
            if options["prompt_stdin"]:
                _err(b"llmsup-fake: --prompt-stdin cannot be used with --serve\n")
                return 2
            execute(_script.process_actions(plan))
            return serve(plan, options["dialect"], seed)
        if options["prompt_stdin"]:
            prompt = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        else:
            prompt = options["prompt"] or ""
        _mark(plan, b"prompt")
        return one_shot(plan, prompt, options["dialect"], seed)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
