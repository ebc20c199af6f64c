"""The stored side of one declared fact: its index, its record ids, its deletions and its commit.

Both ways of applying files use it: a batch of whole files (service/batch.py) plans the batch's
new versions with `plan` and commits them with `store`; a large file applied in pieces
(service/streaming.py) looks versions up piece by piece and commits its data files with
`commit_streamed`. Deletions, numbering and index writes live here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from deltalake import DeltaTable

from service.catalog import FactState
from service.context import RunContext
from service.data_files import DataFile
from service.fact_index import FactIndex, bucket_of
from service.outcomes import RunSummary
from transforms import fact_versions
from transforms.fact_spec import FactSpec
from transforms.ingestion_key import IngestionKey
from transforms.schemas import SOURCE_TABLES

log = logging.getLogger("totesys.pipeline")


@dataclass
class Baseline:
    """A baseline snapshot of a fact's source table in the batch: the ids it holds."""

    seq: int  # the file's place in the run's application order
    key: IngestionKey
    ids: pl.Series
    problems: int  # problems in rejected rows: they could hide ids that are still live


@dataclass
class FactPlan:
    numbered: pl.DataFrame  # the new versions, numbered, in fact column order
    referenced: pl.DataFrame  # every version the batch holds (fact columns): for dims, calendar
    index: pl.DataFrame  # the stored versions read from the fact index
    touched: list[int]  # index buckets the new versions fall in
    index_whole: bool = False  # `index` holds every bucket (a baseline's deletion detection)


def empty_source_rows(spec: FactSpec) -> pl.DataFrame:
    schema = dict(SOURCE_TABLES[spec.source].columns)
    schema.update({"record_number": pl.Int64(), "source_file": pl.String(), "file_seq": pl.Int64()})
    return pl.DataFrame(schema=schema)


def deletion_skipped(spec: FactSpec, key: str, problems: int) -> str:
    return (
        f"deletion detection skipped for {key}: {problems} problems in rejected rows could hide "
        f"{spec.label}s that are still live"
    )


class FactStore:
    def __init__(self, ctx: RunContext, spec: FactSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.state: FactState = ctx.catalog.fact(spec.name)
        self.index = FactIndex(ctx.processed, spec, self.state.index_prefix)

    # -- the index ----------------------------------------------------------------------------
    def make_index_current(self) -> None:
        """The index is trusted when the catalog says it reflects the fact version the catalog
        knows and no later log entry exists (one HEAD, no table open); otherwise the table is
        opened and the index rebuilt from it."""
        name, catalog, lake = self.spec.name, self.ctx.catalog, self.ctx.lake
        state = catalog.tables.get(name)
        if (
            state is not None
            and catalog.index_is_current(name)
            and not lake.next_version_exists(name, state.version)
        ):
            return
        handle = lake.table(name)
        if handle is not None:
            catalog.note_commit(name, handle, "WRITE")  # the catalog learns the real version
        version = handle.version() if handle is not None else None
        if self.state.index_version != version:
            self.rebuild_index(handle)

    def stored_versions(self, ids: pl.Series | None) -> pl.DataFrame:
        """The stored (id, last_updated) of these ids; if None, every stored version with its
        change type and data file path (a baseline's deletions and index write need them)."""
        self.make_index_current()
        present = self.state.index_buckets
        if ids is None:
            return self.index.read(present, present)
        return self.index.read(bucket_of(ids), present, columns=self.spec.version_key, ids=ids)

    def rebuild_index(self, handle: DeltaTable | None) -> None:
        """After a crash between the fact commit and the index write (or on a root written before
        the index existed): rebuild it from the table. Rare, and costs one full read."""
        if handle is None:
            self.state.index_version = None
            self.state.index_buckets = []
            return
        name, lake = self.spec.name, self.ctx.lake
        log.info("rebuilding the fact index from %s version %s", name, handle.version())
        stored = self.index.from_files(handle.file_uris(), lake.uri(name), lake.options)
        buckets = bucket_of(stored[self.spec.id_column])
        self.index.forget_recent()  # the table is the whole truth
        self.index.write(stored, buckets)
        self.state.index_buckets = buckets
        self.state.index_version = handle.version()
        top = lake.column_max(name, self.spec.record_id)
        self.state.next_record_id = int(top or 0) + 1

    def next_record_id(self) -> int:
        if self.state.next_record_id is None:
            top = self.ctx.lake.column_max(self.spec.name, self.spec.record_id)
            self.state.next_record_id = int(top or 0) + 1
        return self.state.next_record_id

    # -- a batch of whole files ---------------------------------------------------------------
    def plan(
        self, rows: pl.DataFrame | None, baselines: list[Baseline], summary: RunSummary
    ) -> FactPlan:
        """The batch's new versions, numbered, and every version it holds (for dims)."""
        spec = self.spec
        versions = fact_versions.source_versions(
            spec, rows if rows is not None else empty_source_rows(spec)
        )
        ids = versions[spec.id_column].unique()
        # a baseline needs every id's latest version (deletions); else only the batch's
        index = self.stored_versions(None if baselines else ids)
        stored = index.filter(pl.col(spec.id_column).is_in(ids.implode()))
        new = fact_versions.new_versions(spec, versions, stored.select(spec.version_key))
        for baseline in sorted(baselines, key=lambda b: b.seq):
            if baseline.problems:
                summary.warnings.append(deletion_skipped(spec, baseline.key.key, baseline.problems))
                continue
            tombstones = self.deletions(new, index, baseline)
            new = pl.concat([new, tombstones.select(new.columns)], how="vertical_relaxed")
        numbered = fact_versions.number_versions(spec, new, self.next_record_id(), summary.run_id)
        deleted = numbered.filter(pl.col("change_type") == "delete")
        columns = spec.star_columns[1:]
        referenced = pl.concat([versions.select(columns), deleted.select(columns)])
        touched = bucket_of(numbered[spec.id_column])
        return FactPlan(numbered, referenced, index, touched, index_whole=bool(baselines))

    def deletions(self, new: pl.DataFrame, index: pl.DataFrame, baseline: Baseline) -> pl.DataFrame:
        """`delete` versions for live ids the baseline snapshot lacks."""
        spec = self.spec
        key_cols = spec.index_key_columns
        keys = pl.concat([index.select(key_cols), new.select(key_cols)], how="vertical_relaxed")
        latest_keys = fact_versions.latest_versions(spec, keys)
        gone = self._deleted_ids(latest_keys, baseline)
        if gone.is_empty():
            return new.clear()
        pieces = [new.filter(pl.col(spec.id_column).is_in(gone.implode()))]
        stored = self.stored_rows(gone)
        if stored is not None:
            pieces.append(stored.select(new.columns))
        latest = fact_versions.latest_versions(spec, pl.concat(pieces, how="vertical_relaxed"))
        return self._tombstones(latest, baseline.ids, baseline)

    def _deleted_ids(self, latest: pl.DataFrame, baseline: Baseline) -> pl.Series:
        candidates = self._tombstones(latest, baseline.ids, baseline)
        return candidates[self.spec.id_column]

    def _tombstones(
        self, latest: pl.DataFrame, snapshot_ids: pl.Series, baseline: Baseline
    ) -> pl.DataFrame:
        return fact_versions.deletion_versions(
            self.spec, latest, snapshot_ids, baseline.key.timestamp, baseline.key.key, baseline.seq
        )

    def stored_rows(self, ids: pl.Series) -> pl.DataFrame | None:
        """The stored versions of `ids`, whole, as versions (application order columns set)."""
        spec = self.spec
        full = self.ctx.lake.read(spec.name, where=pl.col(spec.id_column).is_in(ids.implode()))
        if full is None or full.is_empty():
            return None
        return full.with_columns(
            pl.lit(0, dtype=pl.Int64).alias("file_seq"),
            pl.lit(0, dtype=pl.Int64).alias("record_number"),
        )

    def store(self, plan: FactPlan, summary: RunSummary) -> None:
        """Commit the new versions, then the index rows and the catalog entry for them."""
        numbered = plan.numbered
        if numbered.is_empty():
            return
        name, lake, catalog = self.spec.name, self.ctx.lake, self.ctx.catalog
        state = catalog.tables.get(name)
        committed = None
        if state is not None and catalog.index_is_current(name):
            # the planning HEAD showed no later version: commit it ourselves (two PUTs)
            committed = lake.append_commit(name, numbered, summary.run_id, state.version)
        if committed is not None and state is not None:
            catalog.set_table(name, state.version + 1, state.rows + numbered.height, "WRITE")
            summary.add_rows(name, numbered.height)
            added = numbered.select(self.spec.index_key_columns).with_columns(
                pl.lit(committed).alias("path")
            )
        else:  # delta-rs writes (a large batch may make several files): index what it added
            handle = lake.table(name)
            before = set(handle.file_uris()) if handle is not None else set()
            summary.add_rows(name, lake.append(name, numbered, summary.run_id))
            handle = lake.table(name)
            assert handle is not None
            new_files = [u for u in handle.file_uris() if u not in before]
            added = self.index.from_files(new_files, lake.uri(name), lake.options)
        # The new versions were anti-joined against the stored ones, and an index that lags
        # the table is rebuilt, never appended to: no dedupe.
        lake.before_commit("_state")
        if plan.index_whole:  # a baseline read every bucket anyway: rewrite them
            self.index.write(pl.concat([plan.index, added], how="vertical_relaxed"), plan.touched)
        else:  # a small run: one small overlay object, not every bucket its ids touch
            self.index.append(added, self.state.index_buckets)
        self._indexed(plan.touched, int(numbered[self.spec.record_id].max()) + 1)  # type: ignore[arg-type]

    def _indexed(self, touched: list[int] | set[int], next_id: int) -> None:
        self.state.index_buckets = sorted(set(self.state.index_buckets) | set(touched))
        self.state.next_record_id = next_id
        self.state.index_version = self.ctx.catalog.tables[self.spec.name].version

    # -- a file applied in pieces -------------------------------------------------------------
    def commit_streamed(self, written: list[DataFile], summary: RunSummary) -> bool:
        """ONE commit of every data file the pieces wrote. False if the table moved past the
        version planned against (make_index_current ran first, so the catalog knows it)."""
        name, lake, catalog = self.spec.name, self.ctx.lake, self.ctx.catalog
        state = catalog.tables.get(name)
        version = state.version if state is not None else None
        if not lake.commit_data_files(name, written, summary.run_id, version):
            return False
        rows_added = sum(f.rows for f in written)
        rows_before = state.rows if state is not None else 0
        new_version = 0 if version is None else version + 1
        catalog.set_table(name, new_version, rows_before + rows_added, "WRITE")
        summary.add_rows(name, rows_added)
        return True

    def index_streamed(
        self,
        touched: set[int],
        next_id: int,
        write_index: Callable[[FactIndex, list[int], list[int]], None],
    ) -> None:
        """After `commit_streamed`: `write_index` rewrites the touched buckets."""
        self.ctx.lake.before_commit("_state")
        write_index(self.index, sorted(touched), self.state.index_buckets)
        self._indexed(touched, next_id)
