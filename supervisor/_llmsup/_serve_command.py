"""The ``llmsup serve`` command: its arguments, and running the server they describe."""

from __future__ import annotations

import argparse
import math
import os
import sys
from functools import partial

import trio

from ._options import (
    BadUsage,
    add_cli_options,
    fallback_specs,
    policies_from_args,
    spec_from_args,
)

SERVE_DESCRIPTION = (
    "Serve one supervised CLI over HTTP. Binds to 127.0.0.1 unless told "
    "otherwise; with --token (or LLMSUP_TOKEN) every endpoint but /health needs "
    "'Authorization: Bearer TOKEN'. SIGTERM/SIGINT/SIGHUP drain in-flight calls, then exit 0."
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``llmsup serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any)")
    parser.add_argument("--token", default=None, help="bearer token (default: $LLMSUP_TOKEN)")
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds in-flight calls get on shutdown"
    )
    parser.add_argument(
        "--cwd",
        metavar="DIR",
        default=None,
        help="run every call in DIR (default: a fresh scratch folder per call, removed after)",
    )
    add_cli_options(parser, concurrency=8)


def run_serve(args: argparse.Namespace) -> int:
    """Run ``llmsup serve`` as its arguments say; the exit status."""
    from ._serve import serve

    if not (args.grace >= 0 and math.isfinite(args.grace)):
        raise BadUsage(f"--grace must be a finite number of seconds >= 0, got {args.grace!r}")
    spec = spec_from_args(args)
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
            )
        )
    except OSError as exc:
        print(f"llmsup: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return status
