"""The ``llmsup`` command line: ``ask``, ``chat``, ``map``, ``serve``, ``demo`` and ``emulate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import TypeAlias

import trio

from ._ask import ASK_DESCRIPTION, add_ask_arguments, prompt_of, run_ask
from ._map import add_map_arguments, run_map
from ._options import (
    EXIT_CODES,
    EXIT_USAGE,
    BadUsage,
    add_cli_options,
    fallback_specs,
    policies_from_args,
    spec_from_args,
)
from ._serve_command import SERVE_DESCRIPTION, add_serve_arguments, run_serve
from ._signals import INTERRUPTED, run_stoppable

__all__ = ["EXIT_CODES", "EXIT_USAGE", "main"]

DISTRIBUTION = "llm-cli-supervisor"

EMULATE_DESCRIPTION = """\
Serve enough of the Anthropic, OpenAI and Gemini APIs for the real claude, codex and
gemini CLIs to run offline (on 127.0.0.1 unless --host says otherwise). Runs until
Ctrl+C or SIGTERM; SIGHUP reloads the rules file. Point a CLI at it with
--emulator URL (ask, chat, map, serve)."""

RULES_FILE_HELP = """\
rules file (--rules FILE):
  JSON: a list of rules, or {"rules": [...]}. The first rule that applies to a request
  answers it; when none does, the emulator echoes ("echo: PROMPT"). Rules apply to
  generation calls only (token counts and model lists are always answered). A bad file
  is a usage error naming the field (exit status 2); SIGHUP reloads the file.

a rule (every field optional; all the conditions given must hold):
  match       a substring of the prompt: the latest user message, without the context
              blocks the CLIs add (<system-reminder>, <environment_context>, ...)
  provider    anthropic, openai or gemini: only requests to that API
  times       apply to the first N matching requests only, then skip the rule
  reply       the answer text; {prompt} is replaced by the prompt (default: echo)
  chunks      how many streamed text deltas the reply is cut into (default: 1)
  structured  "tool" (default): when claude offers its StructuredOutput tool and the
              reply is a JSON object, the model calls that tool with it; "prose": it
              answers the text instead
  fault       one injected failure, {"kind": KIND, ...} (default: none)

fault kinds (only the fields of its kind may be set):
  status      an HTTP error in the provider's own shape: status (400-599, required),
              retry_after (seconds: a retry-after header and in the message), message,
              gemini_retry_info (true: add google.rpc.RetryInfo, as Gemini does)
  slow        the normal reply, chunk_delay_s seconds (default 1) before each chunk
  stall       send stall_after_chunks chunks, then nothing; the connection stays open
  disconnect  send disconnect_after_chunks chunks, then close the connection
  malformed   a 200 response whose stream (or JSON body) is not valid JSON
  tool_call   the model asks for the tool tool_name (required) with tool_input (an
              object, default {}); the request that brings the tool's result back gets
              the rule's reply as text

example:
[
  {"match": "busy", "fault": {"kind": "status", "status": 429, "retry_after": 20},
   "times": 2},
  {"match": "hang", "chunks": 3, "fault": {"kind": "stall", "stall_after_chunks": 1}},
  {"provider": "gemini", "match": "slow", "reply": "taking my time", "chunks": 5,
   "fault": {"kind": "slow", "chunk_delay_s": 0.5}},
  {"match": "peek", "reply": "read it",
   "fault": {"kind": "tool_call", "tool_name": "Read", "tool_input": {"file_path": "x"}}},
  {"reply": "Hello! You said: {prompt}", "chunks": 3}
]
"""


def package_version() -> str:
    """This installation's version, from the package metadata."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmsup",
        description="Run LLM command-line programs as supervised subprocesses.",
    )
    parser.add_argument("--version", action="version", version=f"llmsup {package_version()}")
    sub = parser.add_subparsers(dest="subcommand", required=True)
    for add in (_add_ask, _add_chat, _add_map, _add_serve, _add_demo, _add_emulate):
        add(sub)
    return parser


# What ``add_subparsers`` returns (private in argparse, hence the alias).
_Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_ask(sub: _Subcommands) -> None:
    ask = sub.add_parser(
        "ask", help="ask one prompt and print the answer", description=ASK_DESCRIPTION
    )
    add_ask_arguments(ask)


def _add_chat(sub: _Subcommands) -> None:
    chat = sub.add_parser(
        "chat",
        help="an interactive multi-turn conversation",
        description="Chat with a CLI, one turn per line. Commands: /export FILE, /history, "
        "/quit (or end of input). A blank line just asks again: no call, no error. Ctrl+C "
        "leaves cleanly, with no process left behind.",
    )
    chat.add_argument(
        "--history",
        metavar="FILE",
        help="continue a conversation exported before with /export (default: a new one)",
    )
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
    demo = sub.add_parser(
        "demo",
        help="fan out prompts with injected faults on the fake CLI",
        description="Fan out prompts on the embedded fake CLI, each with the fault its "
        "name says, and show the retries, the breaker and a summary.",
    )
    demo.add_argument("--prompts", type=int, default=24, help="how many prompts (default: 24)")
    demo.add_argument(
        "--concurrency", type=int, default=8, help="prompts asked at once (default: 8)"
    )
    demo.add_argument(
        "--seed", type=int, default=7, help="seed of the order of the fault mix (default: 7)"
    )


def _add_emulate(sub: _Subcommands) -> None:
    emulate = sub.add_parser(
        "emulate",
        help="serve fake anthropic/openai/gemini APIs for the real CLIs, offline",
        description=EMULATE_DESCRIPTION,
        epilog=RULES_FILE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    emulate.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    emulate.add_argument(
        "--port", type=int, default=8765, help="port; 0 picks a free one (default: 8765)"
    )
    emulate.add_argument(
        "--rules",
        metavar="FILE",
        help="JSON rules file of replies and faults, described below (default: none, "
        "every prompt is echoed)",
    )
    emulate.add_argument(
        "--log",
        metavar="FILE",
        help="append every request to FILE as JSON lines, keys redacted (default: no log)",
    )


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


def _run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args`` name; its exit status."""
    if args.subcommand == "ask":
        prompt = prompt_of(args)  # before the run: stdin is read whole, synchronously
        return trio.run(run_stoppable, partial(run_ask, args, prompt))
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
    raise AssertionError(f"unhandled command {args.subcommand!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmsup`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except BadUsage as exc:
        print(f"llmsup: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl+C before the run could receive it as a signal
        print(INTERRUPTED, file=sys.stderr)
        return 130
