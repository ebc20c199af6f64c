"""dim_date: a contiguous calendar covering every date any fact row references."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from transforms.schemas import DIM_DATE


def referenced_date_range(
    facts: pl.DataFrame, columns: Sequence[str] | None = None
) -> tuple[date, date] | None:
    """Earliest and latest date referenced by any of the fact rows' date `columns` (default:
    every Date column of the frame; a fact's declaration names them, FactSpec.dates)."""
    if columns is None:
        columns = [c for c, t in facts.schema.items() if t == pl.Date()]
    if facts.is_empty() or not columns:
        return None
    bounds = facts.select(
        pl.min_horizontal([pl.col(c).min() for c in columns]).alias("lo"),
        pl.max_horizontal([pl.col(c).max() for c in columns]).alias("hi"),
    ).row(0)
    lo, hi = bounds
    return (lo, hi) if lo is not None and hi is not None else None


def calendar(start: date, end: date) -> pl.DataFrame:
    """One row per day from start to end inclusive; day_of_week is ISO (Monday = 1)."""
    if end < start:
        return pl.DataFrame(schema=DIM_DATE)
    days = pl.date_range(start, end, interval="1d", eager=True).alias("date_id")
    frame = pl.DataFrame({"date_id": days}).with_columns(
        pl.col("date_id").dt.year().alias("year"),
        pl.col("date_id").dt.month().alias("month"),
        pl.col("date_id").dt.day().alias("day"),
        pl.col("date_id").dt.weekday().alias("day_of_week"),
        pl.col("date_id").dt.strftime("%A").alias("day_name"),
        pl.col("date_id").dt.strftime("%B").alias("month_name"),
        pl.col("date_id").dt.quarter().alias("quarter"),
    )
    return frame.select([pl.col(c).cast(t) for c, t in DIM_DATE.items()])


def calendar_extension(
    existing: tuple[date, date] | None, needed: tuple[date, date] | None
) -> pl.DataFrame:
    """The days to add so the calendar spans both its current range and the needed one."""
    if needed is None:
        return pl.DataFrame(schema=DIM_DATE)
    if existing is None:
        return calendar(*needed)
    (have_lo, have_hi), (need_lo, need_hi) = existing, needed
    parts = [
        calendar(need_lo, have_lo - timedelta(days=1)),
        calendar(have_hi + timedelta(days=1), need_hi),
    ]
    return pl.concat(parts)
