"""Failures to HTTP: the status, ``Retry-After`` and `ErrorBody` of each kind of error."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.responses import JSONResponse

from actors import ErrorCategory, LLMError

from ._models import ErrorBody, ErrorDetail

DEFAULT_RETRY_AFTER_S = 1.0
"""``Retry-After`` of a rate limit without a hint, and of a draining server."""

_STATUS_BY_CATEGORY: dict[ErrorCategory, int] = {
    ErrorCategory.RATE_LIMIT: 429,
    ErrorCategory.CIRCUIT_OPEN: 503,
    ErrorCategory.TIMEOUT: 504,
    ErrorCategory.AUTH_FAILURE: 502,
    ErrorCategory.MALFORMED_OUTPUT: 502,
    ErrorCategory.RETRYABLE: 502,
    ErrorCategory.PERMANENT: 502,
}

CATEGORY_BY_STATUS = {
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


def http_error_parts(status_code: int, detail: object) -> tuple[int, str, str]:
    """The status, category and message answering a routing or HTTP error.

    A 400 is an unparsable body: answered 422 like any other invalid request.
    """
    status = 422 if status_code == 400 else status_code
    category = CATEGORY_BY_STATUS.get(status, "http_error")
    message = detail if isinstance(detail, str) else "request failed"
    return status, category, message


class ClientError(Exception):
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
        return error_response(
            self.status,
            self.category,
            self.message,
            retry_after=self.retry_after,
            headers=self.headers,
        )


def error_body(category: str, message: str, retry_after: float | None = None) -> ErrorBody:
    return ErrorBody(error=ErrorDetail(category=category, message=message, retry_after=retry_after))


def error_response(
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
    body = error_body(category, message, retry_after)
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=all_headers)


def unavailable(message: str) -> ClientError:
    return ClientError(
        503,
        "unavailable",
        message,
        retry_after=DEFAULT_RETRY_AFTER_S,
        headers={"Connection": "close"},
    )


def llm_error_parts(error: LLMError) -> tuple[int, float | None]:
    """The HTTP status and the retry-after seconds for a failed call.

    Client faults (an empty prompt, one no argv can carry) never get this far: `prepare_call`
    refuses them with 422 before a CLI runs, so a PERMANENT error here is the CLI's.
    """
    status = _STATUS_BY_CATEGORY.get(error.category, 502)
    retry_after: float | None = None
    if error.category in (ErrorCategory.RATE_LIMIT, ErrorCategory.CIRCUIT_OPEN):
        retry_after = error.retry_after or DEFAULT_RETRY_AFTER_S
    return status, retry_after


def llm_error_response(error: LLMError) -> JSONResponse:
    status, retry_after = llm_error_parts(error)
    return error_response(status, error.category.value, error.message, retry_after=retry_after)


def llm_error_body(error: LLMError) -> ErrorBody:
    _, retry_after = llm_error_parts(error)
    return error_body(error.category.value, error.message, retry_after)


def validation_message(errors: Iterable[Any]) -> str:
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
