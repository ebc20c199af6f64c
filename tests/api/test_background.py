"""The real dispatch paths: a daemon thread locally, an asynchronous self-invocation in Lambda."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api import background
from service.api.app import create_app
from service.settings import Settings
from tests.api.conftest import AUTH


def wait_for(client: TestClient, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        if run["status"] in {"succeeded", "failed"} or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def test_thread_dispatch_runs_in_the_background(
    settings: Settings, demo_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    with TestClient(create_app(settings), headers=AUTH) as client:
        r = client.post("/runs")
        assert r.status_code == 202
        run = wait_for(client, r.json()["run_id"])
        assert run["status"] == "succeeded", run
        assert run["files_applied"] == 10


class FakeLambda:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"StatusCode": 202}


def test_lambda_dispatch_invokes_itself_asynchronously(
    settings: Settings, demo_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeLambda()
    import boto3

    monkeypatch.setattr(boto3, "client", lambda name, **kw: fake if name == "lambda" else None)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "totesys-transform")
    with TestClient(create_app(settings), headers=AUTH) as client:
        r = client.post("/reprocess", json={"keys": [demo_keys["update1"]]})
        assert r.status_code == 202
        run_id = r.json()["run_id"]
        assert client.get(f"/runs/{run_id}").json()["status"] == "pending"
    [call] = fake.calls
    assert call["FunctionName"] == "totesys-transform"
    assert call["InvocationType"] == "Event"
    payload = json.loads(call["Payload"])
    assert payload == {
        "action": "run",
        "run_id": run_id,
        "trigger": "reprocess",
        "only_keys": [demo_keys["update1"]],
    }
    # what the handler does with that payload
    result = background.execute(payload, settings)
    assert result["status"] == "succeeded" and result["files_applied"] == 1


def test_unknown_action_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError):
        background.dispatch({"action": "rm -rf", "run_id": "x"}, settings)


def test_execute_records_a_setup_failure(settings: Settings, demo_keys: dict[str, str]) -> None:
    result = background.execute({"action": "run", "run_id": "r-1", "only_keys": 5}, settings)
    assert result["status"] == "failed" and result["error"]
