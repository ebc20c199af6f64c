"""Error answers: every caller mistake a 4xx naming the parameter and the problem, storage trouble
503, and no answer echoing more than `MAX_ECHO` characters of what the caller sent.

FastAPI's own validation answer repeats the offending input whole (a 500 MB body came back in a
404) and cannot serialise a non-finite number (`{"prefix": NaN}` was a 500); `validation_failed`
keeps its shape (`detail`: a list of `{type, loc, msg, input, ctx}`) with each value clipped.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from deltalake.exceptions import DeltaError
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.storage import StorageError

log = logging.getLogger("totesys.api")

MAX_ECHO = 100  # characters of a caller's value an error may repeat
MAX_ITEMS = 20  # items of a caller's list an error may repeat


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """`text`, cut to `limit` characters (marked with … and the full length) if longer."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def clip_repr(value: object) -> str:
    """`repr(value)` for a message, clipped."""
    return clip(repr(value))


def echo(value: Any) -> Any:
    """A JSON-safe, clipped form of a value the caller sent: strings and containers longer than
    `MAX_ECHO` are cut, non-finite numbers become strings (JSON has no NaN)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**MAX_ECHO else clip(str(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, bytes):
        return clip(value.decode("utf-8", "replace"))
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= MAX_ECHO and isinstance(value, dict | list | tuple):
        return _json_safe(value)
    return clip(text)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def clipped_validation_errors(errors: Any) -> list[dict[str, Any]]:
    clipped = []
    for error in list(errors)[:MAX_ITEMS]:
        item: dict[str, Any] = {
            "type": str(error.get("type", "")),
            "loc": [echo(part) for part in error.get("loc", ())],
            "msg": clip(str(error.get("msg", "")), 300),
        }
        if "input" in error:
            item["input"] = echo(error["input"])
        if error.get("ctx"):
            item["ctx"] = {str(k): echo(v) for k, v in error["ctx"].items()}
        clipped.append(item)
    return clipped


def allowed_methods(app: FastAPI, path: str) -> set[str]:
    """The methods the app's OpenAPI document gives `path` (matched against its templates)."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "path_methods", None)
    if table is None:
        table = []
        for template, operations in app.openapi()["paths"].items():
            parts = re.split(r"(\{[^/}]+\})", template)
            pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
            table.append((re.compile(f"^{pattern}$"), {m.upper() for m in operations}))
        app.state.path_methods = table
    return {m for pattern, methods in table if pattern.match(path) for m in methods}


def install(app: FastAPI) -> None:
    """Register the API's error handlers on `app`."""

    @app.exception_handler(RequestValidationError)
    async def validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": clipped_validation_errors(exc.errors())},
            status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # Starlette's Allow names the first route on the path only (POST for /runs, which
            # also has GET); name every method the path has.
            methods = allowed_methods(app, request.url.path)
            if methods:
                return JSONResponse(
                    {"detail": "Method Not Allowed"},
                    status.HTTP_405_METHOD_NOT_ALLOWED,
                    headers={"Allow": ", ".join(sorted(methods))},
                )
        return await http_exception_handler(request, exc)

    @app.exception_handler(StorageError)
    async def storage_unavailable(request: Request, exc: StorageError) -> JSONResponse:
        log.error("storage error on %s: %s", request.url.path, exc)
        return JSONResponse(
            {"detail": f"storage unavailable: {clip(str(exc), 300)}"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.exception_handler(DeltaError)
    @app.exception_handler(OSError)
    async def tables_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # Reads of the Delta tables that fail for a reason a route did not anticipate: the
        # storage under them (a missing file, a refused connection), never the caller.
        log.error("table read failed on %s: %s", request.url.path, exc, exc_info=exc)
        return JSONResponse(
            {"detail": f"tables unavailable: {type(exc).__name__}: {clip(str(exc), 300)}"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
        )
