"""Apply one large sales_order file in pieces: memory set by the piece size, not the file.

The file is read in ranged reads and cut into pieces of whole records (transforms/chunks.py);
each piece is typed and validated by `parse_file` (rejects per record, numbered in the file),
turned into new fact versions against the fact index (a few buckets at a time) and the versions
earlier pieces of the file wrote, numbered in application order, and written as its own Parquet
data file. Nothing is committed until the whole file is read: then every data file goes into ONE
Delta commit (the file is still applied atomically; a crash before it leaves only orphan data
files, which readers never see and `maintain`'s vacuum removes), followed by the fact index
(bucket by bucket, from a spill on local disk), inferred members, calendar, rejects and ledger,
in the order the whole-file path uses.

What is held whole: a bitmap of the file's order ids (the snapshot, for deletion detection and
for orders that repeat across pieces: one bit per id, 1.25 MB for 10M ids), the rejects, and
small per-dimension key sets. A file that the pieces cannot reproduce exactly (a piece the parser
reads as something other than records, say a cut inside a string; an order whose versions arrive
out of time order across pieces) raises NotStreamable before any commit, and is applied the
whole-file way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from service import catalog as fact_index
from service.lake import ALL_PATHS, TABLE_SCHEMAS, DataFile, Lake
from service.ledger import FileOutcome
from service.storage import Storage
from transforms import chunks
from transforms import fact_sales_order as fact
from transforms.dim_date import FACT_DATE_COLUMNS
from transforms.dimensions import DIMENSION_KEYS
from transforms.parse import JSON_FIELD, REJECT_COUNTS, ParsedFile, ParseLimits, parse_file
from transforms.schemas import REJECTS, SOURCE_TABLES

if TYPE_CHECKING:
    from service.pipeline import Pipeline, PlannedFile, RunSummary

log = logging.getLogger("totesys.streaming")

FACT = "fact_sales_order"
HEAD_BYTES = 64 * 1024  # enough to see how a file holds its records
TAIL_BYTES = 4 * 1024
CACHED_BUCKETS = 4  # fact index buckets kept while pieces are applied
MAX_JOINED = 4  # pieces that do not read alone are joined up to this many times the piece size


class NotStreamable(Exception):
    """The file must be applied the whole-file way (the reason says why)."""


def is_streamed(table: str, size: int, chunk_bytes: int) -> bool:
    return table == "sales_order" and size > chunk_bytes


def read_pieces(storage: Storage, key: str, size: int, chunk_bytes: int) -> Iterator[chunks.Piece]:
    """The file's records in pieces of about `chunk_bytes`, one ranged read each."""
    head = storage.read_range(key, 0, min(size, HEAD_BYTES))
    tail = storage.read_range(key, max(0, size - TAIL_BYTES), size)
    layout = chunks.layout(head, tail, size)
    if layout is None:
        raise NotStreamable("neither JSON Lines nor an array of records")
    return chunks.pieces(_reader(storage, key), layout, chunk_bytes)


def _reader(storage: Storage, key: str) -> chunks.Read:
    return lambda start, end: storage.read_range(key, start, end)


class _SeenOrders:
    """Which order ids the file has shown so far: one bit per id (a bit-packed Boolean)."""

    def __init__(self) -> None:
        self.flags = pl.Series("seen", [], dtype=pl.Boolean())

    def contains(self, ids: pl.Series) -> pl.Series:
        inside = ids < self.flags.len()
        looked = self.flags.gather(ids.filter(inside).cast(pl.Int64()))
        out = pl.repeat(False, ids.len(), dtype=pl.Boolean(), eager=True)
        return out.scatter(inside.arg_true(), looked) if looked.len() else out

    def add(self, ids: pl.Series) -> None:
        if ids.is_empty():
            return
        low, high = ids.min(), ids.max()
        if low is None or int(low) < 0:  # type: ignore[arg-type]
            raise NotStreamable("negative sales_order_id")
        top = int(high) + 1  # type: ignore[arg-type]
        if top > self.flags.len():
            grow = max(top, 2 * self.flags.len()) - self.flags.len()
            self.flags = self.flags.extend_constant(False, grow)
        self.flags = self.flags.scatter(ids.cast(pl.Int64()), True)

    def in_range(self, low: int, high: int) -> pl.Series:
        """The ids seen in [low, high)."""
        part = self.flags.slice(low, max(0, min(high, self.flags.len()) - low))
        return (part.arg_true().cast(pl.Int64()) + low).cast(pl.Int32())


class _IndexCache:
    """Stored versions of the fact index's buckets, a few buckets kept."""

    def __init__(self, storage: Storage, present: list[int]) -> None:
        self.storage = storage
        self.present = set(present)
        self.kept: dict[int, pl.DataFrame] = {}

    def bucket(self, bucket: int) -> pl.DataFrame:
        if bucket not in self.kept:
            if len(self.kept) >= CACHED_BUCKETS:
                self.kept.pop(next(iter(self.kept)))
            frame = fact_index.read_index(self.storage, [bucket], sorted(self.present))
            self.kept[bucket] = frame.select(fact_index.INDEX_KEY_COLUMNS)
        return self.kept[bucket]

    def versions_of(self, ids: pl.Series) -> pl.DataFrame:
        buckets = [b for b in fact_index.bucket_of(ids) if b in self.present]
        if not buckets:
            return pl.DataFrame(schema={c: fact_index.INDEX_SCHEMA[c] for c in fact.VERSION_KEY})
        stored = pl.concat([self.bucket(b) for b in buckets])
        return stored.filter(pl.col("sales_order_id").is_in(ids.implode())).select(fact.VERSION_KEY)


class _Referenced:
    """What the file's versions reference, for inferred members and the calendar, kept small:
    the distinct keys per dimension column and the date range per date column."""

    def __init__(self) -> None:
        self.keys: dict[str, pl.Series] = {}
        self.dates: dict[str, list[object]] = {}

    def add(self, versions: pl.DataFrame) -> None:
        for _, column in DIMENSION_KEYS.values():
            values = versions[column].drop_nulls().unique()
            known = self.keys.get(column)
            self.keys[column] = values if known is None else pl.concat([known, values]).unique()
        for column in FACT_DATE_COLUMNS:
            values = versions[column].drop_nulls()
            if values.is_empty():
                continue
            self.dates.setdefault(column, []).extend([values.min(), values.max()])

    def frame(self, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """A frame holding every referenced key and the extreme dates (padded with nulls)."""
        columns: dict[str, pl.Series] = {}
        for column, values in self.keys.items():
            columns[column] = values
        for column, dates in self.dates.items():
            present = [d for d in dates if d is not None]
            columns[column] = pl.Series(column, [min(present), max(present)], dtype=pl.Date())  # type: ignore[type-var]
        height = max((s.len() for s in columns.values()), default=0)
        out = {
            name: (
                columns[name].extend_constant(None, height - columns[name].len())
                if name in columns
                else pl.repeat(None, height, dtype=dtype, eager=True)
            ).cast(dtype)
            for name, dtype in schema.items()
        }
        return pl.DataFrame(out, schema=schema) if height else pl.DataFrame(schema=schema)


def apply_streamed(
    pipeline: Pipeline,
    item: PlannedFile,
    seq: int,
    summary: RunSummary,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Apply one large sales_order file (a batch of its own). NotStreamable before any commit
    if the file must be applied the whole-file way (its data files are removed first)."""
    from service.pipeline import _outcome

    lake, settings = pipeline.lake, pipeline.settings
    key = item.key.key
    run_id = summary.run_id
    pipeline._fact_index(pl.Series("sales_order_id", [], dtype=pl.Int32()))  # fresh or rebuilt
    catalog = pipeline.catalog
    state = catalog.tables.get(FACT)  # current now (the index check above made sure)
    if catalog.next_record_id is None:
        top = lake.column_max(FACT, "sales_record_id")
        catalog.next_record_id = int(top or 0) + 1
    next_id = catalog.next_record_id
    index = _IndexCache(pipeline.processed, catalog.index_buckets)
    seen = _SeenOrders()
    referenced = _Referenced()
    written: list[DataFile] = []
    rejects_parts: list[pl.DataFrame] = []
    touched: set[int] = set()
    records = good_rows = records_rejected = details = 0
    cap = pipeline.limits.max_reject_details
    counts_parts: list[pl.DataFrame] = []
    spill = Path(tempfile.mkdtemp(prefix="totesys-index-spill-"))
    committed = False
    try:

        def store(numbered: pl.DataFrame, number: int) -> None:
            nonlocal next_id
            if numbered.is_empty():
                return
            data_file = lake.write_data_file(FACT, numbered)
            written.append(data_file)
            next_id = int(numbered["sales_record_id"].max()) + 1  # type: ignore[arg-type]
            added = numbered.select(fact_index.INDEX_KEY_COLUMNS).with_columns(
                pl.lit(data_file.path).alias("path"),
                (pl.col("sales_order_id") // fact_index.BUCKET_IDS).alias("_bucket"),
            )
            for (bucket,), part in added.partition_by("_bucket", as_dict=True).items():
                folder = spill / f"{int(bucket):08d}"
                folder.mkdir(exist_ok=True)
                part.drop("_bucket").write_parquet(folder / f"{number:06d}.parquet")
                touched.add(int(bucket))

        pieces = read_pieces(
            pipeline.ingestion, item.info.key, item.info.size, settings.chunk_bytes
        )
        read = _reader(pipeline.ingestion, item.info.key)
        parsed = _parsed_pieces(pieces, read, key, settings.chunk_bytes, pipeline.limits)
        for number, (piece, result) in enumerate(parsed):
            if progress:
                progress(f"applying {key} in pieces: {records:,} records so far")
            if result.rejects.height and details < cap:
                # the first `cap` problems of the file in detail, as parse_file keeps them
                part = _in_file(result.rejects.head(cap - details), records, piece.lines_before)
                rejects_parts.append(part)
                details += part.height
            if result.reject_counts is not None and result.reject_counts.height:
                counts_parts.append(result.reject_counts)
            records_rejected += result.records_rejected
            rows = result.rows.with_columns(
                pl.col("record_number") + records,
                pl.lit(key).alias("source_file"),
                pl.lit(seq, dtype=pl.Int64()).alias("file_seq"),
            )
            records += result.records_read
            good_rows += rows.height
            versions = fact.order_versions(rows)
            referenced.add(versions)
            ids = versions["sales_order_id"]
            stored = index.versions_of(ids)
            again = ids.filter(seen.contains(ids))
            if again.len():
                # orders an earlier piece of this file held: its versions count as stored
                earlier = _written_versions(lake, written, again)
                first = earlier.group_by("sales_order_id").agg(pl.col("last_updated").min())
                before = versions.join(first, on="sales_order_id", suffix="_first").filter(
                    pl.col("last_updated") < pl.col("last_updated_first")
                )
                if before.height:
                    raise NotStreamable("an order's versions arrive out of time order")
                stored = pl.concat([stored, earlier.select(fact.VERSION_KEY)])
            seen.add(ids)
            new = fact.new_versions(versions, stored)
            store(fact.number_versions(new, next_id, run_id), number)
            del rows, versions, new, result

        if records and not good_rows and rejects_parts:
            raise NotStreamable("no record of the file reads")  # the parser says so for the file
        rejects = (
            pl.concat(rejects_parts, how="vertical_relaxed").select(
                [pl.col(c).cast(t) for c, t in REJECTS.items()]
            )
            if rejects_parts
            else pl.DataFrame(schema=REJECTS)
        )
        counts = (
            pl.concat(counts_parts)
            .group_by("field", "reason")
            .agg(pl.col("count").sum())
            .sort(["count", "field", "reason"], descending=[True, False, False])
            if counts_parts
            else pl.DataFrame(schema=REJECT_COUNTS)
        )
        whole = ParsedFile(
            rows=pl.DataFrame(schema=SOURCE_TABLES["sales_order"].columns),
            rejects=rejects,
            records_read=records,
            records_rejected=records_rejected,
            reject_counts=counts,
        )
        outcome: FileOutcome = _outcome(item, whole)
        if item.key.kind == "baseline":
            if whole.problems:
                summary.warnings.append(
                    f"deletion detection skipped for {key}: {whole.problems} "
                    "problems in rejected rows could hide orders that are still live"
                )
            else:
                tombstones = _deletions(pipeline, index, seen, item, seq)
                if tombstones.height:
                    numbered = fact.number_versions(tombstones, next_id, run_id)
                    referenced.add(numbered)
                    store(numbered, 999_999)

        # everything that can fail on data, before the first commit
        referenced_frame = referenced.frame(TABLE_SCHEMAS[FACT])
        inferred = pipeline._inferred_members(referenced_frame, {})
        extension = pipeline._calendar_extension(referenced_frame)

        rows_added = sum(f.rows for f in written)
        if written:
            version = state.version if state is not None else None
            if not lake.commit_data_files(FACT, written, run_id, version):
                raise NotStreamable(f"{FACT} moved past version {version} during the run")
            committed = True
            new_version = 0 if version is None else version + 1
            rows_before = state.rows if state is not None else 0
            catalog.set_table(FACT, new_version, rows_before + rows_added, "WRITE")
            summary.add_rows(FACT, rows_added)
            lake.before_commit("_state")
            _write_index(pipeline.processed, spill, sorted(touched), catalog.index_buckets)
            catalog.index_buckets = sorted(set(catalog.index_buckets) | touched)
            catalog.next_record_id = next_id
            catalog.fact_index_version = new_version
        counted = {key: counts.to_dicts()} if counts.height else {}
        pipeline._after_facts(
            [key], rejects, counted, [outcome], inferred, extension, referenced_frame, summary
        )
    except BaseException:
        if not committed and written:
            table = ALL_PATHS[FACT]
            pipeline.processed.delete_many([f"{table}/{f.path}" for f in written])
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _in_file(rejects: pl.DataFrame, records_before: int, lines_before: int) -> pl.DataFrame:
    """A piece's rejects with the file's record numbers (and line numbers in the reasons)."""
    reasons = [
        chunks.shift_line_number(reason, lines_before) if field == JSON_FIELD else reason
        for reason, field in zip(rejects["reason"], rejects["field"], strict=True)
    ]
    return rejects.with_columns(
        pl.col("record_number") + records_before, pl.Series("reason", reasons, dtype=pl.String())
    )


def _parsed_pieces(
    pieces: Iterator[chunks.Piece],
    read: chunks.Read,
    key: str,
    chunk_bytes: int,
    limits: ParseLimits,
) -> Iterator[tuple[chunks.Piece, ParsedFile]]:
    """Each piece parsed on its own; a piece that does not read as records (a cut inside a
    string, say) is joined with the next one and parsed again."""
    pending: chunks.Piece | None = None
    for each in pieces:
        piece = chunks.joined(read, pending, each) if pending is not None else each
        pending = None
        result = parse_file(piece.data, "sales_order", key, limits)
        if (result.rejects["record_number"] == 0).any():
            if len(piece.body) > MAX_JOINED * chunk_bytes:
                raise NotStreamable("a part of the file does not read as records on its own")
            pending = piece
            continue
        yield piece, result
    if pending is not None:
        raise NotStreamable("the end of the file does not read as records on its own")


def _written_versions(lake: Lake, written: list[DataFile], ids: pl.Series) -> pl.DataFrame:
    """(sales_order_id, last_updated) of the versions of `ids` this file's pieces wrote."""
    uris = [f"{lake.uri(FACT).rstrip('/')}/{f.path}" for f in written]
    if not uris:
        return pl.DataFrame(schema={c: fact_index.INDEX_SCHEMA[c] for c in fact.VERSION_KEY})
    return (
        pl.scan_parquet(uris, storage_options=lake.options or None)
        .filter(pl.col("sales_order_id").is_in(ids.implode()))
        .select(fact.VERSION_KEY)
        .collect()
    )


def _deletions(
    pipeline: Pipeline, index: _IndexCache, seen: _SeenOrders, item: PlannedFile, seq: int
) -> pl.DataFrame:
    """`delete` versions for the live stored orders the baseline lacks, one index bucket at a
    time (every id of the file is in the snapshot, so only stored versions can be deleted)."""
    gone: list[pl.Series] = []
    for bucket in sorted(index.present):
        low = bucket * fact_index.BUCKET_IDS
        stored = index.bucket(bucket)
        if stored.is_empty():
            continue
        candidates = fact.deletion_versions(
            fact.latest_versions(stored),
            seen.in_range(low, low + fact_index.BUCKET_IDS),
            item.key.timestamp,
            item.key.key,
            seq,
        )
        if candidates.height:
            gone.append(candidates["sales_order_id"])
    if not gone:
        return pl.DataFrame()
    ids = pl.concat(gone)
    full = pipeline.lake.read(FACT, where=pl.col("sales_order_id").is_in(ids.implode()))
    if full is None or full.is_empty():
        return pl.DataFrame()
    latest = fact.latest_versions(
        full.with_columns(
            pl.lit(0, dtype=pl.Int64).alias("file_seq"),
            pl.lit(0, dtype=pl.Int64).alias("record_number"),
        )
    )
    return fact.deletion_versions(
        latest, pl.Series([], dtype=pl.Int32()), item.key.timestamp, item.key.key, seq
    )


def _write_index(storage: Storage, spill: Path, buckets: list[int], present: list[int]) -> None:
    """Rewrite the touched index buckets: stored versions plus this file's, one at a time."""
    for bucket in buckets:
        stored = fact_index.read_index(storage, [bucket], present)
        added = pl.read_parquet(sorted((spill / f"{bucket:08d}").glob("*.parquet")))
        both = pl.concat(
            [stored, added.select([pl.col(c).cast(t) for c, t in fact_index.INDEX_SCHEMA.items()])]
        )
        fact_index.write_index(storage, both.unique(subset=fact.VERSION_KEY, keep="last"), [bucket])
