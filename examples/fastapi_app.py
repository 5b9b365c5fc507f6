"""A FastAPI app over one supervisor, served by Hypercorn's trio worker.

    python examples/fastapi_app.py [--cli fake|claude|codex|gemini] [--host H] [--port 8000]
    curl -s localhost:8000/analyze -H 'content-type: application/json' -d '{"code": "x = 1"}'
    curl -sN 'localhost:8000/stream?query=tell+me+a+story'

The reference document's "Integration with FastAPI", on this library. The app's lifespan
opens ONE supervisor for the whole server, so every request shares its process limit, its
retry policy and its circuit breaker, and stopping the server stops every CLI process.

- ``POST /analyze`` with ``{"code": "..."}`` answers a validated `CodeAnalysis`. Failures
  map to HTTP by category: RATE_LIMIT is 429 with ``Retry-After``, CIRCUIT_OPEN is 503 (with
  ``Retry-After``), TIMEOUT is 504 and everything else 502; the body's ``detail`` is
  ``LLMError.to_dict()``.
- ``GET /stream?query=...`` streams the answer as plain text chunks. The first chunk is
  awaited before the response starts, so a call that fails before any text still gets a
  proper error status. Once text has been sent the status cannot change: a failure then
  aborts the response, which the client sees as a truncated body.

Rate limits are not retried here (``retry_on`` leaves them out): a request handler passes
the provider's ``Retry-After`` to its client instead of holding the request, and the
breaker then fails later requests fast (503) until that time.

With the fake CLI, a prompt containing ``rate-limit-me`` gets a 429 from the "provider",
``crash-mid-stream`` crashes after two chunks, ``hang-forever`` never answers (504 after
two attempts of 3 s each) and ``slow-story`` streams 20 chunks 0.5 s apart. SIGINT or
SIGTERM shut the server down cleanly (exit 0); a second signal stops it at once. A fuller
server is ``llmsup serve``; this example shows how to write your own.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import cast

import trio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from actors import CliSpec, TextDelta
from examples._common import cli_spec, make_parser, run
from examples.simple_analysis import CodeAnalysis, analysis_prompt
from supervisor import (
    CircuitBreaker,
    ErrorCategory,
    LLMError,
    RetryConfig,
    Supervisor,
    TimeoutConfig,
    open_supervisor,
)

logger = logging.getLogger("fastapi_app")

FAKE_PLAN: dict[str, object] = {
    "chunks": 6,
    "chunk_gap_s": 0.02,
    "rules": [
        {"match": "rate-limit-me", "rate_limit_retry_after_s": 7},
        {"match": "crash-mid-stream", "crash_after_chunks": 2},
        {"match": "hang-forever", "hang": True},
        {"match": "slow-story", "chunks": 20, "chunk_gap_s": 0.5},
        {
            "match": "Analyze this Python code",
            "text": json.dumps({"issues": ["no tests", "magic number"], "score": 6.5}),
        },
    ],
}

# Request handlers retry transient failures once, and never sit out a rate limit.
HANDLER_RETRY = RetryConfig(
    max_attempts=2,
    initial_delay_ms=200,
    retry_on=frozenset({ErrorCategory.RETRYABLE, ErrorCategory.TIMEOUT}),
)
HANDLER_TIMEOUTS = TimeoutConfig(total_execution=120, chunk_receive=60, graceful_shutdown=2)
# The fake CLI answers in milliseconds: a short timeout shows a 504 without a long wait.
FAKE_TIMEOUTS = TimeoutConfig(total_execution=3, chunk_receive=3, graceful_shutdown=2)


class AnalyzeRequest(BaseModel):
    code: str


def http_error(error: LLMError) -> HTTPException:
    """The HTTP answer to a failed call: status by category, retry hint as a header."""
    headers: dict[str, str] = {}
    if error.category is ErrorCategory.RATE_LIMIT:
        status = 429
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after or 1)))
    elif error.category is ErrorCategory.CIRCUIT_OPEN:
        status = 503
        if error.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    elif error.category is ErrorCategory.TIMEOUT:
        status = 504
    else:  # the CLI or its provider failed: we are a gateway to it
        status = 502
    return HTTPException(status, detail=error.to_dict(), headers=headers or None)


def supervisor_of(request: Request) -> Supervisor:
    """The supervisor the lifespan opened (503 while the server starts or stops)."""
    sup = getattr(request.app.state, "supervisor", None)
    if not isinstance(sup, Supervisor):
        raise HTTPException(503, detail="the server is starting or stopping")
    return sup


async def text_chunks(sup: Supervisor, prompt: str) -> AsyncGenerator[str, None]:
    """The answer's text deltas; leaving early (client gone) stops the CLI."""
    async with sup.stream(prompt) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                yield event.text


class StreamAborted(Exception):
    """A streamed call failed after its first text was sent: the response is cut short."""


async def first_then_rest(first: str, rest: AsyncGenerator[str, None]) -> AsyncGenerator[str, None]:
    """``first``, then the rest of the chunks; closing this closes ``rest`` too.

    A failure now can no longer change the status (200 is sent): raising aborts the
    response, so the client sees a truncated body rather than a complete-looking answer.
    """
    async with aclosing(rest):
        yield first
        try:
            async for chunk in rest:
                yield chunk
        except LLMError as error:
            logger.warning("stream aborted after text was sent: %s", error)
            raise StreamAborted(str(error)) from error


class QuietStreamAborts(logging.Filter):
    """Drops Hypercorn's traceback for a `StreamAborted` (already logged in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


def create_app(
    spec: CliSpec | None = None,
    *,
    breaker: CircuitBreaker | None = None,
    retry: RetryConfig = HANDLER_RETRY,
    timeouts: TimeoutConfig | None = None,
    concurrency: int = 8,
) -> FastAPI:
    """The app: one supervisor for ``spec`` (default: the fake CLI with `FAKE_PLAN`).

    ``timeouts`` defaults to `HANDLER_TIMEOUTS`, or `FAKE_TIMEOUTS` for the default spec.
    """
    if spec is None:
        spec = cli_spec("fake", FAKE_PLAN)
        timeouts = timeouts or FAKE_TIMEOUTS
    timeouts = timeouts or HANDLER_TIMEOUTS

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The supervisor's nursery lives as long as the server; leaving it stops every
        # CLI process (requests still running by then have been cancelled by Hypercorn).
        async with open_supervisor(
            spec, retry=retry, timeouts=timeouts, breaker=breaker, concurrency=concurrency
        ) as sup:
            app.state.supervisor = sup
            try:
                yield
            finally:
                app.state.supervisor = None
                stats = sup.statistics()
                logger.info("supervisor closing: %d calls, %d failed", stats.started, stats.failed)

    app = FastAPI(title="llm-cli-supervisor example", lifespan=lifespan)

    @app.post("/analyze")
    async def analyze(body: AnalyzeRequest, request: Request) -> CodeAnalysis:
        sup = supervisor_of(request)
        try:
            result = await sup.ask(analysis_prompt(body.code), output=CodeAnalysis)
        except LLMError as error:
            raise http_error(error) from error
        assert isinstance(result.data, CodeAnalysis)
        return result.data

    @app.get("/stream")
    async def stream(query: str, request: Request) -> StreamingResponse:
        sup = supervisor_of(request)
        chunks = text_chunks(sup, query)
        try:
            first = await anext(chunks)  # a failure before any text is still an HTTP error
        except StopAsyncIteration:
            first = ""
        except LLMError as error:
            raise http_error(error) from error
        except BaseException:
            await chunks.aclose()  # cancelled (client gone): stop the CLI now
            raise
        return StreamingResponse(first_then_rest(first, chunks), media_type="text/plain")

    return app


async def main(cli: str = "fake", host: str = "127.0.0.1", port: int = 8000) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for name, level in (("fastapi_app", logging.INFO), ("llmsup", logging.WARNING)):
        logging.getLogger(name).addHandler(handler)  # llmsup: one line per failed call
        logging.getLogger(name).setLevel(level)
    logging.getLogger("hypercorn.error").addFilter(QuietStreamAborts())
    app = create_app(
        cli_spec(cli, FAKE_PLAN),
        breaker=CircuitBreaker(failure_threshold=5, success_threshold=1, timeout_seconds=30),
        timeouts=FAKE_TIMEOUTS if cli == "fake" else HANDLER_TIMEOUTS,
    )
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = 5.0  # after a signal: time for requests in flight to finish

    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signals() -> None:
                async for signum in signals:
                    if stop.is_set():  # a second signal: stop at once
                        print("second signal: stopping now", flush=True)
                        nursery.cancel_scope.cancel()
                        return
                    print(f"{signal.Signals(signum).name}: shutting down", flush=True)
                    stop.set()

            async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
                await serve(
                    cast(Framework, app),
                    config,
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # served and shut down: stop the signal watcher

            nursery.start_soon(on_signals)
            binds: list[str] = await nursery.start(run_server)
            print(f"serving on {binds[0]} (Ctrl+C to stop)", flush=True)
    print("server stopped", flush=True)


if __name__ == "__main__":
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    run(main, args.cli, args.host, args.port)
