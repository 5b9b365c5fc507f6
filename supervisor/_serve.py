"""``llmsup serve``: one supervisor behind a small HTTP API (FastAPI on Hypercorn's trio worker).

`create_app` builds the ASGI app; its lifespan owns one `open_supervisor`, so every CLI process
the app starts is stopped when the app stops. `serve` runs it until SIGTERM or SIGINT.

Endpoints (all but ``/health`` need ``Authorization: Bearer <token>`` when a token is set):

- ``POST /ask`` ``{"prompt": str, "output_schema": {...} | null}`` → `AskResponse`.
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
them). The answer is checked by a small JSON-Schema validator (no third-party validator is
needed) that supports ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``items`` (one schema), ``min/maxItems``, ``uniqueItems``,
``min/maxLength``, ``minimum``, ``maximum``, ``exclusiveMinimum/Maximum`` (numbers),
``multipleOf``, ``min/maxProperties``, ``anyOf``, ``allOf``, ``oneOf``, ``not`` and local
``$ref`` into ``$defs``/``definitions`` (what pydantic's ``model_json_schema`` emits);
annotations (``title``, ``description``, ``format``, ...) are ignored. Any other keyword
(``pattern``, ``prefixItems``, ``if``, ...) is refused with 422 rather than silently not
checked. On ``/stream`` the schema instructions go into the prompt and the final text is
checked once (a stream cannot be re-asked).

Shutdown (`serve`): the first SIGTERM/SIGINT starts draining: new calls are refused with 503
(``Connection: close``), ``/health`` turns 503, and calls in flight get up to ``grace_s`` to
finish. Calls still running then are cancelled (their CLI processes stopped, each stop
sequence bounded by ``TimeoutConfig.graceful_shutdown``) and answered 503 ``unavailable``, or,
for a stream already under way, end with ``event: error`` of that category. Then Hypercorn
stops listening (1 s for last responses to flush), and the lifespan closes the supervisor.
`serve` returns 0. A second signal cancels everything at once (every CLI is still stopped)
and `serve` returns 1. Hypercorn keeps accepting connections while draining, so a late
client gets a clean 503 rather than a connection stuck in the listen backlog.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hmac
import json
import logging
import math
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

import attrs
import trio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors._errors import ErrorCategory, LLMError
from actors._events import ErrorReport, Event, FinalResult, Usage
from actors._spec import CliSpec
from actors._timeouts import TimeoutConfig

from ._backoff import RetryConfig
from ._breaker import CircuitBreaker, CircuitState
from ._json import JSONExtractor, schema_instructions
from ._result import Result
from ._supervisor import Supervisor, check_concurrency, open_supervisor

if TYPE_CHECKING:
    from hypercorn.typing import Framework

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROMPT_CHARS",
    "TOKEN_ENV",
    "AskRequest",
    "AskResponse",
    "ErrorBody",
    "ErrorDetail",
    "HealthResponse",
    "SchemaError",
    "check_schema",
    "create_app",
    "serve",
    "validate_json",
]

logger = logging.getLogger("llmsup.serve")

TOKEN_ENV = "LLMSUP_TOKEN"
"""The environment variable `serve` reads the bearer token from when none is passed."""

MAX_PROMPT_CHARS = 1_000_000
"""The longest prompt accepted, in characters."""

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body read (a maximal prompt JSON-escaped, plus a schema)."""

DEFAULT_RETRY_AFTER_S = 1.0
"""``Retry-After`` of a rate limit without a hint, and of a draining server."""

SSE_PING_S = 15.0
"""A comment line is sent on an open event stream after this much silence."""

_STATUS_BY_CATEGORY: dict[ErrorCategory, int] = {
    ErrorCategory.RATE_LIMIT: 429,
    ErrorCategory.CIRCUIT_OPEN: 503,
    ErrorCategory.TIMEOUT: 504,
    ErrorCategory.AUTH_FAILURE: 502,
    ErrorCategory.MALFORMED_OUTPUT: 502,
    ErrorCategory.RETRYABLE: 502,
    ErrorCategory.PERMANENT: 502,
}

_CATEGORY_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}

_BREAKER_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}

OUTCOMES = ("ok", *(c.value for c in ErrorCategory), "cancelled", "internal")
"""Values of the ``outcome`` label of ``llmsup_calls_total``."""

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

T = TypeVar("T")


# ------------------------------------------------------------------------------- the models


class AskRequest(BaseModel):
    """The body of ``POST /ask`` and ``POST /stream``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    output_schema: dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema the answer must match (see the module docs for the subset).",
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("the prompt is blank")
        return prompt


class AskResponse(BaseModel):
    """A successful call."""

    text: str
    data: Any = None
    session_id: str | None = None
    attempts: int
    duration_s: float
    usage: Usage | None = None
    cost_usd: float | None = None
    cli: str
    request_id: str = ""
    reasks: int = 0


class ErrorDetail(BaseModel):
    """``category``: an `ErrorCategory` value, or one of the server's own (see the module
    docs); ``retry_after``: seconds, set with 429 and 503."""

    category: str
    message: str
    retry_after: float | None = None


class ErrorBody(BaseModel):
    """Every error response's body (and the data of a final ``event: error``)."""

    error: ErrorDetail


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "draining", "starting"]
    cli: str
    breaker_state: Literal["closed", "open", "half_open"] | None
    breaker_retry_after_s: float | None
    in_flight: int
    restarts: int
    retries: int
    processes_spawned: int


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 422, 429, 502, 503, 504)
}


# ------------------------------------------------------------------------- errors to HTTP


class _ClientError(Exception):
    """A request refused before any CLI runs."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return _error_response(
            self.status,
            self.category,
            self.message,
            retry_after=self.retry_after,
            headers=self.headers,
        )


def _error_body(category: str, message: str, retry_after: float | None = None) -> ErrorBody:
    return ErrorBody(error=ErrorDetail(category=category, message=message, retry_after=retry_after))


def _error_response(
    status: int,
    category: str,
    message: str,
    *,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    all_headers = dict(headers or {})
    if retry_after is not None:
        all_headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    body = _error_body(category, message, retry_after)
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=all_headers)


def _unavailable(message: str) -> _ClientError:
    return _ClientError(
        503,
        "unavailable",
        message,
        retry_after=DEFAULT_RETRY_AFTER_S,
        headers={"Connection": "close"},
    )


def _llm_error_parts(error: LLMError) -> tuple[int, float | None]:
    """The HTTP status and the retry-after seconds for a failed call.

    Client faults (an empty prompt, one no argv can carry) never get this far: `_prepare`
    refuses them with 422 before a CLI runs, so a PERMANENT error here is the CLI's.
    """
    status = _STATUS_BY_CATEGORY.get(error.category, 502)
    retry_after: float | None = None
    if error.category in (ErrorCategory.RATE_LIMIT, ErrorCategory.CIRCUIT_OPEN):
        retry_after = error.retry_after or DEFAULT_RETRY_AFTER_S
    return status, retry_after


def _llm_error_response(error: LLMError) -> JSONResponse:
    status, retry_after = _llm_error_parts(error)
    return _error_response(status, error.category.value, error.message, retry_after=retry_after)


def _llm_error_body(error: LLMError) -> ErrorBody:
    _, retry_after = _llm_error_parts(error)
    return _error_body(error.category.value, error.message, retry_after)


def _validation_message(errors: Iterable[Any]) -> str:
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if loc[:1] == ["body"] and len(loc) > 1:
            loc = loc[1:]
        where = ".".join(loc) or "body"
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "model_attributes_type" and where == "body":
            message = "must be a JSON object sent as application/json"
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error")
            message = f"the body is not valid JSON ({detail})" if detail else "not valid JSON"
            where = "body"
        parts.append(f"{where}: {message}")
    return "; ".join(parts[:5]) or "invalid request"


# -------------------------------------------------------------- the JSON-Schema subset check


class SchemaError(ValueError):
    """An ``output_schema`` this server cannot check."""


_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "format",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
    }
)
_SCHEMA_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_COUNT_KEYWORDS = (
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
)
_NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_SUPPORTED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "uniqueItems",
        "anyOf",
        "allOf",
        "oneOf",
        "not",
        "$ref",
        "$defs",
        "definitions",
        *_COUNT_KEYWORDS,
        *_NUMBER_KEYWORDS,
    }
)
_MAX_SCHEMA_ERRORS = 5
_MAX_DEPTH = 200


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _resolve_ref(root: Any, ref: str) -> Any:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise SchemaError(f"$ref {ref!r}: only local references ('#/$defs/...') are supported")
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise SchemaError(f"$ref {ref!r} does not resolve")
    return node


def check_schema(schema: object) -> None:
    """Raise `SchemaError` (naming where) unless `validate_json` can check `schema` fully."""
    if not isinstance(schema, dict):
        raise SchemaError("output_schema must be a JSON object")
    try:
        _check_node(schema, "#", schema, 0)
    except RecursionError:
        raise SchemaError("output_schema is nested too deeply") from None


def _check_node(node: object, where: str, root: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise SchemaError("output_schema is nested too deeply")
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        raise SchemaError(f"{where}: a schema must be an object or a boolean")
    for key in node:
        if key not in _SUPPORTED and key not in _ANNOTATIONS:
            raise SchemaError(
                f"{where}: the keyword {key!r} is not supported "
                f"(supported: {', '.join(sorted(_SUPPORTED))})"
            )

    def sub(value: object, at: str) -> None:
        _check_node(value, at, root, depth + 1)

    if "type" in node:
        kinds = node["type"]
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) or not kinds or any(k not in _SCHEMA_TYPES for k in kinds):
            raise SchemaError(f"{where}/type: must be one of {', '.join(_SCHEMA_TYPES)} or a list")
    if "enum" in node and not isinstance(node["enum"], list):
        raise SchemaError(f"{where}/enum: must be an array")
    for key in ("properties", "$defs", "definitions"):
        if key in node:
            if not isinstance(node[key], dict):
                raise SchemaError(f"{where}/{key}: must be an object")
            for name, value in node[key].items():
                sub(value, f"{where}/{key}/{name}")
    if "required" in node and (
        not isinstance(node["required"], list)
        or not all(isinstance(n, str) for n in node["required"])
    ):
        raise SchemaError(f"{where}/required: must be an array of strings")
    for key in ("additionalProperties", "items", "not"):
        if key in node:
            if key == "items" and isinstance(node[key], list):
                raise SchemaError(f"{where}/items: the array (tuple) form is not supported")
            sub(node[key], f"{where}/{key}")
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            if not isinstance(node[key], list) or not node[key]:
                raise SchemaError(f"{where}/{key}: must be a non-empty array of schemas")
            for index, value in enumerate(node[key]):
                sub(value, f"{where}/{key}/{index}")
    for key in _COUNT_KEYWORDS:
        value = node.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SchemaError(f"{where}/{key}: must be a non-negative integer")
    for key in _NUMBER_KEYWORDS:
        if key in node and not (_is_number(node[key]) and math.isfinite(node[key])):
            raise SchemaError(f"{where}/{key}: must be a number")
    if "multipleOf" in node and node["multipleOf"] <= 0:
        raise SchemaError(f"{where}/multipleOf: must be greater than 0")
    if "uniqueItems" in node and not isinstance(node["uniqueItems"], bool):
        raise SchemaError(f"{where}/uniqueItems: must be a boolean")
    if "$ref" in node:
        if not isinstance(node["$ref"], str):
            raise SchemaError(f"{where}/$ref: must be a string")
        target = _resolve_ref(root, node["$ref"])
        if not isinstance(target, dict | bool):
            raise SchemaError(f"{where}/$ref: {node['$ref']!r} is not a schema")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _has_type(value: object, kind: str) -> bool:
    actual = _json_type(value)
    if kind == "number":
        return actual in ("integer", "number")
    if kind == "integer":
        return actual == "integer" or (isinstance(value, float) and value.is_integer())
    return actual == kind


def _json_equal(a: object, b: object) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def validate_json(value: object, schema: Mapping[str, Any] | bool) -> list[str]:
    """Problems of `value` against `schema` (checked with `check_schema`); empty if none."""
    errors: list[str] = []
    try:
        _validate(value, schema, "$", schema, errors, 0)
    except RecursionError:
        errors.append("$: nested too deeply to check")
    return errors[:_MAX_SCHEMA_ERRORS]


def _validate(value: Any, node: Any, path: str, root: Any, errors: list[str], depth: int) -> None:
    if len(errors) >= _MAX_SCHEMA_ERRORS:
        return
    if depth > _MAX_DEPTH:
        errors.append(f"{path}: nested too deeply to check")
        return
    if node is True:
        return
    if node is False:
        errors.append(f"{path}: no value is allowed here")
        return

    def problem(message: str) -> None:
        errors.append(f"{path}: {message}")

    def sub(inner: Any, schema: Any, at: str, into: list[str] | None = None) -> None:
        _validate(inner, schema, at, root, errors if into is None else into, depth + 1)

    def matches(schema: Any) -> bool:
        trial: list[str] = []
        sub(value, schema, path, trial)
        return not trial

    if "$ref" in node:
        sub(value, _resolve_ref(root, node["$ref"]), path)
    if "type" in node:
        kinds = [node["type"]] if isinstance(node["type"], str) else node["type"]
        if not any(_has_type(value, k) for k in kinds):
            problem(f"expected {' or '.join(kinds)}, got {_json_type(value)}")
            return
    if "const" in node and not _json_equal(value, node["const"]):
        problem(f"must be {json.dumps(node['const'])}")
    if "enum" in node and not any(_json_equal(value, v) for v in node["enum"]):
        problem(f"must be one of {json.dumps(node['enum'])[:200]}")
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            problem(f"shorter than {node['minLength']} characters")
        if "maxLength" in node and len(value) > node["maxLength"]:
            problem(f"longer than {node['maxLength']} characters")
    if _is_number(value):
        if "minimum" in node and value < node["minimum"]:
            problem(f"less than {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            problem(f"greater than {node['maximum']}")
        if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
            problem(f"not greater than {node['exclusiveMinimum']}")
        if "exclusiveMaximum" in node and value >= node["exclusiveMaximum"]:
            problem(f"not less than {node['exclusiveMaximum']}")
        if "multipleOf" in node:
            quotient = value / node["multipleOf"]
            if not math.isclose(quotient, round(quotient), rel_tol=1e-9, abs_tol=1e-9):
                problem(f"not a multiple of {node['multipleOf']}")
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            problem(f"fewer than {node['minItems']} items")
        if "maxItems" in node and len(value) > node["maxItems"]:
            problem(f"more than {node['maxItems']} items")
        if node.get("uniqueItems") and any(
            _json_equal(value[i], value[j])
            for i in range(len(value))
            for j in range(i + 1, len(value))
        ):
            problem("items are not unique")
        if "items" in node:
            for index, item in enumerate(value):
                sub(item, node["items"], _child(path, index))
    if isinstance(value, dict):
        if len(value) < node.get("minProperties", 0):
            problem(f"fewer than {node['minProperties']} properties")
        if "maxProperties" in node and len(value) > node["maxProperties"]:
            problem(f"more than {node['maxProperties']} properties")
        for name in node.get("required", ()):
            if name not in value:
                problem(f"missing required property {json.dumps(name)}")
        properties = node.get("properties", {})
        for key, item in value.items():
            if key in properties:
                sub(item, properties[key], _child(path, key))
            elif "additionalProperties" in node:
                if node["additionalProperties"] is False:
                    problem(f"unexpected property {json.dumps(key)[:100]}")
                else:
                    sub(item, node["additionalProperties"], _child(path, key))
    if "allOf" in node:
        for schema in node["allOf"]:
            sub(value, schema, path)
    if "anyOf" in node and not any(matches(s) for s in node["anyOf"]):
        problem("matches none of anyOf")
    if "oneOf" in node:
        count = sum(matches(s) for s in node["oneOf"])
        if count != 1:
            problem(f"matches {count} of oneOf, not exactly one")
    if "not" in node and matches(node["not"]):
        problem("matches the schema in 'not'")


class _SchemaAnswer(RootModel[Any]):
    """Any JSON that matches `json_schema`; subclassed per schema by `_answer_model`."""

    json_schema: ClassVar[dict[str, Any]] = {}

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return copy.deepcopy(cls.json_schema)  # a copy the caller may change

    @model_validator(mode="after")
    def _matches_schema(self) -> _SchemaAnswer:
        problems = validate_json(self.root, type(self).json_schema)
        if problems:
            raise PydanticCustomError(
                "json_schema", "{problems}", {"problems": "; ".join(problems)}
            )
        return self


@functools.lru_cache(maxsize=64)
def _model_for(canonical_schema: str) -> type[_SchemaAnswer]:
    schema = json.loads(canonical_schema)
    return type("OutputSchema", (_SchemaAnswer,), {"json_schema": schema, "__module__": __name__})


def _answer_model(schema: dict[str, Any]) -> type[_SchemaAnswer]:
    try:
        check_schema(schema)
    except SchemaError as exc:
        raise _ClientError(422, "invalid_request", f"output_schema: {exc}") from None
    return _model_for(json.dumps(schema, sort_keys=True, separators=(",", ":")))


# -------------------------------------------------------------------------------- metrics


@attrs.define
class _Tracked:
    outcome: str | None = None


class _SupervisorCollector:
    """Exposes the supervisor's own counters at scrape time."""

    def __init__(self, state: _ServeState) -> None:
        self._state = state

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._state.supervisor)

    @staticmethod
    def _families(sup: Supervisor | None) -> list[Metric]:
        stats = sup.statistics() if sup is not None else None
        state = stats.breaker_state if stats is not None else None
        return [
            GaugeMetricFamily(
                "llmsup_in_flight",
                "Calls in progress in the supervisor (queued for a slot included).",
                value=stats.in_flight if stats else 0,
            ),
            CounterMetricFamily(
                "llmsup_retries",
                "Attempts retried after a failure.",
                value=stats.retries if stats else 0,
            ),
            CounterMetricFamily(
                "llmsup_restarts",
                "Restarts of long-lived children (warm CLI actors).",
                value=stats.restarts if stats else 0,
            ),
            CounterMetricFamily(
                "llmsup_processes_spawned",
                "CLI processes started.",
                value=stats.processes_spawned if stats else 0,
            ),
            CounterMetricFamily(
                "llmsup_breaker_rejections",
                "Attempts refused by the open circuit breaker.",
                value=stats.breaker_rejections if stats else 0,
            ),
            GaugeMetricFamily(
                "llmsup_breaker_state",
                "Circuit breaker state: 0 closed (or no breaker), 1 half-open, 2 open.",
                value=_BREAKER_GAUGE[state] if state is not None else 0,
            ),
        ]


class _Metrics:
    def __init__(self, state: _ServeState) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "llmsup_calls",
            "Calls answered, by outcome: ok or the error category.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.calls.labels(outcome=outcome)
        self.duration = Histogram(
            "llmsup_call_duration_seconds",
            "Wall time of calls, retries and backoff included.",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_SupervisorCollector(state))

    @contextlib.contextmanager
    def track(self) -> Iterator[_Tracked]:
        """Count one call; its outcome is ``tracked.outcome``, else inferred from how it ends."""
        tracked = _Tracked()
        started = trio.current_time()
        try:
            yield tracked
        except LLMError as error:
            tracked.outcome = tracked.outcome or error.category.value
            raise
        except trio.Cancelled:
            tracked.outcome = tracked.outcome or "cancelled"
            raise
        except BaseException:
            tracked.outcome = tracked.outcome or "internal"
            raise
        finally:
            self.calls.labels(outcome=tracked.outcome or "ok").inc()
            self.duration.observe(trio.current_time() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# ------------------------------------------------------------------------ the app's state


@attrs.define(eq=False)
class _Slot:
    """An admitted call: its supervisor, and the scope `_ServeState.abort_calls` cancels."""

    supervisor: Supervisor
    abort: trio.CancelScope = attrs.field(factory=trio.CancelScope)


_ABORTED = "the server shut down before the call finished"


@attrs.define(eq=False)
class _ServeState:
    spec: CliSpec
    supervisor: Supervisor | None = None
    draining: bool = False
    _slots: set[_Slot] = attrs.field(factory=set)
    _idle: trio.Event = attrs.field(factory=trio.Event)

    @property
    def active(self) -> int:
        return len(self._slots)

    @contextlib.contextmanager
    def call_slot(self) -> Iterator[_Slot]:
        """Admit one call (refused with 503 while starting or draining)."""
        if self.draining:
            raise _unavailable("the server is shutting down")
        if self.supervisor is None:
            raise _unavailable("the server is not running")
        slot = _Slot(self.supervisor)
        self._slots.add(slot)
        try:
            yield slot
        finally:
            self._slots.discard(slot)
            if not self._slots:
                self._idle.set()
                self._idle = trio.Event()

    async def wait_idle(self) -> None:
        while self._slots:
            await self._idle.wait()

    def abort_calls(self) -> None:
        """Cancel every admitted call; each then answers 503 (or ends its stream so)."""
        for slot in self._slots:
            slot.abort.cancel()


# ---------------------------------------------------------------------------- the handlers


def _result_response(result: Result, data: Any = None) -> AskResponse:
    if data is None and isinstance(result.data, RootModel):
        data = result.data.root
    return AskResponse(
        text=result.text,
        data=data,
        session_id=result.session_id,
        attempts=result.attempts,
        duration_s=result.duration_s,
        usage=result.usage,
        cost_usd=result.cost_usd,
        cli=result.cli,
        request_id=result.request_id,
        reasks=result.reasks,
    )


def _prepare(body: AskRequest, spec: CliSpec) -> tuple[str, type[_SchemaAnswer] | None]:
    """Refuse (422) what no CLI could be given, before anything is started."""
    model = _answer_model(body.output_schema) if body.output_schema is not None else None
    full = body.prompt + schema_instructions(model) if model is not None else body.prompt
    try:
        full.encode("utf-8")
    except UnicodeEncodeError:
        raise _ClientError(
            422, "invalid_request", "prompt: not valid Unicode (a lone surrogate)"
        ) from None
    try:
        spec.build_argv(full)
    except ValueError as exc:
        raise _ClientError(422, "invalid_request", f"prompt: {exc}") from None
    return body.prompt, model


class _Gone:
    """The client disconnected."""


_GONE = _Gone()


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(receive: Receive, fn: Callable[[], Awaitable[T]]) -> T | _Gone:
    """``await fn()``, cancelled (its CLI process stopped) if the client goes away first."""
    outcome: T | _Gone = _GONE
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            await _wait_for_disconnect(receive)
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        try:
            outcome = await fn()
        except Exception as exc:  # re-raised below, unwrapped
            failure = exc
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return outcome


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


@attrs.define
class _End:
    result: Result | None = None
    error: LLMError | None = None


class _EventStream(Response):
    """The ``/stream`` response: runs the call while the client listens, stops it if it leaves."""

    media_type = "text/event-stream"

    def __init__(
        self,
        state: _ServeState,
        metrics: _Metrics,
        prompt: str,
        model: type[_SchemaAnswer] | None,
    ) -> None:
        super().__init__(status_code=200)
        self._state = state
        self._metrics = metrics
        self._prompt = prompt
        self._model = model
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with self._state.call_slot() as slot:
                async with trio.open_nursery() as nursery:

                    async def watch() -> None:
                        await _wait_for_disconnect(receive)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch)
                    try:
                        with slot.abort, self._metrics.track() as tracked:
                            await self._run(slot.supervisor, tracked, scope, receive, send)
                    finally:
                        nursery.cancel_scope.cancel()
                if slot.abort.cancelled_caught:
                    await self._aborted(scope, receive, send)
        except _ClientError as refused:
            await refused.response()(scope, receive, send)

    async def _aborted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tell the client that the shutdown cut the call short."""
        if not self._started:
            await _unavailable(_ABORTED).response()(scope, receive, send)
            return
        body = _error_body("unavailable", _ABORTED, DEFAULT_RETRY_AFTER_S)
        last = _sse("error", body.model_dump_json())
        await send({"type": "http.response.body", "body": last, "more_body": False})

    async def _run(
        self, sup: Supervisor, tracked: _Tracked, scope: Scope, receive: Receive, send: Send
    ) -> None:
        prompt = self._prompt
        if self._model is not None:
            prompt += schema_instructions(self._model)

        async def start() -> None:
            self._started = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )

        async def emit(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        end = await self._relay(sup, prompt, start, emit)
        final: tuple[str, BaseModel] | None = None
        if end.result is not None:
            data: Any = None
            problem: str | None = None
            if self._model is not None:
                data, problem = JSONExtractor().extract_json(end.result.text, self._model)
            if problem is None:
                tracked.outcome = "ok"  # before the last send, which may see the disconnect
                final = ("result", _result_response(end.result, data))
            else:
                end = _End(
                    error=LLMError(
                        f"the answer did not match the output_schema: {problem}",
                        ErrorCategory.MALFORMED_OUTPUT,
                        cli=end.result.cli,
                        raw_text=end.result.text,
                    )
                )
        if final is None:
            error = end.error or LLMError("the stream ended without a result", cli=sup.cli.name)
            tracked.outcome = error.category.value
            if not self._started:
                response = _llm_error_response(error)
                await response(scope, receive, send)
                return
            final = ("error", _llm_error_body(error))
        if not self._started:
            await start()
        await send(
            {
                "type": "http.response.body",
                "body": _sse(final[0], final[1].model_dump_json()),
                "more_body": False,
            }
        )

    async def _relay(
        self,
        sup: Supervisor,
        prompt: str,
        start: Callable[[], Awaitable[None]],
        emit: Callable[[bytes], Awaitable[None]],
    ) -> _End:
        """Send the call's events (starting the response at the first one); return its end."""
        try:
            async with sup.stream(prompt) as events:
                while True:
                    event: Event | None = None
                    with trio.move_on_after(SSE_PING_S if self._started else math.inf):
                        try:
                            event = await anext(events)
                        except StopAsyncIteration:
                            return _End(result=events.result)
                        except LLMError as error:
                            return _End(error=error)
                    if event is None:
                        await emit(b": ping\n\n")  # silence on an open stream
                    elif not isinstance(event, FinalResult):  # folded into "result"
                        if not self._started:
                            await start()
                        name = "cli_error" if isinstance(event, ErrorReport) else event.type
                        await emit(_sse(name, event.model_dump_json()))
        except LLMError as error:  # the supervisor refused the stream itself
            return _End(error=error)


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


# ----------------------------------------------------------------------------- serving


class _PreboundConfig(Config):
    """Hypercorn's config serving sockets bound beforehand, so a bind error is a plain
    OSError raised before anything starts (and port 0 can be reported)."""

    def __init__(self, sockets: Sockets) -> None:
        super().__init__()
        self._prebound = sockets

    def create_sockets(self) -> Sockets:
        return self._prebound


def _bind(host: str, port: int) -> Sockets:
    binder = Config()
    binder.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    return binder.create_sockets()


def _unwrap_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    meaningful = [e for e in leaves if not isinstance(e, trio.Cancelled)] or leaves
    return meaningful[0] if len(meaningful) == 1 else group


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
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Serve `create_app(spec, ...)` on ``host:port`` until SIGTERM or SIGINT; return 0.

    Prints ``llmsup serve: <cli> on http://HOST:PORT`` (the real port when ``port`` is 0)
    once it accepts requests, and reports that URL through ``task_status`` (so
    ``await nursery.start(serve, spec, "127.0.0.1", 0)`` returns it). ``token`` defaults to
    the `TOKEN_ENV` environment variable (empty means none). ``shutdown_trigger``: an
    extra way to start the shutdown (it returns → same as the first signal).

    Shutdown: draining (new calls get 503), then up to ``grace_s`` for calls in flight,
    then the rest are cancelled, the listener closed and the supervisor closed, which
    stops every CLI process. Returns 0 after that, or 1 when a second signal forced it.

    Raises:
        OSError: the address cannot be bound (nothing has started).
        TypeError, ValueError: bad arguments (see `create_app`).
    """
    if not (grace_s >= 0 and math.isfinite(grace_s)):
        raise ValueError(f"grace_s must be a finite number >= 0, got {grace_s!r}")
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    app, state = _build_app(
        spec, retry=retry, timeouts=timeouts, breaker=breaker, concurrency=concurrency, token=token
    )
    if token is None and not _is_loopback(host):
        print(
            f"llmsup serve: warning: listening on {host} without a token "
            f"(set --token or {TOKEN_ENV})",
            file=sys.stderr,
            flush=True,
        )
    forced = False
    drain = trio.Event()
    http_stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        sockets = _bind(host, port)
        try:
            bound = sockets.insecure_sockets[0].getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            url = f"http://{shown}:{bound[1]}"
            config = _PreboundConfig(sockets)
            config.accesslog = None
            config.errorlog = logger
            config.backlog = 1024
            # After the drain: time for last responses to flush and idle connections to
            # close; anything still running then (a stalled client) is cancelled.
            config.graceful_timeout = 1.0
            stop_budget = (timeouts or TimeoutConfig()).graceful_shutdown + 5.0
            async with trio.open_nursery() as nursery:

                async def on_signals() -> None:
                    nonlocal forced
                    async for _signum in signals:
                        if not drain.is_set():
                            drain.set()
                        else:  # a second signal: stop waiting for anything
                            forced = True
                            nursery.cancel_scope.cancel()
                            return

                async def on_trigger(trigger: Callable[[], Awaitable[None]]) -> None:
                    await trigger()
                    drain.set()

                async def drain_then_stop() -> None:
                    await drain.wait()
                    state.draining = True
                    with trio.move_on_after(grace_s):
                        await state.wait_idle()
                    # Past the grace period: cancel the calls left (each stops its CLI,
                    # within its stop budget, then answers 503), then stop serving.
                    state.abort_calls()
                    with trio.move_on_after(stop_budget):
                        await state.wait_idle()
                    http_stop.set()

                async def run_http(task_status: trio.TaskStatus[list[str]]) -> None:
                    await hypercorn_serve(
                        cast("Framework", app),
                        config,
                        shutdown_trigger=http_stop.wait,
                        task_status=task_status,
                    )
                    nursery.cancel_scope.cancel()  # done: stop the watchers

                nursery.start_soon(on_signals)
                nursery.start_soon(drain_then_stop)
                if shutdown_trigger is not None:
                    nursery.start_soon(on_trigger, shutdown_trigger)
                await nursery.start(run_http)
                print(f"llmsup serve: {spec.name} on {url}", flush=True)
                task_status.started(url)
        except BaseExceptionGroup as group:
            if not forced:
                raise _unwrap_group(group) from None
        except Exception:
            if not forced:
                raise
        finally:
            for sock in sockets.insecure_sockets:
                sock.close()
    return 1 if forced else 0
