"""Issue 12 regressions: every caller mistake a 4xx (each case below was a 500 or worse), no
error echoing more than 100 characters of what was sent, 413 for bodies over 1 MB, docs behind
the token, retention bounds, vacuumed versions 404, the version-keyed cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app
from service.api.limits import MAX_BODY_BYTES
from service.cli import app as cli
from service.maintenance import maintain
from service.pipeline import Pipeline
from service.settings import Settings
from tests.api.conftest import AUTH, H
from tests.conftest import T0, IngestionTree, order

LONG = "x" * 5000


def assert_no_long_echo(body: dict[str, Any]) -> None:
    """No string in an error answer repeats more than 100 characters of the caller's value
    (messages of our own may be longer, but never contain a 101-character run of the value)."""
    assert "x" * 101 not in json.dumps(body)


# -- offsets, timestamps, numbers -------------------------------------------------------------
@pytest.mark.parametrize("path", ["/files", "/runs", "/tables/fact_sales_order/rows"])
def test_an_offset_past_any_end_is_an_empty_page(
    client: TestClient, loaded: Pipeline, path: str
) -> None:
    r = client.get(path, params={"offset": 9223372036854775808})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] > 0 and body["offset"] == 9223372036854775808
    assert body.get("items", body.get("rows")) == []


@pytest.mark.parametrize("path", ["/tables/fact_sales_order/rows", "/sales-orders/1"])
def test_as_of_that_overflows_in_utc_is_422(
    client: TestClient, loaded: Pipeline, path: str
) -> None:
    r = client.get(path, params={"as_of": "9999-12-31T23:59:59.999999-12:00"})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["query", "as_of"] and "outside the years" in problem["msg"]


def test_sales_order_id_beyond_32_bits_is_422(client: TestClient, loaded: Pipeline) -> None:
    r = client.get("/sales-orders/99999999999999999999/history")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "sales_order_id"]


def test_prefix_nan_is_422(client: TestClient) -> None:
    r = client.post(
        "/reprocess", content=b'{"prefix": NaN}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", "prefix"] and problem["input"] == "nan"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"retention_days": 1e400}', "finite number"),
        (b'{"retention_days": 100000000000000000000}', "less than or equal to 3650"),
        (b'{"retention_days": 3651}', "less than or equal to 3650"),
        (b'{"retention_days": 0}', "greater than or equal to 1"),
        (b'{"retention_days": -1}', "greater than or equal to 1"),
    ],
)
def test_retention_days_outside_1_to_3650_is_422(
    client: TestClient, jobs: list[dict[str, Any]], body: bytes, problem: str
) -> None:
    r = client.post("/maintenance", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "retention_days"] and problem in detail["msg"]
    assert jobs == []  # nothing started


def test_retention_setting_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        Settings(processed_uri=str(tmp_path), retention_days=0)
    with pytest.raises(ValueError, match="retention_days"):
        Settings(processed_uri=str(tmp_path), retention_days=10**20)
    assert Settings(processed_uri=str(tmp_path), retention_days=3650).retention_days == 3650


# -- what an error may echo -------------------------------------------------------------------
def test_errors_echo_at_most_100_characters(client: TestClient, loaded: Pipeline) -> None:
    answers = [
        client.get(f"/runs/{LONG}"),
        client.get(f"/tables/{LONG}/rows"),
        client.get(f"/tables/{LONG}/versions"),
        client.get("/tables/fact_sales_order/rows", params={"filter": f"{LONG}=1"}),
        client.get("/files", params={"status": LONG}),
        client.get("/runs", params={LONG: "1"}),
        client.post("/reprocess", json={"prefix": LONG}),
        client.post("/reprocess", json={"prefix": "updated/" + LONG[:900]}),
        client.post("/reprocess", json={"keys": ["/" + LONG[:900]]}),
        client.post("/reprocess", json={"keys": [f"updated/{i}{LONG[:900]}" for i in range(50)]}),
        client.post("/maintenance", json={"retention_days": LONG}),
        client.post("/maintenance", json={LONG: 1}),
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        assert_no_long_echo(r.json())
        assert len(r.text) < 6000


def test_404_for_10000_missing_keys_lists_20(client: TestClient, loaded: Pipeline) -> None:
    keys = [f"updated/sales_order-{i:05d}.json" for i in range(10_000)]
    r = client.post("/reprocess", json={"keys": keys})
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert detail["count"] == 10_000 and detail["missing"] == keys[:20]


# -- body limit -------------------------------------------------------------------------------
def test_a_body_over_1_mb_is_413_before_it_is_read(client: TestClient, jobs: list[Any]) -> None:
    big = json.dumps({"keys": ["updated/" + "k" * 1000] * 1100}).encode()
    assert len(big) > MAX_BODY_BYTES
    for path in ("/reprocess", "/maintenance", "/no-such-route"):
        r = client.post(path, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert "1,048,576 bytes" in r.json()["detail"]
        assert len(r.content) < 200
    assert jobs == []


def test_a_streamed_body_over_1_mb_is_413(client: TestClient, jobs: list[Any]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"keys": ['
        for _ in range(2000):
            yield b'"updated/' + b"k" * 1000 + b'",'
        yield b'"updated/x"]}'

    r = client.post("/reprocess", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413
    assert jobs == []


def test_a_body_under_1_mb_is_read(client: TestClient, loaded: Pipeline) -> None:
    keys = [f"updated/sales_order-{i:05d}.json" for i in range(10_000)]  # ~0.4 MB
    assert client.post("/reprocess", json={"keys": keys}).status_code == 404


# -- docs behind the token --------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_need_the_token(anonymous: TestClient, path: str) -> None:
    assert anonymous.get(path).status_code == 401
    r = anonymous.get(path, headers=AUTH)
    assert r.status_code == 200
    if path == "/openapi.json":
        assert "/tables/{name}/rows" in r.json()["paths"]
    else:
        assert "/openapi.json" in r.text
    assert anonymous.get("/health").status_code == 200


def test_health_touches_no_storage(tmp_path: Path) -> None:
    # A processed root nobody can reach: /health still answers (it does no I/O).
    settings = Settings(
        ingestion_uri="s3://no-such-bucket-totesys/i", processed_uri="s3://no-such-bucket/p"
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json() == {"status": "ok"}


# -- vacuumed versions ------------------------------------------------------------------------
@pytest.fixture
def vacuumed(loaded: Pipeline, tree: IngestionTree) -> Pipeline:
    """Version 0 of fact_sales_order made unreadable by maintenance: a second run adds version
    1, then a zero-day window (possible only through the library, not the API or the CLI)
    vacuums the files and log version 0 needed."""
    tree.put("updated", "sales_order", T0 + 5 * H, [order(2, T0 + 5 * H, created=T0 - H)])
    assert loaded.run(trigger="test").status == "succeeded"
    maintain(loaded.lake, retention_days=0)
    return loaded


def test_a_vacuumed_version_is_404_with_the_window(client: TestClient, vacuumed: Pipeline) -> None:
    r = client.get("/tables/fact_sales_order/rows", params={"version": 0})
    assert r.status_code == 404, r.text
    assert "version 0 is no longer kept (retention 0 days)" in r.json()["detail"]
    latest = client.get("/tables/fact_sales_order/rows").json()
    assert latest["version"] > 1 and latest["total"] == 7


def test_cli_says_a_vacuumed_version_is_gone_in_one_line(
    vacuumed: Pipeline, settings: Settings
) -> None:
    for args in (["history", "1", "--version", "0"], ["tables", "--version", "0"]):
        result = CliRunner().invoke(cli, [*args, "--processed", settings.processed_uri])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "version 0 is no longer kept (retention 0 days)" in lines[0]


@pytest.mark.parametrize("days", ["0", "3651", "100000000000000000000"])
def test_cli_maintain_refuses_a_window_outside_1_to_3650(
    settings: Settings, days: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(
        cli, ["maintain", "--retention-days", days, "--processed", settings.processed_uri]
    )
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) <= 5  # typer's own range error for 10^20
    assert "retention" in result.output.lower()
    monkeypatch.setenv("TOTESYS_RETENTION_DAYS", "0")
    result = CliRunner().invoke(cli, ["maintain", "--processed", settings.processed_uri])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "TOTESYS_RETENTION_DAYS" in line and "greater than or equal to 1" in line


# -- the cache --------------------------------------------------------------------------------
def test_table_summaries_agree_with_delta_and_follow_new_versions(
    client: TestClient, loaded: Pipeline, tree: IngestionTree
) -> None:
    first = {t["name"]: t for t in client.get("/tables").json()}
    for name, summary in first.items():  # served from the catalog: the same as Delta says
        info = loaded.lake.info(name)
        assert info is not None and (summary["version"], summary["rows"]) == (
            info.version,
            info.rows,
        )
    assert client.get("/tables").json() == list(first.values())
    runs_before = client.get("/runs").json()["total"]

    tree.put("updated", "sales_order", T0 + 5 * H, [order(9, T0 + 5 * H, created=T0 - H)])
    client.post("/runs")  # the test dispatcher runs it before answering
    after = {t["name"]: t for t in client.get("/tables").json()}
    assert after["fact_sales_order"]["version"] == first["fact_sales_order"]["version"] + 1
    assert after["fact_sales_order"]["rows"] == first["fact_sales_order"]["rows"] + 1
    assert client.get("/runs").json()["total"] == runs_before + 1
    versions = client.get("/tables/fact_sales_order/versions").json()["versions"]
    assert versions[0]["version"] == after["fact_sales_order"]["version"]


# -- storage trouble --------------------------------------------------------------------------
def test_an_unreadable_table_is_503_not_500(client: TestClient, loaded: Pipeline) -> None:
    log = Path(loaded.lake.uri("dim_currency")) / "_delta_log"
    for commit in log.glob("*.json"):
        commit.write_text("{not json", encoding="utf-8")  # a damaged log: nothing the caller did
    # GET /tables answers from the catalog and each table's next log entry (it reads no log);
    # reading the damaged table is storage trouble
    r = client.get("/tables/dim_currency/rows")
    assert r.status_code == 503, r.text
