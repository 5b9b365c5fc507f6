"""What every example shares: the ``--cli`` flag and the spec it stands for.

``--cli fake`` (the default) runs the embedded fake CLI with the example's own fault plan,
so every example runs anywhere in a few seconds. ``--cli claude|codex|gemini`` runs the
real program instead (found on PATH or in ./.clis); that needs its credentials.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Mapping

import trio

import actors
from actors import CliSpec, LLMError

CLI_CHOICES = ("fake", "claude", "codex", "gemini")


def make_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the shared ``--cli`` flag; add the example's own flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--cli",
        choices=CLI_CHOICES,
        default="fake",
        help="which CLI to run: the fake (default, no credentials needed) or a real one",
    )
    return parser


def cli_spec(name: str, fake_plan: Mapping[str, object] | None = None) -> CliSpec:
    """The `CliSpec` for ``--cli NAME``; ``fake_plan`` scripts the fake CLI's behaviour."""
    if name == "fake":
        return actors.fake(fake_plan)
    if name == "claude":
        return actors.claude()
    if name == "codex":
        return actors.codex()
    if name == "gemini":
        return actors.gemini()
    raise ValueError(f"unknown CLI {name!r}; choose one of {', '.join(CLI_CHOICES)}")


def run(main: Callable[..., Awaitable[object]], *args: object) -> None:
    """``trio.run(main, *args)``; an uncaught `LLMError` becomes one line and exit status 1.

    With a real CLI that is not logged in, for example, that line reads
    ``error: [auth_failure] claude exited with code 1: Not logged in ...``.
    """
    try:
        trio.run(main, *args)
    except LLMError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        raise SystemExit(1) from None
