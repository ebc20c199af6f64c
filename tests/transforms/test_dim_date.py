from __future__ import annotations

from datetime import date

import polars as pl

from transforms.dim_date import calendar, calendar_extension, referenced_date_range
from transforms.schemas import DIM_DATE


def test_calendar_columns_iso_weekday_and_names() -> None:
    cal = calendar(date(2024, 2, 26), date(2024, 3, 4))
    assert dict(cal.schema) == DIM_DATE
    assert cal.height == 8  # leap year: Feb 29 included
    monday = cal.filter(pl.col("date_id") == date(2024, 2, 26)).row(0, named=True)
    assert (monday["day_of_week"], monday["day_name"]) == (1, "Monday")
    sunday = cal.filter(pl.col("date_id") == date(2024, 3, 3)).row(0, named=True)
    assert (sunday["day_of_week"], sunday["day_name"], sunday["month_name"]) == (
        7,
        "Sunday",
        "March",
    )
    assert sunday["quarter"] == 1
    assert calendar(date(2024, 12, 31), date(2024, 12, 31))["quarter"][0] == 4


def test_referenced_range_covers_all_four_date_columns() -> None:
    facts = pl.DataFrame(
        {
            "created_date": [date(2024, 1, 5)],
            "last_updated_date": [date(2024, 1, 9)],
            "agreed_payment_date": [date(2024, 2, 1)],
            "agreed_delivery_date": [date(2023, 12, 30)],
        }
    )
    assert referenced_date_range(facts) == (date(2023, 12, 30), date(2024, 2, 1))


def test_extension_keeps_calendar_contiguous_both_ways() -> None:
    ext = calendar_extension(
        (date(2024, 1, 10), date(2024, 1, 20)), (date(2024, 1, 8), date(2024, 1, 22))
    )
    assert ext["date_id"].to_list() == [
        date(2024, 1, 8),
        date(2024, 1, 9),
        date(2024, 1, 21),
        date(2024, 1, 22),
    ]
    assert calendar_extension(
        (date(2024, 1, 1), date(2024, 1, 31)), (date(2024, 1, 5), date(2024, 1, 6))
    ).is_empty()
    assert calendar_extension(None, (date(2024, 1, 1), date(2024, 1, 3))).height == 3
