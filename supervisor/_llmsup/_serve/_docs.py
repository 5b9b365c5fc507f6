"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served offline.

The pages load their JavaScript and CSS from the app itself, never from a CDN: the assets
are those the `fastapi-offline` package ships (Swagger UI's bundle and CSS, ReDoc's
standalone bundle, a favicon), mounted under `DOCS_ASSETS`. ReDoc is told not to load
Google Fonts. So the pages work with no network, behind a firewall as on a laptop offline.

The pages, their assets and ``/openapi.json`` need no token (`PUBLIC_PATHS`): they describe
the API (the same for every ``llmsup serve``, plus the CLI's name) and run nothing. With a
token, the schema declares a bearer scheme, so Swagger UI's "Authorize" button takes the
token for the calls made from the page.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
DOCS_ASSETS = "/docs-assets"
OPENAPI_URL = "/openapi.json"

PUBLIC_PATHS = frozenset({"/health", DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL, OPENAPI_URL})
"""Paths served without the token (and everything under `DOCS_ASSETS`)."""


def is_public(path: str) -> bool:
    """Whether ``path`` is served without the API token."""
    return path in PUBLIC_PATHS or path.startswith(DOCS_ASSETS + "/")


def add_docs(app: FastAPI, *, bearer: bool) -> None:
    """Mount the assets and the two pages; ``bearer``: declare the token in the schema."""
    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # No badge fetched from validator.swagger.io: nothing leaves the machine.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    if bearer:
        app.openapi = lambda: _schema_with_bearer(app)  # type: ignore[method-assign]


def _schema_with_bearer(app: FastAPI) -> dict[str, Any]:
    """The schema, declaring ``Authorization: Bearer`` for every operation."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        schema["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema
