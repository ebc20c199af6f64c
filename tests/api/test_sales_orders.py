from __future__ import annotations

from fastapi.testclient import TestClient

from service.pipeline import Pipeline


def test_history_of_an_updated_sale(client: TestClient, loaded: Pipeline) -> None:
    body = client.get("/sales-orders/1/history").json()
    assert body["sales_order_id"] == 1
    versions = body["versions"]
    assert [v["change_type"] for v in versions] == ["insert", "update", "update"]
    assert [v["units_sold"] for v in versions] == [1001, 5, 7]
    assert versions[-1]["unit_price"] == "3.25"
    assert versions[0]["created_date"] == "2024-11-14"
    assert versions[0]["last_updated"] == "2024-11-14T09:00:00Z"


def test_history_includes_the_deletion(client: TestClient, loaded: Pipeline) -> None:
    versions = client.get("/sales-orders/3/history").json()["versions"]
    assert [v["change_type"] for v in versions] == ["insert", "delete"]


def test_history_of_unknown_sale_is_404(client: TestClient, loaded: Pipeline) -> None:
    r = client.get("/sales-orders/999/history")
    assert r.status_code == 404 and "999" in r.json()["detail"]
    assert client.get("/sales-orders/abc/history").status_code == 422


def test_current_state_and_as_of(client: TestClient, loaded: Pipeline) -> None:
    now = client.get("/sales-orders/1").json()
    assert now["state"] == "current" and now["as_of"] is None
    assert now["sale"]["units_sold"] == 7
    then = client.get("/sales-orders/1", params={"as_of": "2024-11-14T11:30:00"}).json()
    assert then["sale"]["units_sold"] == 5 and then["as_of"] == "2024-11-14T11:30:00Z"
    utc = client.get("/sales-orders/1", params={"as_of": "2024-11-14T12:30:00+01:00"}).json()
    assert utc["sale"]["units_sold"] == 5 and utc["as_of"] == "2024-11-14T11:30:00Z"


def test_deleted_sale_is_404_saying_deleted(client: TestClient, loaded: Pipeline) -> None:
    r = client.get("/sales-orders/3")
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert detail["state"] == "deleted" and detail["deleted_at"]
    assert "deleted" in detail["message"]
    # before the deletion it was current
    before = client.get("/sales-orders/3", params={"as_of": "2024-11-14T09:30:00"})
    assert before.status_code == 200 and before.json()["state"] == "current"


def test_sale_not_existing_yet_is_404_saying_not_found(
    client: TestClient, loaded: Pipeline
) -> None:
    r = client.get("/sales-orders/1", params={"as_of": "2020-01-01T00:00:00"})
    assert r.status_code == 404
    assert r.json()["detail"]["state"] == "not_found"
    assert client.get("/sales-orders/999").json()["detail"]["state"] == "not_found"


def test_bad_as_of_is_422(client: TestClient, loaded: Pipeline) -> None:
    r = client.get("/sales-orders/1", params={"as_of": "last tuesday"})
    assert r.status_code == 422


def test_empty_lake(client: TestClient) -> None:
    assert client.get("/sales-orders/1/history").status_code == 404
    assert client.get("/sales-orders/1").status_code == 404
