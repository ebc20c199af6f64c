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

import json
import re
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
        self.requests = 0
        self.answers: list[tuple[str, str, int]] = []  # method, path, status

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self.app is not None, "the fixture sets the app"
        if scope["type"] == "http":
            self.requests += 1
            if self.loopback:
                # As a loopback client reaches it (the test transport's peer is `testclient`).
                scope = {**scope, "client": ("127.0.0.1", 50000)}
            else:
                # Each request from its own address: the checks send wrong tokens on purpose
                # (ignored_auth), and ten from one address would throttle it (429 for all).
                n = self.requests
                scope = {**scope, "client": (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 50000)}

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.answers.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


# Every check runs (`--checks all`: positive and negative data acceptance included) with
# Schemathesis' default statuses, widened only where the document declares a status on the
# operation that the defaults do not expect:
# - 413 on the POSTs: a body over 1 MB is refused before it is read, valid or not (10,000 keys of
#   1,024 characters would be 10 MB: the schema cannot promise that size);
# - 422 on GET /tables/{name}/rows for a schema-valid request: a filter on a column this table
#   lacks (tables differ, the path is one), a value the column cannot hold, version with as_of;
# - 415 for a loopback client without a token: a POST that is not JSON.
DEFAULT_POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
DEFAULT_NEGATIVE = [
    *("400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx")
]


def _config(loopback: bool) -> Any:
    positive_post = [*DEFAULT_POSITIVE, "413", *(["415"] if loopback else [])]
    return schemathesis.Config.from_dict(
        {
            "seed": 20261127,
            "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
            "operations": [
                {
                    "include-method": "POST",
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": positive_post},
                        "negative_data_rejection": {
                            "expected-statuses": [*DEFAULT_NEGATIVE, "413"]
                        },
                    },
                },
                {
                    "include-path": "/tables/{name}/rows",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [*DEFAULT_POSITIVE, "422"]
                        }
                    },
                },
            ],
        }
    )


def _schema(target: _Target) -> Any:
    schema = schemathesis.openapi.from_path(str(COMMITTED), config=_config(target.loopback))
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


# -- stateful: the links (a job's 202 to its run) followed with every check ------------------------
class _Workflow(with_token.as_state_machine()):  # type: ignore[misc]
    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {"headers": AUTH}


def test_stateful_links_hold(lake_settings: Settings) -> None:
    """Schemathesis follows the document's links (POST /runs, /reprocess, /maintenance → GET
    /runs/{run_id}) through sequences of calls, every check on every answer."""
    links = [
        (op["operationId"], name)
        for path in json.loads(COMMITTED.read_text())["paths"].values()
        for op in path.values()
        for response in op["responses"].values()
        for name in response.get("links", {})
    ]
    assert {op for op, _ in links} == {
        "start_run_runs_post",
        "reprocess_reprocess_post",
        "start_maintenance_maintenance_post",
    }
    before = len(TOKEN_APP.answers)
    _Workflow.run(
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    answers = TOKEN_APP.answers[before:]
    started = {p for m, p, status in answers if m == "POST" and status == 202}
    followed = [
        (p, status)
        for m, p, status in answers
        if m == "GET" and re.fullmatch(r"/runs/[0-9A-Za-z_-]{8,}", p) and status == 200
    ]
    assert started and followed, [a for a in answers if a[0] == "GET" and a[1].startswith("/runs/")]
