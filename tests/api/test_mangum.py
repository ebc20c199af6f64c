"""The app behind Mangum with API Gateway event samples (tests/api/events/): HTTP API payload
v2 and REST API payload v1, both with IAM authorisation; without it, 401."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum

from service.api.app import create_app
from service.pipeline import Pipeline
from service.settings import Settings

EVENTS = Path(__file__).parent / "events"


class Context:
    function_name = "totesys-transform"
    aws_request_id = "0f6c0b6e-0000-4000-8000-000000000000"
    invoked_function_arn = "arn:aws:lambda:eu-west-2:123456789012:function:totesys-transform"
    memory_limit_in_mb = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def call(settings: Settings, ev: dict[str, Any]) -> tuple[int, Any]:
    handler = Mangum(create_app(settings), lifespan="off")
    response = handler(ev, Context())  # type: ignore[arg-type]
    return response["statusCode"], json.loads(response["body"])


def no_token(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_token": None})


@pytest.mark.parametrize("name", ["apigw_v2_iam.json", "apigw_v1_iam.json"])
def test_iam_event_reads_a_sales_history(
    settings: Settings, loaded: Pipeline, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "totesys-transform")
    status, body = call(no_token(settings), event(name))
    assert status == 200, body
    assert [v["units_sold"] for v in body["versions"]] == [1001, 5, 7]


def _strip_iam(ev: dict[str, Any]) -> dict[str, Any]:
    ev = copy.deepcopy(ev)
    ctx = ev["requestContext"]
    ctx.pop("authorizer", None)
    if "identity" in ctx:
        for field in ("userArn", "accessKey", "caller", "user", "accountId"):
            ctx["identity"][field] = None
    return ev


@pytest.mark.parametrize("name", ["apigw_v2_iam.json", "apigw_v1_iam.json"])
def test_event_without_iam_is_401_even_from_loopback(
    settings: Settings, loaded: Pipeline, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    ev = _strip_iam(event(name))
    if ev.get("version") == "2.0":
        ev["requestContext"]["http"]["sourceIp"] = "127.0.0.1"
    else:
        ev["requestContext"]["identity"]["sourceIp"] = "127.0.0.1"
    ev["headers"].pop("x-forwarded-for", None)
    ev["headers"].pop("X-Forwarded-For", None)
    ev.get("multiValueHeaders", {}).pop("X-Forwarded-For", None)
    status, body = call(no_token(settings), ev)
    assert status == 401, body


@pytest.mark.parametrize("name", ["apigw_v2_iam.json", "apigw_v1_iam.json"])
def test_event_with_bearer_token(settings: Settings, loaded: Pipeline, name: str) -> None:
    ev = _strip_iam(event(name))
    auth = f"Bearer {settings.api_token}"
    if ev.get("version") == "2.0":
        ev["headers"]["authorization"] = auth
    else:
        ev["headers"]["Authorization"] = auth
        ev["multiValueHeaders"]["Authorization"] = [auth]
    status, _ = call(settings, ev)
    assert status == 200


def test_health_and_query_strings_through_mangum(settings: Settings, loaded: Pipeline) -> None:
    ev = _strip_iam(event("apigw_v2_iam.json"))
    ev["rawPath"] = ev["requestContext"]["http"]["path"] = "/health"
    assert call(settings, ev) == (200, {"status": "ok"})

    ev = event("apigw_v2_iam.json")
    ev["rawPath"] = ev["requestContext"]["http"]["path"] = "/tables/fact_sales_order/rows"
    ev["rawQueryString"] = "filter=sales_order_id%3D1&filter=units_sold%3C%3D6&limit=5"
    status, body = call(settings, ev)
    assert status == 200, body
    assert [r["units_sold"] for r in body["rows"]] == [5]

    v1 = event("apigw_v1_iam.json")
    v1["path"] = "/tables/fact_sales_order/rows"
    v1["queryStringParameters"] = {"version": "99"}
    v1["multiValueQueryStringParameters"] = {"version": ["99"]}
    status, body = call(settings, v1)
    assert status == 404 and "no version 99" in body["detail"]
