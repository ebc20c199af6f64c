"""Which ingestion files were applied, rejected or skipped, and the record of every run.

Both are append-only Delta tables under `_state/`: a file's status is its latest ledger row, a
run's status its latest run row. A file with no ledger row is pending.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from service.lake import Lake
from service.storage import ObjectInfo
from transforms.schemas import TIMESTAMP

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

RUNS: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "status": pl.String(),  # pending | running | succeeded | failed | interrupted (Ctrl-C)
    "trigger": pl.String(),
    "started_at": TIMESTAMP,
    "finished_at": TIMESTAMP,
    "files_applied": pl.Int64(),
    "files_rejected": pl.Int64(),
    "files_skipped": pl.Int64(),
    "rows_rejected": pl.Int64(),
    "rows_written": pl.String(),  # JSON object: table → rows
    "error": pl.String(),
    "recorded_at": TIMESTAMP,
}


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


class Ledger:
    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    # -- files --------------------------------------------------------------------------------
    def recorded_files(self) -> set[str]:
        frame = self.lake.read("ledger", columns=["source_file"])
        return set() if frame is None else set(frame["source_file"].to_list())

    def record_files(self, outcomes: list[FileOutcome], run_id: str) -> None:
        if not outcomes:
            return
        now = utcnow()
        rows = [{**o.__dict__, "run_id": run_id, "recorded_at": now} for o in outcomes]
        self.lake.append("ledger", pl.DataFrame(rows, schema=LEDGER), run_id)

    def file_statuses(self) -> pl.DataFrame:
        """The latest ledger row of every recorded file."""
        frame = self.lake.read("ledger")
        if frame is None:
            return pl.DataFrame(schema=LEDGER)
        return frame.sort("recorded_at").unique("source_file", keep="last").sort("source_file")

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

    # -- runs ---------------------------------------------------------------------------------
    def record_run(self, run: RunRecord) -> None:
        row = {
            **run.to_dict(),
            "rows_written": json.dumps(run.rows_written),
            "recorded_at": utcnow(),
        }
        self.lake.append("runs", pl.DataFrame([row], schema=RUNS), run.run_id)

    def runs(self) -> list[RunRecord]:
        frame = self.lake.read("runs")
        if frame is None:
            return []
        latest = (
            frame.sort("recorded_at")
            .unique("run_id", keep="last")
            .sort("started_at", descending=True, nulls_last=True)
        )
        return [_run_from_row(r) for r in latest.iter_rows(named=True)]

    def run(self, run_id: str) -> RunRecord | None:
        frame = self.lake.read("runs", where=pl.col("run_id") == run_id)
        if frame is None or frame.is_empty():
            return None
        return _run_from_row(frame.sort("recorded_at").row(-1, named=True))


def _run_from_row(row: dict[str, Any]) -> RunRecord:
    values = {k: v for k, v in row.items() if k != "recorded_at"}
    values["rows_written"] = json.loads(values["rows_written"] or "{}")
    return RunRecord(**values)
