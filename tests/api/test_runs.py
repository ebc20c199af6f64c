from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from service.lease import Lease
from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import open_storage


def test_post_runs_applies_pending_files_and_records_the_run(
    client: TestClient, demo_keys: dict[str, str], jobs: list[dict[str, Any]]
) -> None:
    r = client.post("/runs")
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "pending" and body["trigger"] == "api"
    run_id = body["run_id"]
    assert body["status_url"] == f"/runs/{run_id}"
    assert jobs == [{"run_id": run_id, "trigger": "api", "action": "run"}]

    run = client.get(f"/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert run["trigger"] == "api"
    assert run["files_applied"] == 10  # 6 dimension files + 4 sales_order files
    assert run["files_rejected"] == 0
    assert run["rows_written"]["fact_sales_order"] == 6  # 3 inserts, 2 updates, 1 delete
    assert run["duration_seconds"] >= 0
    assert run["started_at"] and run["finished_at"] and run["error"] is None

    listing = client.get("/runs").json()
    assert listing["total"] == 1
    assert [i["run_id"] for i in listing["items"]] == [run_id]


def test_run_records_persist_in_the_processed_root(
    client: TestClient, settings: Settings, demo_keys: dict[str, str]
) -> None:
    run_id = client.post("/runs").json()["run_id"]
    record = Pipeline.from_settings(settings).ledger.run(run_id)
    assert record is not None and record.status == "succeeded"


def test_runs_pagination(client: TestClient, demo_keys: dict[str, str]) -> None:
    ids = [client.post("/runs").json()["run_id"] for _ in range(3)]
    page = client.get("/runs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1
    # newest first: the page after the newest holds the second and the first run started
    assert [i["run_id"] for i in page["items"]] == [ids[1], ids[0]]
    starts = [i["started_at"] for i in client.get("/runs").json()["items"]]
    assert starts == sorted(starts, reverse=True)


def test_unknown_run_is_404(client: TestClient) -> None:
    r = client.get("/runs/nope")
    assert r.status_code == 404
    assert "nope" in r.json()["detail"]


def test_bad_pagination_is_422(client: TestClient) -> None:
    assert client.get("/runs", params={"limit": 0}).status_code == 422
    assert client.get("/runs", params={"offset": -1}).status_code == 422
    assert client.get("/runs", params={"limit": "x"}).status_code == 422


def test_run_that_cannot_get_the_lease_is_busy_and_files_stay_pending(
    client: TestClient, settings: Settings, demo_keys: dict[str, str]
) -> None:
    holder = Lease(open_storage(settings.processed_uri), "other-run", 60)
    holder.acquire(1)
    try:
        run_id = client.post("/runs").json()["run_id"]
    finally:
        holder.release()
    run = client.get(f"/runs/{run_id}").json()
    assert run["status"] == "busy"
    assert "other-run" in run["error"] and "pending files" in run["error"]
    files = client.get("/files", params={"status": "pending"}).json()
    assert files["total"] == 10


def test_dispatch_failure_marks_the_run_failed_and_answers_503(
    client: TestClient, demo_keys: dict[str, str]
) -> None:
    def broken(job: dict[str, Any], s: Settings) -> None:
        raise RuntimeError("no way")

    client.app.state.dispatcher = broken  # type: ignore[attr-defined]
    r = client.post("/runs")
    assert r.status_code == 503
    runs = client.get("/runs").json()["items"]
    assert runs[0]["status"] == "failed" and "no way" in runs[0]["error"]
    json.dumps(runs)
