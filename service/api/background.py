"""Jobs started by the API run after the response: in Lambda the function invokes itself
asynchronously (API Gateway gives a request 29 s, a run may take minutes); elsewhere a daemon
thread runs them. Either way the job goes through the one job runner (service/jobs.py), which
records the run; the route recorded it `pending` first (`jobs.request`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from service import jobs
from service.settings import Settings

log = logging.getLogger("totesys.api.background")

ACTIONS = jobs.ACTIONS


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
    """Run one API job to its end; never raises (the outcome is recorded). Returns the run's
    record as a dict. A job that finds the lease busy is recorded `busy` (its wake marker asks
    the holder to do what it asked for)."""
    try:
        parsed = jobs.Job.from_event(job)
    except (ValueError, TypeError) as exc:
        log.error("job %s refused: %s", job.get("run_id"), exc)
        run_id = str(job.get("run_id") or "?")
        return {"run_id": run_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    result = jobs.execute(parsed, settings, record_busy=True)
    if result.status == "failed":
        log.error("run %s failed: %s", parsed.run_id, result.error, exc_info=result.exception)
    return result.record()
