"""Jinja2 rendering for the console: autoescaped templates from the package, the page's CSRF
token, and headers that keep the pages private and inert (a strict CSP: no script at all)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from service.api.console import auth
from service.lake import TABLE_PATHS
from transforms.facts import FACTS

TEMPLATES = Path(__file__).resolve().parent / "templates"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on a form
    # POST, which the loopback guard must refuse as a foreign origin
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def cell(value: Any) -> str:
    """A table cell: timestamps to the second (or microsecond when present), None empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        spec = "microseconds" if value.microsecond else "seconds"
        return value.isoformat(sep=" ", timespec=spec)
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def committed(milliseconds: int | None) -> str:
    """A Delta commit timestamp (epoch milliseconds) as UTC."""
    if not milliseconds:
        return ""
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="seconds")


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["cell"] = cell
environment.filters["seconds"] = seconds
environment.filters["committed"] = committed
# Every page's header and table pages: the star tables, and the fact pages an id links to.
environment.globals["star_tables"] = list(TABLE_PATHS)
environment.globals["fact_routes"] = {
    spec.route: spec.label.capitalize() for spec in FACTS.values()
}
# an id column (in a fact, or in dim_transaction) -> the route of its fact's pages
environment.globals["id_routes"] = {spec.id_column: spec.route for spec in FACTS.values()}


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    csrf = auth.csrf_for(request)
    settings = request.app.state.settings
    html = environment.get_template(template).render(
        **context,
        csrf_token=csrf.token,
        path=request.url.path,
        logout=bool(settings.api_token) and auth.TOKEN_COOKIE in request.cookies,
    )
    response = HTMLResponse(html, status_code, headers=SECURITY_HEADERS)
    csrf.apply(response, request)
    return response
