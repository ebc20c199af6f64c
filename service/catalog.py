"""What the lease holder knows of the tables it writes, kept so a small run opens only the tables
it changes (on S3 every table open is several round trips).

- `_state/catalog.json`: per table the Delta version, rows and last commit the holder left; the
  keys of every dimension's members; dim_date's range; the next `sales_record_id`; and which fact
  version the fact index below reflects.
- `_state/fact_index/<bucket>.parquet`: (sales_order_id, last_updated, change_type, path) of every
  stored fact version, split by sales_order_id into buckets of BUCKET_IDS ids, so a run looks up
  the stored versions of its orders by reading the one or two buckets they fall in instead of
  fact data files (the stored-version lookup made every run read every fact file written since
  the last compaction), and a sale's history reads just the data files that hold it.

Both are derived state, written after the batch's commits. They may therefore lag the tables (a
run that died between a commit and this write) but never lead them, and every use that could go
wrong on a lag checks: the fact index is used only when its fact version is the fact table's
version (else it is rebuilt from the table); a member or calendar day that looks missing is
verified against the table before anything is written; table summaries are checked against the
next Delta log entry by readers.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from service.storage import Storage
from transforms.schemas import TIMESTAMP

log = logging.getLogger("totesys.catalog")

CATALOG_KEY = "_state/catalog.json"
INDEX_PREFIX = "_state/fact_index/"
BUCKET_IDS = 100_000  # order ids per index bucket: a small run reads one or two buckets

INDEX_SCHEMA: dict[str, pl.DataType] = {
    "sales_order_id": pl.Int32(),
    "last_updated": TIMESTAMP,
    "change_type": pl.String(),
    "path": pl.String(),  # the data file holding the version, relative to the table
}
INDEX_KEY_COLUMNS = ["sales_order_id", "last_updated", "change_type"]


@dataclass
class TableState:
    version: int
    rows: int
    last_commit: str | None  # ISO, UTC
    last_operation: str | None


@dataclass
class Catalog:
    tables: dict[str, TableState] = field(default_factory=dict)
    members: dict[str, list[int]] = field(default_factory=dict)
    calendar: tuple[str, str] | None = None  # ISO dates
    next_record_id: int | None = None
    fact_index_version: int | None = None  # fact version the index reflects
    index_buckets: list[int] = field(default_factory=list)

    # -- (de)serialisation --------------------------------------------------------------------
    @classmethod
    def load(cls, storage: Storage) -> Catalog:
        data = storage.read_if_exists(CATALOG_KEY)
        if data is None:
            return cls()
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(
                tables={k: TableState(**v) for k, v in raw.get("tables", {}).items()},
                members={k: list(v) for k, v in raw.get("members", {}).items()},
                calendar=tuple(raw["calendar"]) if raw.get("calendar") else None,
                next_record_id=raw.get("next_record_id"),
                fact_index_version=raw.get("fact_index_version"),
                index_buckets=list(raw.get("index_buckets", [])),
            )
        except (ValueError, TypeError, KeyError):
            log.warning("unreadable %s: starting from an empty catalog", CATALOG_KEY)
            return cls()

    def save(self, storage: Storage) -> None:
        body = {
            "tables": {k: asdict(v) for k, v in self.tables.items()},
            "members": self.members,
            "calendar": list(self.calendar) if self.calendar else None,
            "next_record_id": self.next_record_id,
            "fact_index_version": self.fact_index_version,
            "index_buckets": self.index_buckets,
        }
        storage.write(CATALOG_KEY, json.dumps(body).encode())

    # -- members and calendar -----------------------------------------------------------------
    def missing_members(self, dimension: str, keys: pl.Series) -> pl.Series:
        known = self.members.get(dimension)
        if known is None:
            return keys.unique()
        return keys.unique().filter(
            ~keys.unique().is_in(pl.Series(known, dtype=keys.dtype).implode())
        )

    def add_members(self, dimension: str, keys: pl.Series | list[int]) -> None:
        values = keys.to_list() if isinstance(keys, pl.Series) else keys
        merged = set(self.members.get(dimension, [])) | {int(k) for k in values if k is not None}
        self.members[dimension] = sorted(merged)

    def calendar_range(self) -> tuple[date, date] | None:
        if self.calendar is None:
            return None
        return date.fromisoformat(self.calendar[0]), date.fromisoformat(self.calendar[1])

    def set_calendar(self, lo: date, hi: date) -> None:
        self.calendar = (lo.isoformat(), hi.isoformat())

    def set_table(self, name: str, version: int, rows: int, operation: str | None) -> None:
        self.tables[name] = TableState(
            version, rows, datetime.now(UTC).isoformat(timespec="milliseconds"), operation
        )


# -- the fact index -----------------------------------------------------------------------------
def bucket_of(ids: pl.Series) -> list[int]:
    return sorted({int(b) for b in (ids // BUCKET_IDS).unique().to_list() if b is not None})


def _bucket_key(bucket: int) -> str:
    return f"{INDEX_PREFIX}{bucket:08d}.parquet"


RECENT_KEY = f"{INDEX_PREFIX}recent.parquet"
RECENT_MAX_ROWS = 200_000  # folded into the buckets past this (maintenance folds it daily)


def _read_recent(storage: Storage) -> pl.DataFrame:
    data = storage.read_if_exists(RECENT_KEY)
    if data is None:
        return pl.DataFrame(schema=INDEX_SCHEMA)
    return pl.read_parquet(io.BytesIO(data)).select(
        [pl.col(c).cast(t) for c, t in INDEX_SCHEMA.items()]
    )


def _write_recent(storage: Storage, recent: pl.DataFrame) -> None:
    if recent.is_empty():
        storage.delete(RECENT_KEY)
        return
    buffer = io.BytesIO()
    recent.write_parquet(buffer, compression="lz4", statistics=False)
    storage.write(RECENT_KEY, buffer.getvalue())


def _in_buckets(buckets: list[int]) -> pl.Expr:
    return (pl.col("sales_order_id") // BUCKET_IDS).is_in(buckets)


def read_index(
    storage: Storage, buckets: list[int], present: list[int], columns: list[str] | None = None
) -> pl.DataFrame:
    """The stored versions in these buckets: the bucket objects that exist, plus the rows of
    those buckets that small runs added since (the `recent` overlay). `columns`: only those
    (a lookup that needs no data file paths skips decoding them)."""
    schema = {c: t for c, t in INDEX_SCHEMA.items() if columns is None or c in columns}
    frames = []
    for bucket in sorted(set(buckets) & set(present)):
        data = storage.read_if_exists(_bucket_key(bucket))
        if data is not None:
            frames.append(pl.read_parquet(io.BytesIO(data), columns=list(schema)))
    recent = _read_recent(storage).filter(_in_buckets(buckets))
    if not recent.is_empty():
        frames.append(recent.select(list(schema)))
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat([f.select([pl.col(c).cast(t) for c, t in schema.items()]) for f in frames])


def append_index(storage: Storage, added: pl.DataFrame, present: list[int]) -> list[int]:
    """Add a small run's new versions to the `recent` overlay (one GET, one PUT) instead of
    rewriting every bucket its orders fall in: a small update of random orders in a large table
    touches every bucket, and rewriting them made its cost grow with the table. Past
    RECENT_MAX_ROWS the overlay is folded into its buckets. Returns the buckets written."""
    typed = added.select([pl.col(c).cast(t) for c, t in INDEX_SCHEMA.items()])
    recent = pl.concat([_read_recent(storage), typed])
    _write_recent(storage, recent)
    if recent.height <= RECENT_MAX_ROWS:
        return []
    buckets = bucket_of(recent["sales_order_id"])
    write_index(storage, read_index(storage, buckets, present), buckets)
    return buckets


def write_index(storage: Storage, index: pl.DataFrame, buckets: list[int]) -> None:
    """Rewrite these buckets from `index` (which holds every stored version of them, the
    `recent` overlay's rows included: read them with `read_index`), and drop those buckets' rows
    from the overlay. One
    partition pass, rows left in the order they come (readers filter, never seek), LZ4: a small
    update of random orders in a large table touches every bucket, so this is on its path."""
    wanted = set(buckets)
    recent = _read_recent(storage)
    folded = recent.filter(_in_buckets(buckets))
    parts = index.with_columns(
        (pl.col("sales_order_id") // BUCKET_IDS).alias("_bucket")
    ).partition_by("_bucket", as_dict=True, include_key=False)
    for (bucket,), part in parts.items():
        if bucket not in wanted:
            continue
        buffer = io.BytesIO()
        part.write_parquet(buffer, compression="lz4", statistics=False)
        storage.write(_bucket_key(int(bucket)), buffer.getvalue())
    if not folded.is_empty():  # those rows are in the buckets now (the caller read them there)
        _write_recent(storage, recent.filter(~_in_buckets(buckets)))


def index_from_files(uris: list[str], table_uri: str, options: dict[str, str]) -> pl.DataFrame:
    """Index rows of the fact data files `uris` (absolute), read from the files themselves."""
    if not uris:
        return pl.DataFrame(schema=INDEX_SCHEMA)
    prefix = table_uri.rstrip("/") + "/"
    frame = (
        pl.scan_parquet(uris, storage_options=options or None, include_file_paths="path")
        .select([*INDEX_KEY_COLUMNS, "path"])
        .collect()
    )
    return frame.with_columns(pl.col("path").str.strip_prefix(prefix)).select(
        [pl.col(c).cast(t) for c, t in INDEX_SCHEMA.items()]
    )
