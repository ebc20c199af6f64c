"""Plan (pending files in timestamp order) → apply (parse, transform, commit, record).

A run takes the lease on the processed root, lists the ingestion files that have no ledger row
(or the keys it was asked to reprocess), and applies them in batches, in order of their file-name
timestamps. One batch is one commit per table, in an order that makes a crash harmless:
source mirrors → dimensions → facts → inferred members → calendar → rejects → ledger. A file is
pending until its ledger row is written, so a crashed run's files are applied again by the next
run, and every step above is idempotent (versions already stored are dropped, merges compare,
rejects are replaced per file).

Bad input never stops a run: a file that cannot be read, or whose parsing fails unexpectedly, is
rejected with the reason and the run goes on; a key that cannot be planned is rejected too. What
can fail on data (the new fact versions and their ids, inferred members, the calendar extension)
is computed before the batch's first commit, so a batch commits consistently or not at all.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from service.lake import Lake
from service.lease import Lease
from service.ledger import FileOutcome, Ledger, RunRecord, utcnow
from service.settings import Settings
from service.storage import (
    ObjectInfo,
    Storage,
    StorageError,
    UnreadableObject,
    check_root,
    check_roots_apart,
    open_storage,
)
from transforms import dim_date, dimensions
from transforms import fact_sales_order as fact
from transforms.ingestion_key import (
    IngestionKey,
    InvalidIngestionKey,
    ingestion_order,
    parse_ingestion_key,
)
from transforms.parse import ParsedFile, parse_file, rejected_file
from transforms.schemas import IGNORED_SOURCE_TABLES, REJECTS, SOURCE_TABLES

log = logging.getLogger("totesys.pipeline")

INGESTION_PREFIXES = ("baseline/", "updated/")
Progress = Callable[[str, int, int], None]  # (message, done, total)

DIMENSION_KEYS = dimensions.DIMENSION_KEYS
# The source table (and its key) whose rows become each dimension's members.
MEMBER_SOURCE: dict[str, tuple[str, str]] = {
    "dim_staff": ("staff", "staff_id"),
    "dim_counterparty": ("counterparty", "counterparty_id"),
    "dim_currency": ("currency", "currency_id"),
    "dim_design": ("design", "design_id"),
    "dim_location": ("address", "address_id"),
}
_COUNTS_IN_REASON = 10  # (field, reason) counts named in a ledger reason

# Which dimensions are rebuilt when rows of a source table arrive.
DIMENSIONS_FROM_SOURCE: dict[str, tuple[str, ...]] = {
    "staff": ("dim_staff",),
    "department": ("dim_staff",),
    "address": ("dim_location", "dim_counterparty"),
    "counterparty": ("dim_counterparty",),
    "design": ("dim_design",),
    "currency": ("dim_currency",),
}


@dataclass
class RunSummary:
    run_id: str
    trigger: str
    status: str = "running"
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    files: list[FileOutcome] = field(default_factory=list)
    rows_written: dict[str, int] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    # every problem of a file, counted: key -> [{field, reason, count}] (rejects holds detail)
    reject_counts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    def record(self) -> RunRecord:
        return RunRecord(
            run_id=self.run_id,
            status=self.status,
            trigger=self.trigger,
            started_at=self.started_at,
            finished_at=self.finished_at,
            files_applied=self.count("applied"),
            files_rejected=self.count("rejected"),
            files_skipped=self.count("skipped"),
            rows_rejected=self.rows_rejected,
            rows_written=dict(self.rows_written),
            error=self.error,
        )

    def to_dict(self) -> dict[str, Any]:
        problem_files = [f for f in self.files if f.outcome == "rejected" or f.rows_rejected]
        return {
            "run_id": self.run_id,
            "status": self.status,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "files_applied": self.count("applied"),
            "files_rejected": self.count("rejected"),
            "files_skipped": self.count("skipped"),
            "rows_rejected": self.rows_rejected,
            "rows_written": self.rows_written,
            "files": [
                {
                    "key": f.source_file,
                    "outcome": f.outcome,
                    "table": f.source_table,
                    "records": f.records_read,
                    "rows_rejected": f.rows_rejected,
                    "reason": f.reason,
                }
                for f in self.files
            ],
            "rejected_content": [
                {
                    "key": f.source_file,
                    "outcome": f.outcome,
                    "reason": f.reason,
                    "problems": [r for r in self.rejects if r["source_file"] == f.source_file],
                    "counts": self.reject_counts.get(f.source_file, []),
                }
                for f in problem_files
            ],
            "warnings": self.warnings,
            "error": self.error,
        }

    def add_rows(self, table: str, rows: int) -> None:
        if rows:
            self.rows_written[table] = self.rows_written.get(table, 0) + rows


@dataclass
class PlannedFile:
    info: ObjectInfo
    key: IngestionKey


@dataclass
class _FactsPlan:
    """A batch's fact work, computed before anything is committed."""

    new: pl.DataFrame  # versions to append, numbered, in the fact table's columns
    versions: pl.DataFrame  # every version the batch holds (fact columns), for dims and dates
    inferred: dict[str, pl.DataFrame] = field(default_factory=dict)  # dimension -> members
    calendar: pl.DataFrame = field(default_factory=lambda: pl.DataFrame())  # dim_date rows to add


class Pipeline:
    def __init__(self, ingestion: Storage, processed: Storage, settings: Settings) -> None:
        self.ingestion = ingestion
        self.processed = processed
        self.settings = settings
        check_roots_apart(ingestion, processed)
        self.limits = settings.parse_limits()
        self.lake = Lake(processed)
        self.ledger = Ledger(self.lake)

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        return cls(
            open_storage(settings.ingestion_uri), open_storage(settings.processed_uri), settings
        )

    # -- plan ---------------------------------------------------------------------------------
    def list_ingestion(self) -> list[ObjectInfo]:
        check_root(self.ingestion, "ingestion")  # missing or unreadable: an error, not "no files"
        return [obj for prefix in INGESTION_PREFIXES for obj in self.ingestion.list(prefix)]

    def plan(
        self, only_keys: Iterable[str] | None = None
    ) -> tuple[list[PlannedFile], list[FileOutcome]]:
        """Files to apply (in application order) and outcomes decided without reading them."""
        objects = self.list_ingestion()
        if only_keys is not None:
            wanted = set(only_keys)
            objects = [o for o in objects if o.key in wanted]
        else:
            recorded = self.ledger.recorded_files()
            objects = [o for o in objects if o.key not in recorded]
        planned: list[PlannedFile] = []
        decided: list[FileOutcome] = []
        for obj in objects:
            try:
                key = parse_ingestion_key(obj.key, self.limits)
            except InvalidIngestionKey as exc:
                decided.append(
                    FileOutcome(obj.key, "rejected", reason=str(exc), size_bytes=obj.size)
                )
                continue
            except Exception as exc:  # no key may stop planning, whatever it holds
                reason = _internal_error(exc)
                log.error("file %s rejected: %s", obj.key, reason, exc_info=True)
                decided.append(FileOutcome(obj.key, "rejected", reason=reason, size_bytes=obj.size))
                continue
            if key.table in SOURCE_TABLES:
                planned.append(PlannedFile(obj, key))
            else:
                reason = (
                    f"table {key.table!r} is not part of the sales star schema"
                    if key.table in IGNORED_SOURCE_TABLES
                    else f"unknown Totesys table {key.table!r}"
                )
                decided.append(
                    FileOutcome(
                        obj.key,
                        "skipped",
                        source_table=key.table,
                        kind=key.kind,
                        file_timestamp=key.timestamp,
                        reason=reason,
                        size_bytes=obj.size,
                    )
                )
        planned.sort(key=lambda p: ingestion_order(p.key))
        return planned, decided

    def batches(self, planned: list[PlannedFile]) -> list[list[PlannedFile]]:
        out: list[list[PlannedFile]] = []
        current: list[PlannedFile] = []
        size = 0
        for item in planned:
            if current and size + item.info.size > self.settings.batch_max_bytes:
                out.append(current)
                current, size = [], 0
            current.append(item)
            size += item.info.size
        if current:
            out.append(current)
        return out

    # -- run ----------------------------------------------------------------------------------
    def run(
        self,
        *,
        run_id: str | None = None,
        trigger: str = "cli",
        only_keys: Iterable[str] | None = None,
        progress: Progress | None = None,
    ) -> RunSummary:
        summary = RunSummary(run_id=run_id or new_run_id(), trigger=trigger)
        lease = Lease(self.processed, summary.run_id, self.settings.lease_seconds)
        lease.acquire(self.settings.lease_wait_seconds)
        try:
            self.ledger.record_run(summary.record())
            planned, decided = self.plan(only_keys)
            summary.files.extend(decided)
            self.ledger.record_files(decided, summary.run_id)
            batches = self.batches(planned)
            done = 0
            for number, batch in enumerate(batches):
                if number:
                    lease.renew()
                self._apply_batch(batch, summary, done, len(planned), progress)
                done += len(batch)
            summary.status = "succeeded"
        except BaseException as exc:
            summary.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            summary.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if summary.status == "running":  # a second Ctrl-C cut the except clause short
                summary.status, summary.error = "interrupted", "KeyboardInterrupt"
            summary.finished_at = utcnow()
            try:
                self.ledger.record_run(summary.record())
            finally:
                lease.release()
        return summary

    # -- apply --------------------------------------------------------------------------------
    def _apply_batch(
        self,
        batch: list[PlannedFile],
        summary: RunSummary,
        done: int,
        total: int,
        progress: Progress | None,
    ) -> None:
        parsed: list[tuple[int, PlannedFile, ParsedFile]] = []
        outcomes: list[FileOutcome] = []
        for offset, item in enumerate(batch):
            if progress:
                progress(f"parsing {item.key.key}", done + offset, total)
            seq = done + offset
            result = self._read_and_parse(item)
            parsed.append((seq, item, result))
            outcomes.append(_outcome(item, result))
        if progress:
            progress(f"writing batch of {len(batch)} files", done + len(batch), total)

        run_id = summary.run_id
        frames = _frames_by_table(parsed)
        baselines = [
            (seq, item, result)
            for seq, item, result in parsed
            if item.key.table == "sales_order" and item.key.kind == "baseline"
        ]
        # Before the first commit: everything that can fail on data.
        facts = None
        if "sales_order" in frames or baselines:
            facts = self._prepare_facts(frames.get("sales_order"), baselines, summary)
            facts.inferred = self._inferred_members(facts.versions, frames)
            facts.calendar = self._calendar_extension(facts.versions)

        # 1. source mirrors (latest row per member), 2. dimensions built from them
        rebuild: set[str] = set()
        for table, rows in frames.items():
            if table == "sales_order":
                continue
            source = SOURCE_TABLES[table]
            latest = dimensions.latest_source_rows(rows, source.key).select(
                [*source.columns, "source_file"]
            )
            counts = self.lake.upsert(
                f"source_{table}",
                latest,
                [source.key],
                run_id,
                update_when="s.last_updated > t.last_updated",
            )
            summary.add_rows(f"_state/source/{table}", counts["inserted"] + counts["updated"])
            rebuild.update(DIMENSIONS_FROM_SOURCE[table])
        mirrors: dict[str, pl.DataFrame] = {}  # address feeds two dimensions: read it once
        for name in sorted(rebuild):
            self._rebuild_dimension(name, summary, mirrors)

        # 3. facts, 4. inferred members, 5. calendar — the last two from every version in
        # the batch, stored before or not, so a re-run after a crash between commits
        # completes them.
        if facts is not None:
            summary.add_rows(
                "fact_sales_order", self.lake.append("fact_sales_order", facts.new, run_id)
            )
            for name, rows in facts.inferred.items():
                counts = self.lake.upsert(
                    name, rows, [DIMENSION_KEYS[name][0]], run_id, insert_only=True
                )
                summary.add_rows(name, counts["inserted"])
            summary.add_rows("dim_date", self.lake.append("dim_date", facts.calendar, run_id))

        # 6. rejects (replaced per file, so reprocessing a file never duplicates them)
        rejects = pl.concat([r.rejects for _, _, r in parsed], how="vertical_relaxed")
        rejects = rejects.select([pl.col(c).cast(t) for c, t in REJECTS.items()])
        if not rejects.is_empty() or self.lake.exists("rejects"):
            keys = ", ".join(_sql_str(item.key.key) for _, item, _ in parsed)
            self.lake.replace_where("rejects", rejects, f"source_file IN ({keys})", run_id)
        summary.rejects.extend(rejects.head(1000).to_dicts())
        for _, item, result in parsed:
            if result.reject_counts is not None and result.reject_counts.height:
                summary.reject_counts[item.key.key] = result.reject_counts.to_dicts()

        # 7. ledger: the batch's files stop being pending only now
        self.ledger.record_files(outcomes, run_id)
        summary.files.extend(outcomes)
        for o in outcomes:
            if o.outcome == "rejected" or o.rows_rejected:
                log.warning(
                    "file %s %s: %s",
                    o.source_file,
                    o.outcome,
                    o.reason,
                    extra={"file_key": o.source_file, "outcome": o.outcome},
                )

    def _read_and_parse(self, item: PlannedFile) -> ParsedFile:
        """One file, isolated: whatever goes wrong with it rejects it, never the run.

        A storage error that is not about this object (the store unreachable after retries)
        still fails the run: the file is fine and stays pending for the next one.
        """
        key = item.key.key
        try:
            data = self.ingestion.read(item.info.key)
            return parse_file(data, item.key.table, key, self.limits)
        except UnreadableObject as exc:
            log.warning("file %s rejected: unreadable: %s", key, exc, extra={"file_key": key})
            return rejected_file(item.key.table, key, f"unreadable: {exc}")
        except StorageError:
            raise  # the store, not the file: the run fails, the file stays pending
        except Exception as exc:
            reason = _internal_error(exc)
            # ERROR: a parser bug, not bad data; the alarm on error logs fires.
            log.error("file %s rejected: %s", key, reason, exc_info=True, extra={"file_key": key})
            return rejected_file(item.key.table, key, reason)

    def _prepare_facts(
        self,
        orders: pl.DataFrame | None,
        baselines: list[tuple[int, PlannedFile, ParsedFile]],
        summary: RunSummary,
    ) -> _FactsPlan:
        """The batch's new versions, numbered, and every version the batch holds (for the
        dimensions and the calendar); reads only."""
        versions = (
            fact.order_versions(orders)
            if orders is not None
            else fact.order_versions(_empty_orders())
        )
        ids = versions["sales_order_id"].unique()
        stored = self.lake.read(
            "fact_sales_order",
            columns=["sales_order_id", "last_updated"],
            where=pl.col("sales_order_id").is_in(ids.implode()),
        )
        if stored is None:
            stored = pl.DataFrame(
                schema={"sales_order_id": pl.Int32, "last_updated": pl.Datetime("us")}
            )
        new = fact.new_versions(versions, stored)

        for seq, item, result in sorted(baselines, key=lambda b: b[0]):
            if result.problems:
                summary.warnings.append(
                    f"deletion detection skipped for {item.key.key}: {result.problems} "
                    "problems in rejected rows could hide orders that are still live"
                )
                continue
            tombstones = self._deletions(new, result, item, seq)
            new = pl.concat([new, tombstones.select(new.columns)], how="vertical_relaxed")

        first_id = (self.lake.column_max("fact_sales_order", "sales_record_id") or 0) + 1
        numbered = fact.number_versions(new, int(first_id), summary.run_id)
        deleted = numbered.filter(pl.col("change_type") == "delete")
        every = pl.concat(
            [versions.select(deleted.columns[1:15]), deleted.select(deleted.columns[1:15])]
        )
        return _FactsPlan(new=numbered, versions=every)

    def _deletions(
        self, new: pl.DataFrame, snapshot: ParsedFile, item: PlannedFile, seq: int
    ) -> pl.DataFrame:
        """`delete` versions for live orders the baseline snapshot `item` lacks."""
        key_cols = ["sales_order_id", "last_updated", "change_type"]
        stored = self.lake.read("fact_sales_order", columns=key_cols)
        keys = pl.concat(
            [frame for frame in (stored, new.select(key_cols)) if frame is not None],
            how="vertical_relaxed",
        )
        candidates = fact.deletion_versions(
            fact.latest_versions(keys),
            snapshot.rows["sales_order_id"],
            item.key.timestamp,
            item.key.key,
            seq,
        )
        if candidates.is_empty():
            return new.clear().with_columns()
        gone = candidates["sales_order_id"].implode()
        full_stored = self.lake.read("fact_sales_order", where=pl.col("sales_order_id").is_in(gone))
        pieces = [new.filter(pl.col("sales_order_id").is_in(gone))]
        if full_stored is not None:
            pieces.append(
                full_stored.select([*new.columns[:-3], "change_type"])
                .with_columns(
                    pl.lit(0, dtype=pl.Int64).alias("file_seq"),
                    pl.lit(0, dtype=pl.Int64).alias("record_number"),
                )
                .select(new.columns)
            )
        latest = fact.latest_versions(pl.concat(pieces, how="vertical_relaxed"))
        return fact.deletion_versions(
            latest, snapshot.rows["sales_order_id"], item.key.timestamp, item.key.key, seq
        )

    def _rebuild_dimension(
        self, name: str, summary: RunSummary, mirrors: dict[str, pl.DataFrame]
    ) -> None:
        def mirror(table: str) -> pl.DataFrame:
            if table not in mirrors:
                frame = self.lake.read(f"source_{table}")
                mirrors[table] = (
                    pl.DataFrame(schema=SOURCE_TABLES[table].columns) if frame is None else frame
                )
            return mirrors[table]

        warnings: list[str] = []
        if name == "dim_staff":
            dim = dimensions.dim_staff(mirror("staff"), mirror("department"))
        elif name == "dim_location":
            dim = dimensions.dim_location(mirror("address"))
        elif name == "dim_design":
            dim = dimensions.dim_design(mirror("design"))
        elif name == "dim_counterparty":
            dim = dimensions.dim_counterparty(mirror("counterparty"), mirror("address"))
        elif name == "dim_currency":
            dim, unknown = dimensions.dim_currency(mirror("currency"))
            warnings = [
                f"currency code {c!r} is not in ISO 4217 (CLDR); named 'Unknown currency ({c})'"
                for c in unknown
            ]
        else:  # pragma: no cover - names come from DIMENSIONS_FROM_SOURCE
            raise ValueError(name)
        for w in warnings:
            log.warning(w)
            summary.warnings.append(w)
        key, _ = dimensions.DIMENSION_KEYS[name]
        changed = " OR ".join(f"(t.{c} IS DISTINCT FROM s.{c})" for c in dim.columns if c != key)
        counts = self.lake.upsert(name, dim, [key], summary.run_id, update_when=changed)
        summary.add_rows(name, counts["inserted"] + counts["updated"])

    def _inferred_members(
        self, facts: pl.DataFrame, frames: dict[str, pl.DataFrame]
    ) -> dict[str, pl.DataFrame]:
        """Placeholder members for the keys the facts reference that neither the dimension
        nor this batch's source rows hold (read before the batch commits anything)."""
        out: dict[str, pl.DataFrame] = {}
        for name, (key, fact_column) in DIMENSION_KEYS.items():
            referenced = facts[fact_column].unique()
            existing = self.lake.read(name, columns=[key])
            if existing is not None:
                referenced = referenced.filter(~referenced.is_in(existing[key].implode()))
            table, source_key = MEMBER_SOURCE[name]
            if table in frames:
                arriving = frames[table][source_key]
                referenced = referenced.filter(~referenced.is_in(arriving.implode()))
            if referenced.len():
                out[name] = dimensions.inferred_members(name, referenced)
        return out

    def _calendar_extension(self, facts: pl.DataFrame) -> pl.DataFrame:
        needed = dim_date.referenced_date_range(facts)
        existing = None
        if self.lake.exists("dim_date"):
            lo = self.lake.column_min("dim_date", "date_id")
            hi = self.lake.column_max("dim_date", "date_id")
            existing = (lo, hi) if lo is not None and hi is not None else None
        return dim_date.calendar_extension(existing, needed)


def _internal_error(exc: BaseException) -> str:
    return f"internal error: {type(exc).__name__}: {exc}"[:2000]


def _outcome(item: PlannedFile, result: ParsedFile) -> FileOutcome:
    bad_rows = result.records_rejected
    if result.file_rejected:
        outcome, reason = "rejected", str(result.rejects["reason"][0])
    else:
        outcome = "applied"
        reason = None
        if bad_rows:
            first = result.rejects.row(0, named=True)
            reason = (
                f"{bad_rows} of {result.records_read} records rejected; first: record "
                f"{first['record_number']} field {first['field']!r}: {first['reason']}"
            )
            if result.reject_counts is not None:
                # exact counts, however many problems were kept in detail
                counted = [
                    f"{c['field']}: {c['reason']} ×{c['count']}"
                    for c in result.reject_counts.head(_COUNTS_IN_REASON).iter_rows(named=True)
                ]
                more = result.reject_counts.height - _COUNTS_IN_REASON
                reason += (
                    "; problems: " + ", ".join(counted) + (f", … {more} more" if more > 0 else "")
                )
    return FileOutcome(
        source_file=item.key.key,
        outcome=outcome,
        source_table=item.key.table,
        kind=item.key.kind,
        file_timestamp=item.key.timestamp,
        records_read=result.records_read,
        rows_rejected=int(bad_rows),
        reason=reason,
        size_bytes=item.info.size,
    )


def _frames_by_table(parsed: list[tuple[int, PlannedFile, ParsedFile]]) -> dict[str, pl.DataFrame]:
    grouped: dict[str, list[pl.DataFrame]] = {}
    for seq, item, result in parsed:
        if result.rows.is_empty():
            continue
        grouped.setdefault(item.key.table, []).append(
            result.rows.with_columns(
                pl.lit(item.key.key).alias("source_file"),
                pl.lit(seq, dtype=pl.Int64).alias("file_seq"),
            )
        )
    return {table: pl.concat(frames) for table, frames in grouped.items()}


def _empty_orders() -> pl.DataFrame:
    schema = dict(SOURCE_TABLES["sales_order"].columns)
    schema.update({"record_number": pl.Int64(), "source_file": pl.String(), "file_seq": pl.Int64()})
    return pl.DataFrame(schema=schema)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
