"""The Lambda entry point: one function, routed by the shape of the event.

- S3 "Object Created" through EventBridge, or classic S3 notification records: a run that
  applies every pending file (the event's keys among them). Keys outside `baseline/` and
  `updated/` (or outside the ingestion root) are ignored; an event with none starts no run.
- An EventBridge scheduled event: a run over every pending file.
- Direct invocation `{"action": "run", "run_id": ...}` (the API's asynchronous run) and
  `{"action": "maintain"}`.
- API Gateway HTTP API (v2) and REST API (v1) events: the FastAPI app, through Mangum.

A run that fails logs one ERROR line, emits `RunFailed=1` and raises, so Lambda's retry and
on-failure destination see it; its unfinished files stay pending for the next run.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote_plus

from service import jobs
from service.jobs import Job
from service.observability import (
    emit_run_metrics,
    log_file_outcomes,
    logger,
    route_package_logs,
    run_fields,
)
from service.outcomes import new_run_id
from service.planner import INGESTION_PREFIXES
from service.settings import Settings
from service.storage import S3Storage, open_storage

_http_handler: Any = None  # Mangum(app), built once per container


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    route_package_logs()
    return _handle(event, context)


@logger.inject_lambda_context(clear_state=True)
def _handle(event: dict[str, Any], context: Any) -> Any:
    kind = event_kind(event)
    logger.append_keys(event_kind=kind)
    settings = Settings()
    if kind == "http":
        return _http(event, context, settings)
    if kind == "s3":
        keys = s3_event_keys(event)
        relevant = relevant_keys(keys, settings.ingestion_uri)
        ignored = sorted(set(keys) - {full for full, _ in relevant})
        if ignored:
            logger.info(
                "ignoring keys outside the ingestion prefixes", extra={"file_keys": ignored}
            )
        if not relevant:
            return {"status": "ignored", "keys": keys}
        logger.info("ingestion files arrived", extra={"file_keys": [rel for _, rel in relevant]})
        return run(settings, trigger="s3-event")
    if kind == "schedule":
        return run(settings, trigger="schedule")
    if kind == "run":  # the API's asynchronous run or reprocess (service/api/background.py)
        return run(
            settings,
            trigger=str(event.get("trigger") or "api"),
            run_id=str(event.get("run_id") or new_run_id()),
            only_keys=event.get("only_keys"),
            has_pending_record="run_id" in event,
        )
    if kind == "maintain":
        return _maintain(event, settings)
    logger.error("unrecognised event", extra={"event_keys": sorted(event)})
    raise ValueError(f"unrecognised event shape (keys: {sorted(event)})")


# -- routing ---------------------------------------------------------------------------------
def event_kind(event: dict[str, Any]) -> str:
    """s3 | schedule | run | maintain | http | unknown."""
    if "action" in event:
        action = str(event["action"])
        return action if action in {"run", "maintain"} else "unknown"
    if "requestContext" in event and ("httpMethod" in event or event.get("version") == "2.0"):
        return "http"
    records = event.get("Records")
    if isinstance(records, list) and records and all("s3" in r for r in records):
        return "s3"
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        return "s3"
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "unknown"


def s3_event_keys(event: dict[str, Any]) -> list[str]:
    """`s3://bucket/key` of every object an S3 event names (keys arrive URL-encoded)."""
    out: list[str] = []
    for record in event.get("Records") or []:
        s3 = record.get("s3", {})
        out.append(f"s3://{s3['bucket']['name']}/{unquote_plus(s3['object']['key'])}")
    if event.get("source") == "aws.s3":
        detail = event.get("detail", {})
        out.append(f"s3://{detail['bucket']['name']}/{unquote_plus(detail['object']['key'])}")
    return out


def relevant_keys(keys: list[str], ingestion_uri: str) -> list[tuple[str, str]]:
    """(full URI, key relative to the ingestion root) of the keys under baseline/ or updated/."""
    storage = open_storage(ingestion_uri)
    if not isinstance(storage, S3Storage):
        return []
    root = f"s3://{storage.bucket}/" + (f"{storage.prefix}/" if storage.prefix else "")
    out = []
    for full in keys:
        if full.startswith(root):
            relative = full[len(root) :]
            if relative.startswith(INGESTION_PREFIXES):
                out.append((full, relative))
    return out


# -- actions ---------------------------------------------------------------------------------
def run(
    settings: Settings,
    trigger: str,
    run_id: str | None = None,
    only_keys: list[str] | None = None,
    has_pending_record: bool = False,
) -> dict[str, Any]:
    """Run the pipeline with logs and metrics; raise (after logging) if it fails.

    `only_keys` re-applies just those files (reprocess); `has_pending_record` says the API
    recorded this run as pending, so a busy run is recorded (`busy`) for its caller to see.
    Busy is not a failure: the wake marker the run left asks the holder to apply the files
    before it lets go, so this invocation returns within seconds instead of waiting."""
    job = Job("run", run_id or new_run_id(), trigger, only_keys)
    logger.append_keys(run_id=job.run_id, trigger=trigger)
    started = time.monotonic()
    result = jobs.execute(job, settings, record_busy=has_pending_record)
    if result.status == "busy":
        logger.warning(
            "another run holds the lease; it will apply these files before it releases",
            extra={"reason": result.error},
        )
        emit_run_metrics(None, _ms(started), failed=False)
        return {"run_id": job.run_id, "status": "busy", "error": result.error}
    if result.summary is None or result.status != "succeeded":
        logger.error(
            "run failed",
            extra={"outcome": result.status, "error": result.error},
            exc_info=result.exception,
        )
        emit_run_metrics(result.summary, _ms(started), failed=True)
        raise RuntimeError(f"run {job.run_id} {result.status}: {result.error}")
    summary = result.summary
    log_file_outcomes(summary)
    fields = run_fields(summary)
    logger.info("run finished", extra={"outcome": summary.status, **fields})
    emit_run_metrics(summary, _ms(started), failed=False)
    return json.loads(json.dumps(fields, default=str))


def _maintain(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Compact, checkpoint and vacuum (daily schedule or the API), recorded as a run."""
    job = Job.from_event({**event, "action": "maintain"})  # trigger: maintenance unless said
    logger.append_keys(run_id=job.run_id, trigger=job.trigger)
    result = jobs.execute(job, settings, record_busy="run_id" in event)
    if result.status == "busy":
        logger.warning(
            "maintenance postponed: another run holds the lease", extra={"reason": result.error}
        )
        return {"run_id": job.run_id, "status": "busy", "error": result.error}
    if result.status != "succeeded":
        logger.error("maintenance failed", extra={"outcome": "failed", "error": result.error})
        raise RuntimeError(f"maintenance {job.run_id} failed: {result.error}")
    logger.info("maintenance finished", extra={"outcome": "succeeded"})
    return json.loads(json.dumps(result.record(), default=str))


def _http(event: dict[str, Any], context: Any, settings: Settings) -> Any:
    global _http_handler
    if _http_handler is None:
        from mangum import Mangum

        from service.api.app import create_app

        _http_handler = Mangum(create_app(settings), lifespan="off")
    return _http_handler(event, context)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
