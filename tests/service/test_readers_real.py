"""The readers of the Purchases and Payments stars on the real Totesys snapshot
(../shared/data/totesys-2024-11-15/, read in place): its tables (sales orders aside) delivered as
one baseline, run through the pipeline, then asked the analysts' questions through `totesys sql`'s
named queries, the views, the API and the CLI. Every answer is checked against one computed here
from the snapshot's JSON Lines with plain Python (json, Decimal): nothing of the project's."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.lake import Lake
from service.pipeline import Pipeline
from service.settings import Settings
from service.sql import engine
from service.sql.named import bind, named_queries
from service.storage import LocalStorage
from tests.service.test_cli import as_json, totesys

SNAPSHOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "totesys-2024-11-15"
TABLES = (
    "currency",
    "department",
    "staff",
    "address",
    "counterparty",
    "payment_type",
    "transaction",
    "purchase_order",
    "payment",
)
AT = "2024-11-15T00:00:00.000000"

pytestmark = pytest.mark.xdist_group("real-readers")


def rows(table: str) -> list[dict[str, Any]]:
    text = (SNAPSHOT / f"{table}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line, parse_float=Decimal) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Real:
    processed: Path
    lake: Lake
    settings: Settings


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Real:
    assert SNAPSHOT.is_dir(), f"the real snapshot is expected at {SNAPSHOT}"
    root = tmp_path_factory.mktemp("real-readers")
    ingestion = LocalStorage(root / "ingestion")
    for table in TABLES:
        ingestion.write(f"baseline/{table}-{AT}.json", (SNAPSHOT / f"{table}.jsonl").read_bytes())
    settings = Settings(
        ingestion_uri=str(root / "ingestion"), processed_uri=str(root / "processed")
    )
    pipeline = Pipeline.from_settings(settings)
    summary = pipeline.run(trigger="test")
    assert summary.status == "succeeded", summary.error
    assert summary.rows_rejected == 0
    return Real(root / "processed", pipeline.lake, settings)


def _names() -> tuple[dict[int, str], dict[int, str]]:
    parties = {r["counterparty_id"]: r["counterparty_legal_name"] for r in rows("counterparty")}
    codes = {r["currency_id"]: r["currency_code"] for r in rows("currency")}
    return parties, codes


def test_unpaid_payments_by_counterparty_and_currency(real: Real) -> None:
    parties, codes = _names()
    groups: dict[tuple[int, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), None])
    for p in rows("payment"):
        if p["paid"]:
            continue
        group = groups[
            (p["counterparty_id"], parties[p["counterparty_id"]], codes[p["currency_id"]])
        ]
        group[0] += 1
        group[1] += p["payment_amount"]
        day = date.fromisoformat(p["payment_date"])
        group[2] = day if group[2] is None else min(group[2], day)
    expected = [(*key, n, amount, day) for key, (n, amount, day) in sorted(groups.items())]
    got = engine.run(real.lake, bind(named_queries()["unpaid_payments"], []))
    assert got.columns == [
        "counterparty_id",
        "counterparty_legal_name",
        "currency_code",
        "payments",
        "amount_unpaid",
        "earliest_payment_date",
    ]
    assert len(expected) > 10
    assert got.rows() == expected


def test_purchase_spend_by_month_and_currency(real: Real) -> None:
    _, codes = _names()
    groups: dict[tuple[int, int, str], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0)])
    for o in rows("purchase_order"):
        created = datetime.fromisoformat(o["created_at"])
        group = groups[(created.year, created.month, codes[o["currency_id"]])]
        group[0] += 1
        group[1] += o["item_quantity"]
        group[2] += o["item_quantity"] * o["item_unit_price"]
    expected = [(*key, *values) for key, values in sorted(groups.items())]
    got = engine.run(real.lake, bind(named_queries()["purchase_spend_by_month_currency"], []))
    assert got.rows() == expected
    assert sum(r[3] for r in got.rows()) == 4649


def test_views_and_histories_hold_every_real_row(real: Real) -> None:
    payments = {p["payment_id"]: p for p in rows("payment")}
    current = engine.run(real.lake, "SELECT * FROM fact_payment_current ORDER BY payment_id")
    assert current.height == len(payments) == 15836
    assert current["paid"].to_list() == [payments[i]["paid"] for i in current["payment_id"]]
    orders = engine.run(real.lake, "SELECT COUNT(*) AS n FROM fact_purchase_order_current")
    assert orders["n"][0] == 4649
    # one real payment, by the named query: its stored version is the snapshot's row
    sample = payments[1]
    history = engine.run(real.lake, bind(named_queries()["payment_history"], ["1"])).to_dicts()
    assert len(history) == 1
    assert history[0]["payment_amount"] == sample["payment_amount"]
    assert history[0]["last_updated"] == datetime.fromisoformat(sample["last_updated"])
    assert history[0]["transaction_id"] == sample["transaction_id"]


def test_api_and_cli_read_a_real_payment_and_purchase_order(real: Real) -> None:
    payment = rows("payment")[1]
    order = next(o for o in rows("purchase_order") if o["purchase_order_id"] == 7)
    app = create_app(real.settings.model_copy(update={"api_token": "real-token-0123456789"}))
    with TestClient(app, headers={"Authorization": "Bearer real-token-0123456789"}) as http:
        state = http.get(f"/payments/{payment['payment_id']}").json()
        assert state["payment"]["payment_amount"] == str(payment["payment_amount"])
        assert state["payment"]["paid"] is payment["paid"]
        assert "company_ac_number" not in state["payment"]
        history = http.get("/purchase-orders/7/history").json()["versions"]
        assert [v["item_quantity"] for v in history] == [order["item_quantity"]]
        assert history[0]["item_unit_price"] == str(order["item_unit_price"])
    processed = str(real.processed)
    unpaid = sum(1 for p in rows("payment") if not p["paid"])
    current = as_json(totesys("current", "--fact", "payment", "--processed", processed, "--json"))
    assert current["count"] == 15836
    assert sum(1 for p in current["payments"] if not p["paid"]) == unpaid
