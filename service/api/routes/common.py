"""What the routes share: the authenticated router factory, error responses, run helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from service import jobs
from service.api.auth import authenticate
from service.api.deps import Dispatcher
from service.api.errors import MAX_ITEMS, clip
from service.api.models import Problem, Run, RunAccepted
from service.ledger import Ledger, RunRecord
from service.pipeline import new_run_id
from service.settings import Settings

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No valid bearer token, IAM context or loopback"},
    403: {
        "model": Problem,
        "description": "Loopback without a token: the Host is not a loopback name, or a "
        "state-changing request came from a foreign Origin",
    },
    422: {
        "model": Problem,
        "description": "Invalid parameters or body: `detail` names each parameter and its "
        "problem (an unknown query parameter too)",
    },
    429: {
        "model": Problem,
        "description": "Ten wrong tokens came from this client address within a minute: every "
        "token it presents, right or wrong, is refused until the minute has passed",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    },
    503: {"model": Problem, "description": "Storage (ingestion root or tables) unavailable"},
}
STATE_CHANGING: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body could not be read as UTF-8 JSON"},
    413: {
        "model": Problem,
        "description": "Request body over 1 MB: refused before it is read, however valid or "
        "invalid it is otherwise",
    },
    415: {
        "model": Problem,
        "description": "Loopback without a token: the request is not application/json",
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "Not found"}}
# A job's 202 links to its run (Schemathesis follows it in its stateful tests).
RUN_LINK: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the job runs in the background",
        "links": {
            "GetRun": {
                "operationId": "get_run_runs__run_id__get",
                "parameters": {"run_id": "$response.body#/run_id"},
                "description": "The run's progress and outcome",
            }
        },
    }
}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "Invalid parameters or body (message in `detail`)"}
}


def _query_names(dependant: Any) -> set[str]:
    """Query parameter names of a route's dependency tree (FastAPI's `Dependant`)."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_parameters(request: Request) -> None:
    """422 for a query parameter the route does not have: a typo (`?fliter=...`) would
    otherwise be ignored silently and answer with everything."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = [k for k in dict.fromkeys(request.query_params) if k not in known]
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "type": "extra_forbidden",
                    "loc": ["query", clip(k)],
                    "msg": "unknown query parameter"
                    + (f" (parameters: {', '.join(sorted(known))})" if known else ""),
                }
                for k in unknown[:MAX_ITEMS]
            ],
        )


def authenticated_router(tag: str) -> APIRouter:
    return APIRouter(
        tags=[tag],
        dependencies=[Depends(authenticate), Depends(known_query_parameters)],
        responses=UNAUTHORIZED,
    )


def clipped_list(values: list[str]) -> list[str]:
    """At most `MAX_ITEMS` of the caller's values, each clipped, for an error answer."""
    return [clip(v) for v in values[:MAX_ITEMS]]


def naive_utc_parameter(value: datetime | None, parameter: str) -> datetime | None:
    """A timestamp parameter as the tables store it (naive UTC); 422 naming the parameter if
    its zone takes it outside the representable years (9999-12-31T23:59:59-12:00)."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "type": "datetime_range",
                    "loc": ["query", parameter],
                    "msg": "in UTC this time is outside the years 1 to 9999",
                    "input": value.isoformat(),
                }
            ],
        ) from None


def page_bounds(offset: int, limit: int, total: int) -> tuple[int, int]:
    """(start, stop) of a page within `total` items: an offset past the end is an empty page
    (a huge offset never reaches Polars' 64-bit slice arithmetic)."""
    start = min(offset, total)
    return start, min(total, start + limit)


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
