"""The ``llmsup serve`` command: its arguments, and running the server they describe."""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from functools import partial
from typing import TYPE_CHECKING

import attrs
import trio

from actors import CliSpec, ToolPolicy

from ._options import (
    KNOWN_CLIS,
    BadUsage,
    add_cli_options,
    fallback_specs,
    named_spec,
    policies_from_args,
    spec_from_args,
)

SERVE_DESCRIPTION = (
    "Serve one supervised CLI over HTTP. Binds to 127.0.0.1 unless told "
    "otherwise; with --token (or LLMSUP_TOKEN) every endpoint but /health, /docs, /redoc "
    "and /openapi.json needs 'Authorization: Bearer TOKEN' (/metrics: see --metrics-token "
    "and --public-metrics). A request may set its own model, timeout, system prompt and "
    "tools (at most --tools). SIGTERM/SIGINT/SIGHUP drain in-flight calls, then exit 0."
)

if TYPE_CHECKING:  # the server (FastAPI and all) is imported only when it runs
    from ._serve import Respec

_MODEL_CLIS = frozenset({"claude", "codex", "gemini"})


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``llmsup serve``."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="the port to listen on; 0 picks a free one (default: 8080)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="the bearer token every endpoint but /health and the docs needs "
        "(default: $LLMSUP_TOKEN; none when unset)",
    )
    _add_access_arguments(parser)
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds calls in flight get to finish on shutdown (default: 10)",
    )
    parser.add_argument(
        "--cwd",
        metavar="DIR",
        default=None,
        help="run every call in DIR (default: a fresh scratch folder per call, removed after)",
    )
    add_cli_options(parser, concurrency=8)


def _add_access_arguments(parser: argparse.ArgumentParser) -> None:
    """Who may read /metrics, what a request may ask for, standby processes."""
    parser.add_argument(
        "--metrics-token",
        metavar="TOKEN",
        default=None,
        help="a bearer token of its own for /metrics only, for a Prometheus scraper "
        "(the API token is taken there too) (default: none: /metrics needs the API token)",
    )
    parser.add_argument(
        "--public-metrics",
        action="store_true",
        help="serve /metrics without any token (default: off: /metrics needs a token "
        "when the API has one)",
    )
    parser.add_argument(
        "--max-timeout",
        type=float,
        metavar="SECONDS",
        default=None,
        help="the most seconds a request's own 'timeout' may ask for; more is a 422 "
        "(default: --total-timeout)",
    )
    parser.add_argument(
        "--standby",
        type=int,
        metavar="N",
        default=0,
        help="keep N CLI processes started and waiting for their prompt, so a call skips "
        "the CLI's start-up (default: 0, none)",
    )


def respec_from_args(args: argparse.Namespace) -> Respec:
    """How a request's model and tool policy become a spec: claude, codex and gemini are
    built again from the same options (so their own flags change); another CLI (the fake,
    a ``--command``) takes a tool policy but no model."""
    named = {*args.fallback}
    if args.command is None and (args.cli or "fake") in KNOWN_CLIS:
        named.add(args.cli or "fake")

    @functools.lru_cache(maxsize=64)
    def build(name: str, model: str | None, tools: ToolPolicy) -> CliSpec:
        changed = argparse.Namespace(**{**vars(args), "model": model, "tools": tools})
        try:
            return named_spec(name, changed)
        except BadUsage as exc:
            raise ValueError(str(exc)) from None

    def respec(spec: CliSpec, model: str | None, tools: ToolPolicy) -> CliSpec:
        if spec.name in _MODEL_CLIS and spec.name in named:
            return build(spec.name, model if model is not None else args.model, tools)
        if model is not None:
            raise ValueError(f"the {spec.name} CLI takes no model")
        return attrs.evolve(spec, tools=tools)

    return respec


def run_serve(args: argparse.Namespace) -> int:
    """Run ``llmsup serve`` as its arguments say; the exit status."""
    from ._serve import CallLimits, MetricsAccess, serve

    if not (args.grace >= 0 and math.isfinite(args.grace)):
        raise BadUsage(f"--grace must be a finite number of seconds >= 0, got {args.grace!r}")
    max_timeout = args.total_timeout if args.max_timeout is None else args.max_timeout
    if not (max_timeout > 0 and math.isfinite(max_timeout)):
        raise BadUsage(f"--max-timeout must be a finite number of seconds > 0, got {max_timeout!r}")
    if args.standby < 0:
        raise BadUsage(f"--standby must be >= 0, got {args.standby}")
    try:
        metrics = MetricsAccess(token=args.metrics_token, public=args.public_metrics)
    except ValueError as exc:
        raise BadUsage(f"--metrics-token/--public-metrics: {exc}") from None
    spec = spec_from_args(args)
    refusal = spec.standby_refusal_reason() if args.standby else None
    if refusal is not None:
        hint = " (try --prompt-via stdin)" if spec.prompt_via == "arg" else ""
        raise BadUsage(f"--standby: not possible for {spec.name}: {refusal}{hint}")
    fallbacks = fallback_specs(args)
    policies = policies_from_args(args)
    if args.cwd is not None and not os.path.isdir(args.cwd):
        raise BadUsage(f"--cwd {args.cwd}: no such directory")
    try:
        status: int = trio.run(
            partial(
                serve,
                spec,
                args.host,
                args.port,
                fallback=fallbacks,
                system=args.system,
                cwd=args.cwd,
                grace_s=args.grace,
                retry=policies.retry,
                timeouts=policies.timeouts,
                breaker=policies.breaker(spec.name),
                concurrency=policies.concurrency,
                token=args.token,
                metrics=metrics,
                limits=CallLimits(max_timeout=max_timeout, respec=respec_from_args(args)),
                standby=args.standby,
            )
        )
    except OSError as exc:
        print(f"llmsup: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return status
