"""What the routes share: the authenticated router factory, error responses, run helpers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from service import jobs
from service.api.deps import Dispatcher, authenticate
from service.api.models import Problem, Run, RunAccepted
from service.ledger import Ledger, RunRecord
from service.pipeline import new_run_id
from service.settings import Settings

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No valid bearer token, IAM context or loopback"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "Not found"}}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "Invalid parameters or body (message in `detail`)"}
}


def authenticated_router(tag: str) -> APIRouter:
    return APIRouter(tags=[tag], dependencies=[Depends(authenticate)], responses=UNAUTHORIZED)


def run_model(record: RunRecord) -> Run:
    duration = None
    if record.started_at and record.finished_at:
        duration = (record.finished_at - record.started_at).total_seconds()
    return Run(**record.to_dict(), duration_seconds=duration)


def start_job(
    ledger: Ledger, dispatcher: Dispatcher, settings: Settings, trigger: str, **job: Any
) -> RunAccepted:
    """Record a `pending` run, hand the job to the dispatcher, answer with its id."""
    accepted = jobs.Job.from_event({"run_id": new_run_id(), "trigger": trigger, **job})
    jobs.request(accepted, settings)
    try:
        dispatcher(accepted.to_event(), settings)
    except Exception as exc:
        jobs.dispatch_failed(accepted, settings, f"dispatch failed: {type(exc).__name__}: {exc}")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"run {accepted.run_id} could not be started: {exc}",
        ) from exc
    run_id = accepted.run_id
    return RunAccepted(run_id=run_id, trigger=trigger, status_url=f"/runs/{run_id}")
