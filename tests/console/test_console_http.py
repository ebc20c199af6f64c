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
from tests.conftest import IngestionTree
from tests.star_files import load_demo_stars

PAGES = [
    "/console",
    "/console/files",
    "/console/files?status=rejected",
    "/console/tables/fact_sales_order",
    "/console/sales-orders/1",
    "/console/dimensions/staff/1",
]
# Pages of the other stars (the `loaded` lake has none: they would be 404 there).
STAR_PAGES = [
    "/console/purchase-orders/1",
    "/console/payments/1",
    "/console/find?fact=payments&id=1",
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
    for path in [*PAGES, *STAR_PAGES, f"/console/runs/{run_id}"]:
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


# -- the Purchases and Payments stars ---------------------------------------------------------
@pytest.fixture
def stars(tree: IngestionTree, loaded: Pipeline) -> Pipeline:
    """The sales demo, then a run applying tests/star_files.py's purchase orders and payments."""
    load_demo_stars(tree)
    summary = loaded.run(trigger="test")
    assert summary.status == "succeeded", summary.error
    return loaded


def _changes(html: str) -> list[str]:
    return re.findall(r'<span class="change (\w+)">', html)


def test_overview_shows_every_table(client: TestClient, stars: Pipeline) -> None:
    """The eleven star tables and the seven dimension histories."""
    from service.lake import TABLE_PATHS

    overview = client.get("/console").text
    tables = overview[overview.index('id="tables"') :]
    linked = re.findall(r'<a href="/console/tables/(\w+)">', tables)
    assert linked == list(TABLE_PATHS) and len(linked) == 11 + 7
    assert "not written yet" not in tables
    tabs = client.get("/console/tables/dim_payment_type").text
    for name in TABLE_PATHS:
        assert f'href="/console/tables/{name}"' in tabs


def test_purchase_order_timeline_and_state(client: TestClient, stars: Pipeline) -> None:
    page = client.get("/console/purchase-orders/1")
    assert page.status_code == 200
    assert "<h1>Purchase order 1</h1>" in page.text
    assert _changes(page.text) == ["insert", "update"]
    assert '<td class="changed">150</td>' in page.text  # item_quantity 101 -> 150
    assert "<th>item_unit_price</th>" in page.text and "<th>units_sold</th>" not in page.text
    assert "Live: version <strong>4</strong>" in page.text  # purchase_record_id of the update
    then = client.get("/console/purchase-orders/1", params={"as_of": "2024-11-14T10:00"}).text
    assert "Live: version <strong>1</strong>" in then
    assert re.search(r'<tr class="version insert as-of">', then)
    deleted = client.get("/console/purchase-orders/3").text
    assert _changes(deleted) == ["insert", "delete"] and "Deleted at 2024-11-14 13:00:00" in deleted
    early = client.get("/console/purchase-orders/1", params={"as_of": "2020-01-01T00:00"}).text
    assert "The purchase order did not exist yet" in early


def test_payment_timeline_shows_it_paid_later(client: TestClient, stars: Pipeline) -> None:
    page = client.get("/console/payments/2").text
    assert "<h1>Payment 2</h1>" in page and _changes(page) == ["insert", "update"]
    assert '<td class="changed">True</td>' in page  # paid: False -> True
    assert "<dt>paid</dt><dd>True</dd>" in page
    unpaid = client.get("/console/payments/2", params={"as_of": "2024-11-14T11:00:00"}).text
    assert "<dt>paid</dt><dd>False</dd>" in unpaid
    assert 'action="/console/payments/2"' in page  # the as-of form stays on this payment
    assert '<option value="payments" selected>' in page  # the lookup form too
    assert "company_ac_number" not in page and "52923196" not in page


def test_fact_pages_refuse_what_they_cannot_show(client: TestClient, stars: Pipeline) -> None:
    for path in STAR_PAGES:
        assert client.get(path).status_code == 200, path
    assert client.get("/console/payments/999").status_code == 404
    assert "payment 999" in client.get("/console/payments/999").text
    assert client.get("/console/purchase-orders/1?as_of=soon").status_code == 422
    assert client.get("/console/payments/abc").status_code == 422
    assert client.get(f"/console/payments/{2**31}").status_code == 422


def test_links_lead_to_the_fact_pages(client: TestClient, stars: Pipeline) -> None:
    payments = client.get("/console/tables/fact_payment").text
    assert '<a href="/console/payments/1">1</a>' in payments
    transactions = client.get("/console/tables/dim_transaction").text
    assert '<a href="/console/purchase-orders/1">1</a>' in transactions
    assert '<a href="/console/sales-orders/1">1</a>' in transactions
    assert 'href="/console/sales-orders/None"' not in transactions  # a null order id: no link
    header = client.get("/console").text
    for route in ("sales-orders", "purchase-orders", "payments"):
        assert f'<option value="{route}">' in header
    found = client.get(
        "/console/find", params={"fact": "payments", "id": 2}, follow_redirects=False
    )
    assert found.status_code == 303 and found.headers["location"] == "/console/payments/2"
    sale = client.get("/console/sales-orders", params={"id": 1}, follow_redirects=False)
    assert sale.headers["location"] == "/console/sales-orders/1"
    assert client.get("/console/find", params={"fact": "refunds", "id": 1}).status_code == 404


# -- the API's docs in a browser -------------------------------------------------------------
def test_docs_work_in_a_browser_through_the_console_login(
    browser_like: TestClient, loaded: Pipeline
) -> None:
    """A browser cannot send the bearer header, so with a token set Swagger UI could not load
    /openapi.json: a browser opening /docs is sent to the console's copy, behind its login, and
    that copy loads the document with the login cookie."""
    html = {"Accept": "text/html,application/xhtml+xml"}
    for path, copy in (("/docs", "/console/docs"), ("/redoc", "/console/redoc")):
        answer = browser_like.get(path, headers=html)
        assert answer.status_code == 303 and answer.headers["location"] == copy
        # not logged in yet: the copy asks for the login, and comes back to itself
        to_login = browser_like.get(copy)
        assert to_login.status_code == 303
        assert to_login.headers["location"] == f"/console/login?next=%2Fconsole%2F{copy[9:]}"
    assert browser_like.get("/console/openapi.json").status_code == 303
    # a client that is not a browser keeps the plain 401 (and never a redirect)
    assert browser_like.get("/docs").status_code == 401
    assert browser_like.get("/openapi.json", headers=html).status_code == 401

    log_in(browser_like)
    page = browser_like.get("/console/docs")
    assert page.status_code == 200 and "'/console/openapi.json'" in page.text
    document = browser_like.get("/console/openapi.json")
    assert document.status_code == 200
    assert "/payments/{payment_id}/history" in document.json()["paths"]
    assert (
        document.json()
        == browser_like.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    )
    # the cookie still opens no API route: those take the header only
    assert browser_like.get("/openapi.json").status_code == 401
    assert browser_like.get("/runs").status_code == 401


def test_a_forged_console_cookie_opens_no_docs(browser_like: TestClient, loaded: Pipeline) -> None:
    browser_like.cookies.set("totesys_console_token", "1.forged.deadbeef", path="/console")
    assert browser_like.get("/console/openapi.json").status_code == 303
