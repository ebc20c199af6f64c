"""A dimension member's history (dim_<name>_history), as the API and the console read it."""

from __future__ import annotations

import polars as pl

from service.lake import TABLE_SCHEMAS, Lake
from transforms.dimension_history import HISTORIES, history_name, history_path
from transforms.dimensions import DimensionSpec

# `staff` (as in dimension_history/staff) -> the dimension
DIMENSION_NAMES: dict[str, DimensionSpec] = {
    history_path(spec).rsplit("/", 1)[-1]: spec for spec in HISTORIES.values()
}


class UnknownDimension(KeyError):
    pass


def dimension(name: str) -> DimensionSpec:
    """The dimension called `name`: `staff`, or its table's name `dim_staff`."""
    spec = DIMENSION_NAMES.get(name.removeprefix("dim_"))
    if spec is None:
        raise UnknownDimension(name)
    return spec


def member_history(lake: Lake, spec: DimensionSpec, member: int) -> pl.DataFrame:
    """The member's states, oldest first (empty: no such member, or no history written yet).
    One member's rows: the scan's filter lets Delta file statistics skip other files."""
    name = history_name(spec.name)
    rows = lake.read(name, where=pl.col(spec.key) == member)
    if rows is None:
        return pl.DataFrame(schema=TABLE_SCHEMAS[name])
    return rows.sort("valid_from")
