"""The purchase order and payment routes, made from the facts' declarations, over a lake loaded
by a real run (tests/star_files.py `load_demo_stars`); the same rules as the sales routes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api.openapi_export import openapi_document
from service.pipeline import Pipeline
from service.settings import Settings
from tests.conftest import IngestionTree
from tests.star_files import load_demo_stars


@pytest.fixture
def stars(settings: Settings, tree: IngestionTree, demo_keys: dict[str, str]) -> Pipeline:
    load_demo_stars(tree)
    pipeline = Pipeline.from_settings(settings)
    summary = pipeline.run(trigger="test")
    assert summary.status == "succeeded", summary.error
    return pipeline


def test_purchase_order_history(client: TestClient, stars: Pipeline) -> None:
    body = client.get("/purchase-orders/1/history").json()
    assert set(body) == {"purchase_order_id", "versions"} and body["purchase_order_id"] == 1
    versions = body["versions"]
    assert [v["change_type"] for v in versions] == ["insert", "update"]
    assert [v["item_quantity"] for v in versions] == [101, 150]
    assert [v["purchase_record_id"] for v in versions] == sorted(
        v["purchase_record_id"] for v in versions
    )
    first = versions[0]
    assert first["item_unit_price"] == "12.50" and first["item_code"] == "ITEM001"
    assert first["agreed_delivery_date"] == "2024-11-22"
    assert first["last_updated"] == "2024-11-14T09:00:00Z"
    assert versions[1]["last_updated"] == "2024-11-14T11:00:00Z"
    deleted = client.get("/purchase-orders/3/history").json()["versions"]
    assert [v["change_type"] for v in deleted] == ["insert", "delete"]


def test_purchase_order_state_now_and_as_of(client: TestClient, stars: Pipeline) -> None:
    now = client.get("/purchase-orders/1").json()
    assert now["state"] == "current" and now["as_of"] is None
    assert set(now) == {"purchase_order_id", "as_of", "state", "purchase_order"}
    assert now["purchase_order"]["item_quantity"] == 150
    then = client.get("/purchase-orders/1", params={"as_of": "2024-11-14T10:30:00+00:00"}).json()
    assert then["purchase_order"]["item_quantity"] == 101
    assert then["as_of"] == "2024-11-14T10:30:00Z"


def test_payment_paid_later(client: TestClient, stars: Pipeline) -> None:
    versions = client.get("/payments/2/history").json()["versions"]
    assert [(v["change_type"], v["paid"]) for v in versions] == [
        ("insert", False),
        ("update", True),  # the text form "t"
    ]
    assert versions[0]["payment_amount"] == "99.95"
    assert "company_ac_number" not in versions[0] and "counterparty_ac_number" not in versions[0]
    now = client.get("/payments/2").json()
    assert set(now) == {"payment_id", "as_of", "state", "payment"}
    assert now["payment"]["paid"] is True and now["payment"]["currency_id"] == 2
    unpaid = client.get("/payments/2", params={"as_of": "2024-11-14T11:59:59"}).json()
    assert unpaid["payment"]["paid"] is False


@pytest.mark.parametrize(
    ("path", "key", "label"),
    [("/payments/3", "payment_id", "payment 3"), ("/purchase-orders/3", "purchase_order_id", "")],
)
def test_deleted_is_404_saying_deleted(
    client: TestClient, stars: Pipeline, path: str, key: str, label: str
) -> None:
    r = client.get(path)
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert detail["state"] == "deleted" and detail[key] == 3
    assert detail["deleted_at"] == "2024-11-14T13:00:00"
    assert "was deleted at" in detail["message"] and label in detail["message"]
    before = client.get(path, params={"as_of": "2024-11-14T12:00:00"})
    assert before.status_code == 200 and before.json()["state"] == "current"


def test_not_found_and_bad_input(client: TestClient, stars: Pipeline) -> None:
    for path, key in (("/payments", "payment_id"), ("/purchase-orders", "purchase_order_id")):
        missing = client.get(f"{path}/999")
        assert missing.status_code == 404
        assert missing.json()["detail"] == {
            "message": missing.json()["detail"]["message"],
            "state": "not_found",
            key: 999,
        }
        early = client.get(f"{path}/1", params={"as_of": "2020-01-01T00:00:00"})
        assert early.status_code == 404 and early.json()["detail"]["state"] == "not_found"
        assert "did not exist as of 2020-01-01T00:00:00" in early.json()["detail"]["message"]
        history = client.get(f"{path}/999/history")
        assert history.status_code == 404 and "999" in history.json()["detail"]
        assert client.get(f"{path}/abc").status_code == 422
        assert client.get(f"{path}/{2**31}").status_code == 422
        assert client.get(f"{path}/1", params={"as_of": "last tuesday"}).status_code == 422
        assert client.get(f"{path}/1", params={"asof": "2024-11-14"}).status_code == 422


def test_sales_are_not_mixed_up_with_the_other_facts(client: TestClient, stars: Pipeline) -> None:
    """Id 1 exists in all three facts: each route reads its own table."""
    sale = client.get("/sales-orders/1").json()
    assert set(sale) == {"sales_order_id", "as_of", "state", "sale"}
    assert sale["sale"]["units_sold"] == 7
    assert client.get("/payments/1").json()["payment"]["payment_amount"] == "1250.00"


def test_empty_lake_and_no_token(client: TestClient, anonymous: TestClient) -> None:
    for path in ("/payments/1", "/payments/1/history", "/purchase-orders/1/history"):
        assert client.get(path).status_code == 404
        assert anonymous.get(path).status_code == 401


def test_openapi_names_the_fact_routes_after_their_columns() -> None:
    doc = openapi_document()
    for path, ident, state_key in (
        ("/purchase-orders/{purchase_order_id}", "purchase_order_id", "purchase_order"),
        ("/payments/{payment_id}", "payment_id", "payment"),
    ):
        operation = doc["paths"][path]["get"]
        assert [p["name"] for p in operation["parameters"]] == [ident, "as_of"]
        assert operation["parameters"][0]["schema"]["maximum"] == 2**31 - 1
        state = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        schema = doc["components"]["schemas"][state.rsplit("/", 1)[1]]
        assert set(schema["required"]) == {ident, "as_of", state_key}
        assert "404" in operation["responses"] and "401" in operation["responses"]
        assert "404" in doc["paths"][f"{path}/history"]["get"]["responses"]
    payment = doc["components"]["schemas"]["PaymentVersion"]["properties"]
    assert payment["paid"]["anyOf"][0] == {"type": "boolean"}
    assert "company_ac_number" not in payment
