"""Structured JSON logs and CloudWatch Embedded Metric Format (EMF) metrics for the Lambda.

Both go to stdout, where the Lambda runtime hands them to CloudWatch Logs; CloudWatch extracts
the metrics from the EMF blobs, so no API call (and no permission) is needed to publish them.

Metrics (namespace `TotesysTransform`, dimension `service=totesys-transform`), one blob per run:
`FilesApplied`, `FilesRejected`, `FilesSkipped`, `RowsRejected` (Count), `RowsWritten` (Count,
all tables), `RunDuration` (Milliseconds) and `RunFailed` (1 on failure, 0 on success, so an
alarm always has data). Rows written per table are `RowsWritten` with the extra dimension
`Table`, one small blob per table (EMF dimensions apply to a whole blob). The alarms are on
`RunFailed` and `FilesRejected`.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from service.pipeline import RunSummary

SERVICE = "totesys-transform"
NAMESPACE = "TotesysTransform"
# Tables whose rows written get their own `RowsWritten` (dimension Table); internal state
# tables (_state/...) only count towards the total.
PUBLIC_TABLE_PREFIXES = ("fact_", "dim_")


class _CurrentStdout(logging.StreamHandler):
    """Writes to whatever sys.stdout is now (the Lambda runtime's, or a test's capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


logger = Logger(service=SERVICE, logger_handler=_CurrentStdout())
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def route_package_logs() -> None:
    """Send the `totesys.*` loggers (pipeline, storage, lease) through the JSON formatter, so
    their lines carry the same keys (Lambda context, run id) as the handler's own."""
    target = logging.getLogger("totesys")
    handler = logger.registered_handler
    if handler not in target.handlers:
        target.addHandler(handler)
    target.setLevel(logger.log_level)
    target.propagate = False


def emit_run_metrics(summary: RunSummary | None, duration_ms: float, failed: bool) -> None:
    """One EMF blob with the run's metrics, plus one `RowsWritten` blob per public table."""
    metrics.add_metric(name="RunFailed", unit=MetricUnit.Count, value=1 if failed else 0)
    metrics.add_metric(name="RunDuration", unit=MetricUnit.Milliseconds, value=duration_ms)
    written: dict[str, int] = {}
    if summary is not None:
        metrics.add_metric(
            name="FilesApplied", unit=MetricUnit.Count, value=summary.count("applied")
        )
        metrics.add_metric(
            name="FilesRejected", unit=MetricUnit.Count, value=summary.count("rejected")
        )
        metrics.add_metric(
            name="FilesSkipped", unit=MetricUnit.Count, value=summary.count("skipped")
        )
        metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=summary.rows_rejected)
        written = summary.rows_written
        metrics.add_metric(name="RowsWritten", unit=MetricUnit.Count, value=sum(written.values()))
    metrics.flush_metrics()
    for table, rows in sorted(written.items()):
        if not table.startswith(PUBLIC_TABLE_PREFIXES):
            continue
        with single_metric(
            name="RowsWritten",
            unit=MetricUnit.Count,
            value=rows,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name="Table", value=table)


def log_file_outcomes(summary: RunSummary) -> None:
    """One line per file the run decided, with its key and outcome."""
    for f in summary.files:
        problem = f.outcome == "rejected" or bool(f.rows_rejected)
        (logger.warning if problem else logger.info)(
            f"file {f.outcome}",
            extra={
                "file_key": f.source_file,
                "outcome": f.outcome,
                "source_table": f.source_table,
                "records_read": f.records_read,
                "rows_rejected": f.rows_rejected,
                "reason": f.reason,
            },
        )


def run_fields(summary: RunSummary) -> dict[str, Any]:
    """The compact result of a run (logged, and returned by the handler)."""
    return {
        "run_id": summary.run_id,
        "status": summary.status,
        "trigger": summary.trigger,
        "files_applied": summary.count("applied"),
        "files_rejected": summary.count("rejected"),
        "files_skipped": summary.count("skipped"),
        "rows_rejected": summary.rows_rejected,
        "rows_written": dict(summary.rows_written),
        "warnings": list(summary.warnings),
    }
