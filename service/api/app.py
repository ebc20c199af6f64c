"""The control-plane API: `create_app(settings)` builds it (uvicorn locally, Mangum in Lambda)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from service.api import console
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
from service.storage import StorageError

log = logging.getLogger("totesys.api")

DESCRIPTION = """
Control plane of the Totesys transform stage: start and inspect runs, see every ingestion file's
outcome, reprocess files, run table maintenance, and read the star schema's tables and sales
history (with Delta time travel).

**Authentication** (every endpoint but `/health`): a bearer token (`Authorization: Bearer …`,
`TOTESYS_API_TOKEN`), or API Gateway's IAM authorisation when deployed; with no token configured
a local server (`totesys serve`, loopback only) admits loopback clients. Otherwise 401.

Decimals are JSON strings, dates and timestamps ISO 8601 (naive = UTC). Errors are
`{"detail": …}` with 401, 404 or 422; a caller's mistake is never a 500.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="totesys-transform",
        version="0.1.0",
        description=DESCRIPTION.strip(),
    )
    app.state.settings = settings or Settings()
    for module in (health, runs, files, reprocess, maintenance, tables, sales_orders):
        app.include_router(module.router)
    console.install(app)  # the operator console's pages under /console (not in OpenAPI)

    @app.exception_handler(StorageError)
    async def storage_unavailable(request: Request, exc: StorageError) -> JSONResponse:
        log.error("storage error on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": f"storage unavailable: {exc}"}, status.HTTP_503_SERVICE_UNAVAILABLE
        )

    return app
