"""One sale: every version, or its state now or as of a business time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import HTTPException, Path, Query, status

from service import queries
from service.api.deps import LakeDep
from service.api.models import Problem, SaleHistory, SaleState, SaleVersion
from service.api.routes.common import NOT_FOUND, authenticated_router, naive_utc_parameter

router = authenticated_router("sales-orders")

# sales_order_id is a 32-bit integer in the source and the fact table.
SalesOrderId = Annotated[
    int, Path(ge=0, le=2**31 - 1, description="The source's sales_order_id", examples=[1])
]


@router.get(
    "/sales-orders/{sales_order_id}/history",
    response_model=SaleHistory,
    responses=NOT_FOUND,
    summary="Every version of a sale, oldest first, deletion included",
)
def sale_history(sales_order_id: SalesOrderId, lake: LakeDep) -> SaleHistory:
    rows = queries.sale_history(lake, sales_order_id)
    if rows.is_empty():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sales order {sales_order_id}")
    return SaleHistory(
        sales_order_id=sales_order_id,
        versions=[SaleVersion.model_validate(r) for r in rows.iter_rows(named=True)],
    )


@router.get(
    "/sales-orders/{sales_order_id}",
    response_model=SaleState,
    responses={
        404: {
            "model": Problem,
            "description": "The sale did not exist by then (`state: not_found`) or was deleted "
            "by then (`state: deleted`, with `deleted_at`)",
        }
    },
    summary="A sale's state now, or as of a business time",
    description="`as_of` is a business time (the source's `last_updated`; ISO 8601, naive = "
    "UTC): the sale's latest version updated at or before it.",
)
def sale_state(
    sales_order_id: SalesOrderId,
    lake: LakeDep,
    as_of: Annotated[datetime | None, Query(description="Business time (ISO 8601)")] = None,
) -> SaleState:
    moment = naive_utc_parameter(as_of, "as_of")
    state = queries.sale_state(lake, sales_order_id, moment)
    when = f" as of {moment.isoformat()}" if moment else ""
    if state.status == "not_found":
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            {
                "message": f"sales order {sales_order_id} did not exist{when}",
                "state": "not_found",
                "sales_order_id": sales_order_id,
            },
        )
    if state.status == "deleted":
        deleted_at = state.deleted_at.isoformat() if state.deleted_at else None
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            {
                "message": f"sales order {sales_order_id} was deleted at {deleted_at}{when}",
                "state": "deleted",
                "sales_order_id": sales_order_id,
                "deleted_at": deleted_at,
            },
        )
    assert state.row is not None
    return SaleState(
        sales_order_id=sales_order_id, as_of=moment, sale=SaleVersion.model_validate(state.row)
    )
