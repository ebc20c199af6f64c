"""GET /dimensions/{name}/{id}/history over a real pipeline run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from service.pipeline import Pipeline
from service.settings import Settings
from tests.conftest import T0, IngestionTree, dimension_records, order, ts

H = timedelta(hours=1)


@pytest.fixture
def renamed(settings: Settings, tree: IngestionTree) -> Pipeline:
    """Dimensions, then department 1 renamed at T0+2h; a sale referencing staff 77 (inferred)."""
    tree.dimensions()
    department = dimension_records()["department"][0]
    tree.put(
        "updated",
        "department",
        T0 + 2 * H,
        [{**department, "department_name": "Renamed", "last_updated": ts(T0 + 2 * H)}],
    )
    tree.put("updated", "sales_order", T0 + 3 * H, [order(1, T0, staff_id=77)])
    pipeline = Pipeline.from_settings(settings)
    assert pipeline.run(trigger="test").status == "succeeded"
    return pipeline


def test_a_staff_members_states(client: TestClient, renamed: Pipeline) -> None:
    body = client.get("/dimensions/staff/2/history").json()
    assert body["dimension"] == "staff" and body["table"] == "dim_staff_history"
    assert body["key"] == "staff_id" and body["id"] == 2
    states = body["states"]
    assert [s["values"]["department_name"] for s in states] == ["Sales", "Renamed"]
    assert [s["is_current"] for s in states] == [False, True]
    assert states[0]["valid_to"] == states[1]["valid_from"] == "2024-11-14T12:00:00Z"
    assert states[1]["valid_to"] is None
    assert states[0]["values"]["staff_id"] == 2 and "valid_from" not in states[0]["values"]
    # the table's name works too, and agrees
    assert client.get("/dimensions/dim_staff/2/history").json() == body


def test_unknown_member_or_dimension_is_404(client: TestClient, renamed: Pipeline) -> None:
    missing = client.get("/dimensions/staff/999/history")
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    # a placeholder inferred from a fact is not history
    assert client.get("/dimensions/staff/77/history").status_code == 404
    unknown = client.get("/dimensions/date/1/history")
    assert unknown.status_code == 404 and "staff" in unknown.json()["detail"]
    assert client.get("/dimensions/nope/1/history").status_code == 404
    assert client.get("/dimensions/staff/abc/history").status_code == 422


def test_every_dimension_answers(client: TestClient, renamed: Pipeline) -> None:
    for name, member in (
        ("location", 1),
        ("design", 1),
        ("currency", 2),
        ("counterparty", 1),
    ):
        body = client.get(f"/dimensions/{name}/{member}/history").json()
        assert len(body["states"]) == 1 and body["states"][0]["is_current"], name
    currency = client.get("/dimensions/currency/2/history").json()["states"][0]["values"]
    assert currency["currency_name"] == "US Dollar"
    # written yet for no member: 404, not an error
    assert client.get("/dimensions/transaction/1/history").status_code == 404


def test_needs_authentication(anonymous: TestClient, renamed: Pipeline) -> None:
    assert anonymous.get("/dimensions/staff/2/history").status_code == 401
