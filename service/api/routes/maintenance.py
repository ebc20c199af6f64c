"""Table maintenance: compact, checkpoint and vacuum, in the background."""

from __future__ import annotations

from fastapi import status

from service.api.deps import DispatcherDep, LedgerDep, SettingsDep
from service.api.models import MaintenanceRequest, RunAccepted
from service.api.routes.common import (
    BAD_REQUEST,
    RUN_LINK,
    STATE_CHANGING,
    authenticated_router,
    start_job,
)

router = authenticated_router("maintenance")


@router.post(
    "/maintenance",
    response_model=RunAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**RUN_LINK, **BAD_REQUEST, **STATE_CHANGING},
    summary="Start maintenance (compact, checkpoint, vacuum) in the background",
    description="Recorded as a run with trigger `maintenance` (poll GET /runs/{run_id}); it "
    "holds the run lease, so it never overlaps a pipeline run. Vacuum keeps every file a version "
    "inside `retention_days` (1 to 3650; default TOTESYS_RETENTION_DAYS) needs; older versions "
    "then answer 404 `version N is no longer kept (retention R days)`.",
)
def start_maintenance(
    settings: SettingsDep,
    ledger: LedgerDep,
    dispatcher: DispatcherDep,
    body: MaintenanceRequest | None = None,
) -> RunAccepted:
    retention = settings.retention_days
    if body is not None and body.retention_days is not None:
        retention = body.retention_days
    return start_job(
        ledger, dispatcher, settings, "maintenance", action="maintain", retention_days=retention
    )
