"""The console's page of a dimension member: its states, over a real pipeline run."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from service.pipeline import Pipeline
from tests.api.test_dimensions import renamed  # noqa: F401  (the fixture)


def cells(html: str, table_id: str) -> list[list[str]]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr class=\"version[^\"]*\">(.*?)</tr>", body, re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]


def test_a_staff_members_page_shows_each_state(client: TestClient, renamed: Pipeline) -> None:  # noqa: F811
    page = client.get("/console/dimensions/staff/2")
    assert page.status_code == 200
    rows = cells(page.text, "states")
    assert [r[0] for r in rows] == ["2022-11-03 14:20:49.962000", "2024-11-14 12:00:00"]
    assert [r[1] for r in rows] == ["2024-11-14 12:00:00", ""]
    assert [r[2] for r in rows] == ["", "yes"]
    assert "Sales" in rows[0] and "Renamed" in rows[1]
    # the rename is highlighted on the state it began
    assert 'class="changed">Renamed<' in page.text
    assert "dim_staff_history" in page.text
    assert client.get("/console/dimensions/dim_staff/2").text.count("Renamed") >= 2


def test_finding_a_member_and_missing_ones(client: TestClient, renamed: Pipeline) -> None:  # noqa: F811
    found = client.get("/console/dimensions?name=counterparty&id=1", follow_redirects=False)
    assert found.status_code == 303
    assert found.headers["location"] == "/console/dimensions/counterparty/1"
    assert client.get("/console/dimensions/counterparty/1").status_code == 200
    assert client.get("/console/dimensions?name=nope&id=1").status_code == 404
    assert client.get("/console/dimensions/staff/999").status_code == 404
    assert client.get("/console/dimensions/staff/77").status_code == 404  # a placeholder
    assert client.get("/console/dimensions/date/1").status_code == 404


def test_an_out_of_range_member_is_refused(client: TestClient, renamed: Pipeline) -> None:  # noqa: F811
    assert client.get(f"/console/dimensions/staff/{2**40}").status_code == 422
    assert client.get("/console/dimensions/staff/-1").status_code == 422
