"""The control-plane API: `create_app(settings)` builds it (uvicorn locally, Mangum in Lambda)."""

from __future__ import annotations

from fastapi import FastAPI

from service.api import console, docs, errors
from service.api.limits import MAX_BODY_BYTES, BodyTooLarge
from service.api.routes import dimensions as dimension_routes
from service.api.routes import (
    facts,
    files,
    health,
    maintenance,
    reprocess,
    runs,
    tables,
)
from service.api.throttle import Throttle
from service.settings import Settings

DESCRIPTION = """
Control plane of the Totesys transform stage: start and inspect runs, see every ingestion file's
outcome, reprocess files, run table maintenance, and read the star schema's tables and the
history of every sale, purchase order and payment (with Delta time travel).

**Authentication** (every endpoint but `/health`, including `/docs`, `/redoc` and
`/openapi.json`): a bearer token (`Authorization: Bearer …`, `TOTESYS_API_TOKEN`), or API
Gateway's IAM authorisation when deployed; with no token configured a local server (`totesys
serve`, loopback only) admits loopback clients, if the request is addressed to a loopback name
(`Host`: 127.0.0.1, localhost or [::1]; else 403) and, for POST, comes from no foreign `Origin`
(else 403) as `Content-Type: application/json` (else 415). Otherwise 401.

Decimals are JSON strings, dates ISO 8601, timestamps ISO 8601 with their zone (`Z`; a
timestamp given without a zone means UTC). Errors are `{"detail": …}`: 401/403 (access), 404
(no such thing), 413 (body over 1 MB), 415, 422 (which parameter, what is wrong), 429 (ten wrong
tokens from this address within a minute: every token it presents is refused until the minute has
passed, `Retry-After` says how long), 503 (storage unavailable); a caller's mistake is never a
500.
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
    app.state.throttle = Throttle()  # failed token attempts per client address
    for module in (health, runs, files, reprocess, maintenance, tables):
        app.include_router(module.router)
    for fact_router in facts.ROUTERS:  # a fact's history and state, per declared fact
        app.include_router(fact_router)
    app.include_router(dimension_routes.router)  # a dimension member's history
    console.install(app)  # the operator console's pages under /console (not in OpenAPI)
    errors.install(app)
    app.add_middleware(BodyTooLarge, limit=MAX_BODY_BYTES)
    docs.install(app)  # /openapi.json, /docs, /redoc (and under /console/ for a browser)
    return app
