"""The star schema's tables: versions, history, rows at a version or commit time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import polars as pl
from fastapi import HTTPException, Path, Query, Response, status
from pydantic import StringConstraints, TypeAdapter
from starlette.concurrency import run_in_threadpool

from service import queries
from service.api.deps import CacheDep, LakeDep, StartedDep
from service.api.errors import clip_repr
from service.api.models import Problem, RowPage, TableSummary, TableVersion, TableVersions
from service.api.routes.common import (
    NOT_FOUND,
    authenticated_router,
    naive_utc_parameter,
)
from service.catalog import CATALOG_KEY
from service.lake import TABLE_PATHS, Lake, UnknownTable
from service.storage import LocalStorage

router = authenticated_router("tables")

TableName = Annotated[
    str, Path(description=f"One of: {', '.join(TABLE_PATHS)}", examples=["fact_sales_order"])
]

FILTER_HELP = (
    "Repeatable `column<op>value`, all ANDed. `op` is one of `=`, `!=`, `<`, `<=`, `>`, `>=`; "
    "`column` must be a column of the table; `value` is converted to the column's type "
    "(integers, decimals like `2.50`, ISO dates `2024-11-20`, ISO timestamps, `true`/`false`, "
    "text as is) — it is never evaluated and no SQL is built; a value the column cannot hold "
    "(NaN, out of range, too many decimals) is 422. `column=null` / `column!=null` test for "
    "missing values. Example: `filter=sales_order_id=2&filter=units_sold>=100`."
)


FilterTerm = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(!=|<=|>=|=|<|>)", max_length=1000)
]


def _unknown(name: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"unknown table {clip_repr(name)} (tables: {', '.join(TABLE_PATHS)})",
    )


_SUMMARIES = TypeAdapter(list[TableSummary])


def _render_tables(lake: Lake) -> bytes:
    infos = queries.table_infos(lake)
    body = _SUMMARIES.dump_json([TableSummary(**i.__dict__) for i in infos])
    if isinstance(lake.storage, LocalStorage):  # on S3 that read would be one more request
        _RENDERED[lake.storage.uri] = (
            lake.storage.read_if_exists(CATALOG_KEY),
            tuple((i.name, i.version) for i in infos),
            body,
        )
    return body


# The last answer per processed root: (catalog bytes it was built from, table versions, body).
_RENDERED: dict[str, tuple[bytes | None, tuple[tuple[str, int], ...], bytes]] = {}


def _still_current(lake: Lake) -> bytes | None:
    """The last answer if nothing moved since: the same catalog and no table past the version
    it showed. Local roots only (a file read and a stat per table, on the event loop: no thread
    per request under load); on S3 those checks are round trips, done in a worker thread."""
    if not isinstance(lake.storage, LocalStorage):
        return None
    cached = _RENDERED.get(lake.storage.uri)
    if cached is None or cached[0] is None:
        return None
    catalog, versions, body = cached
    if lake.storage.read_if_exists(CATALOG_KEY) != catalog:
        return None
    if len(versions) != len(TABLE_PATHS) or any(
        lake.next_version_exists(name, version) for name, version in versions
    ):
        return None
    return body


@router.get(
    "/tables",
    response_model=list[TableSummary],
    summary="Every table's latest version",
    description="From the catalog the writer keeps (service/catalog.py), each table checked "
    "against its next Delta log entry: one small read and one existence check per table, "
    "whatever the tables' history.",
)
async def list_tables(lake: LakeDep) -> Response:
    body = _still_current(lake)
    if body is None and isinstance(lake.storage, LocalStorage):
        # after a commit, one request renders; the others wait for it instead of each rendering
        async with _RENDER_LOCKS.setdefault(lake.storage.uri, asyncio.Lock()):
            body = _still_current(lake)
            if body is None:
                body = await run_in_threadpool(_render_tables, lake)
    elif body is None:
        body = await run_in_threadpool(_render_tables, lake)
    return Response(body, media_type="application/json")


_RENDER_LOCKS: dict[str, asyncio.Lock] = {}


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


@router.get(
    "/tables/{name}/versions",
    response_model=TableVersions,
    responses=NOT_FOUND,
    summary="A table's Delta history, newest first, with the run that made each version",
    description="Versions whose log maintenance removed (older than the retention window) are "
    "not listed.",
)
def table_versions(name: TableName, cache: CacheDep, started: StartedDep) -> TableVersions:
    if name not in TABLE_PATHS:
        raise _unknown(name)
    history = cache.history(name, started)
    if history is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"table {name!r} has not been written yet")
    versions = [
        TableVersion(
            version=h["version"],
            timestamp=_ms(h.get("timestamp")),
            operation=h.get("operation"),
            operation_parameters=h.get("operationParameters") or {},
            operation_metrics=h.get("operationMetrics") or {},
            run_id=h.get("totesys.run_id"),
            totesys_operation=h.get("totesys.operation"),
        )
        for h in history
    ]
    return TableVersions(name=name, versions=versions)


def _with_zone(frame: pl.DataFrame) -> pl.DataFrame:
    """Naive timestamp columns (stored naive UTC) marked UTC, so they are served with `Z`."""
    naive = [
        c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is None
    ]
    return frame.with_columns(pl.col(c).dt.replace_time_zone("UTC") for c in naive)


@router.get(
    "/tables/{name}/rows",
    response_model=RowPage,
    responses={
        **NOT_FOUND,
        422: {
            "model": Problem,
            "description": "Invalid parameters, and three requests the schema cannot tell from "
            "valid ones: a `filter` on a column this table lacks (the pattern admits any column "
            "name: tables differ), a value its column cannot hold, or `version` with `as_of`",
        },
    },
    summary="Rows at a Delta version or commit time (time travel), filtered and paginated",
    description="At most one of `version` (a Delta version) or `as_of` (a commit time, ISO "
    "8601; without a zone it means UTC: the latest version committed at or before it); neither: "
    "the latest version. Rows are ordered by the table's first column (its key). A version the "
    "table does not have is 404, and so is one maintenance removed (older than the retention "
    "window: `version N is no longer kept (retention R days)`). Decimals are strings, dates "
    "ISO, timestamps ISO with `Z`. An offset past the end is an empty page.\n\n**filter**: "
    + FILTER_HELP,
)
def table_rows(
    name: TableName,
    lake: LakeDep,
    version: Annotated[int | None, Query(ge=0, description="Delta version")] = None,
    as_of: Annotated[
        datetime | None, Query(description="Commit time (ISO 8601; no zone = UTC)")
    ] = None,
    filter: Annotated[list[FilterTerm] | None, Query(description=FILTER_HELP)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RowPage:
    if version is not None and as_of is not None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give either version or as_of, not both"
        )
    moment = naive_utc_parameter(as_of, "as_of")
    try:
        page = queries.table_rows(
            lake, name, version=version, as_of=moment, filters=filter, limit=limit, offset=offset
        )
    except queries.BadFilter as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except UnknownTable as exc:
        raise _unknown(name) from exc
    except queries.NoSuchVersion as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return RowPage(
        table=name,
        version=page.version,
        total=page.total,
        limit=limit,
        offset=offset,
        rows=_with_zone(page.rows).to_dicts(),
    )
