"""The ASGI app: `create_app`, its lifespan, routes, error handlers and the token/size guard."""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors import CliSpec, LLMError, TimeoutConfig

from ..._policy._backoff import RetryConfig
from ..._policy._breaker import CircuitBreaker, CircuitState
from ..._result import Result
from ..._supervisor import check_concurrency, open_supervisor
from ._calls import _GONE, _Gone, _prepare, _result_response, _unless_disconnected
from ._errors import (
    _CATEGORY_BY_STATUS,
    _ClientError,
    _error_response,
    _llm_error_response,
    _unavailable,
    _validation_message,
)
from ._metrics import _PROMETHEUS_TEXT, _Metrics
from ._models import AskRequest, AskResponse, ErrorBody, HealthResponse
from ._sse import _EventStream
from ._state import _ABORTED, _ServeState

logger = logging.getLogger("llmsup.serve")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body read (a maximal prompt JSON-escaped, plus a schema)."""

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 422, 429, 502, 503, 504)
}


# ----------------------------------------------------------------------- the ASGI guard


class _Guard:
    """Bearer token (every path but ``/health``) and body size, before the app sees anything.

    The body is read here, up to `max_body_bytes`, and replayed to the app in one message.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None
        self._max = max_body_bytes

    def _authorized(self, scope: Scope) -> bool:
        if self._token is None:
            return True
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                scheme, _, credentials = bytes(value).strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    return hmac.compare_digest(credentials.strip(), self._token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] != "/health" and not self._authorized(scope):
            response = _error_response(
                401,
                "unauthorized",
                "a valid 'Authorization: Bearer <token>' header is required",
                headers={"WWW-Authenticate": 'Bearer realm="llmsup"'},
            )
            await response(scope, receive, send)
            return
        too_large = _error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self._max} bytes",
            headers={"Connection": "close"},
        )
        for name, value in scope.get("headers", ()):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self._max:
                    await too_large(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ------------------------------------------------------------------------------- the app


def create_app(
    spec: CliSpec,
    *,
    retry: RetryConfig | None = None,
    timeouts: TimeoutConfig | None = None,
    breaker: CircuitBreaker | None = None,
    concurrency: int = 8,
    token: str | None = None,
) -> FastAPI:
    """The ``llmsup serve`` ASGI app for `spec`; see the module docs for the API.

    The app's lifespan opens one supervisor (``open_supervisor(spec, retry=..., ...)``),
    available as ``app.state.supervisor`` while it runs; leaving the lifespan stops every CLI
    process. Metrics live in a registry of the app's own (``app.state.metrics_registry``).
    ``token``: when given, every endpoint but ``/health`` requires it as a bearer token.

    Raises:
        TypeError, ValueError: for a bad spec, concurrency or token (before anything runs).
    """
    return _build_app(
        spec, retry=retry, timeouts=timeouts, breaker=breaker, concurrency=concurrency, token=token
    )[0]


def _build_app(
    spec: CliSpec,
    *,
    retry: RetryConfig | None,
    timeouts: TimeoutConfig | None,
    breaker: CircuitBreaker | None,
    concurrency: int,
    token: str | None,
) -> tuple[FastAPI, _ServeState]:
    if not isinstance(spec, CliSpec):
        raise TypeError(f"create_app() needs a CliSpec (see actors.command), got {spec!r}")
    check_concurrency(concurrency)
    if token is not None and (
        not token or not token.isascii() or any(c.isspace() or not c.isprintable() for c in token)
    ):
        raise ValueError("the token must be a non-empty string of printable ASCII, no spaces")

    state = _ServeState(spec)
    metrics = _Metrics(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_supervisor(
            spec, retry=retry, timeouts=timeouts, breaker=breaker, concurrency=concurrency
        ) as sup:
            state.supervisor = sup
            app.state.supervisor = sup
            try:
                yield
            finally:
                state.draining = True
                state.supervisor = None
                app.state.supervisor = None

    app = FastAPI(
        title="llmsup",
        summary=f"Supervised calls to the {spec.name} CLI",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.supervisor = None
    app.state.metrics_registry = metrics.registry
    app.add_middleware(_Guard, token=token, max_body_bytes=MAX_BODY_BYTES)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(422, "invalid_request", _validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = 422 if exc.status_code == 400 else exc.status_code  # unparsable body
        category = _CATEGORY_BY_STATUS.get(status, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return _error_response(status, category, message, headers=exc.headers)

    @app.exception_handler(_ClientError)
    async def _refused(_request: Request, exc: _ClientError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(LLMError)
    async def _failed(_request: Request, exc: LLMError) -> JSONResponse:
        return _llm_error_response(exc)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error(
            "internal error serving %s %s",
            request.method,
            request.url.path,
            exc_info=exc,
            extra={"cli": spec.name},
        )
        return _error_response(500, "internal", "internal server error (see the server log)")

    @app.post("/ask", response_model=AskResponse, responses=_ERROR_RESPONSES)
    async def ask(body: AskRequest, request: Request) -> AskResponse | Response:
        """Run one call and return its result."""
        prompt, model = _prepare(body, spec)
        outcome: Result | _Gone = _GONE
        with state.call_slot() as slot, metrics.track() as tracked:
            with slot.abort:
                call = functools.partial(slot.supervisor.ask, prompt, model)
                outcome = await _unless_disconnected(request.receive, call)
            if isinstance(outcome, _Gone):
                tracked.outcome = "cancelled"
                if slot.abort.cancelled_caught:
                    raise _unavailable(_ABORTED)
                return Response(status_code=499)  # nobody will read it
        return _result_response(outcome)

    @app.post(
        "/stream",
        status_code=200,
        response_class=_EventStream,
        responses={200: {"content": {"text/event-stream": {}}}, **_ERROR_RESPONSES},
    )
    async def stream(body: AskRequest) -> Response:
        """Stream one call as server-sent events."""
        prompt, model = _prepare(body, spec)
        return _EventStream(state, metrics, prompt, model)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> JSONResponse:
        """Breaker state, calls in flight, restarts. Never needs the token."""
        sup = state.supervisor
        stats = sup.statistics() if sup is not None else None
        breaker_state = stats.breaker_state if stats is not None else None
        status: Literal["ok", "degraded", "draining", "starting"]
        if state.draining:
            status = "draining"
        elif sup is None:
            status = "starting"
        elif breaker_state in (CircuitState.OPEN, CircuitState.HALF_OPEN):
            status = "degraded"
        else:
            status = "ok"
        retry_after = sup.breaker.retry_after() if sup is not None and sup.breaker else None
        body = HealthResponse(
            status=status,
            cli=spec.name,
            breaker_state=breaker_state.value if breaker_state is not None else None,
            breaker_retry_after_s=retry_after,
            in_flight=stats.in_flight if stats else 0,
            restarts=stats.restarts if stats else 0,
            retries=stats.retries if stats else 0,
            processes_spawned=stats.processes_spawned if stats else 0,
        )
        code = 200 if status in ("ok", "degraded") else 503
        return JSONResponse(body.model_dump(mode="json"), status_code=code)

    @app.get("/metrics", response_class=Response)
    async def metrics_text() -> Response:
        """Prometheus text exposition."""
        return Response(metrics.render(), media_type=_PROMETHEUS_TEXT)

    return app, state
