from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_needs_no_auth(anonymous: TestClient) -> None:
    r = anonymous.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
