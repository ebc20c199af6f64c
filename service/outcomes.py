"""What a run did: its summary (files, rows, rejects, warnings; its record in the run index) and
the outcome of one applied file."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.ledger import FileOutcome, RunRecord, utcnow
from transforms.ingestion_key import IngestionKey
from transforms.parse import ParsedFile

COUNTS_IN_REASON = 10  # (field, reason) counts named in a ledger reason


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


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def internal_error(exc: BaseException) -> str:
    return f"internal error: {type(exc).__name__}: {exc}"[:2000]


def _rows_reason(result: ParsedFile) -> str:
    first = result.rejects.row(0, named=True)
    reason = (
        f"{result.records_rejected} of {result.records_read} records rejected; first: record "
        f"{first['record_number']} field {first['field']!r}: {first['reason']}"
    )
    if result.reject_counts is not None:
        # exact counts, however many problems were kept in detail
        counted = [
            f"{c['field']}: {c['reason']} ×{c['count']}"
            for c in result.reject_counts.head(COUNTS_IN_REASON).iter_rows(named=True)
        ]
        more = result.reject_counts.height - COUNTS_IN_REASON
        reason += "; problems: " + ", ".join(counted) + (f", … {more} more" if more > 0 else "")
    return reason


def file_outcome(key: IngestionKey, size: int, result: ParsedFile) -> FileOutcome:
    """The ledger row of a file that was read: applied (some rows may be rejected) or rejected."""
    bad_rows = result.records_rejected
    reason: str | None
    if result.file_rejected:
        outcome, reason = "rejected", str(result.rejects["reason"][0])
    else:
        outcome = "applied"
        reason = _rows_reason(result) if bad_rows else None
    return FileOutcome(
        source_file=key.key,
        outcome=outcome,
        source_table=key.table,
        kind=key.kind,
        file_timestamp=key.timestamp,
        records_read=result.records_read,
        rows_rejected=int(bad_rows),
        reason=reason,
        size_bytes=size,
    )
