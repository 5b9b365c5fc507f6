"""One way to choose the CLI and its policies, shared by ``ask``, ``chat``, ``map``, ``serve``.

``--cli claude|codex|gemini|fake`` (with ``--model``) or ``--command 'PROGRAM ARGS'`` (split
like a shell would, never run by one; the prompt is appended as the last argument).
``--fallback NAME`` (repeatable) names further CLIs (the library's fallback: a call moves on
rate_limit, auth_failure or an open breaker). ``--tools none|read|edit|full`` (default
none: the model answers and no tool runs) is each CLI's tool policy, and ``--system TEXT``
a system prompt passed natively where the CLI takes one. Policy flags use the reference
document's names. ``--emulator URL`` points a real CLI at a provider emulator
(``llmsup emulate``) through a scratch home, for offline runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import attrs
from pydantic import ValidationError

from actors import (
    CliSpec,
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
        help="claude, codex, gemini or fake (default: fake); anything else is taken as --command",
    )
    pick.add_argument("--model", help="the model, for claude, codex or gemini")
    pick.add_argument(
        "--command",
        metavar="'PROGRAM ARGS'",
        help="any program; split like a shell would but never run by one; "
        "the prompt is appended as the last argument",
    )
    pick.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="NAME",
        help="another CLI (claude|codex|gemini|fake) to move items to; repeatable",
    )
    pick.add_argument("--plan", help="fault plan JSON for the fake CLI (see FaultPlan)")
    pick.add_argument(
        "--emulator",
        metavar="URL",
        help="point claude/codex/gemini at a provider emulator (llmsup emulate) at URL",
    )
    pick.add_argument(
        "--tools",
        choices=TOOL_CHOICES,
        default="none",
        help="which tools the CLI may run: none (default: it only answers), read (within "
        "its working folder), edit (write there too), full (everything; dangerous)",
    )
    pick.add_argument(
        "--system",
        default=None,
        metavar="TEXT",
        help="system prompt (passed natively where the CLI takes one, else put before the "
        "user text)",
    )
    pick.add_argument("--prompt-via", choices=("arg", "stdin"), default="arg")
    pick.add_argument("--output-format", choices=("text", "jsonl"), default="text")
    _add_policy_options(parser, concurrency)


def _add_policy_options(parser: argparse.ArgumentParser, concurrency: int) -> None:
    policy = parser.add_argument_group("policies (the reference document's names)")
    policy.add_argument("--max-attempts", type=int, default=3)
    policy.add_argument("--initial-delay-ms", type=float, default=100.0)
    policy.add_argument("--max-delay-ms", type=float, default=30_000.0)
    policy.add_argument(
        "--retry-budget",
        type=float,
        default=None,
        metavar="RATIO",
        help="retry at most this share of recent calls, plus 1/s (default: no budget)",
    )
    policy.add_argument("--total-timeout", type=float, default=300.0, help="seconds per attempt")
    policy.add_argument("--timeout", dest="total_timeout", type=float, help=argparse.SUPPRESS)
    policy.add_argument("--chunk-timeout", type=float, default=120.0, help="max silence, s")
    policy.add_argument(
        "--first-output-timeout",
        type=float,
        default=None,
        help="max wait for the first output, s (default: --chunk-timeout)",
    )
    policy.add_argument(
        "--failure-threshold",
        type=int,
        default=None,
        help="open a circuit breaker after this many consecutive failures (default: none)",
    )
    policy.add_argument("--concurrency", type=int, default=concurrency)


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
    """The primary CLI's spec."""
    if args.command is not None and args.cli is not None:
        raise BadUsage("give either --cli or --command, not both")
    line = args.command
    if line is None and args.cli is not None and args.cli not in KNOWN_CLIS:
        line = args.cli  # issue 2's `--cli CMD...` form
    if line is not None:
        if args.plan:
            raise BadUsage("--plan only applies to --cli fake")
        spec = _command_spec(line, args.prompt_via, args.output_format)
        return attrs.evolve(spec, tools=_tools(args))
    return named_spec(args.cli or "fake", args)


def _tools(args: argparse.Namespace) -> ToolPolicy:
    tools: ToolPolicy = getattr(args, "tools", "none")
    return tools


def fallback_specs(args: argparse.Namespace) -> list[CliSpec]:
    """The ``--fallback`` CLIs, in order."""
    specs = []
    for name in args.fallback:
        if name not in KNOWN_CLIS:
            raise BadUsage(f"--fallback {name!r}: choose one of {', '.join(KNOWN_CLIS)}")
        specs.append(named_spec(name, args))
    return specs


def named_spec(name: str, args: argparse.Namespace) -> CliSpec:
    """A known CLI, configured from the shared options."""
    tools = _tools(args)
    if name == "fake":
        return attrs.evolve(_fake_spec(args.plan, args.prompt_via), tools=tools)
    if args.plan:
        raise BadUsage("--plan only applies to --cli fake")
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
    try:
        plan_obj = json.loads(plan) if plan else None
    except ValueError as exc:
        raise BadUsage(f"--plan is not valid JSON: {exc}") from exc
    except RecursionError:
        raise BadUsage("--plan is not usable JSON: nested too deeply") from None
    try:
        return fake(plan_obj, prompt_via="stdin" if prompt_via == "stdin" else "arg")
    except ValidationError as exc:
        raise BadUsage(f"bad fault plan: {errors_in_one_line(exc)}") from exc


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
