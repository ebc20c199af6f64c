"""The control-plane API: `create_app(settings)` builds it (uvicorn locally, Mangum in Lambda)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from service.api import console, errors
from service.api.auth import authenticate
from service.api.limits import MAX_BODY_BYTES, BodyTooLarge
from service.api.routes import dimensions as dimension_routes
from service.api.routes import (
    files,
    health,
    maintenance,
    reprocess,
    runs,
    sales_orders,
    tables,
)
from service.settings import Settings

DESCRIPTION = """
Control plane of the Totesys transform stage: start and inspect runs, see every ingestion file's
outcome, reprocess files, run table maintenance, and read the star schema's tables and sales
history (with Delta time travel).

**Authentication** (every endpoint but `/health`, including `/docs`, `/redoc` and
`/openapi.json`): a bearer token (`Authorization: Bearer …`, `TOTESYS_API_TOKEN`), or API
Gateway's IAM authorisation when deployed; with no token configured a local server (`totesys
serve`, loopback only) admits loopback clients, if the request is addressed to a loopback name
(`Host`: 127.0.0.1, localhost or [::1]; else 403) and, for POST, comes from no foreign `Origin`
(else 403) as `Content-Type: application/json` (else 415). Otherwise 401.

Decimals are JSON strings, dates ISO 8601, timestamps ISO 8601 with their zone (`Z`; a
timestamp given without a zone means UTC). Errors are `{"detail": …}`: 401/403 (access), 404
(no such thing), 413 (body over 1 MB), 415, 422 (which parameter, what is wrong), 503 (storage
unavailable); a caller's mistake is never a 500.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    # FastAPI's own /docs, /redoc and /openapi.json would answer anyone: they are added below
    # behind the same authentication as the routes.
    app = FastAPI(
        title="totesys-transform",
        version="0.1.0",
        description=DESCRIPTION.strip(),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings or Settings()
    for module in (health, runs, files, reprocess, maintenance, tables, sales_orders):
        app.include_router(module.router)
    app.include_router(dimension_routes.router)  # a dimension member's history
    console.install(app)  # the operator console's pages under /console (not in OpenAPI)
    errors.install(app)
    app.add_middleware(BodyTooLarge, limit=MAX_BODY_BYTES)
    _add_docs(app)
    return app


def _add_docs(app: FastAPI) -> None:
    authenticated = [Depends(authenticate)]
    title = f"{app.title} API"

    @app.get("/openapi.json", include_in_schema=False, dependencies=authenticated)
    async def openapi_document(request: Request) -> JSONResponse:
        document: dict[str, Any] = app.openapi()
        return JSONResponse(document)

    @app.get("/docs", include_in_schema=False, dependencies=authenticated)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=title)

    @app.get("/redoc", include_in_schema=False, dependencies=authenticated)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=title)
