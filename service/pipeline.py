"""Plan (pending files in timestamp order) → apply (parse, transform, commit, record).

A run takes the lease on the processed root (service/lease.py; a heartbeat keeps it, every commit
is fenced by it), records itself `running`, lists the ingestion files that have no ledger row (or
the keys it was asked to reprocess), and applies them in batches, in order of their file-name
timestamps. Everything in a batch that can fail on data (parsing, typing, versions, ids, inferred
members, the calendar extension) is computed before its first commit; then it is one commit per
changed table, in an order that makes a crash harmless: source mirrors → dimensions → facts →
inferred members → calendar → rejects → file ledger → fact index and catalog. A file is pending
until its ledger row is written, so a crashed run's files are applied again by the next run, and
every step above is idempotent (versions already stored are dropped, merges compare, rejects are
replaced per file).

Runs that found the lease busy leave wake markers; before it lets go, the holder lists them and,
if one arrived after its plan, takes the lease again and re-plans, so no file waits for the
schedule. A run whose lease was taken over (it was paused past it) stops at its next commit with
LeaseLost and writes nothing more.

Bad input never stops a run: a file that cannot be read, or whose parsing fails unexpectedly, is
rejected with the reason and the run goes on; a key that cannot be planned is rejected too.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
from deltalake import DeltaTable

from service import catalog as fact_index
from service import streaming
from service.catalog import Catalog
from service.lake import Lake
from service.lease import MARKER_PREFIX, Lease, LeaseBusy, LeaseLost, LeaseView, leave_marker
from service.ledger import FileOutcome, Ledger, RunRecord, read_marker, utcnow
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
from transforms.schemas import (
    FACT_SCHEMA_COLUMNS,
    IGNORED_SOURCE_TABLES,
    REJECTS,
    SOURCE_TABLES,
)

log = logging.getLogger("totesys.pipeline")

INGESTION_PREFIXES = ("baseline/", "updated/")
Progress = Callable[[str, int, int], None]  # (message, done, total)
LeaseWait = Callable[[LeaseView], None]  # called while waiting for another run's lease
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


class Pipeline:
    def __init__(self, ingestion: Storage, processed: Storage, settings: Settings) -> None:
        self.ingestion = ingestion
        self.processed = processed
        self.settings = settings
        check_roots_apart(ingestion, processed)
        self.limits = settings.parse_limits()
        self.lake = Lake(processed)
        self.ledger = Ledger(self.lake)
        self.catalog = Catalog()

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
        self, only_keys: Iterable[str] | None = None, include_pending: bool | None = None
    ) -> tuple[list[PlannedFile], list[FileOutcome]]:
        """Files to apply (in application order) and outcomes decided without reading them:
        every pending file (unless only `only_keys` were asked for) and the `only_keys`."""
        wanted = set(only_keys or [])
        if include_pending is None:
            include_pending = only_keys is None
        recorded = self.ledger.recorded_files() if include_pending else set()
        objects = [
            o
            for o in self.list_ingestion()
            if o.key in wanted or (include_pending and o.key not in recorded)
        ]
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
            if key.table in SOURCE_TABLES and key.table not in IGNORED_SOURCE_TABLES:
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
            alone = streaming.is_streamed(item.key.table, item.info.size, self.settings.chunk_bytes)
            if current and (alone or size + item.info.size > self.settings.batch_max_bytes):
                out.append(current)
                current, size = [], 0
            current.append(item)
            size += item.info.size
            if alone:  # read and applied in pieces (service/streaming.py): a batch of its own
                out.append(current)
                current, size = [], 0
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
        wait_seconds: float | None = None,
        record_busy: bool = False,
        on_wait: LeaseWait | None = None,
    ) -> RunSummary:
        """Apply every pending file (or just `only_keys`) under the lease.

        LeaseBusy if another live run holds the lease past `wait_seconds` (default: the
        setting); a wake marker then asks that run to apply these files before it lets go, and
        with `record_busy` the marker carries this run's record (`busy`) for GET /runs."""
        summary = RunSummary(run_id=run_id or new_run_id(), trigger=trigger)
        keys = sorted(set(only_keys)) if only_keys is not None else None
        lease = self._take_lease(summary, keys, wait_seconds, record_busy, on_wait)
        reprocess = set(keys or [])
        include_pending = keys is None
        while True:
            seen = self._hold_and_apply(lease, summary, include_pending, reprocess, progress)
            fresh = [m for m in _list_markers(self.processed) if m.key not in seen]
            if not fresh:
                return summary
            # A run found the lease busy after this run planned: take it again and re-plan.
            lease = Lease(self.processed, summary.run_id, self.settings.lease_seconds)
            lease.try_acquire()
            if not lease.held:
                return summary  # another run holds it now and will see the markers
            log.info("wake markers arrived during run %s: re-planning", summary.run_id)
            reprocess, include_pending = set(), False  # the markers say what is wanted

    def maintain(
        self,
        retention_days: int,
        *,
        run_id: str | None = None,
        trigger: str = "maintenance",
        wait_seconds: float | None = None,
        record_busy: bool = False,
        zorder: bool = True,
    ) -> tuple[RunSummary, dict[str, Any]]:
        """Compact, checkpoint and vacuum every table under the lease, recorded as a run."""
        from service.maintenance import maintain

        summary = RunSummary(run_id=run_id or new_run_id(), trigger=trigger)
        lease = self._take_lease(summary, None, wait_seconds, record_busy, None)
        lease.start_heartbeat()
        self.lake.new_session()
        self.lake.fence = lease.fence
        result: dict[str, Any] = {}
        with self._recorded(lease, summary):
            # fold the records wake markers carry; those that ask for files stay for a run
            markers = self._read_markers(lease)
            answered = [
                key
                for key, body in markers
                if body.get("only_keys") == [] or body.get("run_id") == summary.run_id
            ]
            self._open_record(lease, summary, _carried_records(markers, summary.run_id))
            if answered:
                self.processed.delete_many(answered)
            self.catalog = Catalog.load(self.processed)
            fact_before = self.catalog.tables.get("fact_sales_order")
            index_current = (
                fact_before is not None and self.catalog.fact_index_version == fact_before.version
            )
            result = maintain(
                self.lake, retention_days, run_id=summary.run_id, lease=lease, zorder=zorder
            )
            # maintenance changes versions, never rows: carry the catalog forward
            for name in result["tables"]:
                handle = self.lake.table(name)
                if handle is not None:
                    operation = (handle.history(1) or [{}])[0].get("operation")
                    self._committed(name, handle, str(operation or "OPTIMIZE"))
            fact_after = result["tables"].get("fact_sales_order")
            if index_current and fact_after is not None:
                # compaction moved every row to new files: re-point the index at them
                lease.fence()
                self._rebuild_fact_index(self.lake.table("fact_sales_order"))
            lease.fence()
            self.catalog.save(self.processed)
        if _list_markers(self.processed):  # files landed while maintenance held the lease
            with contextlib.suppress(LeaseBusy):  # the run that holds it answers the markers
                self.run(trigger="wake", wait_seconds=0)
        return summary, result

    def _read_markers(self, lease: Lease) -> list[tuple[str, dict[str, Any]]]:
        """The wake markers seen when the lease was taken, oldest first, with their bodies
        (empty for one that cannot be read)."""
        view = lease.acquired_view
        markers = sorted(view.markers if view else [], key=lambda m: m.key)
        return [(m.key, read_marker(self.processed, m.key) or {}) for m in markers]

    def _open_record(self, lease: Lease, summary: RunSummary, others: list[RunRecord]) -> None:
        """Record this run `running` in the run index (with the records wake markers carried),
        and mark runs that died holding the lease `abandoned`."""
        book = self.ledger.runs_book
        book.load()
        for record in others:
            book.fold(record)
        for run_id in book.mark_abandoned(summary.run_id, None):
            message = f"run {run_id} was abandoned (its lease expired without a release)"
            log.warning(message)
            summary.warnings.append(message)
        summary.status = "running"
        book.put(summary.record())
        lease.fence()
        book.save()

    def _take_lease(
        self,
        summary: RunSummary,
        only_keys: list[str] | None,
        wait_seconds: float | None,
        record_busy: bool,
        on_wait: LeaseWait | None,
    ) -> Lease:
        lease = Lease(self.processed, summary.run_id, self.settings.lease_seconds)
        wait = self.settings.lease_wait_seconds if wait_seconds is None else wait_seconds
        try:
            lease.acquire(wait, on_wait)
        except LeaseBusy as busy:
            record = None
            if record_busy:
                now = utcnow()
                record = RunRecord(
                    summary.run_id,
                    "busy",
                    summary.trigger,
                    started_at=now,
                    finished_at=now,
                    error=f"{busy}; that run applies the pending files before it releases",
                ).to_json()
            leave_marker(
                self.processed,
                summary.run_id,
                {"trigger": summary.trigger, "only_keys": only_keys, "record": record},
            )
            lease.try_acquire()  # the holder may have let go while the marker was written
            if not lease.held:
                raise
        return lease

    def _hold_and_apply(
        self,
        lease: Lease,
        summary: RunSummary,
        include_pending: bool,
        reprocess: set[str],
        progress: Progress | None,
    ) -> set[str]:
        """One plan-and-apply pass under a held lease; records the run and releases the lease.
        Returns the wake markers this pass answered."""
        lease.start_heartbeat()
        self.lake.new_session()
        self.lake.fence = lease.fence
        self.lake.on_commit = self._committed
        seen: set[str] = set()
        with self._recorded(lease, summary):
            markers = self._read_markers(lease)
            for key, body in markers:
                seen.add(key)
                if not body:
                    continue  # unreadable: answered, asks for nothing
                if body.get("only_keys") is None:
                    include_pending = True
                else:
                    reprocess.update(str(k) for k in body["only_keys"])
            self._open_record(lease, summary, _carried_records(markers, summary.run_id))

            planned, decided = self.plan(sorted(reprocess), include_pending)
            # what the tables hold: only needed when there is something to apply
            self.catalog = Catalog.load(self.processed) if planned else Catalog()
            if seen:
                self.processed.delete_many(sorted(seen))  # this plan answers them
            summary.files.extend(decided)
            self.ledger.files.record(decided, summary.run_id)
            batches = self.batches(planned)
            done = 0
            for batch in batches:
                self._apply_batch(batch, summary, done, len(planned), progress)
                done += len(batch)
            if decided and not batches:
                lease.fence()
                self.ledger.files.save()
        return seen

    @contextlib.contextmanager
    def _recorded(self, lease: Lease, summary: RunSummary) -> Iterator[None]:
        """The work of a run (or maintenance) under a held lease: its outcome goes into the
        summary, its final record is written and the lease let go, however it ends."""
        try:
            yield
            summary.status = "succeeded"
        except KeyboardInterrupt:
            summary.status = "interrupted"
            summary.error = "interrupted (SIGINT or SIGTERM)"
            raise
        except BaseException as exc:
            summary.status = "failed"
            summary.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if summary.status == "running":  # a second Ctrl-C cut the except clause short
                summary.status, summary.error = "interrupted", "KeyboardInterrupt"
            summary.finished_at = utcnow()
            self._close_record(lease, summary)

    def _close_record(self, lease: Lease, summary: RunSummary) -> None:
        """Write the run's final record, then let the lease go. A run that lost the lease may
        not touch the index: its record travels in a wake marker instead."""
        book = self.ledger.runs_book
        try:
            try:
                lease.fence()
                self.ledger.files.save_run(summary.run_id, summary.files)
                book.put(summary.record())
                book.save()
            except LeaseLost:
                leave_marker(
                    self.processed,
                    summary.run_id,
                    {
                        "trigger": summary.trigger,
                        "only_keys": [],
                        "record": summary.record().to_json(),
                    },
                )
        except Exception:
            log.exception("could not record the end of run %s", summary.run_id)
        finally:
            self.lake.fence = None
            lease.release()

    def _committed(self, name: str, handle: DeltaTable, operation: str) -> None:
        actions = pl.DataFrame(handle.get_add_actions(flatten=True))
        rows = int(actions["num_records"].sum()) if not actions.is_empty() else 0
        self.catalog.set_table(name, handle.version(), rows, operation)

    # -- apply --------------------------------------------------------------------------------
    def _apply_batch(
        self,
        batch: list[PlannedFile],
        summary: RunSummary,
        done: int,
        total: int,
        progress: Progress | None,
    ) -> None:
        if len(batch) == 1 and streaming.is_streamed(
            batch[0].key.table, batch[0].info.size, self.settings.chunk_bytes
        ):
            item = batch[0]
            try:
                streaming.apply_streamed(
                    self,
                    item,
                    done,
                    summary,
                    (lambda message: progress(message, done, total)) if progress else None,
                )
                return
            except streaming.NotStreamable as exc:
                log.warning("%s is applied whole: %s", item.key.key, exc)
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

        # Everything that can fail on data is computed first: the batch commits consistently
        # or not at all.
        run_id = summary.run_id
        frames = _frames_by_table(parsed)
        mirrors = self._merged_mirrors(frames)
        dims = self._dimensions(
            set().union(*(DIMENSIONS_FROM_SOURCE[t] for t in mirrors)), mirrors, summary
        )
        baselines = [
            (seq, item, result)
            for seq, item, result in parsed
            if item.key.table == "sales_order" and item.key.kind == "baseline"
        ]
        facts: FactPlan | None = None
        inferred: dict[str, pl.DataFrame] = {}
        extension = pl.DataFrame()
        if "sales_order" in frames or baselines:
            facts = self._plan_facts(frames.get("sales_order"), baselines, summary)
            # from every version in the batch, stored before or not, so a re-run after a crash
            # between commits completes them
            inferred = self._inferred_members(facts.referenced, dims)
            extension = self._calendar_extension(facts.referenced)
        rejects = pl.concat([r.rejects for _, _, r in parsed], how="vertical_relaxed")
        rejects = rejects.select([pl.col(c).cast(t) for c, t in REJECTS.items()])

        # 1. source mirrors, 2. dimensions built from them
        for table, (latest, key) in mirrors.items():
            counts = self.lake.upsert(
                f"source_{table}",
                latest,
                [key],
                run_id,
                update_when="s.last_updated > t.last_updated",
            )
            summary.add_rows(f"_state/source/{table}", counts["inserted"] + counts["updated"])
        for name, dim in sorted(dims.items()):
            key, _ = dimensions.DIMENSION_KEYS[name]
            changed = " OR ".join(
                f"(t.{c} IS DISTINCT FROM s.{c})" for c in dim.columns if c != key
            )
            counts = self.lake.upsert(name, dim, [key], run_id, update_when=changed)
            summary.add_rows(name, counts["inserted"] + counts["updated"])
            self.catalog.add_members(name, dim[key])
        # 3. facts, 4. inferred members, 5. calendar
        if facts is not None:
            self._store_facts(facts, summary)
        counted = {
            item.key.key: result.reject_counts.to_dicts()
            for _, item, result in parsed
            if result.reject_counts is not None and result.reject_counts.height
        }
        self._after_facts(
            [item.key.key for _, item, _ in parsed],
            rejects,
            counted,
            outcomes,
            inferred,
            extension,
            facts.referenced if facts is not None else None,
            summary,
        )

    def _after_facts(
        self,
        keys: list[str],
        rejects: pl.DataFrame,
        counted: dict[str, list[dict[str, Any]]],
        outcomes: list[FileOutcome],
        inferred: dict[str, pl.DataFrame],
        extension: pl.DataFrame,
        referenced: pl.DataFrame | None,
        summary: RunSummary,
    ) -> None:
        """A batch's commits after the facts: inferred members, calendar, rejects, ledger,
        catalog."""
        run_id = summary.run_id
        for name, rows in inferred.items():
            key, _ = dimensions.DIMENSION_KEYS[name]
            counts = self.lake.upsert(name, rows, [key], run_id, insert_only=True)
            summary.add_rows(name, counts["inserted"])
            self.catalog.add_members(name, rows[key])
        if not extension.is_empty():
            summary.add_rows("dim_date", self.lake.append("dim_date", extension, run_id))
        if referenced is not None and referenced.height:
            self._note_calendar(extension, referenced)

        # 6. rejects (replaced per file, so reprocessing a file never duplicates them); a batch
        # whose files never had rejects has nothing to replace
        had_rejects = self._files_with_rejects(keys)
        if not rejects.is_empty() or had_rejects:
            listed = ", ".join(_sql_str(key) for key in keys)
            self.lake.replace_where("rejects", rejects, f"source_file IN ({listed})", run_id)
        summary.rejects.extend(rejects.head(1000).to_dicts())
        summary.reject_counts.update(counted)

        # 7. ledger: the batch's files stop being pending only now; then the derived state
        self.lake.before_commit("_state")
        self.ledger.files.record(outcomes, run_id)
        self.ledger.files.save()
        self.lake.before_commit("_state")
        self.catalog.save(self.processed)
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

    def _files_with_rejects(self, keys: list[str]) -> bool:
        files = self.ledger.files.frame
        prior = files.filter(
            pl.col("source_file").is_in(keys)
            & ((pl.col("outcome") == "rejected") | (pl.col("rows_rejected") > 0))
        )
        return not prior.is_empty()

    # -- dimensions ---------------------------------------------------------------------------
    def _merged_mirrors(
        self, frames: dict[str, pl.DataFrame]
    ) -> dict[str, tuple[pl.DataFrame, str]]:
        """Per source table in the batch: its latest incoming rows (to MERGE into the mirror)."""
        out = {}
        for table, rows in frames.items():
            if table == "sales_order":
                continue
            source = SOURCE_TABLES[table]
            latest = dimensions.latest_source_rows(rows, source.key).select(
                [*source.columns, "source_file"]
            )
            out[table] = (latest, source.key)
        return out

    def _mirror_after_merge(
        self, table: str, incoming: dict[str, tuple[pl.DataFrame, str]]
    ) -> pl.DataFrame:
        """The mirror as it will be after this batch's MERGE (stored rows, replaced by incoming
        rows that are strictly newer), computed before anything is written."""
        source = SOURCE_TABLES[table]
        stored = self.lake.read(f"source_{table}")
        if stored is None:
            stored = pl.DataFrame(schema={**source.columns, "source_file": pl.String()})
        if table not in incoming:
            return stored
        latest, key = incoming[table]
        both = pl.concat(
            [
                stored.with_columns(pl.lit(1, dtype=pl.Int8).alias("_stored")),
                latest.with_columns(pl.lit(0, dtype=pl.Int8).alias("_stored")),
            ],
            how="vertical_relaxed",
        )
        # per key: the newest row; on a tie the stored row stays (the MERGE updates on `>`)
        return (
            both.sort([key, "last_updated", "_stored"])
            .unique(subset=key, keep="last", maintain_order=True)
            .drop("_stored")
        )

    def _dimensions(
        self,
        names: set[str],
        incoming: dict[str, tuple[pl.DataFrame, str]],
        summary: RunSummary,
    ) -> dict[str, pl.DataFrame]:
        cache: dict[str, pl.DataFrame] = {}  # address feeds two dimensions: read it once

        def mirror(table: str) -> pl.DataFrame:
            if table not in cache:
                cache[table] = self._mirror_after_merge(table, incoming)
            return cache[table]

        out: dict[str, pl.DataFrame] = {}
        for name in sorted(names):
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
            out[name] = dim
        return out

    def _inferred_members(
        self, facts: pl.DataFrame, dims: dict[str, pl.DataFrame]
    ) -> dict[str, pl.DataFrame]:
        """Placeholder members for keys the facts reference that no dimension holds. The catalog
        says which keys each dimension holds; a key it lacks is checked against the table."""
        out = {}
        for name, (key, fact_column) in dimensions.DIMENSION_KEYS.items():
            referenced = facts[fact_column].drop_nulls().unique()
            if name in dims:
                referenced = referenced.filter(~referenced.is_in(dims[name][key].implode()))
            missing = self.catalog.missing_members(name, referenced)
            if missing.is_empty():
                continue
            existing = self.lake.read(name, columns=[key])
            if existing is not None:
                self.catalog.add_members(name, existing[key])
                missing = missing.filter(~missing.is_in(existing[key].implode()))
            else:
                self.catalog.add_members(name, [])
            if missing.len():
                out[name] = dimensions.inferred_members(name, missing)
        return out

    def _calendar_extension(self, facts: pl.DataFrame) -> pl.DataFrame:
        needed = dim_date.referenced_date_range(facts)
        if needed is None:
            return pl.DataFrame()
        extension = dim_date.calendar_extension(self.catalog.calendar_range(), needed)
        if extension.is_empty():
            return extension
        # the catalog may lag the table (or not know it yet): ask the table's statistics
        existing = None
        if self.lake.exists("dim_date"):
            lo = self.lake.column_min("dim_date", "date_id")
            hi = self.lake.column_max("dim_date", "date_id")
            existing = (lo, hi) if lo is not None and hi is not None else None
            if existing is not None:
                self.catalog.set_calendar(*existing)
        return dim_date.calendar_extension(existing, needed)

    def _note_calendar(self, extension: pl.DataFrame, facts: pl.DataFrame) -> None:
        spans = [
            r for r in (self.catalog.calendar_range(), dim_date.referenced_date_range(facts)) if r
        ]
        if not extension.is_empty():
            spans.append((extension["date_id"].min(), extension["date_id"].max()))  # type: ignore[arg-type]
        if spans:
            self.catalog.set_calendar(min(s[0] for s in spans), max(s[1] for s in spans))

    # -- facts --------------------------------------------------------------------------------
    def _fact_index(self, ids: pl.Series | None) -> pl.DataFrame:
        """Stored (sales_order_id, last_updated, change_type) of the index buckets these orders
        fall in (all if None). The index is trusted when the catalog says it reflects the fact
        version the catalog knows and no later log entry exists (one HEAD, no table open);
        otherwise the table is opened and the index rebuilt from it."""
        name = "fact_sales_order"
        state = self.catalog.tables.get(name)
        current = (
            state is not None
            and self.catalog.fact_index_version == state.version
            and not self.lake.next_version_exists(name, state.version)
        )
        if not current:
            handle = self.lake.table(name)
            if handle is not None:
                self._committed(name, handle, "WRITE")  # the catalog learns the real version
            version = handle.version() if handle is not None else None
            if self.catalog.fact_index_version != version:
                self._rebuild_fact_index(handle)
        if ids is None:  # whole buckets: a baseline's index write rewrites them from this
            buckets = self.catalog.index_buckets
            return fact_index.read_index(self.processed, buckets, buckets)
        # a small run's lookup: the keys of its orders' buckets, no data file paths
        return fact_index.read_index(
            self.processed,
            fact_index.bucket_of(ids),
            self.catalog.index_buckets,
            columns=fact_index.INDEX_KEY_COLUMNS,
        )

    def _rebuild_fact_index(self, handle: DeltaTable | None) -> None:
        """After a crash between the fact commit and the index write (or on a root written before
        the index existed): rebuild it from the table. Rare, and costs one full read."""
        if handle is None:
            self.catalog.fact_index_version = None
            self.catalog.index_buckets = []
            return
        log.info("rebuilding the fact index from fact_sales_order version %s", handle.version())
        stored = fact_index.index_from_files(
            handle.file_uris(), self.lake.uri("fact_sales_order"), self.lake.options
        )
        buckets = fact_index.bucket_of(stored["sales_order_id"])
        self.processed.delete(fact_index.RECENT_KEY)  # the table is the whole truth
        fact_index.write_index(self.processed, stored, buckets)
        self.catalog.index_buckets = buckets
        self.catalog.fact_index_version = handle.version()
        top = self.lake.column_max("fact_sales_order", "sales_record_id")
        self.catalog.next_record_id = int(top or 0) + 1

    def _plan_facts(
        self,
        orders: pl.DataFrame | None,
        baselines: list[tuple[int, PlannedFile, ParsedFile]],
        summary: RunSummary,
    ) -> FactPlan:
        """The batch's new versions, numbered, and every version it holds (for dims)."""
        versions = fact.order_versions(orders if orders is not None else _empty_orders())
        ids = versions["sales_order_id"].unique()
        # a baseline needs every order's latest version (deletions); else only the batch's
        index = self._fact_index(None if baselines else ids)
        stored = index.filter(pl.col("sales_order_id").is_in(ids.implode()))
        new = fact.new_versions(versions, stored.select(fact.VERSION_KEY))

        for seq, item, result in sorted(baselines, key=lambda b: b[0]):
            if result.problems:
                summary.warnings.append(
                    f"deletion detection skipped for {item.key.key}: {result.problems} "
                    "problems in rejected rows could hide orders that are still live"
                )
                continue
            tombstones = self._deletions(new, index, result, item, seq)
            new = pl.concat([new, tombstones.select(new.columns)], how="vertical_relaxed")

        if self.catalog.next_record_id is None:
            top = self.lake.column_max("fact_sales_order", "sales_record_id")
            self.catalog.next_record_id = int(top or 0) + 1
        numbered = fact.number_versions(new, self.catalog.next_record_id, summary.run_id)
        deleted = numbered.filter(pl.col("change_type") == "delete")
        dims_columns = FACT_SCHEMA_COLUMNS[1:]
        referenced = pl.concat([versions.select(dims_columns), deleted.select(dims_columns)])
        touched = fact_index.bucket_of(numbered["sales_order_id"])
        return FactPlan(numbered, referenced, index, touched, index_whole=bool(baselines))

    def _store_facts(self, plan: FactPlan, summary: RunSummary) -> None:
        numbered = plan.numbered
        name = "fact_sales_order"
        if numbered.is_empty():
            return
        state = self.catalog.tables.get(name)
        committed = None
        if state is not None and self.catalog.fact_index_version == state.version:
            # the planning HEAD showed no later version: commit it ourselves (two PUTs)
            committed = self.lake.append_commit(name, numbered, summary.run_id, state.version)
        if committed is not None and state is not None:
            self.catalog.set_table(name, state.version + 1, state.rows + numbered.height, "WRITE")
            summary.add_rows(name, numbered.height)
            added = numbered.select(fact_index.INDEX_KEY_COLUMNS).with_columns(
                pl.lit(committed).alias("path")
            )
        else:  # delta-rs writes (a large batch may make several files): index what it added
            handle = self.lake.table(name)
            before = set(handle.file_uris()) if handle is not None else set()
            summary.add_rows(name, self.lake.append(name, numbered, summary.run_id))
            handle = self.lake.table(name)
            assert handle is not None
            new_files = [u for u in handle.file_uris() if u not in before]
            added = fact_index.index_from_files(new_files, self.lake.uri(name), self.lake.options)
        version = self.catalog.tables[name].version
        # The new versions were anti-joined against the stored ones, and an index that lags
        # the table is rebuilt, never appended to: no dedupe.
        self.lake.before_commit("_state")
        if plan.index_whole:  # a baseline read every bucket anyway: rewrite them
            index = pl.concat([plan.index, added], how="vertical_relaxed")
            fact_index.write_index(self.processed, index, plan.touched)
        else:  # a small run: one small overlay object, not every bucket its orders touch
            fact_index.append_index(self.processed, added, self.catalog.index_buckets)
        buckets = plan.touched
        self.catalog.index_buckets = sorted(set(self.catalog.index_buckets) | set(buckets))
        self.catalog.next_record_id = int(numbered["sales_record_id"].max()) + 1  # type: ignore[arg-type]
        self.catalog.fact_index_version = version

    def _deletions(
        self,
        new: pl.DataFrame,
        index: pl.DataFrame,
        snapshot: ParsedFile,
        item: PlannedFile,
        seq: int,
    ) -> pl.DataFrame:
        """`delete` versions for live orders the baseline snapshot `item` lacks."""
        key_cols = ["sales_order_id", "last_updated", "change_type"]
        keys = pl.concat([index.select(key_cols), new.select(key_cols)], how="vertical_relaxed")
        candidates = fact.deletion_versions(
            fact.latest_versions(keys),
            snapshot.rows["sales_order_id"],
            item.key.timestamp,
            item.key.key,
            seq,
        )
        if candidates.is_empty():
            return new.clear()
        gone = candidates["sales_order_id"].implode()
        full_stored = self.lake.read("fact_sales_order", where=pl.col("sales_order_id").is_in(gone))
        pieces = [new.filter(pl.col("sales_order_id").is_in(gone))]
        if full_stored is not None and not full_stored.is_empty():
            pieces.append(
                full_stored.with_columns(
                    pl.lit(0, dtype=pl.Int64).alias("file_seq"),
                    pl.lit(0, dtype=pl.Int64).alias("record_number"),
                ).select(new.columns)
            )
        latest = fact.latest_versions(pl.concat(pieces, how="vertical_relaxed"))
        return fact.deletion_versions(
            latest, snapshot.rows["sales_order_id"], item.key.timestamp, item.key.key, seq
        )


@dataclass
class FactPlan:
    numbered: pl.DataFrame  # the new versions, numbered, in fact column order
    referenced: pl.DataFrame  # every version the batch holds (fact columns): for dims, calendar
    index: pl.DataFrame  # the stored versions read from the fact index
    touched: list[int]  # index buckets the new versions fall in
    index_whole: bool = False  # `index` holds every bucket (a baseline's deletion detection)


def _carried_records(markers: list[tuple[str, dict[str, Any]]], run_id: str) -> list[RunRecord]:
    """The records other runs' wake markers carry (busy, pending, or ended without the lease)."""
    return [
        RunRecord.from_json(body["record"])
        for _, body in markers
        if body.get("record") and body.get("run_id") != run_id
    ]


def _list_markers(storage: Storage) -> list[ObjectInfo]:
    return list(storage.list(MARKER_PREFIX))


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
