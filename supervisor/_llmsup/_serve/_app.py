"""The ASGI app: `create_app`, its lifespan, routes and error handlers."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from actors import CliSpec, LLMError, TimeoutConfig
from supervisor import (
    CircuitBreaker,
    CircuitState,
    Result,
    RetryConfig,
    Supervisor,
    SupervisorStatistics,
    open_supervisor,
)

from ._calls import GONE, Gone, prepare_call, result_response, unless_disconnected
from ._docs import OPENAPI_URL, add_docs
from ._errors import (
    ClientError,
    error_response,
    http_error_parts,
    llm_error_response,
    unavailable,
    validation_message,
)
from ._guard import MetricsAccess, RequestGuard, check_token
from ._metrics import PROMETHEUS_TEXT, ServeMetrics
from ._models import AskRequest, AskResponse, ErrorBody, HealthResponse
from ._per_call import CallLimits, request_deadline
from ._sse import EventStreamResponse
from ._state import ABORTED, ServeState

logger = logging.getLogger("llmsup.serve")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body read (a maximal prompt JSON-escaped, plus a schema)."""

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 403, 422, 429, 502, 503, 504)
}

HealthStatus = Literal["ok", "degraded", "draining", "starting"]


def create_app(
    spec: CliSpec,
    *,
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
) -> FastAPI:
    """The ``llmsup serve`` ASGI app for `spec`; see the module docs for the API.

    ``fallback``: further CLIs a call moves to (``open_supervisor(fallback=...)``); the
    answer's ``cli`` field names the one that answered. ``system``: the default system
    prompt (a request's ``system`` replaces it). ``cwd``: the folder every call runs in;
    None (the default) gives each call a fresh scratch folder, removed after it.
    ``metrics``: who may read ``/metrics`` (default: whoever has ``token``).
    ``limits``: what a request's own ``timeout``, ``model`` and ``tools`` may be (default:
    any timeout; no per-request model, and tools only as the spec's). ``standby``:
    processes kept started ahead of calls (``open_supervisor(standby=...)``).

    The app's lifespan opens one supervisor (``open_supervisor(spec, retry=..., ...)``),
    available as ``app.state.supervisor`` while it runs; leaving the lifespan stops every CLI
    process. Metrics live in a registry of the app's own (``app.state.metrics_registry``).
    ``token``: when given, every endpoint but ``/health`` requires it as a bearer token.

    Raises:
        TypeError, ValueError: for a bad spec, concurrency or token (before anything runs).
    """
    return build_app(
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
    )[0]


def check_app_arguments(spec: object, concurrency: object, token: str | None) -> None:
    """Refuse a bad spec, concurrency or token before anything runs."""
    if not isinstance(spec, CliSpec):
        raise TypeError(f"create_app() needs a CliSpec (see actors.command), got {spec!r}")
    # The same check (and message) as open_supervisor's, made before the lifespan starts.
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if token is not None:
        check_token(token)


def build_app(
    spec: CliSpec,
    *,
    retry: RetryConfig | None,
    timeouts: TimeoutConfig | None,
    breaker: CircuitBreaker | None,
    concurrency: int,
    token: str | None,
    fallback: Sequence[CliSpec] = (),
    system: str | None = None,
    cwd: str | None = None,
    metrics: MetricsAccess | None = None,
    limits: CallLimits | None = None,
    standby: int = 0,
) -> tuple[FastAPI, ServeState]:
    """The app and the state `serve` drains (`create_app` keeps only the app)."""
    # Long because: one flat sequence building the app; each step is a call.
    check_app_arguments(spec, concurrency, token)
    refusal = spec.standby_refusal_reason() if standby else None
    if refusal is not None:
        raise ValueError(f"standby is not possible for {spec.name}: {refusal}")
    state = ServeState(
        spec, system=system, cwd=cwd, fallback=tuple(fallback), limits=limits or CallLimits()
    )
    counters = ServeMetrics(state)

    supervised = functools.partial(
        open_supervisor,
        spec,
        retry=retry,
        timeouts=timeouts,
        breaker=breaker,
        concurrency=concurrency,
        fallback=fallback,
        standby=standby,
        standby_scratch=cwd is None,  # a call's standby process waits in its own folder
    )
    app = FastAPI(
        title="llmsup",
        summary=f"Supervised calls to the {spec.name} CLI",
        lifespan=_lifespan(state, supervised),
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_URL,
    )
    app.state.supervisor = None
    app.state.metrics_registry = counters.registry
    app.add_middleware(RequestGuard, token=token, max_body_bytes=MAX_BODY_BYTES, metrics=metrics)
    add_docs(app, bearer=token is not None)
    _add_error_handlers(app, spec)
    _add_call_routes(app, state, counters)
    _add_status_routes(app, state, counters)
    return app, state


def _lifespan(
    state: ServeState, supervised: Callable[[], AbstractAsyncContextManager[Supervisor]]
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: one supervisor while it runs; draining once it ends."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with supervised() as sup:
            state.supervisor = sup
            app.state.supervisor = sup
            try:
                yield
            finally:
                state.draining = True
                state.supervisor = None
                app.state.supervisor = None

    return lifespan


def _add_error_handlers(app: FastAPI, spec: CliSpec) -> None:
    """Every failure answered as an `ErrorBody` (see `_errors` for the mapping)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, category, message = http_error_parts(exc.status_code, exc.detail)
        return error_response(status, category, message, headers=exc.headers)

    @app.exception_handler(ClientError)
    async def _refused(_request: Request, exc: ClientError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(LLMError)
    async def _failed(_request: Request, exc: LLMError) -> JSONResponse:
        return llm_error_response(exc)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error(
            "internal error serving %s %s",
            request.method,
            request.url.path,
            exc_info=exc,
            extra={"cli": spec.name},
        )
        return error_response(500, "internal", "internal server error (see the server log)")


def _add_call_routes(app: FastAPI, state: ServeState, metrics: ServeMetrics) -> None:
    """``POST /ask`` and ``POST /stream``."""
    spec = state.spec

    @app.post("/ask", response_model=AskResponse, responses=_ERROR_RESPONSES)
    async def ask(body: AskRequest, request: Request) -> AskResponse | Response:
        """Run one call and return its result."""
        prompt, model = prepare_call(body, spec)
        options = state.options_of(body)
        outcome: Result | Gone = GONE
        with state.call_slot() as slot, metrics.track() as tracked:
            with slot.abort, request_deadline(options.timeout, spec.name):
                call = functools.partial(
                    slot.supervisor.ask,
                    prompt,
                    model,
                    system=options.system,
                    adapt=options.adapt,
                    **state.folder,
                )
                outcome = await unless_disconnected(request.receive, call)
            if isinstance(outcome, Gone):
                tracked.outcome = "cancelled"
                if slot.abort.cancelled_caught:
                    raise unavailable(ABORTED)
                return Response(status_code=499)  # nobody will read it
            tracked.cli = outcome.cli
        return result_response(outcome)

    @app.post(
        "/stream",
        status_code=200,
        response_class=EventStreamResponse,
        responses={200: {"content": {"text/event-stream": {}}}, **_ERROR_RESPONSES},
    )
    async def stream(
        body: AskRequest,
        raw: bool = Query(
            default=False,
            description="Also send the CLI's own events the typed model has no type for "
            "(``event: raw``), and each event's original CLI object as its ``raw`` field.",
        ),
    ) -> Response:
        """Stream one call as server-sent events (the typed events; ``?raw=1``: the CLI's
        own internal events too)."""
        prompt, model = prepare_call(body, spec)
        return EventStreamResponse(state, metrics, prompt, model, state.options_of(body), raw=raw)


def _add_status_routes(app: FastAPI, state: ServeState, metrics: ServeMetrics) -> None:
    """``GET /health`` and ``GET /metrics``."""

    @app.get("/health", response_model=HealthResponse)
    async def health() -> JSONResponse:
        """Breaker state, calls in flight, restarts. Never needs the token."""
        sup = state.supervisor
        stats = sup.statistics() if sup is not None else None
        retry_after = sup.breaker.retry_after() if sup is not None and sup.breaker else None
        body, code = health_response(
            state.spec.name, draining=state.draining, stats=stats, retry_after=retry_after
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=code)

    @app.get("/metrics", response_class=Response)
    async def metrics_text() -> Response:
        """Prometheus text exposition."""
        return Response(metrics.render(), media_type=PROMETHEUS_TEXT)


def health_status(draining: bool, stats: SupervisorStatistics | None) -> HealthStatus:
    """``stats`` is None until the supervisor runs; an open or half-open breaker degrades."""
    if draining:
        return "draining"
    if stats is None:
        return "starting"
    if stats.breaker_state in (CircuitState.OPEN, CircuitState.HALF_OPEN):
        return "degraded"
    return "ok"


def health_response(
    cli: str,
    *,
    draining: bool,
    stats: SupervisorStatistics | None,
    retry_after: float | None,
) -> tuple[HealthResponse, int]:
    """The ``/health`` body and its status: 200 when ok or degraded, else 503."""
    status = health_status(draining, stats)
    breaker_state = stats.breaker_state if stats is not None else None
    body = HealthResponse(
        status=status,
        cli=cli,
        breaker_state=breaker_state.value if breaker_state is not None else None,
        breaker_retry_after_s=retry_after,
        in_flight=stats.in_flight if stats else 0,
        restarts=stats.restarts if stats else 0,
        retries=stats.retries if stats else 0,
        processes_spawned=stats.processes_spawned if stats else 0,
    )
    return body, 200 if status in ("ok", "degraded") else 503
