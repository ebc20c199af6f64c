"""The console's pages and buttons: one router under /console, left out of the OpenAPI schema.

Pages are GETs that only read; the two buttons (start a run, reprocess a file) are CSRF-checked
POST forms that start the same background jobs as POST /runs and POST /reprocess and redirect
to the new run's page (303, so a reload does not post again).
"""

from __future__ import annotations

from math import ceil
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from service import queries
from service.api.auth import token_matches
from service.api.console import auth, data
from service.api.console.charts import RunPoint, run_chart
from service.api.console.render import render
from service.api.deps import DispatcherDep, LakeDep, LedgerDep, PipelineDep, SettingsDep
from service.api.routes.common import start_job
from service.api.routes.reprocess import key_problem
from service.api.throttle import record_failure, refuse_if_throttled
from service.lake import TABLE_PATHS, TABLE_SCHEMAS, UnknownTable
from service.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
FILE_STATUSES = ("rejected", "pending", "applied", "skipped")
RUNS_SHOWN = 25
CHART_RUNS = 30
PAGE_SIZE = 50

router = APIRouter(prefix="/console", include_in_schema=False)
pages = APIRouter(
    prefix="/console", include_in_schema=False, dependencies=[Depends(auth.console_caller)]
)

Page = Annotated[int, Query(ge=1, le=1_000_000)]


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status.HTTP_303_SEE_OTHER)


# -- login, logout, assets (no authentication) -----------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    return render(
        request,
        "login.html",
        {"next": auth.safe_next(next), "token_required": bool(settings.api_token)},
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, settings: SettingsDep) -> Response:
    if settings.api_token:
        try:
            refuse_if_throttled(request)  # before anything else: right or wrong, 429
        except HTTPException as exc:
            page = _login_page(request, settings, "/console", str(exc.detail), exc.status_code)
            page.headers.update(exc.headers or {})
            return page
    fields = await auth.checked_form(request)
    target = auth.safe_next(fields.get("next"))
    if not token_matches(settings, fields.get("token", "")):
        if settings.api_token:
            record_failure(request)
        error = (
            "That is not the API token."
            if settings.api_token
            else "No token is configured: the console admits loopback clients only."
        )
        return _login_page(request, settings, target, error, status.HTTP_401_UNAUTHORIZED)
    response = _redirect(target)
    auth.set_login_cookie(response, request, settings)
    return response


def _login_page(
    request: Request, settings: Settings, target: str, error: str, status_code: int
) -> Response:
    context = {"next": target, "token_required": bool(settings.api_token), "error": error}
    return render(request, "login.html", context, status_code)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await auth.checked_form(request)
    response = _redirect("/console/login")
    auth.clear_login_cookie(response, request)
    return response


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
    return FileResponse(
        path,
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=3600"},
    )


# -- pages ------------------------------------------------------------------------------------
@pages.get("", response_class=HTMLResponse)
def overview(request: Request, pipeline: PipelineDep, ledger: LedgerDep, lake: LakeDep) -> Response:
    runs = ledger.runs()
    recent = [r for r in runs if data.duration_seconds(r) is not None][:CHART_RUNS][::-1]
    points = [
        RunPoint(
            r.run_id,
            r.started_at.strftime("%d %b %H:%M") if r.started_at else "",
            data.duration_seconds(r) or 0.0,
            sum(r.rows_written.values()),
        )
        for r in recent
    ]
    pending = ledger.file_report(pipeline.list_ingestion(), "pending").height
    return render(
        request,
        "overview.html",
        {
            "runs": runs[:RUNS_SHOWN],
            "runs_total": len(runs),
            "chart": run_chart(points),
            "pending": pending,
            "tables": data.table_overview(lake),
            "active": any(r.status in {"pending", "running"} for r in runs[:RUNS_SHOWN]),
        },
    )


@pages.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, ledger: LedgerDep, lake: LakeDep) -> Response:
    run = ledger.run(run_id)
    if run is None:
        return render(request, "missing.html", {"what": f"run {run_id}"}, 404)
    files = data.run_files(lake, run_id)
    reject_total, rejects = data.rejects_of(
        lake, [f["source_file"] for f in files if f["outcome"] == "rejected" or f["rows_rejected"]]
    )
    return render(
        request,
        "run.html",
        {
            "run": run,
            "files": files,
            "rejects": rejects,
            "reject_total": reject_total,
            "rejects_shown": data.REJECTS_SHOWN,
            "active": run.status in {"pending", "running"},
        },
    )


@pages.get("/files", response_class=HTMLResponse)
def files_page(
    request: Request,
    pipeline: PipelineDep,
    ledger: LedgerDep,
    status_: Annotated[str | None, Query(alias="status")] = None,
    page: Page = 1,
) -> Response:
    chosen = status_ if status_ in FILE_STATUSES else None
    report = ledger.file_report(pipeline.list_ingestion(), chosen)
    pages_total = max(1, ceil(report.height / PAGE_SIZE))
    page = min(page, pages_total)
    rows = report.slice((page - 1) * PAGE_SIZE, PAGE_SIZE).to_dicts()

    def link(p: int) -> str:
        return "/console/files?" + urlencode({**({"status": chosen} if chosen else {}), "page": p})

    return render(
        request,
        "files.html",
        {
            "files": rows,
            "status": chosen,
            "statuses": FILE_STATUSES,
            "total": report.height,
            "page": page,
            "pages": pages_total,
            "prev_url": link(page - 1) if page > 1 else None,
            "next_url": link(page + 1) if page < pages_total else None,
        },
    )


@pages.get("/tables/{name}", response_class=HTMLResponse)
def table_page(
    request: Request,
    name: str,
    lake: LakeDep,
    version: Annotated[str | None, Query()] = None,
    as_of: Annotated[str | None, Query()] = None,
    filter: Annotated[list[str] | None, Query()] = None,
    page: Page = 1,
) -> Response:
    if name not in TABLE_PATHS:
        return render(request, "missing.html", {"what": f"table {name}"}, 404)
    filters = [f for f in (filter or []) if f.strip()]
    context: dict[str, Any] = {
        "name": name,
        "version": version or "",
        "as_of": as_of or "",
        "filters": filters,
        "history": [],
        "columns": list(TABLE_SCHEMAS[name]),
    }
    try:
        context["history"] = queries.table_history(lake, name)
    except UnknownTable:
        return render(request, "table.html", {**context, "unwritten": True})
    error = None
    try:
        chosen_version = data.parse_version(version)
        moment = data.parse_moment(as_of) if chosen_version is None else None
        rows = queries.table_rows(
            lake,
            name,
            version=chosen_version,
            as_of=moment,
            filters=filters,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    except (data.BadInput, queries.NoSuchVersion, queries.BadFilter) as exc:
        error = str(exc)
        rows = None
    if rows is not None:
        pages_total = max(1, ceil(rows.total / PAGE_SIZE))
        query = [("version", version or ""), ("as_of", as_of or "")] + [
            ("filter", f) for f in filters
        ]

        def link(p: int) -> str:
            return f"/console/tables/{name}?" + urlencode([*query, ("page", str(p))])

        context.update(
            rows=rows.rows.to_dicts(),
            shown_version=rows.version,
            total=rows.total,
            page=page,
            pages=pages_total,
            prev_url=link(page - 1) if page > 1 else None,
            next_url=link(page + 1) if page < pages_total else None,
        )
    return render(
        request, "table.html", {**context, "error": error}, 422 if error else status.HTTP_200_OK
    )


# -- buttons ----------------------------------------------------------------------------------
@pages.post("/runs")
def start_run(
    form: auth.CheckedForm, settings: SettingsDep, ledger: LedgerDep, dispatcher: DispatcherDep
) -> Response:
    accepted = start_job(ledger, dispatcher, settings, "console", action="run")
    return _redirect(f"/console/runs/{accepted.run_id}")


@pages.post("/reprocess")
def reprocess(
    request: Request,
    form: auth.CheckedForm,
    settings: SettingsDep,
    pipeline: PipelineDep,
    ledger: LedgerDep,
    dispatcher: DispatcherDep,
) -> Response:
    key = form.get("key", "")
    problem = key_problem(key)
    if problem is None and key not in {o.key for o in pipeline.list_ingestion()}:
        problem = "no such ingestion file"
    if problem:
        return render(request, "missing.html", {"what": f"file {key!r}: {problem}"}, 404)
    accepted = start_job(ledger, dispatcher, settings, "reprocess", action="run", only_keys=[key])
    return _redirect(f"/console/runs/{accepted.run_id}")
