from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import queries
from service.pipeline import Pipeline


def test_reprocess_keys_is_idempotent(
    client: TestClient, loaded: Pipeline, demo_keys: dict[str, str], jobs: list[dict[str, Any]]
) -> None:
    before = queries.sale_history(loaded.lake, 1).height
    keys = [demo_keys["update1"], demo_keys["update2"]]
    for _ in range(2):
        r = client.post("/reprocess", json={"keys": keys})
        assert r.status_code == 202
        body = r.json()
        assert body["trigger"] == "reprocess"
        run = client.get(f"/runs/{body['run_id']}").json()
        assert run["status"] == "succeeded", run
        assert run["files_applied"] == 2
        assert run["rows_written"].get("fact_sales_order", 0) == 0
    assert jobs[-1]["only_keys"] == keys and jobs[-1]["action"] == "run"
    assert queries.sale_history(loaded.lake, 1).height == before


def test_reprocess_prefix(
    client: TestClient, loaded: Pipeline, demo_keys: dict[str, str], jobs: list[dict[str, Any]]
) -> None:
    r = client.post("/reprocess", json={"prefix": "updated/sales_order"})
    assert r.status_code == 202
    assert sorted(jobs[-1]["only_keys"]) == sorted([demo_keys["update1"], demo_keys["update2"]])
    assert client.get(f"/runs/{r.json()['run_id']}").json()["status"] == "succeeded"


@pytest.mark.parametrize(
    "key",
    [
        "../processed/_state/ledger/x.json",
        "updated/../../etc/passwd",
        "/etc/passwd",
        "s3://other-bucket/updated/x.json",
        "file:///etc/passwd",
        "_state/lease/00000000000000000001.json",
        "fact/sales_order/part-0.parquet",
        "updated\\..\\x.json",
        "C:/x.json",
        "",
    ],
)
def test_keys_outside_the_ingestion_prefixes_are_422(
    client: TestClient, demo_keys: dict[str, str], jobs: list[dict[str, Any]], key: str
) -> None:
    r = client.post("/reprocess", json={"keys": [key]})
    assert r.status_code == 422, r.text
    assert jobs == []


def test_prefix_outside_is_422(client: TestClient, demo_keys: dict[str, str]) -> None:
    for prefix in ("_state/", "../", "s3://b/updated/", "/updated/"):
        assert client.post("/reprocess", json={"prefix": prefix}).status_code == 422


def test_missing_keys_are_404_with_the_list(
    client: TestClient, demo_keys: dict[str, str], jobs: list[dict[str, Any]]
) -> None:
    missing = "updated/sales_order-2030-01-01T00:00:00.000000.json"
    r = client.post("/reprocess", json={"keys": [demo_keys["update1"], missing]})
    assert r.status_code == 404
    assert r.json()["detail"]["missing"] == [missing]
    assert client.post("/reprocess", json={"prefix": "updated/nothing"}).status_code == 404
    assert jobs == []


@pytest.mark.parametrize(
    "body",
    [{}, {"keys": []}, {"keys": ["updated/a"], "prefix": "updated/"}, {"key": "x"}, [], "x"],
)
def test_bad_bodies_are_422(client: TestClient, body: Any) -> None:
    assert client.post("/reprocess", json=body).status_code == 422
