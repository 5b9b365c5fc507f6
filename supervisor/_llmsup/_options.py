"""One way to choose the CLI and its policies, shared by ``ask``, ``chat``, ``map``, ``serve``.

``--cli claude|codex|gemini|fake`` (with ``--model``) or ``--command 'PROGRAM ARGS'`` (split
like a shell would, never run by one; the prompt is appended as the last argument). Any
other ``--cli`` name is an unknown CLI (with a "did you mean" hint); a ``--cli`` value with a
space or a ``/`` in it is still read as ``--command``, for older scripts.
``--fallback NAME`` (repeatable) names further CLIs (the library's fallback: a call moves on
rate_limit, auth_failure or an open breaker). ``--plan JSON|FILE`` is the fault plan of the
fake CLI wherever it is in that chain. ``--tools none|read|edit|full`` (default none: the
model answers and no tool runs) is each CLI's tool policy, and ``--system TEXT`` a system
prompt passed natively where the CLI takes one. ``--emulator URL`` points a real CLI at a
provider emulator (``llmsup emulate``) through a scratch home, for offline runs.
"""

from __future__ import annotations

import argparse
import difflib
import json
import shlex
from pathlib import Path

import attrs
from pydantic import ValidationError

from actors import (
    CliSpec,
    ErrorCategory,
    TimeoutConfig,
    ToolPolicy,
    claude,
    cli_environment,
    codex,
    command,
    fake,
    gemini,
)
from actors.lowlevel import errors_in_one_line
from supervisor import CircuitBreaker, RetryBudget, RetryConfig

KNOWN_CLIS = ("claude", "codex", "gemini", "fake")

# Distinct exit statuses, so scripts can branch without parsing text.
EXIT_CODES: dict[ErrorCategory, int] = {
    ErrorCategory.RETRYABLE: 1,
    ErrorCategory.TIMEOUT: 3,
    ErrorCategory.RATE_LIMIT: 4,
    ErrorCategory.AUTH_FAILURE: 5,
    ErrorCategory.MALFORMED_OUTPUT: 6,
    ErrorCategory.PERMANENT: 7,
    ErrorCategory.CIRCUIT_OPEN: 8,
}
EXIT_USAGE = 2
TOOL_CHOICES: tuple[ToolPolicy, ...] = ("none", "read", "edit", "full")


class BadUsage(Exception):
    """Bad command-line input; reported in one line with exit status 2."""


@attrs.frozen
class Policies:
    """What the policy flags say."""

    retry: RetryConfig
    timeouts: TimeoutConfig
    failure_threshold: int | None
    concurrency: int

    def breaker(self, name: str) -> CircuitBreaker | None:
        """A fresh breaker for one CLI, when ``--failure-threshold`` asked for one."""
        if self.failure_threshold is None:
            return None
        return CircuitBreaker(failure_threshold=self.failure_threshold, name=name)


def add_cli_options(parser: argparse.ArgumentParser, *, concurrency: int = 8) -> None:
    """Add the CLI-selection and policy options to a subcommand."""
    pick = parser.add_argument_group("which CLI")
    pick.add_argument(
        "--cli",
        default=None,
        metavar="NAME",
        help="claude, codex, gemini or fake (default: fake); any other program goes "
        "through --command",
    )
    pick.add_argument(
        "--model",
        help="the model, for claude, codex or gemini (default: the CLI's own default model)",
    )
    pick.add_argument(
        "--command",
        metavar="'PROGRAM ARGS'",
        help="run any program instead of a named CLI; split like a shell would but never "
        "run by one; the prompt is appended as the last argument (default: none, --cli)",
    )
    pick.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="NAME",
        help="another CLI (claude|codex|gemini|fake) a call moves to on rate_limit, "
        "auth_failure or an open breaker; repeatable, tried in order (default: none)",
    )
    pick.add_argument(
        "--plan",
        metavar="JSON|FILE",
        help="fault plan of the fake CLI, wherever it is in the chain (--cli fake or "
        "--fallback fake): inline JSON or a JSON file (see FaultPlan; default: none, "
        "the fake echoes)",
    )
    pick.add_argument(
        "--emulator",
        metavar="URL",
        help="point claude/codex/gemini at a provider emulator (llmsup emulate) at URL, "
        "through a scratch home (default: none, the real provider)",
    )
    _add_call_options(pick)
    _add_policy_options(parser, concurrency)


def _add_call_options(pick: argparse._ArgumentGroup) -> None:
    """How the chosen CLI is run: tools, system prompt, prompt and output channels."""
    pick.add_argument(
        "--tools",
        choices=TOOL_CHOICES,
        default="none",
        help="which tools the CLI may run: none (the model only answers), read (within "
        "its working folder), edit (write there too), full (everything; dangerous) "
        "(default: none)",
    )
    pick.add_argument(
        "--system",
        default=None,
        metavar="TEXT",
        help="system prompt, passed natively where the CLI takes one, else put before the "
        "user text (default: none)",
    )
    pick.add_argument(
        "--prompt-via",
        choices=("arg", "stdin"),
        default="arg",
        help="how --command and the fake CLI get the prompt: as the last argument (arg, at "
        "most 128 KiB) or on stdin (default: arg; the named CLIs always use their own way)",
    )
    pick.add_argument(
        "--output-format",
        choices=("text", "jsonl"),
        default="text",
        help="what --command prints: the answer as plain text, or JSON lines of events "
        "(default: text)",
    )


def _add_policy_options(parser: argparse.ArgumentParser, concurrency: int) -> None:
    policy = parser.add_argument_group("policies")
    policy.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        help="attempts per call, the first included (default: 3)",
    )
    policy.add_argument(
        "--initial-delay-ms",
        type=float,
        default=100.0,
        help="backoff before the first retry, doubled after each (full jitter; default: 100)",
    )
    policy.add_argument(
        "--max-delay-ms",
        type=float,
        default=30_000.0,
        help="longest backoff between attempts (default: 30000)",
    )
    _add_limit_options(policy, concurrency)


def _add_limit_options(policy: argparse._ArgumentGroup, concurrency: int) -> None:
    """Retry budget, timeouts, breaker and concurrency."""
    policy.add_argument(
        "--retry-budget",
        type=float,
        default=None,
        metavar="RATIO",
        help="retry at most this share of recent calls, plus 1/s (default: no budget)",
    )
    policy.add_argument(
        "--total-timeout",
        type=float,
        default=300.0,
        help="seconds one attempt may take in all (default: 300)",
    )
    policy.add_argument("--timeout", dest="total_timeout", type=float, help=argparse.SUPPRESS)
    policy.add_argument(
        "--chunk-timeout",
        type=float,
        default=120.0,
        help="seconds of silence allowed between two pieces of output (default: 120)",
    )
    policy.add_argument(
        "--first-output-timeout",
        type=float,
        default=None,
        help="seconds to wait for the first output (default: --chunk-timeout)",
    )
    policy.add_argument(
        "--failure-threshold",
        type=int,
        default=None,
        help="open a circuit breaker after this many consecutive failures (default: no breaker)",
    )
    policy.add_argument(
        "--concurrency",
        type=int,
        default=concurrency,
        help=f"calls at once (default: {concurrency})",
    )


def policies_from_args(args: argparse.Namespace) -> Policies:
    """The policies; a bad value is a `BadUsage` naming the field."""
    try:
        retry = RetryConfig(
            max_attempts=args.max_attempts,
            initial_delay_ms=args.initial_delay_ms,
            max_delay_ms=args.max_delay_ms,
            budget=None if args.retry_budget is None else RetryBudget(ratio=args.retry_budget),
        )
        # Without the flag, TimeoutConfig's own default (chunk_receive) applies.
        first_output = (
            {} if args.first_output_timeout is None else {"first_output": args.first_output_timeout}
        )
        timeouts = TimeoutConfig(
            total_execution=args.total_timeout, chunk_receive=args.chunk_timeout, **first_output
        )
        if args.failure_threshold is not None:
            CircuitBreaker(failure_threshold=args.failure_threshold)
    except ValueError as exc:
        raise BadUsage(str(exc)) from exc
    if args.concurrency < 1:
        raise BadUsage(f"--concurrency must be >= 1, got {args.concurrency}")
    return Policies(retry, timeouts, args.failure_threshold, args.concurrency)


def spec_from_args(args: argparse.Namespace) -> CliSpec:
    """The primary CLI's spec (checking the whole chain's names and ``--plan`` first)."""
    if args.command is not None and args.cli is not None:
        raise BadUsage("give either --cli or --command, not both")
    line = args.command
    if line is None and args.cli is not None and _looks_like_a_command(args.cli):
        line = args.cli  # the older `--cli 'PROGRAM ARGS'` form
    primary = None if line is not None else known_cli(args.cli or "fake", "--cli")
    chain = [primary, *(known_cli(name, "--fallback") for name in args.fallback)]
    if args.plan and "fake" not in chain:
        raise BadUsage("--plan only applies to --cli fake or --fallback fake, and neither is given")
    if primary is None:
        spec = _command_spec(line, args.prompt_via, args.output_format)
        return attrs.evolve(spec, tools=_tools(args))
    return named_spec(primary, args)


def _looks_like_a_command(value: str) -> bool:
    """A ``--cli`` value that is a program's command line rather than a (misspelled) name."""
    return value not in KNOWN_CLIS and (
        not value.strip() or any(c.isspace() for c in value) or "/" in value
    )


def known_cli(name: str, option: str) -> str:
    """``name`` when it is a known CLI, else a `BadUsage` with the closest known name."""
    if name in KNOWN_CLIS:
        return name
    close = difflib.get_close_matches(name, KNOWN_CLIS, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise BadUsage(
        f"unknown CLI {name!r} for {option} (known: {', '.join(KNOWN_CLIS)}){hint} "
        "To run another program, use --command 'PROGRAM ARGS'."
    )


def _tools(args: argparse.Namespace) -> ToolPolicy:
    tools: ToolPolicy = getattr(args, "tools", "none")
    return tools


def fallback_specs(args: argparse.Namespace) -> list[CliSpec]:
    """The ``--fallback`` CLIs, in order."""
    return [named_spec(known_cli(name, "--fallback"), args) for name in args.fallback]


def named_spec(name: str, args: argparse.Namespace) -> CliSpec:
    """A known CLI, configured from the shared options."""
    tools = _tools(args)
    if name == "fake":
        return attrs.evolve(_fake_spec(args.plan, args.prompt_via), tools=tools)
    env: dict[str, str] | None = None
    cwd: str | None = None
    if args.emulator:
        home = Path.home() / ".cache" / "llmsup" / "emulator-homes" / name
        env = cli_environment(name, args.emulator, home, model=args.model)  # type: ignore[arg-type]
        cwd = str(home)
    model = args.model
    try:
        if name == "claude":
            return claude(model=model, env=env, cwd=cwd, tools=tools)
        if name == "codex":
            return codex(model=model, env=env, cwd=cwd, tools=tools)
        if model:
            return gemini(model=model, env=env, cwd=cwd, tools=tools)
        return gemini(env=env, cwd=cwd, tools=tools)
    except ValueError as exc:  # a tool level this CLI cannot enforce, ...
        raise BadUsage(str(exc)) from exc


def _fake_spec(plan: str | None, prompt_via: str) -> CliSpec:
    text, where = _plan_text(plan) if plan else ("", "")
    try:
        plan_obj = json.loads(text) if plan else None
    except ValueError as exc:
        raise BadUsage(f"--plan{where} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise BadUsage(f"--plan{where} is not usable JSON: nested too deeply") from None
    try:
        return fake(plan_obj, prompt_via="stdin" if prompt_via == "stdin" else "arg")
    except ValidationError as exc:
        raise BadUsage(f"bad fault plan{where}: {errors_in_one_line(exc)}") from exc


def _plan_text(plan: str) -> tuple[str, str]:
    """The JSON text of ``--plan`` (inline, or read from the file it names), and where from."""
    if plan.lstrip().startswith("{"):
        return plan, ""
    try:
        return Path(plan).read_text(encoding="utf-8"), f" file {plan!r}"
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadUsage(
            f"--plan is not valid JSON, nor a readable file: {plan!r} ({reason})"
        ) from None


def _command_spec(line: str, prompt_via: str, output_format: str) -> CliSpec:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise BadUsage(f"cannot split --command {line!r}: {exc}") from exc
    if not argv:
        raise BadUsage("--command is empty")
    return command(
        argv,
        prompt_via="stdin" if prompt_via == "stdin" else "arg",
        output_format="jsonl" if output_format == "jsonl" else "text",
    )
