"""The console's page of one id of a fact, for every declared fact (transforms/facts.py): its
timeline (every version, the changed values marked) and its state now or as of a business time,
read through service/queries.py like the API's fact routes. At /console/<route>/<id>:
/console/sales-orders/1, /console/purchase-orders/1, /console/payments/1; the header's lookup
form goes through /console/find."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service import queries
from service.api.console import auth, data
from service.api.console.render import render
from service.api.deps import LakeDep
from service.lake import Lake
from transforms.fact_spec import FactSpec
from transforms.facts import FACTS

MAX_ID = 2**31 - 1
BY_ROUTE: dict[str, FactSpec] = {spec.route: spec for spec in FACTS.values()}

router = APIRouter(
    prefix="/console", include_in_schema=False, dependencies=[Depends(auth.console_caller)]
)

Ident = Annotated[int, Query(ge=1, le=MAX_ID)]


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status.HTTP_303_SEE_OTHER)


@router.get("/find", response_class=HTMLResponse)
def find(request: Request, id: Ident, fact: Annotated[str, Query()] = "sales-orders") -> Response:
    """The header's lookup form: a fact (its route) and an id."""
    if fact not in BY_ROUTE:
        return render(request, "missing.html", {"what": f"fact {fact!r}"}, 404)
    return _redirect(f"/console/{fact}/{id}")


def fact_page(
    request: Request, lake: Lake, spec: FactSpec, ident: int, as_of: str | None
) -> Response:
    """One id's timeline and state (404 if the fact never had it, 422 for a bad as_of)."""
    history = queries.history(lake, spec, ident)
    if history.is_empty():
        return render(request, "missing.html", {"what": f"{spec.label} {ident}"}, 404)
    error = None
    try:
        moment = data.parse_moment(as_of)
    except data.BadInput as exc:
        error, moment = str(exc), None
    state = queries.state_of(lake, spec, ident, moment)
    state_record = None
    if state.row is not None and state.status == "current":
        state_record = int(str(state.row[spec.record_id]))
    context: dict[str, Any] = {
        "label": spec.label,
        "route": spec.route,
        "record_id": spec.record_id,
        "ident": ident,
        "timeline": data.timeline(spec, history, state_record),
        "columns": data.timeline_columns(spec),
        "state": state,
        "as_of": as_of or "",
        "moment": moment,
        "error": error,
    }
    return render(request, "fact.html", context, 422 if error else status.HTTP_200_OK)


def _add_pages(spec: FactSpec) -> None:
    @router.get(f"/{spec.route}", response_class=HTMLResponse, name=f"find_{spec.source}")
    def find_one(id: Ident) -> Response:
        return _redirect(f"/console/{spec.route}/{id}")

    @router.get(f"/{spec.route}/{{ident}}", response_class=HTMLResponse, name=f"{spec.source}_page")
    def page(
        request: Request,
        ident: Annotated[int, Path(ge=0, le=MAX_ID)],
        lake: LakeDep,
        as_of: Annotated[str | None, Query()] = None,
    ) -> Response:
        return fact_page(request, lake, spec, ident, as_of)


for _spec in FACTS.values():
    _add_pages(_spec)
