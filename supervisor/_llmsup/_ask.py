"""``llmsup ask``: one prompt, one answer (or one typed error), for people and scripts."""

from __future__ import annotations

import argparse
import sys

from pydantic import BaseModel

from actors import CliSpec, LLMError
from supervisor import open_supervisor

from ._options import (
    EXIT_CODES,
    BadUsage,
    add_cli_options,
    fallback_specs,
    policies_from_args,
    spec_from_args,
)
from ._prompt import read_prompt

ASK_DESCRIPTION = (
    "Print the answer, or a one-line typed error on stderr with a distinct exit status "
    "(1 retryable, 2 usage, 3 timeout, 4 rate_limit, 5 auth_failure, 6 malformed_output, "
    "7 permanent, 8 circuit_open). The prompt is the argument; '-' reads it from stdin, and "
    "so does no prompt with stdin not a terminal; @FILE reads it from FILE; @@TEXT is the "
    "literal prompt @TEXT; put -- before a prompt that starts with '-'. An empty prompt is a "
    "usage error."
)


class AskErrorDetail(BaseModel):
    """A failed call, as ``ask --json`` prints it."""

    category: str
    message: str
    retry_after: float | None
    exit_code: int | None
    cli: str | None


class AskError(BaseModel):
    """What ``ask --json`` prints on stdout for a failure: ``{"error": {...}}``."""

    error: AskErrorDetail

    @classmethod
    def of(cls, error: LLMError) -> AskError:
        """The JSON form of ``error`` (its message is already redacted)."""
        return cls(error=AskErrorDetail.model_validate(error.to_dict()))


def add_ask_arguments(ask: argparse.ArgumentParser) -> None:
    """The options of ``llmsup ask``."""
    ask.add_argument(
        "prompt",
        nargs="?",
        default=None,
        help="the prompt, passed as one argument and never via a shell; '-' or none (with a "
        "pipe) reads stdin, @FILE reads FILE, @@TEXT means @TEXT",
    )
    ask.add_argument(
        "--json",
        action="store_true",
        help='print the whole result as JSON; a failure as {"error": {category, message, '
        "retry_after, exit_code, cli}} on stdout, with the same exit status",
    )
    add_cli_options(ask, concurrency=1)


def prompt_of(args: argparse.Namespace) -> str:
    """The prompt ``ask`` was given (read from stdin or a file when so asked)."""
    stdin = sys.stdin
    return read_prompt(
        args.prompt,
        read_stdin=(lambda: b"") if stdin is None else stdin.buffer.read,
        stdin_is_tty=stdin is not None and stdin.isatty(),
    )


async def run_ask(args: argparse.Namespace, prompt: str) -> int:
    """Ask ``prompt`` as ``args`` say; print the answer or the error; the exit status."""
    spec = spec_from_args(args)
    fallbacks = fallback_specs(args)
    policies = policies_from_args(args)
    for cli in (spec, *fallbacks):
        _check_prompt_fits(cli, prompt)
    try:
        async with open_supervisor(
            spec,
            retry=policies.retry,
            timeouts=policies.timeouts,
            breaker=policies.breaker(spec.name),
            concurrency=policies.concurrency,
            fallback=fallbacks,
        ) as sup:
            result = await sup.ask(prompt, system=args.system)
    except LLMError as error:
        print(f"llmsup: error {error.one_line()}", file=sys.stderr)
        if args.json:
            print(AskError.of(error).model_dump_json(indent=2))
        return EXIT_CODES.get(error.category, 1)
    if result.fallback:
        print(f"llmsup: answered by {result.cli} (fallback)", file=sys.stderr)
    if args.json:
        print(result.model_dump_json(indent=2, exclude={"raw_events"}))
    else:
        print(result.text)
    return 0


def _check_prompt_fits(spec: CliSpec, prompt: str) -> None:
    """A prompt the CLI cannot receive (too long for one argument, a NUL...) is bad usage."""
    try:
        spec.build_argv(prompt)
    except ValueError as exc:
        # The library names its Python parameter; here the flag is what to change.
        reason = str(exc).replace("prompt_via='stdin'", "--prompt-via stdin")
        raise BadUsage(f"{spec.name}: {reason}") from None
