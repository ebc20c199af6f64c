"""The `totesys` command as a user runs it: a real process, stdout parsed, exit codes checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import T0, IngestionTree, order

ROOT = Path(__file__).resolve().parents[2]


def totesys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # stdout holds the one JSON object, logs go to stderr


def test_run_json_history_current_tables_and_time_travel(
    tree: IngestionTree, tmp_path: Path
) -> None:
    from datetime import timedelta

    h = timedelta(hours=1)
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0 - h), order(2, T0 - h)])
    bad = tree.put_raw("updated/sales_order-2024-11-14T10:30:00.json", b"{not json")
    processed = str(tmp_path / "processed")
    # the ingestion root from the environment, the processed root from the option
    env = {"TOTESYS_INGESTION_URI": str(tree.root)}
    first = as_json(totesys("run", "--processed", processed, "--json", env=env))
    assert first["status"] == "succeeded"
    assert first["files_applied"] == 7 and first["files_rejected"] == 1
    assert first["rows_written"]["fact_sales_order"] == 2
    assert [item["key"] for item in first["rejected_content"]] == [bad]

    tree.put("updated", "sales_order", T0 + h, [order(1, T0 + h, created=T0 - h, units_sold=9)])
    second = as_json(totesys("run", "--processed", processed, "--json", env=env))
    assert second["files_applied"] == 1 and second["rows_written"] == {"fact_sales_order": 1}

    history = as_json(totesys("history", "1", "--processed", processed, "--json"))
    assert [v["change_type"] for v in history["versions"]] == ["insert", "update"]
    assert [v["units_sold"] for v in history["versions"]] == [1001, 9]
    assert history["versions"][0]["unit_price"] == "2.50"  # decimals stay exact

    # time travel: the fact table's first version holds only the baseline
    old = as_json(totesys("history", "1", "--processed", processed, "--version", "0", "--json"))
    assert [v["units_sold"] for v in old["versions"]] == [1001]
    as_of = as_json(
        totesys("current", "--processed", processed, "--as-of", "2024-11-14T10:00:00", "--json")
    )
    assert {s["sales_order_id"]: s["units_sold"] for s in as_of["sales"]} == {1: 1001, 2: 1002}
    now = as_json(totesys("current", "--processed", processed, "--json"))
    assert {s["sales_order_id"]: s["units_sold"] for s in now["sales"]} == {1: 9, 2: 1002}

    tables = {t["name"]: t for t in as_json(totesys("tables", "--processed", processed, "--json"))}
    assert tables["fact_sales_order"]["version"] == 1 and tables["fact_sales_order"]["rows"] == 3
    at_zero = as_json(totesys("tables", "--processed", processed, "--version", "0", "--json"))
    assert {t["name"]: t["rows"] for t in at_zero}["fact_sales_order"] == 2

    # a third run has nothing to do and commits nothing
    third = as_json(totesys("run", "--processed", processed, "--json", env=env))
    assert third["files"] == [] and third["rows_written"] == {}
    again = {
        t["name"]: t["version"]
        for t in as_json(totesys("tables", "--processed", processed, "--json"))
    }
    assert again == {name: t["version"] for name, t in tables.items()}


def test_errors_are_one_clear_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the processed root should be")
    proc = totesys("run", "--ingestion", str(tmp_path / "in"), "--processed", str(blocker))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: run failed"), proc.stderr
    missing = totesys("history", "1", "--processed", str(tmp_path / "empty"), "--version", "3")
    assert missing.returncode == 1 and "no version 3" in missing.stderr
    bad_scheme = totesys("tables", "--processed", "ftp://somewhere/x")
    assert bad_scheme.returncode == 1
    assert bad_scheme.stderr.strip().splitlines() == [
        "error: ValueError: unsupported storage URI 'ftp://somewhere/x': use a local path or "
        "s3://bucket/prefix"
    ]
