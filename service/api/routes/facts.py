"""One id of a fact: every version, or its state now or as of a business time. A router per
declared fact (transforms/facts.py), at `/<route>/{<id>}` and `/<route>/{<id>}/history`:
/sales-orders/{sales_order_id}, /purchase-orders/{purchase_order_id}, /payments/{payment_id}.

No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations, and the
path parameter's type is made per fact, inside `fact_router`, where a string could not name it.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from service import queries
from service.api.deps import LakeDep
from service.api.fact_models import FACT_APIS, FactApi, fact_models
from service.api.models import Problem
from service.api.routes.common import NOT_FOUND, authenticated_router, naive_utc_parameter

# Every fact's id is a 32-bit integer in the source and the fact table.
MAX_ID = 2**31 - 1


def _not_found(api: FactApi, ident: int, state: queries.VersionState, when: str) -> HTTPException:
    label = api.spec.label
    detail: dict[str, Any] = {api.id_column: ident}
    if state.status == "deleted":
        deleted_at = state.deleted_at.isoformat() if state.deleted_at else None
        detail.update(
            message=f"{label} {ident} was deleted at {deleted_at}{when}",
            state="deleted",
            deleted_at=deleted_at,
        )
    else:
        detail.update(message=f"{label} {ident} did not exist{when}", state="not_found")
    # The keys in the order the sales route first published them.
    order = ["message", "state", api.id_column, "deleted_at"]
    return HTTPException(status.HTTP_404_NOT_FOUND, {k: detail[k] for k in order if k in detail})


def fact_router(api: FactApi) -> APIRouter:
    """The two routes of one fact (the id's path parameter named after its column)."""
    spec, models = api.spec, fact_models(api)
    router = authenticated_router(spec.route)
    Ident = Annotated[
        int,
        Path(
            alias=api.id_column,
            ge=0,
            le=MAX_ID,
            description=f"The source's {api.id_column}",
            examples=[1],
        ),
    ]
    base = f"/{spec.route}/{{{api.id_column}}}"

    @router.get(
        f"{base}/history",
        name=f"{api.key}_history",
        response_model=models.history,
        responses=NOT_FOUND,
        summary=f"Every version of a {api.noun}, oldest first, deletion included",
    )
    def history(ident: Ident, lake: LakeDep) -> Any:
        rows = queries.history(lake, spec, ident)
        if rows.is_empty():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {spec.label} {ident}")
        versions = [models.version.model_validate(r) for r in rows.iter_rows(named=True)]
        return models.history.model_validate({api.id_column: ident, "versions": versions})

    @router.get(
        base,
        name=f"{api.key}_state",
        response_model=models.state,
        responses={
            404: {
                "model": Problem,
                "description": f"The {api.noun} did not exist by then (`state: not_found`) or "
                "was deleted by then (`state: deleted`, with `deleted_at`)",
            }
        },
        summary=f"A {api.noun}'s state now, or as of a business time",
        description="`as_of` is a business time (the source's `last_updated`; ISO 8601, naive "
        f"= UTC): the {api.noun}'s latest version updated at or before it.",
    )
    def state(
        ident: Ident,
        lake: LakeDep,
        as_of: Annotated[datetime | None, Query(description="Business time (ISO 8601)")] = None,
    ) -> Any:
        moment = naive_utc_parameter(as_of, "as_of")
        found = queries.state_of(lake, spec, ident, moment)
        if found.status != "current":
            when = f" as of {moment.isoformat()}" if moment else ""
            raise _not_found(api, ident, found, when)
        assert found.row is not None
        body = {
            api.id_column: ident,
            "as_of": moment,
            api.key: models.version.model_validate(found.row),
        }
        return models.state.model_validate(body)

    return router


ROUTERS: list[APIRouter] = [fact_router(api) for api in FACT_APIS]
