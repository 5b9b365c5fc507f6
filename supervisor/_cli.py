"""The ``llmsup`` command line: ``ask``, ``demo`` and ``emulate``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from functools import partial

import trio
from pydantic import ValidationError

from actors._errors import ErrorCategory, LLMError
from actors._factories import command, fake
from actors._spec import CliSpec
from actors._timeouts import TimeoutConfig

from ._backoff import RetryConfig
from ._supervisor import open_supervisor

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


class UsageError(Exception):
    """Bad command-line input; reported in one line with exit status 2."""


def _one_line(exc: ValidationError) -> str:
    """pydantic's multi-line report as one line: ``key: problem; key: problem``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'plan'}: {err['msg']}" for err in exc.errors()
    )


def build_spec(cli: str, *, plan: str | None, prompt_via: str, output_format: str) -> CliSpec:
    """``fake`` or a command line (split like a shell would, but never run by one)."""
    if cli == "fake":
        try:
            plan_obj = json.loads(plan) if plan else None
        except ValueError as exc:
            raise UsageError(f"--plan is not valid JSON: {exc}") from exc
        try:
            return fake(plan_obj, prompt_via="stdin" if prompt_via == "stdin" else "arg")
        except ValidationError as exc:
            raise UsageError(f"bad fault plan: {_one_line(exc)}") from exc
    if plan:
        raise UsageError("--plan only applies to --cli fake")
    try:
        argv = shlex.split(cli)
    except ValueError as exc:
        raise UsageError(f"cannot split --cli {cli!r}: {exc}") from exc
    if not argv:
        raise UsageError("--cli is empty")
    return command(
        argv,
        prompt_via="stdin" if prompt_via == "stdin" else "arg",
        output_format="jsonl" if output_format == "jsonl" else "text",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmsup",
        description="Run LLM command-line programs as supervised subprocesses.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser(
        "ask",
        help="ask one prompt and print the answer",
        description="Print the answer, or a one-line typed error (non-zero exit status). "
        "Use -- before a prompt that starts with '-'.",
    )
    ask.add_argument("prompt", help="the prompt (passed as one argument, never via a shell)")
    ask.add_argument(
        "--cli",
        default="fake",
        help="'fake' (the embedded fake CLI) or a command such as 'llm -m gpt-4o' (default: fake)",
    )
    ask.add_argument("--plan", help="fault plan JSON for --cli fake (see FaultPlan)")
    ask.add_argument("--prompt-via", choices=("arg", "stdin"), default="arg")
    ask.add_argument("--output-format", choices=("text", "jsonl"), default="text")
    ask.add_argument("--timeout", type=float, default=300.0, help="total seconds per attempt")
    ask.add_argument("--max-attempts", type=int, default=3)
    ask.add_argument("--json", action="store_true", help="print the whole result as JSON")

    demo = sub.add_parser("demo", help="fan out prompts with injected faults on the fake CLI")
    demo.add_argument("--prompts", type=int, default=24, help="how many prompts (default 24)")
    demo.add_argument("--concurrency", type=int, default=8)
    demo.add_argument("--seed", type=int, default=7, help="seed of the fault mix")

    emulate = sub.add_parser(
        "emulate",
        help="serve fake anthropic/openai/gemini APIs for the real CLIs, offline",
        description="Serve enough of the Anthropic, OpenAI and Gemini APIs for the real claude, "
        "codex and gemini CLIs to run offline (see actors._emulator). Runs until Ctrl+C; "
        "SIGHUP reloads the rules file.",
    )
    emulate.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulate.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    emulate.add_argument("--rules", metavar="FILE", help="JSON rules file (replies and faults)")
    emulate.add_argument("--log", metavar="FILE", help="append every request to FILE as JSON lines")
    return parser


def _emulate(args: argparse.Namespace) -> int:
    from actors._emulator import RulesFileError, load_rules, run_emulator_forever

    if args.rules is not None:
        try:
            load_rules(args.rules)  # fail fast with exit status 2, before binding
        except RulesFileError as exc:
            raise UsageError(str(exc)) from exc
    try:
        trio.run(
            partial(
                run_emulator_forever,
                host=args.host,
                port=args.port,
                rules_path=args.rules,
                log_path=args.log,
            )
        )
    except OSError as exc:
        print(f"llmsup: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _ask(args: argparse.Namespace) -> int:
    spec = build_spec(
        args.cli, plan=args.plan, prompt_via=args.prompt_via, output_format=args.output_format
    )
    try:
        timeouts = TimeoutConfig(total_execution=args.timeout)
        retry = RetryConfig(max_attempts=args.max_attempts)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        async with open_supervisor(spec, retry=retry, timeouts=timeouts, concurrency=1) as sup:
            result = await sup.ask(args.prompt)
    except LLMError as error:
        print(f"llmsup: error {error.one_line()}", file=sys.stderr)
        return EXIT_CODES.get(error.category, 1)
    if args.json:
        print(result.model_dump_json(indent=2, exclude={"raw_events"}))
    else:
        print(result.text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmsup`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "ask":
            return trio.run(_ask, args)
        if args.command == "demo":
            from ._demo import run_demo

            return trio.run(run_demo, args.prompts, args.concurrency, args.seed)
        if args.command == "emulate":
            return _emulate(args)
    except UsageError as exc:
        print(f"llmsup: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("llmsup: interrupted; every CLI process was stopped", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
