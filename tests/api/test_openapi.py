"""openapi/openapi.json is generated from the app (`make openapi`); it must not be stale."""

from __future__ import annotations

import json
from pathlib import Path

from service.api.openapi_export import main, openapi_document, render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_is_up_to_date() -> None:
    assert COMMITTED.exists(), "run `make openapi`"
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "openapi/openapi.json is stale: run `make openapi`"
    )


def test_document_describes_every_endpoint() -> None:
    doc = openapi_document()
    assert set(doc["paths"]) == {
        "/health",
        "/runs",
        "/runs/{run_id}",
        "/files",
        "/reprocess",
        "/maintenance",
        "/tables",
        "/tables/{name}/versions",
        "/tables/{name}/rows",
        "/sales-orders/{sales_order_id}",
        "/sales-orders/{sales_order_id}/history",
        "/dimensions/{name}/{id}/history",
    }
    rows = doc["paths"]["/tables/{name}/rows"]["get"]
    assert "never evaluated" in rows["description"]
    assert "401" in doc["paths"]["/runs"]["get"]["responses"]
    assert "401" not in doc["paths"]["/health"]["get"]["responses"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_export_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "openapi.json"
    assert main([str(target)]) == 0
    assert json.loads(target.read_text())["info"]["title"] == "totesys-transform"
    assert main([]) == 2
