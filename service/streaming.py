"""Apply one large file of a fact's source table in pieces: memory set by the piece size, not
the file.

The file is read in ranged reads and cut into pieces of whole records (transforms/chunks.py);
each piece is typed and validated by `parse_file` (rejects per record, numbered in the file),
turned into new fact versions against the fact index (a few buckets at a time) and the versions
earlier pieces of the file wrote, numbered in application order, and written as its own Parquet
data file. Nothing is committed until the whole file is read: then every data file goes into ONE
Delta commit (the file is still applied atomically; a crash before it leaves only orphan data
files, which readers never see and `maintain`'s vacuum removes), followed by the fact index
(bucket by bucket, from a spill on local disk), inferred members, calendar, rejects and ledger,
in the order the whole-file path uses (service/fact_store.py, service/batch.py).

What is held whole: a bitmap of the file's ids (the snapshot, for deletion detection and for ids
that repeat across pieces: one bit per id, 1.25 MB for 10M ids), the rejects, and small
per-dimension key sets. A file that the pieces cannot reproduce exactly (a piece the parser reads
as something other than records, say a cut inside a string; an id whose versions arrive out of
time order across pieces) raises NotStreamable before any commit, and is applied the whole-file
way.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import polars as pl

from service.batch import BatchTail, finish_batch
from service.context import RunContext
from service.data_files import DataFile
from service.fact_index import BUCKET_IDS, FactIndex, bucket_of
from service.fact_store import FactStore, deletion_skipped
from service.lake import ALL_PATHS
from service.outcomes import RunSummary, file_outcome
from service.pieces import (
    NotStreamable,
    Problems,
    parsed_pieces,
    piece_reader,
    read_pieces,
)
from service.planner import PlannedFile
from service.references import Referenced, calendar_extension, inferred_members
from transforms import chunks, fact_versions
from transforms.fact_spec import FactSpec
from transforms.facts import FACTS_BY_SOURCE
from transforms.parse import (
    ParsedFile,
)

log = logging.getLogger("totesys.streaming")

CACHED_BUCKETS = 4  # fact index buckets kept while pieces are applied
LAST_PIECE = 999_999  # the spill name of the deletions, after every piece


class _SeenIds:
    """Which ids the file has shown so far: one bit per id (a bit-packed Boolean)."""

    def __init__(self, id_column: str) -> None:
        self.id_column = id_column
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
            raise NotStreamable(f"negative {self.id_column}")
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

    def __init__(self, index: FactIndex, present: list[int]) -> None:
        self.index = index
        self.present = set(present)
        self.kept: dict[int, pl.DataFrame] = {}

    def bucket(self, bucket: int) -> pl.DataFrame:
        if bucket not in self.kept:
            if len(self.kept) >= CACHED_BUCKETS:
                self.kept.pop(next(iter(self.kept)))
            frame = self.index.read([bucket], sorted(self.present))
            self.kept[bucket] = frame.select(self.index.key_columns)
        return self.kept[bucket]

    def versions_of(self, ids: pl.Series) -> pl.DataFrame:
        key = self.index.spec.version_key
        buckets = [b for b in bucket_of(ids) if b in self.present]
        if not buckets:
            return self.index.empty(key)
        stored = pl.concat([self.bucket(b) for b in buckets])
        return stored.filter(pl.col(self.index.id_column).is_in(ids.implode())).select(key)


class _Referenced:
    """What the file's versions reference, for inferred members and the calendar, kept small:
    the distinct keys per dimension column and the date range per date column."""

    def __init__(self, spec: FactSpec) -> None:
        self.spec = spec
        self.keys: dict[str, pl.Series] = {}
        self.dates: dict[str, list[object]] = {}

    def add(self, versions: pl.DataFrame) -> None:
        for column in self.spec.references:
            values = versions[column].drop_nulls().unique()
            known = self.keys.get(column)
            self.keys[column] = values if known is None else pl.concat([known, values]).unique()
        for column in self.spec.dates:
            values = versions[column].drop_nulls()
            if values.is_empty():
                continue
            self.dates.setdefault(column, []).extend([values.min(), values.max()])

    def frame(self) -> pl.DataFrame:
        """A frame holding every referenced key and the extreme dates (padded with nulls): the
        columns service/references.py reads, not the whole fact."""
        wanted = {*self.spec.references, *self.spec.dates}
        schema = {c: t for c, t in self.spec.schema.items() if c in wanted}
        columns: dict[str, pl.Series] = dict(self.keys)
        for column, dates in self.dates.items():
            present = [d for d in dates if d is not None]
            columns[column] = pl.Series(column, [min(present), max(present)], dtype=pl.Date())  # type: ignore[type-var]
        height = max((s.len() for s in columns.values()), default=0)
        if not height:
            return pl.DataFrame(schema=schema)
        out = {
            name: (
                columns[name].extend_constant(None, height - columns[name].len())
                if name in columns
                else pl.repeat(None, height, dtype=dtype, eager=True)
            ).cast(dtype)
            for name, dtype in schema.items()
        }
        return pl.DataFrame(out, schema=schema)


class _StreamedFile:
    """One large file applied in pieces: the versions each piece adds, written as data files
    and spilled index rows, committed at the end."""

    def __init__(self, ctx: RunContext, item: PlannedFile, seq: int, summary: RunSummary) -> None:
        self.ctx, self.item, self.seq, self.summary = ctx, item, seq, summary
        self.spec = FACTS_BY_SOURCE[item.key.table]
        self.store = FactStore(ctx, self.spec)
        self.store.make_index_current()  # fresh or rebuilt
        self.next_id = self.store.next_record_id()
        self.index = _IndexCache(self.store.index, self.store.state.index_buckets)
        self.seen = _SeenIds(self.spec.id_column)
        self.referenced = _Referenced(self.spec)
        self.problems = Problems(ctx.limits.max_reject_details)
        self.written: list[DataFile] = []
        self.touched: set[int] = set()
        self.records = self.good_rows = 0
        self.spill = Path(tempfile.mkdtemp(prefix="totesys-index-spill-"))
        self.committed = False
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="totesys-piece-writer")
        self.pending: Future[tuple[DataFile, set[int]]] | None = None

    def write(self, numbered: pl.DataFrame, number: int) -> None:
        """One data file of new versions, and their index rows spilled by bucket, written by a
        second thread while the next piece is parsed (Polars and the Parquet writer release the
        GIL); at most one write is in flight, so memory holds one more piece at most."""
        if numbered.is_empty():
            return
        self.next_id = int(numbered[self.spec.record_id].max()) + 1  # type: ignore[arg-type]
        self.settle()
        self.pending = self.writer.submit(self._write_file, numbered, number)

    def _write_file(self, numbered: pl.DataFrame, number: int) -> tuple[DataFile, set[int]]:
        spec = self.spec
        data_file = self.ctx.lake.write_data_file(spec.name, numbered)
        added = numbered.select(spec.index_key_columns).with_columns(
            pl.lit(data_file.path).alias("path"),
            (pl.col(spec.id_column) // BUCKET_IDS).alias("_bucket"),
        )
        buckets = set()
        for (bucket,), part in added.partition_by("_bucket", as_dict=True).items():
            folder = self.spill / f"{int(bucket):08d}"
            folder.mkdir(exist_ok=True)
            part.drop("_bucket").write_parquet(folder / f"{number:06d}.parquet")
            buckets.add(int(bucket))
        return data_file, buckets

    def settle(self) -> None:
        """Wait for the write in flight (its errors surface here)."""
        if self.pending is None:
            return
        pending, self.pending = self.pending, None
        data_file, buckets = pending.result()
        self.written.append(data_file)
        self.touched |= buckets

    def apply_piece(self, number: int, piece: chunks.Piece, result: ParsedFile) -> None:
        spec = self.spec
        self.problems.add(result, self.records, piece)
        rows = result.rows.with_columns(
            pl.col("record_number") + self.records,
            pl.lit(self.item.key.key).alias("source_file"),
            pl.lit(self.seq, dtype=pl.Int64()).alias("file_seq"),
        )
        self.records += result.records_read
        self.good_rows += rows.height
        versions = fact_versions.source_versions(spec, rows)
        self.referenced.add(versions)
        ids = versions[spec.id_column]
        stored = self.index.versions_of(ids)
        again = ids.filter(self.seen.contains(ids))
        if again.len():
            stored = pl.concat([stored, self._earlier_versions(versions, again)])
        self.seen.add(ids)
        new = fact_versions.new_versions(spec, versions, stored)
        self.write(
            fact_versions.number_versions(spec, new, self.next_id, self.summary.run_id), number
        )

    def _earlier_versions(self, versions: pl.DataFrame, again: pl.Series) -> pl.DataFrame:
        """Ids an earlier piece of this file held: its versions count as stored."""
        spec, ident = self.spec, self.spec.id_column
        self.settle()
        uris = [f"{self.ctx.lake.uri(spec.name).rstrip('/')}/{f.path}" for f in self.written]
        if not uris:
            return self.index.index.empty(spec.version_key)
        earlier = (
            pl.scan_parquet(uris, storage_options=self.ctx.lake.options or None)
            .filter(pl.col(ident).is_in(again.implode()))
            .select(spec.version_key)
            .collect()
        )
        first = earlier.group_by(ident).agg(pl.col("last_updated").min())
        before = versions.join(first, on=ident, suffix="_first").filter(
            pl.col("last_updated") < pl.col("last_updated_first")
        )
        if before.height:
            raise NotStreamable(f"a {spec.label}'s versions arrive out of time order")
        return earlier

    def deletions(self) -> pl.DataFrame:
        """`delete` versions for the live stored ids the baseline lacks, one index bucket at a
        time (every id of the file is in the snapshot, so only stored versions can be deleted)."""
        spec, key = self.spec, self.item.key
        gone: list[pl.Series] = []
        for bucket in sorted(self.index.present):
            low = bucket * BUCKET_IDS
            stored = self.index.bucket(bucket)
            if stored.is_empty():
                continue
            candidates = fact_versions.deletion_versions(
                spec,
                fact_versions.latest_versions(spec, stored),
                self.seen.in_range(low, low + BUCKET_IDS),
                key.timestamp,
                key.key,
                self.seq,
            )
            if candidates.height:
                gone.append(candidates[spec.id_column])
        if not gone:
            return pl.DataFrame()
        full = self.store.stored_rows(pl.concat(gone))
        if full is None:
            return pl.DataFrame()
        latest = fact_versions.latest_versions(spec, full)
        return fact_versions.deletion_versions(
            spec, latest, pl.Series([], dtype=spec.id_dtype), key.timestamp, key.key, self.seq
        )

    def finish(self) -> None:
        """Deletions, then everything that can fail on data, then the commits."""
        spec, key, summary = self.spec, self.item.key, self.summary
        if self.records and not self.good_rows and self.problems.details:
            raise NotStreamable("no record of the file reads")  # the parser says so for the file
        whole = self.problems.parsed_file(key.table, self.records)
        if key.kind == "baseline":
            if whole.problems:
                summary.warnings.append(deletion_skipped(spec, key.key, whole.problems))
            else:
                tombstones = self.deletions()
                if tombstones.height:
                    numbered = fact_versions.number_versions(
                        spec, tombstones, self.next_id, summary.run_id
                    )
                    self.referenced.add(numbered)
                    self.write(numbered, LAST_PIECE)
        self.settle()
        referenced: Referenced = [(spec, self.referenced.frame())]
        tail = BatchTail(
            keys=[key.key],
            rejects=whole.rejects,
            counted={key.key: whole.reject_counts.to_dicts()}
            if whole.reject_counts is not None and whole.reject_counts.height
            else {},
            outcomes=[file_outcome(key, self.item.info.size, whole)],
            inferred=inferred_members(self.ctx, referenced, {}),
            extension=calendar_extension(self.ctx, referenced),
            referenced=referenced,
        )
        if self.written:
            if not self.store.commit_streamed(self.written, summary):
                raise NotStreamable(f"{spec.name} moved past the version planned against")
            self.committed = True
            self.store.index_streamed(self.touched, self.next_id, self._write_index)
        finish_batch(self.ctx, tail, summary)

    def _write_index(self, index: FactIndex, buckets: list[int], present: list[int]) -> None:
        """Rewrite the touched index buckets: stored versions plus this file's, one at a time.
        A bucket with no stored versions (a first baseline: every bucket) is this file's rows
        alone: nothing to read or dedupe."""
        for bucket in buckets:
            added = pl.read_parquet(sorted((self.spill / f"{bucket:08d}").glob("*.parquet")))
            added = added.select([pl.col(c).cast(t) for c, t in index.schema.items()])
            if bucket in present:
                both = pl.concat([index.read([bucket], present), added])
                added = both.unique(subset=self.spec.version_key, keep="last")
            index.write(added, [bucket])

    def discard(self) -> None:
        """Remove the data files of a file that was not committed (readers never saw them)."""
        with contextlib.suppress(Exception):
            self.settle()  # a write in flight is finished (or failed) before the clean-up
        table = ALL_PATHS[self.spec.name]
        self.ctx.processed.delete_many([f"{table}/{f.path}" for f in self.written])


def apply_streamed(
    ctx: RunContext,
    item: PlannedFile,
    seq: int,
    summary: RunSummary,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Apply one large file of a fact's source table (a batch of its own). NotStreamable
    before any commit if the file must be applied the whole-file way (its data files are
    removed first)."""
    streamed = _StreamedFile(ctx, item, seq, summary)
    try:
        pieces = read_pieces(ctx.ingestion, item.info.key, item.info.size, ctx.settings.chunk_bytes)
        read = piece_reader(ctx.ingestion, item.info.key)
        parsed = parsed_pieces(
            pieces, read, item.key.table, item.key.key, ctx.settings.chunk_bytes, ctx.limits
        )
        for number, (piece, result) in enumerate(parsed):
            if progress:
                progress(f"applying {item.key.key} in pieces: {streamed.records:,} records so far")
            streamed.apply_piece(number, piece, result)
            del result
        streamed.finish()
    except BaseException:
        if not streamed.committed:
            streamed.discard()
        raise
    finally:
        streamed.writer.shutdown(wait=True)
        shutil.rmtree(streamed.spill, ignore_errors=True)
