"""Run a read-only SQL query over the star tables: Polars SQL over lazy Delta scans.

Only the tables a query names are opened. Every table can be read at a Delta version or as of a
commit time (time travel), and two views per fact answer its usual questions with the same
definitions as `totesys current` (service/sql/views.py: fact_sales_order_current,
fact_payment_as_of, …). A declared table no run has written yet reads as empty, with its
columns; a root with no tables at all is an error (a wrong --processed, most likely).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import polars as pl
from polars.exceptions import PanicException

from service import queries
from service.lake import TABLE_PATHS, TABLE_SCHEMAS, Lake
from service.sql import views as fact_views
from service.sql.guard import UnsafeQuery, check_plan, check_query, inside
from service.sql.views import VIEWS

RELATIONS = [*TABLE_PATHS, *VIEWS]


class SqlError(ValueError):
    """A query that cannot run: refused, malformed, or naming what does not exist."""


@dataclass(frozen=True)
class TimeTravel:
    """Read every table at this Delta version, or at its last commit at or before `as_of`."""

    version: int | None = None
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.as_of is not None:
            raise SqlError("give --version or --as-of, not both")
        if self.version is not None and self.version < 0:
            raise SqlError(f"--version must be 0 or more, not {self.version}")


def _naive_utc(value: datetime) -> datetime:
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _table(lake: Lake, name: str, travel: TimeTravel) -> pl.LazyFrame:
    latest = lake.table(name)
    if latest is None:
        if not any(lake.exists(other) for other in TABLE_PATHS):
            raise SqlError(f"{name} has not been written yet under {lake.storage.uri}")
        return pl.LazyFrame(schema=TABLE_SCHEMAS[name])  # declared, no rows yet
    version = travel.version
    if travel.as_of is not None:
        try:
            version = queries.version_at(lake, name, travel.as_of)
        except queries.NoSuchVersion:
            # The table did not exist yet at that time: it had no rows.
            return pl.LazyFrame(schema=TABLE_SCHEMAS[name])
    if version is not None and version > latest.version():
        raise SqlError(f"{name} has no version {version} (latest is {latest.version()})")
    handle = latest if version is None else lake.table(name, version)
    assert handle is not None
    # Every file the scan will read, not only the first one the plan shows, must lie inside
    # the table's folder (a crafted log could name `../../secret.parquet`).
    folder = lake.uri(name)
    for uri in handle.file_uris():
        if not inside(uri, [folder]):
            raise SqlError(f"refused: {name} lists a file outside its folder: {uri!r}")
    return pl.scan_delta(handle, storage_options=lake.options)


def prepare(
    lake: Lake,
    sql: str,
    travel: TimeTravel | None = None,
    as_of_business: datetime | None = None,
) -> pl.LazyFrame:
    """The query as a lazy frame, checked (see service/sql/guard.py) but not yet run."""
    travel = travel or TimeTravel()
    try:
        names = check_query(sql)
    except UnsafeQuery as exc:
        raise SqlError(f"refused: {exc}") from None
    views = names & set(VIEWS)
    lacking = fact_views.lacking_business_time(views, as_of_business)
    if lacking:
        raise SqlError(lacking)
    wanted = (names & set(TABLE_PATHS)) | fact_views.facts_behind(views)
    frames = {name: _table(lake, name, travel) for name in sorted(wanted)}
    moment = None if as_of_business is None else _naive_utc(as_of_business)
    frames.update(fact_views.view_frames(views, frames, moment))
    context = pl.SQLContext(frames)
    try:
        query = context.execute(sql)
        written = query.explain(optimized=False)
        plan = query.explain()  # resolves names and types: most mistakes surface here
    except pl.exceptions.PolarsError as exc:
        message = _first_line(exc)
        if message.startswith("relation ") and message.endswith(" was not found"):
            message += f" (tables and views: {', '.join(RELATIONS)})"
        raise SqlError(message) from None
    except PanicException as exc:
        raise SqlError(_panic_message(exc)) from None
    try:
        check_plan(plan, [lake.uri(name).rstrip("/") + "/" for name in wanted], written)
    except UnsafeQuery as exc:
        raise SqlError(f"refused: {exc}") from None
    return query


def _panic_message(exc: BaseException) -> str:
    return f"Polars failed on this query (an internal error: {_first_line(exc)})"


def collect(query: pl.LazyFrame, limit: int | None = None) -> pl.DataFrame:
    """Run the query (the first `limit` rows only, if given); errors become SqlError."""
    try:
        return (query if limit is None else query.head(limit)).collect()
    except pl.exceptions.PolarsError as exc:
        raise SqlError(_first_line(exc)) from None
    except PanicException as exc:  # not a PolarsError, not even an Exception
        raise SqlError(_panic_message(exc)) from None


def sink_csv(query: pl.LazyFrame, sink: BinaryIO) -> None:
    """Stream every row of the query as CSV into `sink`; errors become SqlError."""
    try:
        query.sink_csv(sink)
    except pl.exceptions.PolarsError as exc:
        raise SqlError(_first_line(exc)) from None
    except PanicException as exc:
        raise SqlError(_panic_message(exc)) from None


def run(
    lake: Lake,
    sql: str,
    travel: TimeTravel | None = None,
    as_of_business: datetime | None = None,
) -> pl.DataFrame:
    """Every row of the query's answer (see `prepare`)."""
    return collect(prepare(lake, sql, travel, as_of_business))


__all__ = [
    "RELATIONS",
    "VIEWS",
    "SqlError",
    "TimeTravel",
    "collect",
    "prepare",
    "run",
    "sink_csv",
]
