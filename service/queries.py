"""Questions analysts ask of the fact table: a sale's history, its current state, the state of
every sale as of a business time; each also at a Delta version (time travel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from service.lake import TABLE_PATHS, Lake, TableInfo
from transforms import fact_sales_order as fact
from transforms.schemas import FACT_SALES_ORDER


class NoSuchVersion(ValueError):
    pass


def _fact(lake: Lake, version: int | None = None, where: pl.Expr | None = None) -> pl.DataFrame:
    if version is not None:
        dt = lake.table("fact_sales_order")
        if dt is None or version < 0 or version > dt.version():
            latest = dt.version() if dt is not None else None
            raise NoSuchVersion(
                f"fact_sales_order has no version {version} (latest is {latest})"
            )
    frame = lake.read("fact_sales_order", version=version, where=where)
    return pl.DataFrame(schema=FACT_SALES_ORDER) if frame is None else frame


def sale_history(lake: Lake, sales_order_id: int, version: int | None = None) -> pl.DataFrame:
    """Every stored version of one sale, oldest first, deletion included."""
    rows = _fact(lake, version, pl.col("sales_order_id") == sales_order_id)
    return rows.sort(["last_updated", "sales_record_id"])


def current_sales(
    lake: Lake, as_of: datetime | None = None, version: int | None = None
) -> pl.DataFrame:
    """Every live sale: its latest version (as of a business time if given), deletions hidden."""
    history = _fact(lake, version)
    state = fact.current_state(history) if as_of is None else fact.state_as_of(history, as_of)
    return state.sort("sales_order_id")


@dataclass(frozen=True)
class SaleState:
    sales_order_id: int
    status: str  # current | deleted | not_found
    row: dict[str, object] | None
    deleted_at: datetime | None = None


def sale_state(lake: Lake, sales_order_id: int, as_of: datetime | None = None) -> SaleState:
    """One sale now or as of a business time; says whether it was deleted or never existed."""
    history = sale_history(lake, sales_order_id)
    if as_of is not None:
        history = history.filter(pl.col("last_updated") <= as_of)
    if history.is_empty():
        return SaleState(sales_order_id, "not_found", None)
    latest = history.row(-1, named=True)
    if latest["change_type"] == "delete":
        return SaleState(sales_order_id, "deleted", latest, latest["last_updated"])
    return SaleState(sales_order_id, "current", latest)


def table_infos(lake: Lake, version: int | None = None) -> list[TableInfo]:
    """Each public table's Delta version, row count and last commit (at `version` if given)."""
    infos = []
    for name in TABLE_PATHS:
        try:
            info = lake.info(name, version)
        except Exception as exc:  # a version the table doesn't have
            if version is None:
                raise
            raise NoSuchVersion(f"{name} has no version {version}") from exc
        if info is not None:
            infos.append(info)
    return infos
