"""Which ingestion files were applied, rejected or skipped, and the record of every run.

Both are small state objects under `_state/`, written only by the run that holds the lease
(service/lease.py), so each is one GET to read and one PUT to write, whatever the history:

- `_state/files.parquet`: the latest outcome of every ingestion file ever decided. A file with no
  row is pending. A run reads it once to plan and rewrites it after each batch (a file stops being
  pending only then, so a crashed batch's files are applied again by the next run).
- `_state/runs/index.json`: the newest runs (up to INDEX_KEEP), newest first; older ones move to
  `_state/runs/archive/` in chunks. A run writes its record when it starts (`running`) and when
  it ends.

A run that does not hold the lease (the API's `pending` record, a run that found the lease busy)
cannot write the index: its record travels in its wake marker (`_state/lease/wake-*.json`), which
readers merge in and the next holder folds into the index.

Roots written before these objects existed kept a `_state/ledger` and a `_state/runs` Delta
table; the first read of such a root takes their latest rows over.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from service.lake import Lake
from service.lease import LeaseView, observe
from service.storage import ObjectInfo, Storage
from transforms.schemas import TIMESTAMP

log = logging.getLogger("totesys.ledger")

FILES_KEY = "_state/files.parquet"
RUNS_INDEX_KEY = "_state/runs/index.json"
RUNS_ARCHIVE_PREFIX = "_state/runs/archive/"
RUN_FILES_PREFIX = "_state/runs/files/"  # each run's file outcomes, as it decided them
INDEX_KEEP = 1000  # runs kept in the index; older ones are archived in chunks
ARCHIVE_CHUNK = 200

LEDGER: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_table": pl.String(),
    "kind": pl.String(),  # baseline | updated
    "file_timestamp": TIMESTAMP,
    "outcome": pl.String(),  # applied | rejected | skipped
    "records_read": pl.Int64(),
    "rows_rejected": pl.Int64(),
    "reason": pl.String(),
    "size_bytes": pl.Int64(),
    "run_id": pl.String(),
    "recorded_at": TIMESTAMP,
}

# pending | running | succeeded | failed | busy | interrupted | abandoned
RUN_STATUSES = ("pending", "running", "succeeded", "failed", "busy", "interrupted", "abandoned")


def utcnow() -> datetime:
    """Naive UTC now, microseconds (the tables store naive UTC timestamps)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class FileOutcome:
    source_file: str
    outcome: str  # applied | rejected | skipped
    source_table: str | None = None
    kind: str | None = None
    file_timestamp: datetime | None = None
    records_read: int = 0
    rows_rejected: int = 0
    reason: str | None = None
    size_bytes: int = 0


@dataclass
class RunRecord:
    run_id: str
    status: str
    trigger: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    files_applied: int = 0
    files_rejected: int = 0
    files_skipped: int = 0
    rows_rejected: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "trigger": self.trigger,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "files_applied": self.files_applied,
            "files_rejected": self.files_rejected,
            "files_skipped": self.files_skipped,
            "rows_rejected": self.rows_rejected,
            "rows_written": self.rows_written,
            "error": self.error,
        }

    def to_json(self) -> dict[str, Any]:
        out = self.to_dict()
        for name in ("started_at", "finished_at"):
            value = out[name]
            out[name] = value.isoformat() if value else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        values: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        for name in ("started_at", "finished_at"):
            raw = values.get(name)
            values[name] = _naive(datetime.fromisoformat(raw)) if raw else None
        values["rows_written"] = dict(values.get("rows_written") or {})
        return cls(**values)


def _naive(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


# -- files --------------------------------------------------------------------------------------
class FileBook:
    """The latest outcome of every decided ingestion file, as one Parquet object."""

    def __init__(self, storage: Storage, lake: Lake | None = None) -> None:
        self.storage = storage
        self.lake = lake
        self._frame: pl.DataFrame | None = None

    def load(self) -> pl.DataFrame:
        data = self.storage.read_if_exists(FILES_KEY)
        frame = pl.read_parquet(io.BytesIO(data)) if data is not None else self._from_legacy_table()
        self._frame = frame.select([pl.col(c).cast(t) for c, t in LEDGER.items()])
        return self._frame

    @property
    def frame(self) -> pl.DataFrame:
        return self._frame if self._frame is not None else self.load()

    def _from_legacy_table(self) -> pl.DataFrame:
        if self.lake is not None and self.lake.exists("ledger"):
            legacy = self.lake.read("ledger")
            if legacy is not None:
                return legacy.sort("recorded_at").unique("source_file", keep="last")
        return pl.DataFrame(schema=LEDGER)

    def record(self, outcomes: list[FileOutcome], run_id: str) -> None:
        """Set these files' outcomes (in memory; `save` writes them)."""
        if not outcomes:
            return
        now = utcnow()
        rows = pl.DataFrame(
            [{**o.__dict__, "run_id": run_id, "recorded_at": now} for o in outcomes],
            schema=LEDGER,
        ).unique("source_file", keep="last")
        keep = self.frame.filter(~pl.col("source_file").is_in(rows["source_file"].implode()))
        self._frame = pl.concat([keep, rows], how="vertical_relaxed").sort("source_file")

    def save(self) -> None:
        buffer = io.BytesIO()
        self.frame.write_parquet(buffer, compression="zstd")
        self.storage.write(FILES_KEY, buffer.getvalue())

    def save_run(self, run_id: str, outcomes: list[FileOutcome]) -> None:
        """The outcomes one run decided, kept after later runs decide the same files again (the
        latest outcome per file is all `_state/files.parquet` keeps)."""
        if not outcomes:
            return
        now = utcnow()
        rows = pl.DataFrame(
            [{**o.__dict__, "run_id": run_id, "recorded_at": now} for o in outcomes],
            schema=LEDGER,
        )
        buffer = io.BytesIO()
        rows.write_parquet(buffer, compression="zstd")
        self.storage.write(f"{RUN_FILES_PREFIX}{run_id}.parquet", buffer.getvalue())

    def run_files(self, run_id: str) -> pl.DataFrame:
        """The files one run decided, with their outcomes then, by key."""
        data = self.storage.read_if_exists(f"{RUN_FILES_PREFIX}{run_id}.parquet")
        if data is not None:
            frame = pl.read_parquet(io.BytesIO(data))
        elif self.lake is not None and self.lake.exists("ledger"):  # a root written before
            legacy = self.lake.read("ledger", where=pl.col("run_id") == run_id)
            frame = legacy if legacy is not None else pl.DataFrame(schema=LEDGER)
        else:
            frame = self.frame.filter(pl.col("run_id") == run_id)
        return frame.select([pl.col(c).cast(t) for c, t in LEDGER.items()]).sort("source_file")


# -- runs ---------------------------------------------------------------------------------------
class RunBook:
    """The run index (written by the lease holder) merged with the records in wake markers."""

    def __init__(self, storage: Storage, lake: Lake | None = None) -> None:
        self.storage = storage
        self.lake = lake
        self._records: list[RunRecord] | None = None

    # the holder's side ------------------------------------------------------------------------
    def load(self) -> list[RunRecord]:
        data = self.storage.read_if_exists(RUNS_INDEX_KEY)
        if data is not None:
            self._records = [RunRecord.from_json(r) for r in json.loads(data)["runs"]]
        else:
            self._records = self._from_legacy_table()
        return self._records

    @property
    def records(self) -> list[RunRecord]:
        return self._records if self._records is not None else self.load()

    def _from_legacy_table(self) -> list[RunRecord]:
        if self.lake is None or not self.lake.exists("runs"):
            return []
        frame = self.lake.read("runs")
        if frame is None:
            return []
        latest = (
            frame.sort("recorded_at")
            .unique("run_id", keep="last")
            .sort("started_at", descending=True, nulls_last=True)
        )
        out = []
        for row in latest.iter_rows(named=True):
            values = {k: v for k, v in row.items() if k != "recorded_at"}
            values["rows_written"] = json.loads(values["rows_written"] or "{}")
            out.append(RunRecord(**values))
        return out

    def put(self, record: RunRecord) -> None:
        """Add or replace a record (in memory; `save` writes the index)."""
        records = [r for r in self.records if r.run_id != record.run_id]
        records.append(record)
        records.sort(key=lambda r: (r.started_at or datetime.min, r.run_id), reverse=True)
        self._records = records

    def fold(self, record: RunRecord) -> None:
        """Take in a record carried by a wake marker, unless the index knows better (a marker's
        `pending` never replaces what the run itself recorded since; a paused run's own final
        record replaces the `abandoned` another run guessed)."""
        known = next((r for r in self.records if r.run_id == record.run_id), None)
        if known is None or _superseded_by(known, record):
            self.put(record)

    def mark_abandoned(self, noticed_by: str, live_holder: str | None) -> list[str]:
        """Every `running` record but the live holder's becomes `abandoned`: its run died (or
        was paused past its lease) without recording an end."""
        marked = []
        now = utcnow()
        for record in self.records:
            if record.status == "running" and record.run_id not in {noticed_by, live_holder}:
                record.status = "abandoned"
                record.finished_at = record.finished_at or now
                record.error = (
                    f"abandoned: its lease expired without a release (the process died or was "
                    f"paused); noticed at {now.isoformat(timespec='seconds')} by run {noticed_by}"
                )
                marked.append(record.run_id)
        return marked

    def save(self) -> None:
        records = self.records
        if len(records) > INDEX_KEEP + ARCHIVE_CHUNK:
            keep, old = records[:INDEX_KEEP], records[INDEX_KEEP:]
            name = f"{RUNS_ARCHIVE_PREFIX}{old[-1].run_id}_{old[0].run_id}.json"
            self.storage.write(name, _runs_json(old))
            self._records = records = keep
        self.storage.write(RUNS_INDEX_KEY, _runs_json(records))

    # readers ----------------------------------------------------------------------------------
    def view(self, lease: LeaseView | None = None) -> list[RunRecord]:
        """Every known run, newest first: the index, the records still in wake markers, and the
        truth about `running`: a run that no longer holds a live lease is shown `abandoned`."""
        lease = lease or observe(self.storage)
        by_id = {r.run_id: r for r in self.load()}
        for record in marker_records(self.storage, lease.markers):
            known = by_id.get(record.run_id)
            if known is None or _superseded_by(known, record):
                by_id[record.run_id] = record
        live = None
        if lease.latest is not None and not lease.free:
            live = lease.latest.holder
        for record in by_id.values():
            if record.status == "running" and record.run_id != live:
                record.status = "abandoned"
                record.error = record.error or (
                    "abandoned: it holds no live lease (the process died or was paused); "
                    "the next run records when it was noticed"
                )
        return sorted(
            by_id.values(), key=lambda r: (r.started_at or datetime.min, r.run_id), reverse=True
        )

    def find(self, run_id: str) -> RunRecord | None:
        for record in self.view():
            if record.run_id == run_id:
                return record
        for obj in self.storage.list(RUNS_ARCHIVE_PREFIX):
            data = self.storage.read_if_exists(obj.key)
            for raw in json.loads(data or b'{"runs": []}')["runs"]:
                if raw.get("run_id") == run_id:
                    return RunRecord.from_json(raw)
        return None


def _superseded_by(known: RunRecord, carried: RunRecord) -> bool:
    """Whether a record carried by a wake marker says more than the index: a `pending` run that
    moved on, or a run presumed `abandoned` whose own process came back to record its end."""
    if known.status == "pending":
        return carried.status != "pending"
    return known.status == "abandoned" and carried.status not in {"pending", "running"}


def _runs_json(records: list[RunRecord]) -> bytes:
    return json.dumps({"runs": [r.to_json() for r in records]}).encode()


def marker_records(storage: Storage, markers: Iterable[ObjectInfo]) -> list[RunRecord]:
    """The run records carried by wake markers (those that carry one)."""
    out = []
    for obj in markers:
        body = read_marker(storage, obj.key)
        if body and body.get("record"):
            out.append(RunRecord.from_json(body["record"]))
    return out


def read_marker(storage: Storage, key: str) -> dict[str, Any] | None:
    data = storage.read_if_exists(key)
    if data is None:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class Ledger:
    """Files and runs of one processed root (reads for the API and CLI, writes for the holder)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.files = FileBook(lake.storage, lake)
        self.runs_book = RunBook(lake.storage, lake)

    # -- files --------------------------------------------------------------------------------
    def recorded_files(self, reopened_tables: Iterable[str] = ()) -> set[str]:
        """Keys with a ledger row, less the files recorded `skipped` of `reopened_tables`
        (tables a newer release models: their files are pending again, so an upgraded root
        backfills them from the bucket)."""
        files = self.files.load()
        reopened = list(reopened_tables)
        if reopened:
            files = files.filter(
                ~((pl.col("outcome") == "skipped") & pl.col("source_table").is_in(reopened))
            )
        return set(files["source_file"].to_list())

    def file_statuses(self) -> pl.DataFrame:
        """The latest outcome of every recorded file, sorted by key."""
        return self.files.load().sort("source_file")

    def file_report(self, listed: Iterable[ObjectInfo], status: str | None = None) -> pl.DataFrame:
        """Every ingestion file listed or recorded with its status (`pending`: listed, no ledger
        row), optionally only one status; sorted by key."""
        recorded = self.file_statuses().rename({"source_file": "key", "outcome": "status"})
        known = set(recorded["key"].to_list())
        pending = [
            {"key": o.key, "status": "pending", "size_bytes": o.size}
            for o in listed
            if o.key not in known
        ]
        schema = {**recorded.schema}
        frame = pl.concat(
            [recorded, pl.DataFrame(pending, schema=schema)], how="vertical_relaxed"
        ).sort("key")
        return frame if status is None else frame.filter(pl.col("status") == status)

    def run_files(self, run_id: str) -> pl.DataFrame:
        return self.files.run_files(run_id)

    # -- runs ---------------------------------------------------------------------------------
    def runs(self) -> list[RunRecord]:
        return self.runs_book.view()

    def run(self, run_id: str) -> RunRecord | None:
        return self.runs_book.find(run_id)
