"""Every route but /health needs a bearer token, an API Gateway IAM context or (no token set,
not in Lambda) a loopback client without proxy headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.deps import iam_principal
from service.settings import Settings
from tests.api.conftest import TOKEN

OTHER_TOKEN = "another-token-0123456789-abcdef"

PROTECTED = [
    ("get", "/runs"),
    ("post", "/runs"),
    ("get", "/runs/x"),
    ("get", "/files"),
    ("post", "/reprocess"),
    ("post", "/maintenance"),
    ("get", "/tables"),
    ("get", "/tables/fact_sales_order/versions"),
    ("get", "/tables/fact_sales_order/rows"),
    ("get", "/sales-orders/1"),
    ("get", "/sales-orders/1/history"),
    ("get", "/purchase-orders/1"),
    ("get", "/purchase-orders/1/history"),
    ("get", "/payments/1"),
    ("get", "/payments/1/history"),
    ("get", "/dimensions/staff/1/history"),
]


def test_every_route_but_health_is_listed_here(client: TestClient) -> None:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {(m, p) for p, ops in paths.items() for m in ops}
    templates = {
        "/runs/x": "/runs/{run_id}",
        "/sales-orders/1": "/sales-orders/{sales_order_id}",
        "/sales-orders/1/history": "/sales-orders/{sales_order_id}/history",
        "/purchase-orders/1": "/purchase-orders/{purchase_order_id}",
        "/purchase-orders/1/history": "/purchase-orders/{purchase_order_id}/history",
        "/payments/1": "/payments/{payment_id}",
        "/payments/1/history": "/payments/{payment_id}/history",
        "/tables/fact_sales_order/versions": "/tables/{name}/versions",
        "/tables/fact_sales_order/rows": "/tables/{name}/rows",
        "/dimensions/staff/1/history": "/dimensions/{name}/{id}/history",
    }
    listed = {(m, templates.get(p, p)) for m, p in PROTECTED}
    assert routes - listed == {("get", "/health")}
    assert listed <= routes


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
)
def test_401_without_a_valid_token(
    anonymous: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    r = anonymous.request(method, path, headers=headers, json={"keys": ["updated/x"]})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "authentication required" in r.json()["detail"]


def test_token_admits(anonymous: TestClient) -> None:
    r = anonymous.get("/runs", headers={"Authorization": f"bearer {TOKEN}"})
    assert r.status_code == 200


def _app(tmp_path: Path, token: str | None) -> TestClient:
    settings = Settings(
        ingestion_uri=str(tmp_path / "i"), processed_uri=str(tmp_path / "p"), api_token=token
    )
    return TestClient(
        create_app(settings), client=("127.0.0.1", 40000), base_url="http://127.0.0.1:8000"
    )


def test_loopback_admitted_only_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert _app(tmp_path, None).get("/runs").status_code == 200
    assert _app(tmp_path, OTHER_TOKEN).get("/runs").status_code == 401
    ipv6 = TestClient(_app(tmp_path, None).app, client=("::1", 40000), base_url="http://[::1]:8000")
    assert ipv6.get("/runs").status_code == 200


def test_remote_client_without_token_is_401(tmp_path: Path) -> None:
    settings = Settings(ingestion_uri=str(tmp_path / "i"), processed_uri=str(tmp_path / "p"))
    for host in ("10.0.0.5", "192.168.1.2", "testclient", "localhost.evil.com"):
        client = TestClient(create_app(settings), client=(host, 40000))
        assert client.get("/runs").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
    ],
)
def test_loopback_via_a_proxy_is_401(tmp_path: Path, header: tuple[str, str]) -> None:
    assert _app(tmp_path, None).get("/runs", headers=dict([header])).status_code == 401


def test_loopback_not_admitted_inside_lambda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "totesys")
    assert _app(tmp_path, None).get("/runs").status_code == 401


def test_iam_principal_shapes() -> None:
    arn = "arn:aws:iam::123456789012:user/alice"
    v2 = {"requestContext": {"authorizer": {"iam": {"userArn": arn, "accessKey": "AKIA"}}}}
    v1 = {"requestContext": {"identity": {"userArn": arn, "accessKey": "AKIA"}}}
    assert iam_principal(v2) == arn
    assert iam_principal(v1) == arn
    assert iam_principal({"requestContext": {"identity": {"userArn": None}}}) is None
    assert iam_principal({"requestContext": {"authorizer": {"jwt": {}}}}) is None
    assert iam_principal({"requestContext": {}}) is None
    assert iam_principal({}) is None
    assert iam_principal("x") is None


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("127.0.0.1", True),
        ("127.9.9.9:1", True),
        ("localhost:8000", True),
        ("LOCALHOST", True),
        ("[::1]:8000", True),
        ("[::1]", True),
        ("evil.example.com", False),
        ("evil.example.com:8000", False),
        ("localhost.evil.com:8000", False),
        ("127.0.0.1.nip.io", False),
        ("[::ffff:10.0.0.1]:80", False),
        ("", False),
    ],
)
def test_loopback_needs_a_loopback_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str, allowed: bool
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    r = _app(tmp_path, None).get("/runs", headers={"Host": host})
    assert r.status_code == (200 if allowed else 403), r.text


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Content-Type": "application/json"}, b"{}", 202),
        ({"Content-Type": "application/json; charset=utf-8"}, b"{}", 202),
        ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:8000"}, b"{}", 202),
        ({"Content-Type": "application/json", "Origin": "http://localhost:5173"}, b"{}", 202),
        ({"Content-Type": "text/plain"}, b"{}", 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"", 415),
        ({}, b"", 415),
        ({"Content-Type": "application/json", "Origin": "http://evil.example.com"}, b"{}", 403),
        ({"Content-Type": "application/json", "Origin": "null"}, b"{}", 403),
        ({"Content-Type": "text/plain", "Origin": "http://evil.example.com"}, b"{}", 403),
    ],
)
def test_loopback_state_changes_need_json_and_no_foreign_origin(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    body: bytes,
    expected: int,
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    client = _app(tmp_path, None)
    client.app.state.dispatcher = lambda job, settings: None  # type: ignore[attr-defined]
    r = client.post("/runs", content=body, headers=headers)
    assert r.status_code == expected, r.text
    # A token needs none of this: a page cannot send the Authorization header cross-site.
    with_token = _app(tmp_path, OTHER_TOKEN)
    with_token.app.state.dispatcher = lambda job, settings: None  # type: ignore[attr-defined]
    r = with_token.post(
        "/runs", content=body, headers={**headers, "Authorization": f"Bearer {OTHER_TOKEN}"}
    )
    assert r.status_code == 202
