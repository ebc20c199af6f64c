"""The star schema's tables: versions, history, rows at a version or commit time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import HTTPException, Path, Query, status

from service import queries
from service.api.deps import LakeDep
from service.api.models import RowPage, TableSummary, TableVersion, TableVersions
from service.api.routes.common import BAD_REQUEST, NOT_FOUND, authenticated_router
from service.lake import TABLE_PATHS, UnknownTable

router = authenticated_router("tables")

TableName = Annotated[
    str, Path(description=f"One of: {', '.join(TABLE_PATHS)}", examples=["fact_sales_order"])
]

FILTER_HELP = (
    "Repeatable `column<op>value`, all ANDed. `op` is one of `=`, `!=`, `<`, `<=`, `>`, `>=`; "
    "`column` must be a column of the table; `value` is converted to the column's type "
    "(integers, decimals like `2.50`, ISO dates `2024-11-20`, ISO timestamps, `true`/`false`, "
    "text as is) — it is never evaluated and no SQL is built. `column=null` / `column!=null` "
    "test for missing values. Example: `filter=sales_order_id=2&filter=units_sold>=100`."
)


def _not_found(exc: Exception, name: str) -> HTTPException:
    if isinstance(exc, UnknownTable):
        return HTTPException(
            status.HTTP_404_NOT_FOUND, f"unknown table {name!r} (tables: {', '.join(TABLE_PATHS)})"
        )
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


@router.get("/tables", response_model=list[TableSummary], summary="Every table's latest version")
def list_tables(lake: LakeDep) -> list[TableSummary]:
    return [TableSummary(**info.__dict__) for info in queries.table_infos(lake)]


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None) if value else None


@router.get(
    "/tables/{name}/versions",
    response_model=TableVersions,
    responses=NOT_FOUND,
    summary="A table's Delta history, newest first, with the run that made each version",
)
def table_versions(name: TableName, lake: LakeDep) -> TableVersions:
    try:
        queries.public_table(name)
        history = queries.table_history(lake, name)
    except UnknownTable as exc:
        if name in TABLE_PATHS:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"table {name!r} has not been written yet"
            ) from exc
        raise _not_found(exc, name) from exc
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


@router.get(
    "/tables/{name}/rows",
    response_model=RowPage,
    responses={**NOT_FOUND, **BAD_REQUEST},
    summary="Rows at a Delta version or commit time (time travel), filtered and paginated",
    description="At most one of `version` (a Delta version) or `as_of` (a commit time, ISO "
    "8601; naive means UTC: the latest version committed at or before it); neither: the latest "
    "version. Rows are ordered by the table's first column (its key). A version the table does "
    "not have is 404. Decimals are strings, dates ISO.\n\n**filter**: " + FILTER_HELP,
)
def table_rows(
    name: TableName,
    lake: LakeDep,
    version: Annotated[int | None, Query(ge=0, description="Delta version")] = None,
    as_of: Annotated[
        datetime | None, Query(description="Commit time (ISO 8601; naive = UTC)")
    ] = None,
    filter: Annotated[list[str] | None, Query(description=FILTER_HELP)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RowPage:
    if version is not None and as_of is not None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "give either version or as_of, not both"
        )
    try:
        page = queries.table_rows(
            lake, name, version=version, as_of=as_of, filters=filter, limit=limit, offset=offset
        )
    except queries.BadFilter as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except (UnknownTable, queries.NoSuchVersion) as exc:
        raise _not_found(exc, name) from exc
    return RowPage(
        table=name,
        version=page.version,
        total=page.total,
        limit=limit,
        offset=offset,
        rows=page.rows.to_dicts(),
    )
