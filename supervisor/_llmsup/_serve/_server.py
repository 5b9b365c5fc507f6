"""`serve`: binding, Hypercorn's trio worker, SIGTERM/SIGINT and the draining shutdown."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, cast

import attrs
import trio
from fastapi import FastAPI
from hypercorn.config import Sockets
from hypercorn.trio import serve as hypercorn_serve

from actors import CliSpec, TimeoutConfig
from actors.lowlevel import PreboundConfig, bind_sockets, unwrap_group
from supervisor import CircuitBreaker, RetryConfig

from ._app import build_app
from ._guard import MetricsAccess
from ._per_call import CallLimits
from ._state import ServeState

if TYPE_CHECKING:
    from hypercorn.typing import Framework

logger = logging.getLogger("llmsup.serve")

TOKEN_ENV = "LLMSUP_TOKEN"
"""The environment variable `serve` reads the bearer token from when none is passed."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return all(
        info[4][0] == "::1" or str(info[4][0]).startswith("127.") for info in infos if info[4]
    )


async def serve(
    spec: CliSpec,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    grace_s: float = 10.0,
    retry: RetryConfig | None = None,
    timeouts: TimeoutConfig | None = None,
    breaker: CircuitBreaker | None = None,
    concurrency: int = 8,
    token: str | None = None,
    fallback: Sequence[CliSpec] = (),
    system: str | None = None,
    cwd: str | None = None,
    metrics: MetricsAccess | None = None,
    limits: CallLimits | None = None,
    standby: int = 0,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Serve `create_app(spec, ...)` on ``host:port`` until SIGTERM, SIGINT or SIGHUP; return 0.

    Prints ``llmsup serve: <cli> on http://HOST:PORT`` (the real port when ``port`` is 0)
    once it accepts requests, and reports that URL through ``task_status`` (so
    ``await nursery.start(serve, spec, "127.0.0.1", 0)`` returns it). ``token`` defaults to
    the `TOKEN_ENV` environment variable (empty means none). ``shutdown_trigger``: an
    extra way to start the shutdown (it returns → same as the first signal).
    ``fallback``, ``system``, ``cwd``, ``metrics``, ``limits``, ``standby``: see
    `create_app`.

    Shutdown: draining (new calls get 503), then up to ``grace_s`` for calls in flight,
    then the rest are cancelled, the listener closed and the supervisor closed, which
    stops every CLI process. Returns 0 after that, or 1 when a second signal forced it.

    Raises:
        OSError: the address cannot be bound (nothing has started).
        TypeError, ValueError: bad arguments (see `create_app`).
    """
    # Long because: its docstring is the shutdown contract; the body is one sequence.
    if not (grace_s >= 0 and math.isfinite(grace_s)):
        raise ValueError(f"grace_s must be a finite number >= 0, got {grace_s!r}")
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    app, state = build_app(
        spec,
        retry=retry,
        timeouts=timeouts,
        breaker=breaker,
        concurrency=concurrency,
        token=token,
        fallback=fallback,
        system=system,
        cwd=cwd,
        metrics=metrics,
        limits=limits,
        standby=standby,
    )
    _warn_without_token(host, token)
    shutdown = ServeShutdown()
    stop_budget = (timeouts or TimeoutConfig()).graceful_shutdown + 5.0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        sockets = bind_sockets(host, port)
        try:
            url = _url_of(sockets)
            with _unless_forced(shutdown):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(shutdown.watch_signals, signals, nursery.cancel_scope)
                    nursery.start_soon(shutdown.drain_then_stop, state, grace_s, stop_budget)
                    if shutdown_trigger is not None:
                        nursery.start_soon(shutdown.drain_after, shutdown_trigger)
                    await nursery.start(
                        _run_http, app, _hypercorn_config(sockets), shutdown, nursery.cancel_scope
                    )
                    print(f"llmsup serve: {spec.name} on {url}", flush=True)
                    task_status.started(url)
        finally:
            for sock in sockets.insecure_sockets:
                sock.close()
    return 1 if shutdown.forced else 0


@contextlib.contextmanager
def _unless_forced(shutdown: ServeShutdown) -> Iterator[None]:
    """Errors propagate (a lone one unwrapped from its group), except after a forced end."""
    try:
        yield
    except BaseExceptionGroup as group:
        if not shutdown.forced:
            raise unwrap_group(group) from None
    except Exception:
        if not shutdown.forced:
            raise


def _warn_without_token(host: str, token: str | None) -> None:
    if token is None and not _is_loopback(host):
        print(
            f"llmsup serve: warning: listening on {host} without a token "
            f"(set --token or {TOKEN_ENV})",
            file=sys.stderr,
            flush=True,
        )


def _url_of(sockets: Sockets) -> str:
    bound = sockets.insecure_sockets[0].getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return f"http://{shown}:{bound[1]}"


def _hypercorn_config(sockets: Sockets) -> PreboundConfig:
    config = PreboundConfig(sockets)
    config.accesslog = None
    config.errorlog = logger
    config.backlog = 1024
    # After the drain: time for last responses to flush and idle connections to close;
    # anything still running then (a stalled client) is cancelled.
    config.graceful_timeout = 1.0
    return config


async def _run_http(
    app: FastAPI,
    config: PreboundConfig,
    shutdown: ServeShutdown,
    watchers: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    await hypercorn_serve(
        cast("Framework", app),
        config,
        shutdown_trigger=shutdown.http_stop.wait,
        task_status=task_status,
    )
    watchers.cancel()  # done: stop the watchers


@attrs.define(eq=False)
class ServeShutdown:
    """The shutdown sequence: the first signal drains, a second one forces the end.

    ``drain`` is set by the first signal (or the shutdown trigger); ``http_stop`` once the
    calls in flight are done or aborted; ``forced`` by a second signal.
    """

    drain: trio.Event = attrs.field(factory=trio.Event)
    http_stop: trio.Event = attrs.field(factory=trio.Event)
    forced: bool = False

    def on_signal(self) -> bool:
        """Take one SIGTERM/SIGINT/SIGHUP; True when it forces the end (it is the second)."""
        if not self.drain.is_set():
            self.drain.set()
            return False
        self.forced = True
        return True

    async def watch_signals(self, signals: AsyncIterator[int], serving: trio.CancelScope) -> None:
        async for _signum in signals:
            if self.on_signal():  # stop waiting for anything
                serving.cancel()
                return

    async def drain_after(self, trigger: Callable[[], Awaitable[None]]) -> None:
        await trigger()
        self.drain.set()

    async def drain_then_stop(self, state: ServeState, grace_s: float, stop_budget: float) -> None:
        await self.drain.wait()
        state.draining = True
        with trio.move_on_after(grace_s):
            await state.wait_idle()
        # Past the grace period: cancel the calls left (each stops its CLI, within its stop
        # budget, then answers 503), then stop serving.
        state.abort_calls()
        with trio.move_on_after(stop_budget):
            await state.wait_idle()
        self.http_stop.set()
