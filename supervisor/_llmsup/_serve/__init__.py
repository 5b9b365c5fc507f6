"""``llmsup serve``: one supervisor behind a small HTTP API (FastAPI on Hypercorn's trio worker).

`create_app` builds the ASGI app; its lifespan owns one `open_supervisor`, so every CLI process
the app starts is stopped when the app stops. `serve` runs it until SIGTERM, SIGINT or SIGHUP.

Endpoints (all but ``/health`` need ``Authorization: Bearer <token>`` when a token is set):

- ``POST /ask`` ``{"prompt": str, "output_schema": {...} | null, "system": str | null}`` →
  `AskResponse`, whose ``cli`` names the CLI that answered (a fallback's, when one did).
  ``system`` replaces the server's ``--system``; it is passed natively where the CLI takes
  one. Each call runs in a fresh scratch folder of its own, removed after it, unless the
  server was given ``--cwd``.
- ``POST /stream`` (same body) → ``text/event-stream``: one ``event: <type>`` / ``data: <json>``
  per typed event (``session_started``, ``text_delta``, ``tool_use``, ...; the CLI's own
  ``result`` event is folded into the final event, and an in-band CLI ``error`` event is sent
  as ``cli_error`` so the two names below stay terminal), then exactly one final
  ``event: result`` (an `AskResponse`) or ``event: error`` (an `ErrorBody`). A call that fails
  before its first event gets a plain JSON error response with the HTTP status below instead.
- ``GET /health`` → `HealthResponse` (503 while draining).
- ``GET /metrics`` → Prometheus text (a per-app registry, never the global one).

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
                                               carry, an unusable ``output_schema``
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
from ._metrics import OUTCOMES as OUTCOMES
from ._models import (
    MAX_PROMPT_CHARS,
    AskRequest,
    AskResponse,
    ErrorBody,
    ErrorDetail,
    HealthResponse,
)
from ._server import TOKEN_ENV, serve
from ._sse import SSE_PING_S as SSE_PING_S

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROMPT_CHARS",
    "TOKEN_ENV",
    "AskRequest",
    "AskResponse",
    "ErrorBody",
    "ErrorDetail",
    "HealthResponse",
    "create_app",
    "serve",
]
