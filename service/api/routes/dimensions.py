"""A dimension member's history: every state it went through, in business time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Path, status
from pydantic import BaseModel, Field

from service import member_history
from service.api.deps import LakeDep
from service.api.errors import clip_repr
from service.api.models import UtcDatetime
from service.api.routes.common import NOT_FOUND, authenticated_router
from transforms.dimension_history import HISTORY_COLUMNS, history_name

router = authenticated_router("dimensions")

NAMES = ", ".join(member_history.DIMENSION_NAMES)
DimensionName = Annotated[
    str,
    Path(
        description=f"One of: {NAMES} (or the table's name, e.g. dim_staff)",
        examples=["staff"],
        max_length=64,
    ),
]
MemberId = Annotated[
    int,
    Path(
        alias="id", ge=0, le=2**31 - 1, description="The member's key (e.g. staff_id)", examples=[1]
    ),
]


class MemberState(BaseModel):
    """One state of the member: its values from `valid_from` (the source's last_updated of the
    change that produced it) until `valid_to` (null while current)."""

    valid_from: UtcDatetime
    valid_to: UtcDatetime | None
    is_current: bool
    values: dict[str, Any] = Field(description="The dimension's own columns, as they stood")


class MemberHistory(BaseModel):
    dimension: str = Field(description="e.g. staff")
    table: str = Field(description="The history table, e.g. dim_staff_history")
    key: str = Field(description="The member's key column, e.g. staff_id")
    id: int
    states: list[MemberState] = Field(description="Oldest first; the last is current")


@router.get(
    "/dimensions/{name}/{id}/history",
    response_model=MemberHistory,
    responses=NOT_FOUND,
    summary="Every state of a dimension member, oldest first",
    description="From the type-2 table `dim_<name>_history`: one state per distinct value of "
    "the member in business time. 404 for an unknown dimension, or a member with no history "
    "(never delivered by the source: a placeholder inferred from a fact has none).",
)
def dimension_member_history(
    name: DimensionName, member_id: MemberId, lake: LakeDep
) -> MemberHistory:
    try:
        spec = member_history.dimension(name)
    except member_history.UnknownDimension:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"unknown dimension {clip_repr(name)} (dimensions: {NAMES})",
        ) from None
    short = name.removeprefix("dim_")
    rows = member_history.member_history(lake, spec, member_id)
    if rows.is_empty():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no history of {short} member {spec.key} = {member_id}"
        )
    states = [
        MemberState(
            valid_from=row["valid_from"],
            valid_to=row["valid_to"],
            is_current=row["is_current"],
            values={c: v for c, v in row.items() if c not in HISTORY_COLUMNS},
        )
        for row in rows.iter_rows(named=True)
    ]
    return MemberHistory(
        dimension=short,
        table=history_name(spec.name),
        key=spec.key,
        id=member_id,
        states=states,
    )
