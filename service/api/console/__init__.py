"""The operator console: server-rendered pages under /console on the API's own app.

`install(app)` adds its routers and the redirect to the login form; the pages use the same
Lake, Ledger, queries and background jobs as the API, so they work on local and s3:// roots.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import RedirectResponse

from service.api.console import dimension_pages, facts
from service.api.console.auth import LoginRequired
from service.api.console.routes import pages, router

__all__ = ["install"]


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(pages)
    app.include_router(facts.router)  # a sale's, purchase order's, payment's page
    app.include_router(dimension_pages.pages)  # a dimension member's history

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(exc.next_url, status.HTTP_303_SEE_OTHER)
