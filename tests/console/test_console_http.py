"""The console's authentication and CSRF over HTTP (the ASGI app in-process, the API's
fixtures: token `TOKEN`, a lake loaded by a real run, jobs executed synchronously)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.console.charts import RunPoint, run_chart
from service.lake import TABLE_PATHS
from service.ledger import Ledger
from service.pipeline import Pipeline
from service.settings import Settings
from tests.api.conftest import TOKEN

PAGES = [
    "/console",
    "/console/files",
    "/console/files?status=rejected",
    "/console/tables/fact_sales_order",
    "/console/sales-orders/1",
    "/console/dimensions/staff/1",
]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture
def browser_like(app: FastAPI) -> Iterator[TestClient]:
    """A client with a cookie jar and no Authorization header, that doesn't follow redirects."""
    with TestClient(app, follow_redirects=False) as c:
        yield c


def log_in(c: TestClient) -> str:
    csrf = csrf_of(c.get("/console/login").text)
    answer = c.post("/console/login", data={"csrf": csrf, "token": TOKEN, "next": "/console"})
    assert answer.status_code == 303
    return csrf_of(c.get("/console").text)


def test_every_page_redirects_to_login_without_the_token(
    browser_like: TestClient, loaded: Pipeline
) -> None:
    run_id = loaded.ledger.runs()[0].run_id
    for path in [*PAGES, f"/console/runs/{run_id}"]:
        answer = browser_like.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login?next=%2Fconsole"), path
        assert run_id not in answer.text
    wrong = browser_like.get("/console", cookies={"totesys_console_token": "guess"})
    assert wrong.status_code == 303


def test_buttons_do_nothing_without_the_token(browser_like: TestClient, loaded: Pipeline) -> None:
    before = len(loaded.ledger.runs())
    csrf = csrf_of(browser_like.get("/console/login").text)  # a valid CSRF pair, no login
    for path, form in [("/console/runs", {}), ("/console/reprocess", {"key": "baseline/x.json"})]:
        answer = browser_like.post(path, data={"csrf": csrf, **form})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login?next=%2Fconsole"
    assert len(loaded.ledger.runs()) == before


def test_bearer_header_is_accepted_like_the_api(client: TestClient, loaded: Pipeline) -> None:
    for path in PAGES:
        assert client.get(path).status_code == 200, path


def test_login_sets_a_strict_http_only_cookie(app: FastAPI, loaded: Pipeline) -> None:
    with TestClient(app, base_url="https://console.example", follow_redirects=False) as c:
        csrf = csrf_of(c.get("/console/login").text)
        wrong = c.post("/console/login", data={"csrf": csrf, "token": "nope", "next": "/console"})
        assert wrong.status_code == 401
        assert "totesys_console_token" not in wrong.headers.get("set-cookie", "")
        answer = c.post(
            "/console/login",
            data={"csrf": csrf, "token": TOKEN, "next": "/console/files?status=rejected"},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/files?status=rejected"
        cookie = answer.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "secure", "path=/console"):
            assert attribute in cookie, cookie
        assert c.get("/console").status_code == 200
        assert c.get("/runs").status_code == 401  # the cookie is the console's, not the API's


def test_login_needs_its_csrf_token_and_never_redirects_away(
    browser_like: TestClient, loaded: Pipeline
) -> None:
    no_csrf = browser_like.post("/console/login", data={"token": TOKEN, "next": "/console"})
    assert no_csrf.status_code == 403
    csrf = csrf_of(browser_like.get("/console/login").text)
    for target in ("//evil.example/", "https://evil.example/", "/console/..\\x", "/runs"):
        answer = browser_like.post(
            "/console/login", data={"csrf": csrf, "token": TOKEN, "next": target}
        )
        assert answer.headers["location"] == "/console", target


def test_state_changing_buttons_check_the_csrf_token(
    browser_like: TestClient, loaded: Pipeline, jobs: list[dict[str, object]]
) -> None:
    csrf = log_in(browser_like)
    for sent in (None, "", "0" * 64, csrf[::-1]):
        data = {} if sent is None else {"csrf": sent}
        assert browser_like.post("/console/runs", data=data).status_code == 403
    assert jobs == []
    # a token signed for another browser's cookie is refused too
    other = browser_like.post(
        "/console/runs", data={"csrf": csrf}, cookies={"totesys_console_csrf": "x" * 43}
    )
    assert other.status_code == 403
    started = browser_like.post("/console/runs", data={"csrf": csrf})
    assert started.status_code == 303
    run_id = started.headers["location"].rsplit("/", 1)[1]
    assert jobs == [{"run_id": run_id, "trigger": "console", "action": "run"}]
    page = browser_like.get(started.headers["location"])
    assert run_id in page.text and "succeeded" in page.text


def test_reprocess_refuses_keys_outside_the_ingestion_root(
    browser_like: TestClient, loaded: Pipeline, demo_keys: dict[str, str], jobs: list[object]
) -> None:
    csrf = log_in(browser_like)
    for key in ("../secrets.json", "s3://other/baseline/x.json", "baseline/nothing-here.json"):
        answer = browser_like.post("/console/reprocess", data={"csrf": csrf, "key": key})
        assert answer.status_code == 404, key
    assert jobs == []
    answer = browser_like.post(
        "/console/reprocess", data={"csrf": csrf, "key": demo_keys["update1"]}
    )
    assert answer.status_code == 303
    assert jobs[0] == {
        "run_id": answer.headers["location"].rsplit("/", 1)[1],
        "trigger": "reprocess",
        "action": "run",
        "only_keys": [demo_keys["update1"]],
    }


def test_logout_forgets_the_token(browser_like: TestClient, loaded: Pipeline) -> None:
    csrf = log_in(browser_like)
    answer = browser_like.post("/console/logout", data={"csrf": csrf})
    assert answer.status_code == 303
    assert browser_like.get("/console").status_code == 303


def test_pages_carry_a_strict_content_security_policy(client: TestClient, loaded: Pipeline) -> None:
    answer = client.get("/console")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src" not in policy  # no script is allowed at all
    assert "<script" not in answer.text
    assert answer.headers["cache-control"] == "no-store"


def test_loopback_mode_admits_local_clients_only(tmp_path: Path, loaded: Pipeline) -> None:
    settings = Settings(
        ingestion_uri=str(tmp_path / "ingestion"), processed_uri=str(tmp_path / "processed")
    )
    app = create_app(settings)
    local_url = "http://127.0.0.1:8000"
    with TestClient(
        app, base_url=local_url, client=("127.0.0.1", 40000), follow_redirects=False
    ) as local:
        assert local.get("/console").status_code == 200
        proxied = local.get("/console", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 303
        # the API's DNS-rebinding rule holds for the console too: a foreign Host is refused
        rebound = local.get("/console", headers={"Host": "evil.example.com"})
        assert rebound.status_code == 403
    with TestClient(
        app, base_url=local_url, client=("203.0.113.9", 40000), follow_redirects=False
    ) as remote:
        assert remote.get("/console").status_code == 303


def test_bad_input_is_a_clear_message_not_a_crash(client: TestClient, loaded: Pipeline) -> None:
    bad_filter = client.get("/console/tables/fact_sales_order", params={"filter": "nope=1"})
    assert bad_filter.status_code == 422
    assert "has no column &#39;nope&#39;" in bad_filter.text  # escaped
    assert client.get("/console/tables/fact_sales_order?version=99").status_code == 422
    not_a_number = client.get("/console/tables/fact_sales_order?version=abc")
    assert not_a_number.status_code == 422 and "is not a whole number" in not_a_number.text
    bad_time = client.get("/console/tables/fact_sales_order?as_of=soon")
    assert bad_time.status_code == 422 and "is not a date and time" in bad_time.text
    assert client.get("/console/tables/no_such_table").status_code == 404
    assert client.get("/console/runs/no-such-run").status_code == 404
    assert client.get("/console/sales-orders/424242").status_code == 404
    assert client.get("/console/sales-orders/1?as_of=yesterday").status_code == 422
    assert client.get("/console/static/..%2Fauth.py").status_code == 404
    assert client.get("/console/static/console.css").status_code == 200


def test_file_listing_is_paginated(client: TestClient, loaded: Pipeline) -> None:
    ledger: Ledger = loaded.ledger
    total = ledger.file_report(loaded.list_ingestion()).height
    page = client.get("/console/files").text
    assert f'<span id="file-total">{total}</span>' in page
    assert page.count('class="file-key"') == min(total, 50)


def test_run_chart_scales_bars_and_line_to_their_own_axes() -> None:
    chart = run_chart([RunPoint("a", "t0", 2.0, 100), RunPoint("b", "t1", 1.0, 0)])
    plot_height = chart.plot_bottom - chart.plot_top
    assert [b.height for b in chart.bars] == [plot_height, plot_height / 2]
    assert chart.max_rows == 100 and chart.max_duration == 2.0
    first, second = chart.line.split()
    assert first.endswith(f",{chart.plot_top}.0") and second.endswith(f",{chart.plot_bottom}.0")
    assert run_chart([]).empty


def test_a_failed_run_shows_its_error(client: TestClient, loaded: Pipeline) -> None:
    from service.lease import leave_marker
    from service.ledger import RunRecord, utcnow

    # a run that could not take the lease records itself in a wake marker (service/ledger.py)
    record = RunRecord(
        run_id="failed-run-1",
        status="failed",
        trigger="api",
        started_at=utcnow(),
        finished_at=utcnow(),
        error="LeaseBusy: <another run> holds the lease",
    )
    leave_marker(loaded.processed, record.run_id, {"only_keys": [], "record": record.to_json()})
    page = client.get("/console/runs/failed-run-1").text
    assert '<span class="status failed" id="run-status">failed</span>' in page
    assert "LeaseBusy: &lt;another run&gt; holds the lease" in page  # escaped, never markup
    assert "failed-run-1" in client.get("/console").text


def test_an_empty_lake_is_a_page_not_an_error(client: TestClient) -> None:
    overview = client.get("/console")
    assert overview.status_code == 200
    assert overview.text.count("not written yet") == len(TABLE_PATHS)
    assert "No runs yet" in overview.text and "No finished runs yet" in overview.text
    table = client.get("/console/tables/dim_staff")
    assert table.status_code == 200 and "has not been written yet" in table.text
    assert client.get("/console/files").status_code == 200
