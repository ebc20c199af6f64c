"""Pipeline runs: start one over every pending file; list runs; one run's status."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, status

from service.api.deps import DispatcherDep, LedgerDep, SettingsDep
from service.api.errors import clip_repr
from service.api.models import Run, RunAccepted, RunPage
from service.api.routes.common import (
    NOT_FOUND,
    RUN_LINK,
    STATE_CHANGING,
    authenticated_router,
    page_bounds,
    run_model,
    start_job,
)

router = authenticated_router("runs")


@router.post(
    "/runs",
    response_model=RunAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**RUN_LINK, **STATE_CHANGING},
    summary="Start a run over every pending ingestion file",
    description="Records the run as `pending` and returns at once; the run continues in the "
    "background (in Lambda: an asynchronous self-invocation, so it may outlast API Gateway's "
    "29 s). Poll `GET /runs/{run_id}`. If another run holds the lease, this run ends `failed` "
    "with that reason and the files stay pending.",
)
def start_run(settings: SettingsDep, ledger: LedgerDep, dispatcher: DispatcherDep) -> RunAccepted:
    return start_job(ledger, dispatcher, settings, "api", action="run")


@router.get(
    "/runs",
    response_model=RunPage,
    summary="Runs, newest first",
    description="From the run index (one small object) and the lease: a run whose process "
    "died holding the lease is shown `abandoned`, never `running`. An offset past the end is an "
    "empty page.",
)
def list_runs(
    ledger: LedgerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RunPage:
    runs = ledger.runs()
    start, stop = page_bounds(offset, limit, len(runs))
    items = [run_model(r) for r in runs[start:stop]]
    return RunPage(total=len(runs), limit=limit, offset=offset, items=items)


@router.get(
    "/runs/{run_id}",
    response_model=Run,
    responses=NOT_FOUND,
    summary="One run: status (pending, running, succeeded, failed), timing, counts, error",
)
def get_run(run_id: str, ledger: LedgerDep) -> Run:
    record = ledger.run(run_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {clip_repr(run_id)}")
    return run_model(record)
