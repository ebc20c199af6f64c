"""API fixtures: an app over temporary roots, a token-authenticated client, a loaded lake.

Jobs run synchronously in these tests (the dispatcher is replaced by `background.execute`), so
a 202 response means the run has finished; tests/api/test_background.py covers the real thread
and the Lambda self-invocation.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api import background
from service.api.app import create_app
from service.pipeline import Pipeline
from service.settings import Settings
from tests.conftest import T0, IngestionTree, order

TOKEN = "test-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
H = timedelta(hours=1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "ingestion").mkdir(exist_ok=True)  # empty, not missing (missing is an error)
    return Settings(
        ingestion_uri=str(tmp_path / "ingestion"),
        processed_uri=str(tmp_path / "processed"),
        api_token=TOKEN,
        lease_wait_seconds=0.2,
    )


@pytest.fixture
def jobs() -> list[dict[str, Any]]:
    """The jobs the app dispatched (each also executed synchronously)."""
    return []


@pytest.fixture
def app(settings: Settings, jobs: list[dict[str, Any]]) -> FastAPI:
    application = create_app(settings)

    def run_now(job: dict[str, Any], s: Settings) -> None:
        jobs.append(job)
        background.execute(job, s)

    application.state.dispatcher = run_now
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=AUTH) as c:
        yield c


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def load_demo(tree: IngestionTree) -> dict[str, str]:
    """Dimensions, a baseline of orders 1-3, order 1 updated twice, order 3 deleted (absent from
    a second baseline snapshot). Returns the keys written."""
    tree.dimensions()
    keys = {
        "baseline": tree.put(
            "baseline", "sales_order", T0, [order(1, T0 - H), order(2, T0 - H), order(3, T0 - H)]
        ),
        "update1": tree.put(
            "updated", "sales_order", T0 + H, [order(1, T0 + H, created=T0 - H, units_sold=5)]
        ),
        "update2": tree.put(
            "updated",
            "sales_order",
            T0 + 2 * H,
            [order(1, T0 + 2 * H, created=T0 - H, units_sold=7, unit_price="3.25")],
        ),
        "snapshot": tree.put(
            "baseline",
            "sales_order",
            T0 + 3 * H,
            [
                order(1, T0 + 2 * H, created=T0 - H, units_sold=7, unit_price="3.25"),
                order(2, T0 - H),
            ],
        ),
    }
    return keys


@pytest.fixture
def demo_keys(tree: IngestionTree) -> dict[str, str]:
    return load_demo(tree)


@pytest.fixture
def loaded(settings: Settings, demo_keys: dict[str, str]) -> Pipeline:
    """The demo tree applied by one pipeline run."""
    pipeline = Pipeline.from_settings(settings)
    summary = pipeline.run(trigger="test")
    assert summary.status == "succeeded", summary.error
    return pipeline
