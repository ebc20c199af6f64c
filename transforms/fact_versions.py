"""Versions of any declared fact (transforms/fact_spec.py), deletions included.

Incoming source rows become versions; the versions already stored are dropped (so a redelivered
or overlapping file adds nothing); a baseline snapshot that lacks a live id adds a `delete`
version carrying the last known values. Record ids number new versions after the largest stored
one, in application order, so a re-run over the same inputs from an empty root gives the same
ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import polars as pl

from transforms.fact_spec import TIMESTAMP_PARTS, FactSpec
from transforms.schemas import TIMESTAMP

# The state queries work on a frame or a lazy frame (`totesys sql` registers them as views).
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
TIME_FORMAT = "%H:%M:%S%.6f"  # HH:MM:SS.ffffff, as PostgreSQL `time` prints and accepts
CARRIED = ["source_file", "file_seq", "record_number"]  # lineage the versions carry


def _derived(spec: FactSpec, column: str) -> pl.Expr:
    if column in TIMESTAMP_PARTS:
        source, part = TIMESTAMP_PARTS[column]
        ts = pl.col(source)
        return (ts.dt.date() if part == "date" else ts.dt.strftime(TIME_FORMAT)).alias(column)
    return pl.col(spec.source_column(column)).alias(column)


def source_versions(spec: FactSpec, rows: pl.DataFrame) -> pl.DataFrame:
    """Typed source rows (with `source_file`, `file_seq`, `record_number`) → one row per
    version, the first delivery of a version winning, in application order."""
    # Fast paths (same result): a single file arrives in record order, and when no id repeats
    # no version can either, so the sort and the dedup (a gather of every column, ~0.4 s for a
    # 1M-order baseline) are skipped.
    if not _in_application_order(rows):
        rows = rows.sort(["file_seq", "record_number"])
    if rows[spec.id_column].n_unique() != rows.height:
        rows = rows.unique(subset=spec.version_key, keep="first", maintain_order=True)
    columns = spec.star_columns[1:]  # the record id is given when the version is numbered
    return rows.select(*[_derived(spec, c) for c in columns], "last_updated", *CARRIED)


def new_versions(spec: FactSpec, versions: pl.DataFrame, stored: pl.DataFrame) -> pl.DataFrame:
    """The versions not stored yet, with `change_type`.

    `stored` holds (id, last_updated) of every stored version of the ids in `versions`. A
    version is an `insert` when its id had no stored version and it is the earliest new version
    of that id; any other new version is an `update`.
    """
    key, ident = spec.version_key, spec.id_column
    if stored.is_empty():
        fresh = versions
    else:
        fresh = versions.join(stored.select(key), on=key, how="anti", nulls_equal=True)
    known = stored.select(ident).unique()
    first_new: pl.Expr = (
        # one new version per id (a baseline, most updates): each is its id's earliest
        pl.lit(True)
        if fresh[ident].n_unique() == fresh.height
        else pl.col("last_updated") == pl.col("last_updated").min().over(ident)
    )
    is_known = pl.col(ident).is_in(known[ident].implode())
    return fresh.with_columns(
        pl.when(first_new & ~is_known)
        .then(pl.lit("insert"))
        .otherwise(pl.lit("update"))
        .alias("change_type")
    )


def _in_application_order(rows: pl.DataFrame) -> bool:
    """Whether rows are already sorted by (file_seq, record_number), strictly."""
    if rows.height < 2:
        return True
    same_file = rows["file_seq"].diff().slice(1)
    later_record = rows["record_number"].diff().slice(1)
    in_order = (same_file > 0) | ((same_file == 0) & (later_record > 0))
    return in_order.all(ignore_nulls=False) is True  # a null (no number) is not in order


def latest_versions(spec: FactSpec, history: Frame) -> Frame:
    """The latest version of every id in a frame of versions (any columns incl. the key)."""
    return history.sort(spec.version_key).unique(subset=spec.id_column, keep="last")


def deletion_versions(
    spec: FactSpec,
    latest: pl.DataFrame,
    snapshot_ids: pl.Series,
    snapshot_at: datetime,
    source_file: str,
    file_seq: int,
) -> pl.DataFrame:
    """`delete` versions for the ids a baseline snapshot lacks.

    `latest` is the latest version of every known id (fact columns + change_type). An id is
    deleted when it is live (its latest version is not a deletion), that version is older than
    the snapshot, and the snapshot does not hold it. An id whose latest version is newer than
    the snapshot was changed after it was taken, so its absence says nothing.
    """
    ident = spec.id_column
    snapshot_ts = pl.lit(snapshot_at, dtype=TIMESTAMP)
    gone = latest.filter(
        (pl.col("change_type") != "delete")
        & (pl.col("last_updated") < snapshot_ts)
        & ~pl.col(ident).is_in(snapshot_ids.implode())
    )
    return gone.sort(ident).with_columns(
        snapshot_ts.alias("last_updated"),
        snapshot_ts.dt.date().alias("last_updated_date"),
        snapshot_ts.dt.strftime(TIME_FORMAT).alias("last_updated_time"),
        pl.lit("delete").alias("change_type"),
        pl.lit(source_file).alias("source_file"),
        pl.lit(file_seq, dtype=pl.Int64).alias("file_seq"),
        # after every row of the snapshot file itself, in id order
        (pl.lit(1 << 40, dtype=pl.Int64) + pl.col(ident)).alias("record_number"),
    )


def number_versions(spec: FactSpec, new: pl.DataFrame, first_id: int, run_id: str) -> pl.DataFrame:
    """Give new versions their record id (application order) and the fact's column order."""
    # a piece or a file in record order needs no sort (a record is one version: no ties)
    ordered = (
        new
        if _in_application_order(new)
        else new.sort(["file_seq", "record_number", spec.id_column, "last_updated"])
    )
    return ordered.with_columns(
        pl.int_range(first_id, first_id + ordered.height, dtype=pl.Int64).alias(spec.record_id),
        pl.lit(run_id).alias("run_id"),
    ).select([pl.col(c).cast(t) for c, t in spec.schema.items()])


def current_state(spec: FactSpec, history: Frame) -> Frame:
    """The current state of every id: its latest version, unless that is a deletion."""
    latest = latest_versions(spec, history)
    return latest.filter(pl.col("change_type") != "delete").sort(spec.id_column)


def state_as_of(spec: FactSpec, history: Frame, as_of: datetime) -> Frame:
    """Every id as it stood at business time `as_of` (versions with last_updated ≤ as_of)."""
    moment = pl.lit(as_of, dtype=TIMESTAMP)
    return current_state(spec, history.filter(pl.col("last_updated") <= moment))
