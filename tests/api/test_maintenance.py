from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from service.lease import Lease
from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import open_storage


def test_maintenance_runs_and_is_recorded(
    client: TestClient, loaded: Pipeline, jobs: list[dict[str, Any]], settings: Settings
) -> None:
    before = {r["name"]: r["rows"] for r in client.get("/tables").json()}
    r = client.post("/maintenance")
    assert r.status_code == 202
    body = r.json()
    assert body["trigger"] == "maintenance"
    assert jobs[-1] == {
        "run_id": body["run_id"],
        "trigger": "maintenance",
        "action": "maintain",
        "retention_days": settings.retention_days,
    }
    run = client.get(f"/runs/{body['run_id']}").json()
    assert run["status"] == "succeeded", run
    assert run["trigger"] == "maintenance"
    assert {r["name"]: r["rows"] for r in client.get("/tables").json()} == before
    history = client.get("/tables/fact_sales_order/versions").json()["versions"]
    assert body["run_id"] in {v["run_id"] for v in history}


def test_retention_days_body(
    client: TestClient, loaded: Pipeline, jobs: list[dict[str, Any]]
) -> None:
    assert client.post("/maintenance", json={"retention_days": 7}).status_code == 202
    assert jobs[-1]["retention_days"] == 7
    assert client.post("/maintenance", json={"retention_days": -1}).status_code == 422
    assert client.post("/maintenance", json={"nope": 1}).status_code == 422


def test_maintenance_blocked_by_a_run_is_busy(
    client: TestClient, loaded: Pipeline, settings: Settings
) -> None:
    holder = Lease(open_storage(settings.processed_uri), "busy-run", 60)
    holder.acquire(1)
    try:
        run_id = client.post("/maintenance").json()["run_id"]
    finally:
        holder.release()
    run = client.get(f"/runs/{run_id}").json()
    assert run["status"] == "busy" and "busy-run" in run["error"]
