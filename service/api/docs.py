"""The API's documentation: `/openapi.json`, `/docs` (Swagger UI) and `/redoc`, authenticated like
every endpoint, and the same under `/console/` for a person in a browser.

A browser cannot send the bearer header, so with a token set Swagger UI at `/docs` could not load
`/openapi.json`. The console's login cookie (path `/console`) is what a browser holds, so the docs
are served again under `/console/` (`/console/docs` loads `/console/openapi.json`), behind the
console's login; a browser that opens `/docs` without a header is sent there (to the login form
first). Clients that are not browsers keep the plain 401.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from service.api.auth import BearerDep, authenticate
from service.api.console.auth import console_caller

BROWSER_DOCS = {"/docs": "/console/docs", "/redoc": "/console/redoc"}


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def install(app: FastAPI) -> None:
    title = f"{app.title} API"

    async def api_caller(request: Request, bearer: BearerDep) -> None:
        """The API's authentication; a browser without a header goes to the console's docs."""
        try:
            await authenticate(request, bearer)
        except HTTPException as exc:
            if exc.status_code != status.HTTP_401_UNAUTHORIZED:
                raise
            if request.url.path in BROWSER_DOCS and bearer is None and _wants_html(request):
                raise _ToConsoleDocs(BROWSER_DOCS[request.url.path]) from None
            raise

    api = [Depends(api_caller)]
    console = [Depends(console_caller)]

    @app.exception_handler(_ToConsoleDocs)
    async def to_console_docs(request: Request, exc: _ToConsoleDocs) -> Response:
        return RedirectResponse(exc.target, status_code=303)

    _add_pages(app, "", api, title)
    _add_pages(app, "/console", console, title)


def _add_pages(app: FastAPI, prefix: str, dependencies: list[Any], title: str) -> None:
    """The document, Swagger UI and ReDoc under `prefix`, loading the document beside them."""
    document_url = f"{prefix}/openapi.json"

    @app.get(document_url, include_in_schema=False, dependencies=dependencies)
    async def openapi_document() -> JSONResponse:
        body: dict[str, Any] = app.openapi()
        return JSONResponse(body)

    @app.get(f"{prefix}/docs", include_in_schema=False, dependencies=dependencies)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=document_url, title=title)

    @app.get(f"{prefix}/redoc", include_in_schema=False, dependencies=dependencies)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=document_url, title=title)


class _ToConsoleDocs(Exception):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target
