"""The ASGI guard: bearer tokens and body size, before the app.

The API token guards every path but the public ones (``/health``, the docs pages, their
assets and ``/openapi.json``: see `_docs.is_public`). ``/metrics`` follows `MetricsAccess`:
the API token (the default), a token of its own (``--metrics-token``; the API token is
taken too), or none (``--public-metrics``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import attrs
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._docs import is_public
from ._errors import error_response

METRICS_PATH = "/metrics"


@attrs.frozen
class MetricsAccess:
    """Who may read ``/metrics``: ``public`` (anyone), else a bearer ``token`` of its own
    (None: the API token, as for every other path)."""

    token: str | None = None
    public: bool = False

    def __attrs_post_init__(self) -> None:
        if self.public and self.token is not None:
            raise ValueError("/metrics is either public or behind its own token, not both")
        if self.token is not None:
            check_token(self.token, "the metrics token")


def check_token(token: str, what: str = "the token") -> None:
    """Refuse a token no header can carry."""
    if not token or not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"{what} must be a non-empty string of printable ASCII, no spaces")


def authorized(headers: Iterable[tuple[bytes, bytes]], token: bytes | None) -> bool:
    """Whether the headers carry ``Authorization: Bearer <token>`` (always, without a token)."""
    if token is None:
        return True
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer":
                return hmac.compare_digest(credentials.strip(), token)
    return False


def declared_too_large(headers: Iterable[tuple[bytes, bytes]], max_body_bytes: int) -> bool:
    """Whether a ``Content-Length`` header announces more than `max_body_bytes`."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > max_body_bytes:
                return True
    return False


class RequestGuard:
    """Bearer token and body size, checked before the app sees anything.

    The body is read here, up to `max_body_bytes`, and replayed to the app in one message.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body_bytes: int,
        metrics: MetricsAccess | None = None,
    ) -> None:
        self.app = app
        self._token = token.encode() if token is not None else None
        self._max = max_body_bytes
        self._metrics = metrics or MetricsAccess()
        self._metrics_token = (
            self._metrics.token.encode() if self._metrics.token is not None else None
        )

    def allowed(self, path: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether a request for ``path`` with ``headers`` may go on."""
        if is_public(path):
            return True
        if path == METRICS_PATH:
            if self._metrics.public:
                return True
            if self._metrics_token is not None:
                headers = list(headers)
                return authorized(headers, self._metrics_token) or (
                    self._token is not None and authorized(headers, self._token)
                )
        return authorized(headers, self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        if not self.allowed(scope["path"], headers):
            response = error_response(
                401,
                "unauthorized",
                "a valid 'Authorization: Bearer <token>' header is required",
                headers={"WWW-Authenticate": 'Bearer realm="llmsup"'},
            )
            await response(scope, receive, send)
            return
        if declared_too_large(headers, self._max):
            await self._too_large(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            return  # the client left: nobody to answer
        if len(body) > self._max:
            await self._too_large(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or only its first chunks past the limit; None on a disconnect."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self._max or not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self._max} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
