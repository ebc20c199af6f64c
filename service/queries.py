"""Questions analysts ask of a fact table (any declared fact): an id's history, its current
state, the state of every id as of a business time; each also at a Delta version (time
travel)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal as DecimalValue
from functools import partial
from typing import Any, TypeVar

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from service.catalog import Catalog
from service.fact_index import FactIndex, bucket_of
from service.lake import ALL_PATHS, TABLE_PATHS, TABLE_SCHEMAS, Lake, TableInfo, UnknownTable
from service.storage import LocalStorage
from transforms import fact_versions
from transforms.fact_sales_order import SALES
from transforms.fact_spec import FactSpec


class NoSuchVersion(ValueError):
    pass


class VersionNotKept(NoSuchVersion):
    """A version the table had, whose log or files maintenance has since removed (vacuum)."""

    def __init__(self, name: str, version: int, retention_days: int | None) -> None:
        window = (
            "retention unknown" if retention_days is None else f"retention {retention_days} days"
        )
        super().__init__(f"{name}: version {version} is no longer kept ({window})")
        self.name = name
        self.version = version
        self.retention_days = retention_days


_INTERVAL_DAYS = re.compile(r"^\s*interval\s+(\d+)\s+days?\s*$", re.IGNORECASE)


def kept_days(dt: DeltaTable | None) -> int | None:
    """The time-travel window maintenance set on the table (`delta.deletedFileRetentionDuration`,
    "interval N days"), or None if it has none."""
    if dt is None:
        return None
    setting = dt.metadata().configuration.get("delta.deletedFileRetentionDuration") or ""
    match = _INTERVAL_DAYS.match(setting)
    return int(match.group(1)) if match else None


T = TypeVar("T")

# What reading a version whose log or data files are gone raises (delta-rs: "No files in log
# segment"; Polars: a missing parquet file).
_UNREADABLE = (DeltaError, pl.exceptions.PolarsError, OSError)


def read_version(lake: Lake, name: str, version: int | None, read: Callable[[], T]) -> T:
    """`read()` of a table at `version`; if that fails for a version older than the latest, the
    version was vacuumed: VersionNotKept (404 in the API, one line in the CLI)."""
    try:
        return read()
    except _UNREADABLE as exc:
        if version is None:
            raise
        latest = lake.table(name)
        if latest is None or version >= latest.version():
            raise
        raise VersionNotKept(name, version, kept_days(latest)) from exc


def fact_rows(
    lake: Lake, spec: FactSpec, version: int | None = None, where: pl.Expr | None = None
) -> pl.DataFrame:
    """A fact's rows (at a Delta version if given, filtered by `where`)."""
    name = spec.name
    if version is not None:
        dt = lake.table(name)
        if dt is None or version < 0 or version > dt.version():
            latest = dt.version() if dt is not None else None
            raise NoSuchVersion(f"{name} has no version {version} (latest is {latest})")
    frame = read_version(lake, name, version, lambda: lake.read(name, version=version, where=where))
    return pl.DataFrame(schema=spec.schema) if frame is None else frame


# The columns a person reads in a sale's history (CLI table, demo); the JSON forms carry all.
HISTORY_VIEW_COLUMNS = [
    "sales_record_id",
    "change_type",
    "last_updated",
    "units_sold",
    "unit_price",
    "agreed_delivery_date",
    "agreed_payment_date",
    "source_file",
]


def history(lake: Lake, spec: FactSpec, ident: int, version: int | None = None) -> pl.DataFrame:
    """Every stored version of one id of a fact, oldest first, deletion included."""
    rows = _history_from_index(lake, spec, ident) if version is None else None
    if rows is None:
        rows = fact_rows(lake, spec, version, pl.col(spec.id_column) == ident)
    return rows.sort(["last_updated", spec.record_id])


def _history_from_index(lake: Lake, spec: FactSpec, ident: int) -> pl.DataFrame | None:
    """The id's versions read from just the data files the fact index names (a few requests,
    whatever the table's history); None when the index cannot be trusted (it lags the table,
    or a file moved since): the caller then scans the table."""
    name = spec.name
    catalog = Catalog.load(lake.storage)
    state = catalog.tables.get(name)
    if state is None or not catalog.index_is_current(name):
        return None
    if lake.next_version_exists(name, state.version):
        return None
    entry = catalog.fact(name)
    ids = pl.Series([ident], dtype=spec.id_dtype)
    index = FactIndex(lake.storage, spec, entry.index_prefix)
    found = index.read(bucket_of(ids), entry.index_buckets)
    found = found.filter(pl.col(spec.id_column) == ident)
    if found.is_empty():
        return pl.DataFrame(schema=spec.schema)
    if found["path"].null_count():
        return None
    table = lake.uri(name).rstrip("/")
    uris = [f"{table}/{path}" for path in sorted(found["path"].unique().to_list())]
    try:
        rows = (
            pl.scan_parquet(uris, storage_options=lake.options or None)
            .filter(pl.col(spec.id_column) == ident)
            .collect()
        )
    except Exception:  # vacuumed or compacted meanwhile: the table scan answers
        return None
    return rows.select([pl.col(c).cast(t) for c, t in spec.schema.items()])


def current(
    lake: Lake, spec: FactSpec, as_of: datetime | None = None, version: int | None = None
) -> pl.DataFrame:
    """Every live id of a fact: its latest version (as of a business time if given), deletions
    hidden."""
    rows = fact_rows(lake, spec, version)
    if as_of is None:
        state = fact_versions.current_state(spec, rows)
    else:
        state = fact_versions.state_as_of(spec, rows, as_of)
    return state.sort(spec.id_column)


@dataclass(frozen=True)
class VersionState:
    ident: int
    status: str  # current | deleted | not_found
    row: dict[str, object] | None
    deleted_at: datetime | None = None


def state_of(lake: Lake, spec: FactSpec, ident: int, as_of: datetime | None = None) -> VersionState:
    """One id now or as of a business time; says whether it was deleted or never existed."""
    rows = history(lake, spec, ident)
    if as_of is not None:
        rows = rows.filter(pl.col("last_updated") <= as_of)
    if rows.is_empty():
        return VersionState(ident, "not_found", None)
    latest = rows.row(-1, named=True)
    if latest["change_type"] == "delete":
        return VersionState(ident, "deleted", latest, latest["last_updated"])
    return VersionState(ident, "current", latest)


# The sales fact's questions, as the sales routes, the CLI and the console ask them.
def sale_history(lake: Lake, sales_order_id: int, version: int | None = None) -> pl.DataFrame:
    return history(lake, SALES, sales_order_id, version)


def current_sales(
    lake: Lake, as_of: datetime | None = None, version: int | None = None
) -> pl.DataFrame:
    return current(lake, SALES, as_of, version)


def sale_state(lake: Lake, sales_order_id: int, as_of: datetime | None = None) -> VersionState:
    return state_of(lake, SALES, sales_order_id, as_of)


def table_infos(lake: Lake, version: int | None = None) -> list[TableInfo]:
    """Each public table's Delta version, row count and last commit (at `version` if given)."""
    if version is None:
        return _latest_table_infos(lake)
    infos = []
    for name in TABLE_PATHS:
        if version is not None:
            latest = lake.table(name)
            if latest is None or version > latest.version():
                continue  # this table has not reached that version
        info = read_version(lake, name, version, partial(lake.info, name, version))
        if info is None and version is not None:
            raise VersionNotKept(name, version, kept_days(lake.table(name)))
        if info is not None:
            infos.append(info)
    if version is not None and not infos:
        raise NoSuchVersion(f"no table has a version {version}")
    return infos


def _latest_table_infos(lake: Lake) -> list[TableInfo]:
    """From the catalog the writer keeps (service/catalog.py): one GET, then one HEAD per table
    (in parallel) to check that no commit came after the version it recorded; a table the
    catalog lags on (or does not know) is opened instead. ~8 requests instead of ~50. A settled
    catalog (no public table committed since it was saved) needs no check: one request."""
    catalog = Catalog.load(lake.storage)
    if catalog.settled:
        return [
            TableInfo(
                name,
                ALL_PATHS[name],
                state.version,
                state.rows,
                datetime.fromisoformat(state.last_commit) if state.last_commit else None,
                state.last_operation,
            )
            for name in TABLE_PATHS
            if (state := catalog.tables.get(name)) is not None
        ]

    def info(name: str) -> TableInfo | None:
        state = catalog.tables.get(name)
        if state is not None:
            following = f"{ALL_PATHS[name]}/_delta_log/{state.version + 1:020d}.json"
            if not lake.storage.exists(following):
                last = datetime.fromisoformat(state.last_commit) if state.last_commit else None
                return TableInfo(
                    name, ALL_PATHS[name], state.version, state.rows, last, state.last_operation
                )
        return lake.info(name)

    if isinstance(lake.storage, LocalStorage):  # a stat each: threads would only cost
        found = [info(name) for name in TABLE_PATHS]
    else:  # seven round trips at once, not one after another
        with ThreadPoolExecutor(max_workers=len(TABLE_PATHS)) as pool:
            found = list(pool.map(info, TABLE_PATHS))
    return [i for i in found if i is not None]


# -- tables: history, rows at a version or commit time ----------------------------------------
class BadFilter(ValueError):
    pass


_FILTER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(!=|<=|>=|=|<|>)(.*)$", re.DOTALL)
_OPS: dict[str, Callable[[pl.Expr, Any], pl.Expr]] = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


def public_table(name: str) -> str:
    """`name` if it is a public table (not the `_state` ones), else UnknownTable."""
    if name not in TABLE_PATHS:
        raise UnknownTable(name)
    return name


def table_history(lake: Lake, name: str) -> list[dict[str, Any]]:
    """A public table's Delta history, newest first; `totesys.run_id` says which run made it."""
    return lake.history(public_table(name))


def _naive_utc(value: datetime) -> datetime:
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def version_at(lake: Lake, name: str, as_of: datetime) -> int:
    """The table's latest version committed at or before `as_of` (naive = UTC)."""
    moment = _naive_utc(as_of)
    commits = [
        (h["version"], datetime.fromtimestamp(h["timestamp"] / 1000, UTC).replace(tzinfo=None))
        for h in table_history(lake, name)
        if h.get("timestamp") is not None
    ]
    before = [v for v, at in commits if at <= moment]
    if not before:
        first = min((at for _, at in commits), default=None)
        raise NoSuchVersion(
            f"{name} has no version committed at or before {moment.isoformat()} "
            f"(first commit {first.isoformat() if first else 'none'})"
        )
    return max(before)


class _Unusable(ValueError):
    """A value of the right form the column cannot hold (the message says why)."""


_INT_BITS: dict[type[pl.DataType], tuple[int, bool]] = {
    pl.Int8: (8, True),
    pl.Int16: (16, True),
    pl.Int32: (32, True),
    pl.Int64: (64, True),
    pl.UInt8: (8, False),
    pl.UInt16: (16, False),
    pl.UInt32: (32, False),
    pl.UInt64: (64, False),
}


def _int_in_range(dtype: pl.DataType, value: int) -> int:
    bits, signed = _INT_BITS.get(type(dtype), (64, True))
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if not low <= value <= high:
        raise _Unusable(f"outside the column's range {low}..{high}")
    return value


def _decimal_in_range(dtype: pl.Decimal, value: DecimalValue) -> DecimalValue:
    """A finite decimal the column's type can hold (Polars panics on others: NaN, 1e400)."""
    precision = dtype.precision or 38
    scale = dtype.scale or 0
    if not value.is_finite():
        raise _Unusable("not a finite number")
    if abs(value) >= DecimalValue(10) ** (precision - scale):
        raise _Unusable(f"too large for decimal({precision},{scale})")
    if value.normalize().as_tuple().exponent < -scale:  # type: ignore[operator]
        raise _Unusable(f"more than {scale} decimal places")
    return value.quantize(DecimalValue(1).scaleb(-scale))


def _filter_value(column: str, dtype: pl.DataType, raw: str) -> Any:
    """`raw` converted to the column's type, or BadFilter naming the column, the value (clipped)
    and the problem: values Polars cannot compare (NaN, 1e400, 41-digit integers) are refused
    here rather than failing inside the query."""
    try:
        if dtype.is_integer():
            return _int_in_range(dtype, int(raw))
        if dtype.is_float():
            number = float(raw)
            if not math.isfinite(number):
                raise _Unusable("not a finite number")
            return number
        if isinstance(dtype, pl.Decimal):
            return _decimal_in_range(dtype, DecimalValue(raw))
        if isinstance(dtype, pl.Datetime):
            return _naive_utc(datetime.fromisoformat(raw))
        if isinstance(dtype, pl.Date):
            return date.fromisoformat(raw)
        if isinstance(dtype, pl.Boolean):
            if raw.lower() not in {"true", "false"}:
                raise ValueError(raw)
            return raw.lower() == "true"
    except (ValueError, ArithmeticError) as exc:
        reason = f" ({exc})" if isinstance(exc, _Unusable) else ""
        raise BadFilter(
            f"filter on {column}: {_clip(raw)!r} is not a valid {dtype}{reason}"
        ) from None
    return raw


def _clip(text: str, limit: int = 60) -> str:
    """A caller's value for an error message: never longer than `limit` characters."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def parse_filters(name: str, filters: list[str]) -> pl.Expr | None:
    """`column<op>value` terms (op one of = != < <= > >=; value `null` with = or !=), ANDed,
    into a Polars expression over the table's known columns; values are converted to the
    column's type, never evaluated."""
    schema = TABLE_SCHEMAS[public_table(name)]
    expr: pl.Expr | None = None
    for term in filters:
        match = _FILTER.match(term)
        if not match:
            raise BadFilter(
                f"filter {_clip(term)!r} is not of the form column=value (or != < <= > >=)"
            )
        column, op, raw = match.groups()
        if column not in schema:
            raise BadFilter(
                f"filter {_clip(term)!r}: {name} has no column {_clip(column)!r} "
                f"(columns: {', '.join(schema)})"
            )
        if raw == "null":
            if op not in {"=", "!="}:
                raise BadFilter(f"filter {_clip(term)!r}: null only with = or !=")
            cond = pl.col(column).is_null() if op == "=" else pl.col(column).is_not_null()
        else:
            cond = _OPS[op](pl.col(column), _filter_value(column, schema[column], raw))
        expr = cond if expr is None else expr & cond
    return expr


@dataclass(frozen=True)
class RowsPage:
    version: int
    total: int
    rows: pl.DataFrame


def table_rows(
    lake: Lake,
    name: str,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
    filters: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RowsPage:
    """A page of a public table's rows at a Delta version or commit time (latest if neither),
    filtered (see parse_filters), ordered by the first column (the key)."""
    where = parse_filters(name, filters or [])
    dt = lake.table(public_table(name))
    if dt is None:
        raise NoSuchVersion(f"{name} has not been written yet: it has no versions")
    latest = dt.version()
    if as_of is not None:
        version = version_at(lake, name, as_of)
    elif version is None:
        version = latest
    if version < 0 or version > latest:
        raise NoSuchVersion(f"{name} has no version {version} (latest is {latest})")
    at = version

    def read() -> tuple[int, pl.DataFrame]:
        lf = lake.scan(name, at)
        assert lf is not None
        if where is not None:
            lf = lf.filter(where)
        total = int(lf.select(pl.len()).collect().item())
        start = min(offset, total)  # an offset past the end is an empty page, never an overflow
        page = lf.sort(next(iter(TABLE_SCHEMAS[name]))).slice(start, limit).collect()
        return total, page

    total, page = read_version(lake, name, version if version < latest else None, read)
    return RowsPage(version, total, page)
