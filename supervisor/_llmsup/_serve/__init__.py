"""``llmsup serve``: one supervisor behind a small HTTP API (FastAPI on Hypercorn's trio worker).

`create_app` builds the ASGI app; its lifespan owns one `open_supervisor`, so every CLI process
the app starts is stopped when the app stops. `serve` runs it until SIGTERM, SIGINT or SIGHUP.

Endpoints. With a token, every one needs ``Authorization: Bearer <token>`` except
``/health``, the docs pages and their assets, and ``/openapi.json``; ``/metrics`` follows
`MetricsAccess` (see below):

- ``POST /ask`` `AskRequest` → `AskResponse`, whose ``cli`` names the CLI that answered (a
  fallback's, when one did). The body: ``prompt``, and optionally
  ``output_schema`` (below), ``system`` (replaces the server's ``--system``; passed
  natively where the CLI takes one, else put before the user text), ``model`` (the
  primary CLI's model: claude, codex and gemini only; a fallback keeps its own; 422 for
  a CLI without one), ``timeout`` (the most seconds the whole call may take, retries
  included; past it the CLI is stopped and the answer is 504 ``timeout``; at most
  `CallLimits.max_timeout`, ``--max-timeout``, else 422; default: only the server's
  per-attempt timeout) and ``tools`` (``none|read|edit|full``: the call's tool policy, on
  the CLI's own flags; at most the server's ``--tools``, else 403 ``forbidden`` naming
  the limit). A bad value is a 422 whose message starts with the field's name. Each call
  runs each process in a fresh scratch folder of its own, removed after it
  (``Supervisor.ask(scratch=True)``), unless the server was given ``--cwd``.
- ``POST /stream`` (same body) → ``text/event-stream``: one ``event: <type>`` / ``data: <json>``
  per typed event (``session_started``, ``text_delta``, ``tool_use``, ...; the CLI's own
  ``result`` event is folded into the final event, and an in-band CLI ``error`` event is sent
  as ``cli_error`` so the two names below stay terminal), then exactly one final
  ``event: result`` (an `AskResponse`) or ``event: error`` (an `ErrorBody`). A call that fails
  before its first event gets a plain JSON error response with the HTTP status below instead.
  ``?raw=1`` also sends the CLI's own internal events that have no typed model
  (``event: raw``, such as claude's ``system`` init) and puts each event's original CLI
  object in its ``raw`` field; by default neither is sent.
- ``GET /health`` → `HealthResponse` (503 while draining).
- ``GET /metrics`` → Prometheus text (a per-app registry, never the global one). Who may
  read it: whoever has the API token (the default), or also the holder of
  ``--metrics-token`` (a token for ``/metrics`` only, for a scraper), or anyone with
  ``--public-metrics``. ``llmsup_calls_total{cli,outcome}`` and
  ``llmsup_call_duration_seconds{cli}`` name the CLI that answered or failed last (a
  fallback's when the call moved); ``llmsup_fallbacks_total{cli}`` counts the calls that
  left each CLI; ``llmsup_standby_ready`` and ``llmsup_standby_{taken,discarded,recycled}_total``
  show ``--standby`` (`SupervisorStatistics`); then retries, restarts, processes spawned,
  breaker state and rejections, calls in flight.
- ``GET /docs`` (Swagger UI) and ``GET /redoc`` (ReDoc) work offline: their JS and CSS are
  served by the app from the `fastapi-offline` package, never from a CDN (see `_docs`).
  They need no token, since a browser cannot send one to load a page, and neither does
  ``/openapi.json``, which describes the API and runs nothing; with a token the schema
  declares a bearer scheme, so Swagger UI's "Authorize" sends it with the calls it makes.

``--standby N``: ``open_supervisor(standby=N, standby_scratch=True)``: N processes of the
CLI wait for their prompt, each in its own scratch folder, so a plain call skips the
CLI's start-up. A call with its own model or tools (another argv) spawns as usual. The CLI
must read its prompt from stdin (for the fake: ``--prompt-via stdin``).

Errors are always an `ErrorBody` ``{"error": {"category", "message", "retry_after"}}``; a
traceback never reaches a client (it is logged on ``llmsup.serve``):

=====================================  ======  ================================================
category                               status  notes
=====================================  ======  ================================================
rate_limit                             429     ``Retry-After``: the CLI's hint, else 1 s
circuit_open                           503     ``Retry-After``: until the breaker tries again
timeout                                504
auth_failure, malformed_output,        502     the CLI (or its API) failed, not the client
retryable, permanent
invalid_request                        422     bad body, empty prompt, a prompt no argv can
                                               carry, an unusable ``output_schema``, a
                                               ``timeout`` over the maximum, a ``model``
                                               the CLI cannot take
forbidden                              403     ``tools`` beyond the server's ``--tools``
unauthorized                           401     missing or wrong bearer token
payload_too_large                      413     body over `MAX_BODY_BYTES`
unavailable                            503     starting, draining or shutting down
not_found, method_not_allowed, ...     4xx     routing errors
internal                               500     a bug; details only in the server log
=====================================  ======  ================================================

``output_schema``: the schema is passed to ``Supervisor.ask`` as a pydantic model built for
the request, so the library's structured-output path applies unchanged (schema instructions in
the prompt, the CLI's native schema option where it has one, re-asks, MALFORMED_OUTPUT after
them). The schema is checked up front with the `jsonschema` library against its draft's
metaschema (``$schema``, default 2020-12); one that is not valid JSON Schema, or whose
``$ref`` points outside it, is refused with 422. Nothing is ever fetched. Answers are then
validated by it in full. On ``/stream`` the schema instructions go into the prompt and the
final text is checked once (a stream cannot be re-asked).

Shutdown (`serve`): the first SIGTERM/SIGINT/SIGHUP starts draining: new calls are refused with 503
(``Connection: close``), ``/health`` turns 503, and calls in flight get up to ``grace_s`` to
finish. Calls still running then are cancelled (their CLI processes stopped, each stop
sequence bounded by ``TimeoutConfig.graceful_shutdown``) and answered 503 ``unavailable``, or,
for a stream already under way, end with ``event: error`` of that category. Then Hypercorn
stops listening (1 s for last responses to flush), and the lifespan closes the supervisor.
`serve` returns 0. A second signal cancels everything at once (every CLI is still stopped)
and `serve` returns 1. Hypercorn keeps accepting connections while draining, so a late
client gets a clean 503 rather than a connection stuck in the listen backlog.
"""

from ._app import MAX_BODY_BYTES, create_app
from ._errors import DEFAULT_RETRY_AFTER_S as DEFAULT_RETRY_AFTER_S
from ._guard import MetricsAccess
from ._metrics import OUTCOMES as OUTCOMES
from ._models import (
    MAX_PROMPT_CHARS,
    AskRequest,
    AskResponse,
    ErrorBody,
    ErrorDetail,
    HealthResponse,
)
from ._per_call import CallLimits, Respec
from ._server import TOKEN_ENV, serve
from ._sse import SSE_PING_S as SSE_PING_S

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROMPT_CHARS",
    "TOKEN_ENV",
    "AskRequest",
    "AskResponse",
    "CallLimits",
    "ErrorBody",
    "ErrorDetail",
    "HealthResponse",
    "MetricsAccess",
    "Respec",
    "create_app",
    "serve",
]
