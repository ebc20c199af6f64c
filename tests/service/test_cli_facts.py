"""`totesys history` and `totesys current` with `--fact`: purchase orders and payments through the
real process, over a root a real run wrote (tests/star_files.py's demo beside the sales demo)."""

from __future__ import annotations

import pytest

from service.pipeline import Pipeline
from service.settings import Settings
from tests.api.conftest import load_demo
from tests.conftest import IngestionTree
from tests.service.test_cli import as_json, totesys
from tests.star_files import load_demo_stars


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("cli-facts")
    tree = IngestionTree(root / "ingestion")
    load_demo(tree)
    load_demo_stars(tree)
    settings = Settings(ingestion_uri=str(tree.root), processed_uri=str(root / "processed"))
    summary = Pipeline.from_settings(settings).run(trigger="test")
    assert summary.status == "succeeded", summary.error
    return str(root / "processed")


@pytest.mark.parametrize("fact", ["payment", "fact_payment", "payments"])
def test_payment_history_by_any_name_of_the_fact(processed: str, fact: str) -> None:
    body = as_json(totesys("history", "2", "--fact", fact, "--processed", processed, "--json"))
    assert body["payment_id"] == 2 and "sales_order_id" not in body
    assert [(v["change_type"], v["paid"]) for v in body["versions"]] == [
        ("insert", False),
        ("update", True),
    ]
    assert body["versions"][0]["payment_amount"] == "99.95"


def test_purchase_order_history_table_and_time_travel(processed: str) -> None:
    table = totesys("history", "1", "--fact", "purchase_order", "--processed", processed)
    assert table.returncode == 0, table.stderr
    assert "purchase order 1" in table.stdout
    for column in ("purchase_record_id", "item_quantity", "item_unit_price", "source_file"):
        assert column in table.stdout
    assert "units_sold" not in table.stdout
    old = as_json(
        totesys(
            "history",
            "1",
            "--fact",
            "purchase_order",
            "--processed",
            processed,
            "--version",
            "0",
            "--json",
        )
    )
    assert [v["item_quantity"] for v in old["versions"]] == [101, 150]  # one run, one commit
    beyond = totesys(
        "history", "1", "--fact", "purchase_order", "--processed", processed, "--version", "1"
    )
    assert beyond.returncode == 1 and "fact_purchase_order has no version 1" in beyond.stderr
    missing = totesys("history", "42", "--fact", "purchase_order", "--processed", processed)
    assert missing.returncode == 1 and "no purchase order 42" in missing.stderr


def test_current_payments_now_and_as_of(processed: str) -> None:
    now = as_json(totesys("current", "--fact", "payment", "--processed", processed, "--json"))
    assert now["count"] == 2 and set(now) == {"as_of", "count", "payments"}
    assert {p["payment_id"]: p["paid"] for p in now["payments"]} == {1: True, 2: True}
    then = as_json(
        totesys(
            "current",
            "--fact",
            "payment",
            "--as-of",
            "2024-11-14T10:30:00",
            "--processed",
            processed,
            "--json",
        )
    )
    # payment 3 was live then (deleted at 13:00); payment 1 was paid at 11:00
    assert {p["payment_id"]: p["paid"] for p in then["payments"]} == {1: False, 2: False, 3: False}
    table = totesys("current", "--fact", "purchase_order", "--processed", processed)
    assert table.returncode == 0, table.stderr
    assert "2 live purchase orders" in table.stdout and "item_code" in table.stdout


def test_sales_stay_the_default_and_a_bad_fact_is_one_line(processed: str) -> None:
    sales = as_json(totesys("current", "--processed", processed, "--json"))
    assert {s["sales_order_id"] for s in sales["sales"]} == {1, 2}
    history = as_json(totesys("history", "1", "--processed", processed, "--json"))
    assert history["sales_order_id"] == 1 and len(history["versions"]) == 3
    bad = totesys("history", "1", "--fact", "refund", "--processed", processed)
    assert bad.returncode == 2
    assert "unknown fact 'refund'" in bad.stderr and "fact_payment" in bad.stderr
