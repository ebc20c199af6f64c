from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import polars as pl

from transforms import fact_sales_order as fact
from transforms.schemas import FACT_SALES_ORDER, SOURCE_TABLES


def orders(
    *rows: dict[str, object], source_file: str = "updated/x.json", file_seq: int = 0
) -> pl.DataFrame:
    base = {
        "created_at": datetime(2024, 1, 1, 9, 0, 0, 123000),
        "design_id": 1,
        "staff_id": 2,
        "counterparty_id": 3,
        "units_sold": 100,
        "unit_price": Decimal("2.50"),
        "currency_id": 1,
        "agreed_delivery_date": date(2024, 1, 5),
        "agreed_payment_date": date(2024, 1, 6),
        "agreed_delivery_location_id": 4,
    }
    records = [{**base, **r} for r in rows]
    schema = dict(SOURCE_TABLES["sales_order"].columns)
    frame = pl.DataFrame(records, schema=schema)
    return frame.with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("record_number"),
        pl.lit(source_file).alias("source_file"),
        pl.lit(file_seq, dtype=pl.Int64).alias("file_seq"),
    )


T1 = datetime(2024, 1, 1, 9, 0, 0, 123000)
T2 = datetime(2024, 1, 2, 10, 30, 0)
T3 = datetime(2024, 1, 3, 11, 0, 0, 5000)

NO_VERSIONS = pl.DataFrame(schema={"sales_order_id": pl.Int32, "last_updated": pl.Datetime("us")})


def test_versions_split_timestamps_into_date_and_time_strings() -> None:
    v = fact.order_versions(orders({"sales_order_id": 1, "last_updated": T3}))
    row = v.row(0, named=True)
    assert row["created_date"] == date(2024, 1, 1)
    assert row["created_time"] == "09:00:00.123000"
    assert row["last_updated_date"] == date(2024, 1, 3)
    assert row["last_updated_time"] == "11:00:00.005000"
    assert row["sales_staff_id"] == 2


def test_same_version_twice_is_one_version_first_delivery_wins() -> None:
    a = orders(
        {"sales_order_id": 1, "last_updated": T1, "units_sold": 5}, file_seq=0, source_file="a"
    )
    b = orders(
        {"sales_order_id": 1, "last_updated": T1, "units_sold": 9}, file_seq=1, source_file="b"
    )
    v = fact.order_versions(pl.concat([b, a]))
    assert v.height == 1
    assert v["source_file"][0] == "a"


def test_new_versions_drop_stored_ones_and_label_change_type() -> None:
    incoming = fact.order_versions(
        orders(
            {"sales_order_id": 1, "last_updated": T1},
            {"sales_order_id": 1, "last_updated": T2},
            {"sales_order_id": 1, "last_updated": T3},
            {"sales_order_id": 2, "last_updated": T2},
        )
    )
    stored = pl.DataFrame(
        {"sales_order_id": [2], "last_updated": [T1]},
        schema={"sales_order_id": pl.Int32, "last_updated": pl.Datetime("us")},
    )
    new = fact.new_versions(incoming, stored).sort("sales_order_id", "last_updated")
    assert new.select("sales_order_id", "change_type").rows() == [
        (1, "insert"),
        (1, "update"),
        (1, "update"),
        (2, "update"),
    ]
    assert fact.new_versions(incoming, incoming.select(fact.VERSION_KEY)).is_empty()


def test_deletion_versions_only_for_live_older_orders_missing_from_snapshot() -> None:
    versions = fact.new_versions(
        fact.order_versions(
            orders(
                {"sales_order_id": 1, "last_updated": T1},  # missing from snapshot: deleted
                {"sales_order_id": 2, "last_updated": T1},  # in snapshot: stays
                {"sales_order_id": 3, "last_updated": T3},  # changed after the snapshot: stays
            )
        ),
        NO_VERSIONS,
    )
    already_deleted = versions.filter(pl.col("sales_order_id") == 2).with_columns(
        pl.lit(4, dtype=pl.Int32).alias("sales_order_id"), pl.lit("delete").alias("change_type")
    )
    latest = fact.latest_versions(pl.concat([versions, already_deleted]))
    gone = fact.deletion_versions(latest, pl.Series([2], dtype=pl.Int32), T2, "baseline/s.json", 7)
    assert gone["sales_order_id"].to_list() == [1]
    row = gone.row(0, named=True)
    assert row["change_type"] == "delete"
    assert row["last_updated"] == T2
    assert row["last_updated_date"] == date(2024, 1, 2)
    assert row["last_updated_time"] == "10:30:00.000000"
    assert row["units_sold"] == 100  # last known values
    assert row["source_file"] == "baseline/s.json"


def test_number_versions_is_deterministic_and_conforms_to_schema() -> None:
    new = fact.new_versions(
        fact.order_versions(
            pl.concat(
                [
                    orders({"sales_order_id": 5, "last_updated": T2}, file_seq=1),
                    orders({"sales_order_id": 9, "last_updated": T1}, file_seq=0),
                ]
            )
        ),
        NO_VERSIONS,
    )
    a = fact.number_versions(new, 10, "run-a")
    b = fact.number_versions(new.reverse(), 10, "run-a")
    assert a.equals(b)
    assert a["sales_record_id"].to_list() == [10, 11]
    assert a["sales_order_id"].to_list() == [9, 5]  # application (file) order
    assert dict(a.schema) == FACT_SALES_ORDER


def test_current_state_and_as_of() -> None:
    history = fact.new_versions(
        fact.order_versions(
            orders(
                {"sales_order_id": 1, "last_updated": T1, "units_sold": 1},
                {"sales_order_id": 1, "last_updated": T3, "units_sold": 3},
                {"sales_order_id": 2, "last_updated": T1},
            )
        ),
        NO_VERSIONS,
    )
    deleted = fact.deletion_versions(
        fact.latest_versions(history), pl.Series([1], dtype=pl.Int32), T2, "baseline/b", 1
    )
    full = pl.concat([history, deleted.select(history.columns)])
    now = fact.current_state(full)
    assert now.select("sales_order_id", "units_sold").rows() == [(1, 3)]
    before = fact.state_as_of(full, datetime(2024, 1, 1, 12))
    assert sorted(before["sales_order_id"].to_list()) == [1, 2]
    assert before.filter(pl.col("sales_order_id") == 1)["units_sold"][0] == 1
    between = fact.state_as_of(full, T2)
    assert between["sales_order_id"].to_list() == [1]
