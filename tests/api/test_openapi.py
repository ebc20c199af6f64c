"""openapi/openapi.json is generated from the app (`make openapi`); it must not be stale."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

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
        "/purchase-orders/{purchase_order_id}",
        "/purchase-orders/{purchase_order_id}/history",
        "/payments/{payment_id}",
        "/payments/{payment_id}/history",
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


def test_the_reprocess_schema_says_what_the_server_enforces(client: TestClient) -> None:
    """`{}`, both keys, a null and a key outside baseline/ or updated/ are invalid in the
    document exactly as they are refused (422) by the server."""
    import re

    from service.api.models import KEY_PATTERN
    from service.api.routes.reprocess import key_problem

    doc = json.loads(COMMITTED.read_text())
    schema = doc["components"]["schemas"]["ReprocessRequest"]
    assert schema["oneOf"] == [{"required": ["keys"]}, {"required": ["prefix"]}]
    assert schema["properties"]["keys"]["type"] == "array"
    assert schema["properties"]["prefix"]["pattern"] == KEY_PATTERN
    for body in (
        {},
        {"keys": ["updated/x"], "prefix": "updated/"},
        {"keys": None},
        {"prefix": None},
    ):
        assert client.post("/reprocess", json=body).status_code == 422, body
    samples = [
        "updated/x.json",
        "baseline/a/b",
        "updated/",
        "updated/./x",
        "updated/a/../b",
        "updated/..",
        "updated/a..b",
        "updated/a://b",
        "updated/a\\b",
        "updated/a\x00b",
        "/updated/x",
        "s3://b/updated/x",
        "other/x",
        "updated",
        "updated/a:b",
        "updated/.hidden",
        "updated/a/.",
        "baseline/é",
        "updated/a\n/../b",
    ]
    for key in samples:
        assert (key_problem(key) is None) == bool(re.search(KEY_PATTERN, key)), key


def test_every_authenticated_operation_documents_429_with_retry_after() -> None:
    doc = json.loads(COMMITTED.read_text())
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path == "/health":
                continue
            answer = operation["responses"]["429"]
            assert "Retry-After" in answer["headers"], (method, path)
