"""The operator console over s3:// roots (moto server on loopback): what `totesys serve
--processed s3://...` on a laptop shows of production, buttons included."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from service.api import background
from service.api.app import create_app
from tests.conftest import T0, dimension_records, encode, order
from tests.s3.conftest import S3Env
from tests.star_files import load_demo_stars

pytestmark = pytest.mark.xdist_group("moto")

TOKEN = "s3-console-token-0123456789"
H = timedelta(hours=1)


def key(kind: str, table: str, hours: int) -> str:
    return f"{kind}/{table}-{(T0 + hours * H).isoformat(timespec='microseconds')}.json"


def test_console_pages_and_buttons_on_s3_roots(moto_s3: S3Env) -> None:
    pipeline = moto_s3.pipeline()
    for table, records in dimension_records().items():
        pipeline.ingestion.write(key("baseline", table, 0), encode(table, records))
    pipeline.ingestion.write(
        key("baseline", "sales_order", 0), encode("sales_order", [order(1, T0), order(2, T0)])
    )
    pipeline.ingestion.write(
        key("updated", "sales_order", 1),
        encode("sales_order", [order(1, T0 + H, created=T0, units_sold=9)]),
    )
    load_demo_stars(pipeline.ingestion)  # purchase orders and payments too
    broken = key("updated", "sales_order", 2)
    pipeline.ingestion.write(broken, b"[{")
    summary = pipeline.run(trigger="test")
    assert summary.status == "succeeded" and summary.count("rejected") == 1

    app = create_app(moto_s3.settings(api_token=TOKEN))
    app.state.dispatcher = background.execute  # the job runs within the request
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        overview = http.get("/console")
        assert overview.status_code == 200
        assert summary.run_id in overview.text
        assert ">fact_sales_order</a>" in overview.text and "not written yet" not in overview.text

        run = http.get(f"/console/runs/{summary.run_id}").text
        assert broken in run and "not valid JSON" in run

        rejected = http.get("/console/files", params={"status": "rejected"}).text
        assert re.findall(r'class="file-key">([^<]+)<', rejected) == [broken]

        sale = http.get("/console/sales-orders/1").text
        assert re.findall(r'class="change (\w+)"', sale) == ["insert", "update"]
        payment = http.get("/console/payments/2").text
        assert re.findall(r'class="change (\w+)"', payment) == ["insert", "update"]
        table = http.get("/console/tables/fact_sales_order", params={"version": 0}).text
        assert '<span id="shown-version">0</span>' in table

        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', overview.text)
        assert csrf
        answer = http.post("/console/reprocess", data={"csrf": csrf.group(1), "key": broken})
        assert answer.status_code == 200  # followed to the new run's page
        assert "reprocess" in answer.text and broken in answer.text
    assert pipeline.ledger.runs()[0].trigger == "reprocess"
