"""Jobs started by the API run after the response: in Lambda the function invokes itself
asynchronously (API Gateway gives a request 29 s, a run may take minutes); elsewhere a daemon
thread runs them.

A job is a small JSON object, the same on both paths:

    {"action": "run", "run_id": "...", "trigger": "api"}                      every pending file
    {"action": "run", "run_id": "...", "trigger": "reprocess", "only_keys": [...]}
    {"action": "maintain", "run_id": "...", "trigger": "maintenance", "retention_days": 30}

The route records the run as `pending` before dispatching; `execute` (called by the thread, and
by the Lambda handler for `{"action": ...}` events) moves it on: the pipeline records `running`
and the outcome itself; if the run cannot start (another run holds the lease, a setup error) the
run is recorded `failed` with the reason, so a caller polling GET /runs/{id} never waits forever.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from service.lease import LeaseBusy
from service.ledger import Ledger, RunRecord, utcnow
from service.pipeline import Pipeline
from service.settings import Settings

log = logging.getLogger("totesys.api.background")

ACTIONS = ("run", "maintain")


def dispatch(job: dict[str, Any], settings: Settings) -> None:
    """Start `job` after this request: Lambda self-invoke in Lambda, else a daemon thread."""
    if job.get("action") not in ACTIONS:
        raise ValueError(f"unknown job action {job.get('action')!r}")
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if function:
        import boto3

        boto3.client("lambda").invoke(
            FunctionName=function, InvocationType="Event", Payload=json.dumps(job).encode()
        )
        return
    thread = threading.Thread(
        target=execute, args=(job, settings), name=f"totesys-{job['run_id']}", daemon=True
    )
    thread.start()


def execute(job: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Run one job to the end and record its outcome; never raises (the outcome is recorded).

    Returns the run record as a dict (for the Lambda handler's logs)."""
    run_id = str(job["run_id"])
    default_trigger = "maintenance" if job["action"] == "maintain" else "api"
    trigger = str(job.get("trigger") or default_trigger)
    try:
        pipeline = Pipeline.from_settings(settings)
    except Exception as exc:
        log.exception("job %s could not start", run_id)
        return {"run_id": run_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    ledger = pipeline.ledger
    try:
        if job["action"] == "maintain":
            return _maintain(pipeline, run_id, job, settings)
        only_keys = job.get("only_keys")
        summary = pipeline.run(run_id=run_id, trigger=trigger, only_keys=only_keys)
        return summary.record().to_dict()
    except LeaseBusy as exc:
        reason = f"LeaseBusy: {exc}" + (
            "; the files stay pending for the next run" if job["action"] == "run" else ""
        )
        log.warning("run %s not started: %s", run_id, reason)
        return _fail(ledger, run_id, trigger, reason)
    except Exception as exc:
        log.exception("run %s failed", run_id)
        current = _safe_run(ledger, run_id)
        if current is not None and current.status == "failed":
            return current.to_dict()  # the pipeline recorded it
        return _fail(ledger, run_id, trigger, f"{type(exc).__name__}: {exc}")


def _maintain(
    pipeline: Pipeline, run_id: str, job: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """Compact, checkpoint and vacuum; `maintain` holds the run lease itself, so it never
    overlaps a pipeline run (LeaseBusy if one holds it past the wait)."""
    from service.maintenance import maintain

    requested = job.get("retention_days")
    retention = settings.retention_days if requested is None else int(requested)
    record = RunRecord(run_id=run_id, status="running", trigger="maintenance", started_at=utcnow())
    pipeline.ledger.record_run(record)
    try:
        maintain(
            pipeline.lake,
            retention,
            run_id=run_id,
            lease_seconds=settings.lease_seconds,
            lease_wait_seconds=settings.lease_wait_seconds,
        )
        record.status = "succeeded"  # per-table figures are in the tables' history
    except BaseException as exc:
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.finished_at = utcnow()
        pipeline.ledger.record_run(record)
    return record.to_dict()


def _safe_run(ledger: Ledger, run_id: str) -> RunRecord | None:
    try:
        return ledger.run(run_id)
    except Exception:
        return None


def _fail(ledger: Ledger, run_id: str, trigger: str, reason: str) -> dict[str, Any]:
    previous = _safe_run(ledger, run_id)
    now = utcnow()
    record = RunRecord(
        run_id=run_id,
        status="failed",
        trigger=trigger,
        started_at=previous.started_at if previous and previous.started_at else now,
        finished_at=now,
        error=reason,
    )
    try:
        ledger.record_run(record)
    except Exception:
        log.exception("could not record the failure of run %s", run_id)
    return record.to_dict()
