"""Ingestion files and their outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from service.api.deps import LedgerDep, PipelineDep
from service.api.models import FilePage, FileStatus, IngestionFile
from service.api.routes.common import authenticated_router, page_bounds

router = authenticated_router("files")


@router.get(
    "/files",
    response_model=FilePage,
    summary="Ingestion files with their outcome and reason",
    description="`pending`: listed under baseline/ or updated/ with no ledger row yet; "
    "`applied`, `rejected` (with the reason), `skipped` (tables outside the star schema): the "
    "file's latest ledger row. Sorted by key; paginated with limit/offset (an offset past the "
    "end is an empty page); `total` counts every match.",
)
def list_files(
    pipeline: PipelineDep,
    ledger: LedgerDep,
    status: Annotated[FileStatus | None, Query(description="Only files with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> FilePage:
    report = ledger.file_report(pipeline.list_ingestion(), status)
    start, stop = page_bounds(offset, limit, report.height)
    page = report.slice(start, stop - start)
    items = [IngestionFile.model_validate(row) for row in page.iter_rows(named=True)]
    return FilePage(total=report.height, limit=limit, offset=offset, items=items)
