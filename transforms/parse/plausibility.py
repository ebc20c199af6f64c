"""Plausibility: what a believable value is (ParseLimits), and which read values are not.

A date or timestamp outside the window (default 1900-01-01..2199-12-31) is "implausible date"; a
string longer than the cap (default 1,000 characters) is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

import polars as pl

from transforms.parse.tally import Reason, clipped_expr


@dataclass(frozen=True)
class ParseLimits:
    """What a plausible value is, and how many problems of one file are kept in detail.

    Passed in by the caller (service/settings.py holds the configured values), so this module
    stays free of configuration.
    """

    min_date: date = date(1900, 1, 1)  # dates and timestamps before this day are rejected
    max_date: date = date(2199, 12, 31)  # ... and after this day
    max_string_chars: int = 1_000  # longer strings are rejected (Totesys columns are varchars)
    max_reject_details: int = 1_000  # problems kept in detail per file; all are counted

    @property
    def min_timestamp(self) -> datetime:
        return datetime.combine(self.min_date, time.min)

    @property
    def max_timestamp(self) -> datetime:
        return datetime.combine(self.max_date, time.max)

    @property
    def window(self) -> str:
        return f"{self.min_date.isoformat()}..{self.max_date.isoformat()}"


DEFAULT_LIMITS = ParseLimits()


def implausible(values: pl.Series, dtype: pl.DataType, limits: ParseLimits) -> pl.Series | None:
    """Where a read date or timestamp falls outside the plausible window (None: no such)."""
    if isinstance(dtype, pl.Datetime):
        low: date | datetime = limits.min_timestamp
        high: date | datetime = limits.max_timestamp
    elif dtype == pl.Date():
        low, high = limits.min_date, limits.max_date
    else:
        return None
    outside = (~values.is_between(low, high)).fill_null(False)
    return outside if outside.any() else None


def too_long(source: pl.Series, limits: ParseLimits) -> pl.Series | None:
    """Where a string is longer than the cap (None: no such)."""
    over = (source.str.len_chars() > limits.max_string_chars).fill_null(False)
    return over if over.any() else None


def too_long_kind(limits: ParseLimits) -> str:
    return f"string longer than {limits.max_string_chars} characters"


def window_reason(limits: ParseLimits) -> Reason:
    def reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
        return pl.concat_str(
            kind, pl.lit(": '"), clipped_expr(value), pl.lit(f"' is outside {limits.window}")
        )

    return reason


def length_reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        kind,
        pl.lit(" ("),
        value.str.len_chars().cast(pl.String()),
        pl.lit("): '"),
        clipped_expr(value),
        pl.lit("'"),
    )
