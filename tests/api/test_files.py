from __future__ import annotations

from fastapi.testclient import TestClient

from service.pipeline import Pipeline
from tests.conftest import T0, IngestionTree


def test_all_files_pending_before_any_run(client: TestClient, demo_keys: dict[str, str]) -> None:
    body = client.get("/files").json()
    assert body["total"] == 10
    assert {f["status"] for f in body["items"]} == {"pending"}
    assert body["items"] == sorted(body["items"], key=lambda f: f["key"])
    assert all(f["size_bytes"] > 0 for f in body["items"])


def test_outcomes_and_reasons_after_a_run(
    client: TestClient, tree: IngestionTree, demo_keys: dict[str, str], loaded: Pipeline
) -> None:
    skipped = tree.put("updated", "sales_order_history", T0, [{"sales_order_id": 1}])
    rejected = tree.put_raw("updated/sales_order-not-a-timestamp.json", b"[]")
    loaded.run(trigger="test")
    late = tree.put("updated", "sales_order", T0.replace(hour=20), [])

    everything = client.get("/files").json()
    assert everything["total"] == 13

    applied = client.get("/files", params={"status": "applied"}).json()
    assert applied["total"] == 10
    assert {f["key"] for f in applied["items"]} >= set(demo_keys.values())
    first = applied["items"][0]
    assert first["run_id"] and first["recorded_at"] and first["source_table"]

    skip = client.get("/files", params={"status": "skipped"}).json()["items"]
    assert [f["key"] for f in skip] == [skipped]
    assert "not part of the warehouse's star schemas" in skip[0]["reason"]

    rej = client.get("/files", params={"status": "rejected"}).json()["items"]
    assert [f["key"] for f in rej] == [rejected]
    assert rej[0]["reason"]

    pending = client.get("/files", params={"status": "pending"}).json()["items"]
    assert [f["key"] for f in pending] == [late]


def test_pagination(client: TestClient, demo_keys: dict[str, str]) -> None:
    all_keys = [f["key"] for f in client.get("/files").json()["items"]]
    page = client.get("/files", params={"limit": 3, "offset": 4}).json()
    assert page["total"] == 10 and page["limit"] == 3 and page["offset"] == 4
    assert [f["key"] for f in page["items"]] == all_keys[4:7]
    assert client.get("/files", params={"offset": 50}).json()["items"] == []


def test_bad_status_is_422(client: TestClient) -> None:
    r = client.get("/files", params={"status": "done"})
    assert r.status_code == 422
    assert client.get("/files", params={"limit": 5000}).status_code == 422


def test_empty_roots(client: TestClient) -> None:
    assert client.get("/files").json() == {"total": 0, "limit": 100, "offset": 0, "items": []}
