"""The console's page of a dimension member: its states over time (dim_<name>_history)."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service import member_history
from service.api.console import auth
from service.api.console.render import render
from service.api.deps import LakeDep
from transforms.dimension_history import HISTORY_COLUMNS, history_name

pages = APIRouter(
    prefix="/console", include_in_schema=False, dependencies=[Depends(auth.console_caller)]
)

MemberId = Annotated[int, Query(ge=0, le=2**31 - 1)]


@pages.get("/dimensions", response_class=HTMLResponse)
def find_member(
    request: Request, name: Annotated[str, Query(max_length=64)], id: MemberId
) -> Response:
    try:
        member_history.dimension(name)
    except member_history.UnknownDimension:
        return render(request, "missing.html", {"what": f"dimension {name}"}, 404)
    return RedirectResponse(f"/console/dimensions/{quote(name, safe='')}/{id}", 303)


def _states(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """Each state with the columns that changed from the one before (none for the first)."""
    out = [{"row": rows[0], "changed": set()}] if rows else []
    for before, after in pairwise(rows):
        out.append({"row": after, "changed": {c for c in columns if before[c] != after[c]}})
    return out


@pages.get("/dimensions/{name}/{member_id}", response_class=HTMLResponse)
def member_page(
    request: Request,
    name: Annotated[str, Path(max_length=64)],
    member_id: Annotated[int, Path(ge=0, le=2**31 - 1)],
    lake: LakeDep,
) -> Response:
    try:
        spec = member_history.dimension(name)
    except member_history.UnknownDimension:
        return render(request, "missing.html", {"what": f"dimension {name}"}, 404)
    short = name.removeprefix("dim_")
    rows = member_history.member_history(lake, spec, member_id).to_dicts()
    if not rows:
        what = f"history of {short} member {spec.key} = {member_id}"
        return render(request, "missing.html", {"what": what}, 404)
    columns = [c for c in rows[0] if c not in HISTORY_COLUMNS and c != spec.key]
    return render(
        request,
        "member.html",
        {
            "dimension": short,
            "table": history_name(spec.name),
            "key": spec.key,
            "member_id": member_id,
            "columns": columns,
            "states": _states(rows, columns),
            "current": rows[-1],
            "dimensions": list(member_history.DIMENSION_NAMES),
        },
    )
