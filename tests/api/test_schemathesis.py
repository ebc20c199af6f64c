"""Property-based tests generated from the published OpenAPI document (openapi/openapi.json):
every operation, with the token, without it, and as a loopback client when no token is set.

Schemathesis's default checks hold for every generated request: no 5xx, the status code, content
type, headers and body conform to what the document declares, valid input is accepted and
invalid input refused. Runs are derandomized (the same examples every time) and bounded
(`MAX_EXAMPLES` per operation), so the suite stays deterministic and well under a minute.

The lake holds the demo data (tests/api/conftest.py's sales, tests/star_files.py's purchase
orders and payments) so reads find real rows and versions; jobs are recorded, not executed
(generated maintenance requests must not vacuum the lake under the other examples, and each run
would take seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from service.api.app import create_app
from service.pipeline import Pipeline
from service.settings import Settings
from tests.api.conftest import AUTH, TOKEN, load_demo
from tests.conftest import IngestionTree
from tests.star_files import load_demo_stars

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
MAX_EXAMPLES = 10
EXAMPLES = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

pytestmark = pytest.mark.xdist_group("schemathesis")


def _loaded_root(root: Path) -> Settings:
    tree = IngestionTree(root / "ingestion")
    load_demo(tree)
    load_demo_stars(tree)  # purchase orders and payments: their routes find rows too
    base = Settings(ingestion_uri=str(root / "ingestion"), processed_uri=str(root / "processed"))
    summary = Pipeline.from_settings(base).run(trigger="test")
    assert summary.status == "succeeded", summary.error
    return base


@pytest.fixture(scope="module")
def lake_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return _loaded_root(tmp_path_factory.mktemp("schemathesis"))


def _recording_app(settings_: Settings, jobs: list[dict[str, Any]]) -> FastAPI:
    app = create_app(settings_)
    app.state.dispatcher = lambda job, _settings: jobs.append(job)
    return app


class _Target:
    """The ASGI app a schema calls, set by a fixture once the lake exists (the schema itself is
    loaded at import: Schemathesis parametrizes tests at collection)."""

    def __init__(self, loopback: bool = False) -> None:
        self.app: FastAPI | None = None
        self.loopback = loopback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self.app is not None, "the fixture sets the app"
        if self.loopback and scope["type"] == "http":
            # As a loopback client reaches it (the test transport's peer is `testclient`).
            scope = {**scope, "client": ("127.0.0.1", 50000)}
        await self.app(scope, receive, send)


# What the API answers by design beyond the defaults: 413 for a body over 1 MB (however invalid
# it is otherwise); 422 for a schema-valid request the API refuses on meaning (version and as_of
# together, a filter on a column the table lacks: OpenAPI cannot express either); 415 for a POST
# without a JSON body from a loopback client.
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261127,
        "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "413", "415", "422"]
            },
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "413", "415", "422"]
            },
        },
    }
)


def _schema(target: _Target) -> Any:
    schema = schemathesis.openapi.from_path(str(COMMITTED), config=CONFIG)
    schema.app = target
    return schema


TOKEN_APP = _Target()
LOOPBACK_APP = _Target(loopback=True)
with_token = _schema(TOKEN_APP)
loopback = _schema(LOOPBACK_APP)


@pytest.fixture(scope="module", autouse=True)
def apps(lake_settings: Settings) -> Iterator[None]:
    TOKEN_APP.app = _recording_app(lake_settings.model_copy(update={"api_token": TOKEN}), [])
    LOOPBACK_APP.app = _recording_app(lake_settings.model_copy(update={"api_token": None}), [])
    yield
    TOKEN_APP.app = LOOPBACK_APP.app = None


@with_token.parametrize()
@EXAMPLES
def test_with_the_token(case: Any) -> None:
    case.call_and_validate(headers=AUTH)


@with_token.parametrize()
@EXAMPLES
def test_without_the_token(case: Any) -> None:
    response = case.call_and_validate()
    if case.path == "/health" or response.status_code in {405, 413}:
        return  # 405: a method the path lacks; 413: refused before anything reads the body
    # FastAPI parses a JSON body before any dependency runs: a body that is not UTF-8 (400) or
    # not JSON (422) is refused before authentication, revealing nothing.
    if response.status_code == 400:
        assert response.json()["detail"] == "There was an error parsing the body"
        return
    if response.status_code == 422:
        assert response.json()["detail"][0]["type"] == "json_invalid"
        return
    assert response.status_code == 401


@loopback.parametrize()
@EXAMPLES
def test_loopback_without_a_token_set(case: Any) -> None:
    # Without a token a loopback client needs no credentials, by design: the checks that expect
    # the declared bearer scheme to be enforced do not apply (the token runs above cover them).
    case.call_and_validate(
        base_url="http://127.0.0.1:8000",
        excluded_checks=[
            schemathesis.checks.ignored_auth,
            schemathesis.checks.missing_required_header,
            schemathesis.checks.negative_data_rejection,
        ],
    )
