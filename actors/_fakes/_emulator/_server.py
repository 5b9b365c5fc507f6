"""Serving the emulator: `open_emulator` (for tests and programs) and `run_emulator_forever`.

The ASGI app (`_app.EmulatorApp`) runs under Hypercorn's trio worker in a nursery of the
caller's; nothing runs in threads.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING, cast

import attrs
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve

from ..._groups import unwrap_group
from ..._hypercorn import PreboundConfig, bind_sockets
from ._app import EmulatorApp, EmulatorState, RecordedRequest
from ._rules import EmulatorRule, Provider, RulesFileError, load_rules, validate_rules

if TYPE_CHECKING:
    from hypercorn.typing import Framework

# Hypercorn's own log lines ("Running on ...", app tracebacks) go here; silent unless configured.
LOGGER = logging.getLogger("llmsup.emulator")

BANNER = "emulating anthropic, openai and gemini APIs on {base_url}"


@attrs.define(eq=False)
class Emulator:
    """A running emulator: where it listens, what it answers, what it has received.

    Obtain one from `open_emulator`. All methods must be called from the emulator's trio run.
    """

    host: str
    port: int
    _state: EmulatorState = attrs.field(alias="state")

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` with the real port (no trailing slash, no path)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a live list: do not mutate)."""
        return self._state.requests

    @property
    def rules(self) -> tuple[EmulatorRule, ...]:
        """The rules in force, first match wins."""
        return self._state.rules

    def set_rules(self, rules: Iterable[EmulatorRule]) -> None:
        """Replace the rules; `times` counts restart from zero. Requests in flight keep theirs."""
        self._state.set_rules(validate_rules(list(rules)))

    def clear_requests(self) -> None:
        """Forget the requests received so far."""
        self._state.requests.clear()

    def generation_requests(self, provider: Provider | None = None) -> list[RecordedRequest]:
        """The requests that asked for a model reply (not token counts, not unknown routes)."""
        return [
            r
            for r in self._state.requests
            if r.operation == "generate" and (provider is None or r.provider == provider)
        ]

    async def wait_requests(self, count: int) -> list[RecordedRequest]:
        """Wait until at least `count` requests have arrived; returns them all.

        Cancellation: safe at any point; nothing is consumed.
        """
        while len(self._state.requests) < count:
            await self._state.arrivals.park()
        return list(self._state.requests)


def _config(sockets: Sockets) -> Config:
    config = PreboundConfig(sockets)
    config.accesslog = None
    config.errorlog = LOGGER
    # In-flight replies get this long to finish on exit; stalled ones are released at once.
    config.graceful_timeout = 1.0
    config.backlog = 1024
    return config


@asynccontextmanager
async def open_emulator(
    rules: Iterable[EmulatorRule] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_path: str | os.PathLike[str] | None = None,
) -> AsyncIterator[Emulator]:
    """Serve the emulator on ``host:port`` (port 0: any free port) for the ``async with`` body.

    Every request is recorded in `Emulator.requests` and, with `log_path`, appended to that
    file as one JSON line (a `RecordedRequest`). Raises OSError if the address cannot be bound.

    Exceptions raised in the body propagate unchanged (not wrapped in an ExceptionGroup).

    Cancellation: exiting the block, however it happens, stops listening, releases stalled
    responses, gives replies in flight one second to finish (none if the exit is a
    cancellation), closes every connection and the log file, and returns only when all of that
    is done.
    """
    state = EmulatorState()
    state.set_rules(validate_rules(list(rules)))
    app = EmulatorApp(state)
    log_file = None
    if log_path is not None:
        log_file = await trio.open_file(log_path, "a", encoding="utf-8")

        async def write_line(line: str) -> None:
            assert log_file is not None
            await log_file.write(line)
            await log_file.flush()

        state.write_line = write_line
    try:
        sockets = bind_sockets(host, port)
        bound_port = int(sockets.insecure_sockets[0].getsockname()[1])
        try:
            with _single_errors_unwrapped():
                async with trio.open_nursery() as nursery:
                    shutdown = trio.Event()
                    await nursery.start(
                        partial(
                            serve,
                            cast("Framework", app),
                            _config(sockets),
                            shutdown_trigger=shutdown.wait,
                        )
                    )
                    try:
                        yield Emulator(host, bound_port, state=state)
                    finally:
                        state.closing.set()
                        shutdown.set()
        finally:
            for sock in sockets.insecure_sockets:
                sock.close()
    finally:
        if log_file is not None:
            with trio.CancelScope(shield=True):
                await log_file.aclose()


@contextmanager
def _single_errors_unwrapped() -> Iterator[None]:
    """Re-raise a lone exception out of the nursery's ExceptionGroup as itself.

    The server's nursery is an implementation detail: an error raised in the ``async with``
    body of `open_emulator` (a failed assert, a Cancelled) must reach the caller unwrapped.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        sole = unwrap_group(group)
        if sole is group:
            raise
        raise sole from None


async def run_emulator_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    rules_path: str | os.PathLike[str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> None:
    """Run until SIGINT or SIGTERM (then return normally); SIGHUP reloads the rules file.

    Prints `BANNER` with the real address first, flushed, so a parent process can read the
    port when it passed 0. Raises `RulesFileError` for a bad rules file and OSError when the
    address cannot be bound, before anything is printed.
    """
    rules = load_rules(rules_path) if rules_path is not None else []
    wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    with trio.open_signal_receiver(*wanted) as signals:
        async with open_emulator(rules, host=host, port=port, log_path=log_path) as emulator:
            print(BANNER.format(base_url=emulator.base_url), flush=True)
            async for signum in signals:
                if signum != signal.SIGHUP:
                    break
                if rules_path is None:
                    continue
                try:
                    emulator.set_rules(load_rules(rules_path))
                except RulesFileError as exc:
                    print(f"kept the old rules: {exc}", file=sys.stderr, flush=True)
                else:
                    print(f"reloaded {len(emulator.rules)} rules", flush=True)
