"""The real Totesys snapshot of all eleven tables (../shared/data/totesys-2024-11-15) through the
pipeline, every star table checked against an independent computation in plain Python over the
source rows. Payments arrive the way the source made them: created unpaid (a baseline), then the
paid ones updated (an `updated` file), so fact_payment holds two versions of each paid payment.
Bank account numbers are in the source files and must reach no file of the processed root."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from service.pipeline import Pipeline
from tests.conftest import REAL_WAREHOUSE_SNAPSHOT, IngestionTree, require_real_snapshot

BASELINE_AT = "2024-11-15T00:00:00.000000"
PAID_AT = "2024-11-15T01:00:00.000000"


def _rows(folder: Path, table: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"{table}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Path, dict[str, Any]]:
    source = require_real_snapshot(REAL_WAREHOUSE_SNAPSHOT)
    root = tmp_path_factory.mktemp("real")
    tree = IngestionTree(root / "ingestion")
    rows = {path.stem: _rows(source, path.stem) for path in source.glob("*.jsonl")}
    for table in rows:
        if table != "payment":
            tree.put_raw(
                f"baseline/{table}-{BASELINE_AT}.json", (source / f"{table}.jsonl").read_bytes()
            )
    unpaid = [dict(p, paid=False, last_updated=p["created_at"]) for p in rows["payment"]]
    paid = [p for p in rows["payment"] if p["paid"]]
    tree.put_raw(f"baseline/payment-{BASELINE_AT}.json", _jsonl(unpaid))
    tree.put_raw(f"updated/payment-{PAID_AT}.json", _jsonl(paid))
    from service.settings import Settings

    settings = Settings(
        ingestion_uri=str(root / "ingestion"), processed_uri=str(root / "processed")
    )
    pipeline = Pipeline.from_settings(settings)
    summary = pipeline.run()
    assert summary.status == "succeeded" and summary.rows_rejected == 0
    assert summary.count("applied") == 12 and summary.count("skipped") == 0
    return pipeline, root / "processed", rows


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _read(pipeline: Pipeline, name: str) -> pl.DataFrame:
    frame = pipeline.lake.read(name)
    assert frame is not None, name
    return frame


def _day(value: str) -> date:
    return datetime.fromisoformat(value).date()


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_fact_sales_order_and_fact_purchase_order_hold_one_version_per_row(warehouse: Any) -> None:
    pipeline, _, rows = warehouse
    for name, table, checked in (
        ("fact_sales_order", "sales_order", ("units_sold", "currency_id", "design_id")),
        ("fact_purchase_order", "purchase_order", ("item_code", "item_quantity", "staff_id")),
    ):
        fact = _read(pipeline, name)
        ident = f"{table}_id"
        expected = {r[ident]: r for r in rows[table]}
        assert fact.height == len(expected) and fact[ident].n_unique() == len(expected)
        assert set(fact["change_type"]) == {"insert"}
        for row in fact.iter_rows(named=True):
            src = expected[row[ident]]
            assert row["created_date"] == _day(src["created_at"])
            assert row["last_updated"] == datetime.fromisoformat(src["last_updated"])
            assert row["agreed_delivery_date"] == date.fromisoformat(src["agreed_delivery_date"])
            for column in checked:
                assert row[column] == src[column], (name, column)
        price = "unit_price" if table == "sales_order" else "item_unit_price"
        total = sum(_money(r[price]) for r in rows[table])
        assert fact[price].sum() == total


def test_fact_payment_keeps_the_unpaid_and_the_paid_version(warehouse: Any) -> None:
    pipeline, _, rows = warehouse
    fact = _read(pipeline, "fact_payment")
    payments = rows["payment"]
    paid = [p for p in payments if p["paid"]]
    assert Counter(fact["change_type"]) == {"insert": len(payments), "update": len(paid)}
    assert fact.height == 15_836 + 9_648
    assert not fact.filter(pl.col("change_type") == "insert")["paid"].any()
    updates = fact.filter(pl.col("change_type") == "update")
    assert updates["paid"].all()
    assert set(updates["payment_id"]) == {p["payment_id"] for p in paid}
    # the current state: the source's rows
    current = fact.sort("last_updated").unique("payment_id", keep="last")
    assert current.filter(pl.col("paid")).height == len(paid)
    assert current["payment_amount"].sum() == sum(_money(p["payment_amount"]) for p in payments)
    by_type = Counter(current["payment_type_id"])
    assert by_type == Counter(p["payment_type_id"] for p in payments)
    assert not {c for c in fact.columns if c.endswith("_ac_number")}
    # record ids in application order: every insert (the baseline) before every update
    assert (
        fact.filter(pl.col("change_type") == "insert")["payment_record_id"].max()
        < updates["payment_record_id"].min()
    )


def test_dimensions_equal_their_sources(warehouse: Any) -> None:
    pipeline, _, rows = warehouse
    transaction = _read(pipeline, "dim_transaction").sort("transaction_id")
    assert transaction.drop("is_inferred").rows() == [
        (t["transaction_id"], t["transaction_type"], t["sales_order_id"], t["purchase_order_id"])
        for t in sorted(rows["transaction"], key=lambda t: t["transaction_id"])
    ]
    assert not transaction["is_inferred"].any()
    payment_type = _read(pipeline, "dim_payment_type").sort("payment_type_id")
    assert payment_type.drop("is_inferred").rows() == [
        (p["payment_type_id"], p["payment_type_name"]) for p in rows["payment_type"]
    ]
    departments = {d["department_id"]: d for d in rows["department"]}
    staff = _read(pipeline, "dim_staff").sort("staff_id")
    assert staff.select("staff_id", "first_name", "department_name", "location").rows() == [
        (
            s["staff_id"],
            s["first_name"],
            departments[s["department_id"]]["department_name"],
            departments[s["department_id"]]["location"],
        )
        for s in sorted(rows["staff"], key=lambda s: s["staff_id"])
    ]
    addresses = {a["address_id"]: a for a in rows["address"]}
    counterparty = _read(pipeline, "dim_counterparty").sort("counterparty_id")
    assert counterparty.select(
        "counterparty_id", "counterparty_legal_name", "counterparty_legal_city"
    ).rows() == [
        (
            c["counterparty_id"],
            c["counterparty_legal_name"],
            addresses[c["legal_address_id"]]["city"],
        )
        for c in sorted(rows["counterparty"], key=lambda c: c["counterparty_id"])
    ]
    for name in ("dim_staff", "dim_location", "dim_design", "dim_currency", "dim_counterparty"):
        assert not _read(pipeline, name)["is_inferred"].any(), name  # every reference resolves


def test_dim_date_covers_every_date_of_the_three_facts(warehouse: Any) -> None:
    pipeline, _, rows = warehouse
    days: set[date] = set()
    for table, columns in (
        ("sales_order", ("agreed_delivery_date", "agreed_payment_date")),
        ("purchase_order", ("agreed_delivery_date", "agreed_payment_date")),
        ("payment", ("payment_date",)),
    ):
        for r in rows[table]:
            days |= {_day(r["created_at"]), _day(r["last_updated"])}
            days |= {date.fromisoformat(r[c]) for c in columns}
    dates = _read(pipeline, "dim_date")["date_id"]
    assert dates.min() == min(days) and dates.max() == max(days)
    assert dates.n_unique() == dates.len() == (max(days) - min(days)).days + 1


def test_bank_details_reach_no_file_of_the_processed_root(warehouse: Any) -> None:
    _, processed, rows = warehouse
    numbers = {
        str(p[c])
        for p in rows["payment"][:200]
        for c in ("company_ac_number", "counterparty_ac_number")
    }
    for path in processed.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            text = pl.read_parquet(path).write_csv()
            assert "ac_number" not in text and "ac_number" not in ",".join(
                pl.read_parquet_schema(path)
            )
        else:
            text = path.read_text(errors="replace")
        assert not any(n in text for n in numbers), path
