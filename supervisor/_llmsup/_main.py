"""The ``llmsup`` command line: ``ask``, ``chat``, ``map``, ``demo`` and ``emulate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from typing import TypeAlias

import trio

from actors import ErrorCategory, LLMError
from supervisor import open_supervisor

from ._map import add_map_arguments, run_map
from ._options import (
    BadUsage,
    add_cli_options,
    fallback_specs,
    policies_from_args,
    spec_from_args,
)
from ._serve_command import SERVE_DESCRIPTION, add_serve_arguments, run_serve
from ._signals import INTERRUPTED, run_stoppable

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmsup",
        description="Run LLM command-line programs as supervised subprocesses.",
    )
    sub = parser.add_subparsers(dest="subcommand", required=True)
    for add in (_add_ask, _add_chat, _add_map, _add_serve, _add_demo, _add_emulate):
        add(sub)
    return parser


# What ``add_subparsers`` returns (private in argparse, hence the alias).
_Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_ask(sub: _Subcommands) -> None:
    ask = sub.add_parser(
        "ask",
        help="ask one prompt and print the answer",
        description="Print the answer, or a one-line typed error (non-zero exit status). "
        "Use -- before a prompt that starts with '-'.",
    )
    ask.add_argument("prompt", help="the prompt (passed as one argument, never via a shell)")
    ask.add_argument("--json", action="store_true", help="print the whole result as JSON")
    add_cli_options(ask, concurrency=1)


def _add_chat(sub: _Subcommands) -> None:
    chat = sub.add_parser(
        "chat",
        help="an interactive multi-turn conversation",
        description="Chat with a CLI. Commands: /export FILE, /history, /quit. Ctrl+C leaves "
        "cleanly, with no process left behind.",
    )
    chat.add_argument("--history", metavar="FILE", help="continue a conversation exported before")
    add_cli_options(chat, concurrency=1)


def _add_map(sub: _Subcommands) -> None:
    map_ = sub.add_parser(
        "map",
        help="run every prompt of a JSON-lines file (or of --files) into a JSON-lines file",
        description="One output line per input, appended as each finishes; --resume "
        "completes an interrupted run; Ctrl+C stops every CLI process (exit status 130). "
        "Exit status 1 when any item failed.",
    )
    add_map_arguments(map_)


def _add_serve(sub: _Subcommands) -> None:
    serve_ = sub.add_parser(
        "serve",
        help="run the HTTP daemon (FastAPI on trio): /ask, /stream, /health, /metrics",
        description=SERVE_DESCRIPTION,
    )
    add_serve_arguments(serve_)


def _add_demo(sub: _Subcommands) -> None:
    demo = sub.add_parser("demo", help="fan out prompts with injected faults on the fake CLI")
    demo.add_argument("--prompts", type=int, default=24, help="how many prompts (default 24)")
    demo.add_argument("--concurrency", type=int, default=8)
    demo.add_argument("--seed", type=int, default=7, help="seed of the fault mix")


def _add_emulate(sub: _Subcommands) -> None:
    emulate = sub.add_parser(
        "emulate",
        help="serve fake anthropic/openai/gemini APIs for the real CLIs, offline",
        description="Serve enough of the Anthropic, OpenAI and Gemini APIs for the real claude, "
        "codex and gemini CLIs to run offline (see actors._fakes._emulator). Runs until Ctrl+C; "
        "SIGHUP reloads the rules file.",
    )
    emulate.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulate.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    emulate.add_argument("--rules", metavar="FILE", help="JSON rules file (replies and faults)")
    emulate.add_argument("--log", metavar="FILE", help="append every request to FILE as JSON lines")


def _emulate(args: argparse.Namespace) -> int:
    from actors import RulesFileError, load_rules, run_emulator_forever

    if args.rules is not None:
        try:
            load_rules(args.rules)  # fail fast with exit status 2, before binding
        except RulesFileError as exc:
            raise BadUsage(str(exc)) from exc
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
    spec = spec_from_args(args)
    fallbacks = fallback_specs(args)
    policies = policies_from_args(args)
    try:
        async with open_supervisor(
            spec,
            retry=policies.retry,
            timeouts=policies.timeouts,
            breaker=policies.breaker(spec.name),
            concurrency=policies.concurrency,
            fallback=fallbacks,
        ) as sup:
            result = await sup.ask(args.prompt, system=args.system)
    except LLMError as error:
        print(f"llmsup: error {error.one_line()}", file=sys.stderr)
        return EXIT_CODES.get(error.category, 1)
    if result.fallback:
        print(f"llmsup: answered by {result.cli} (fallback)", file=sys.stderr)
    if args.json:
        print(result.model_dump_json(indent=2, exclude={"raw_events"}))
    else:
        print(result.text)
    return 0


async def _chat(args: argparse.Namespace) -> int:
    from ._chat import run_chat

    spec = spec_from_args(args)
    fallbacks = fallback_specs(args)
    policies = policies_from_args(args)
    try:
        return await run_chat(
            spec,
            system_prompt=args.system,
            history=args.history,
            retry=policies.retry,
            fallback=fallbacks,
            breaker=policies.breaker(spec.name),
        )
    except ValueError as exc:  # an unreadable history file
        raise BadUsage(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmsup`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.subcommand == "ask":
            return trio.run(run_stoppable, partial(_ask, args))
        if args.subcommand == "chat":
            return trio.run(run_stoppable, partial(_chat, args))
        if args.subcommand == "map":
            return trio.run(run_map, args)
        if args.subcommand == "serve":
            return run_serve(args)
        if args.subcommand == "demo":
            from ._demo import run_demo

            demo = partial(run_demo, args.prompts, args.concurrency, args.seed)
            return trio.run(run_stoppable, demo)
        if args.subcommand == "emulate":
            return _emulate(args)
    except BadUsage as exc:
        print(f"llmsup: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl+C before the run could receive it as a signal
        print(INTERRUPTED, file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.subcommand!r}")
