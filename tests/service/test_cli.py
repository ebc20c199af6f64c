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
    (tmp_path / "in").mkdir()
    proc = totesys("run", "--ingestion", str(tmp_path / "in"), "--processed", str(blocker))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: run failed"), proc.stderr
    missing = totesys("history", "1", "--processed", str(tmp_path / "empty"), "--version", "3")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad_scheme = totesys("tables", "--processed", "ftp://somewhere/x")
    assert bad_scheme.returncode == 1
    assert bad_scheme.stderr.strip().splitlines() == [
        "error: ValueError: unsupported storage URI 'ftp://somewhere/x': use a local path or "
        "s3://bucket/prefix"
    ]


def one_error_line(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_roots_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    ingestion, processed = tmp_path / "ingestion", tmp_path / "processed"
    line = one_error_line(
        totesys("run", "--ingestion", str(ingestion), "--processed", str(processed))
    )
    assert line == f"error: ingestion root {ingestion} does not exist"
    ingestion.mkdir()
    inside = ingestion / "processed"
    line = one_error_line(totesys("run", "--ingestion", str(ingestion), "--processed", str(inside)))
    assert "is inside the ingestion root" in line
    assert not processed.exists() and not inside.exists()
    for command in (["tables"], ["current"], ["history", "1"]):
        line = one_error_line(totesys(*command, "--processed", str(processed)))
        assert line.startswith(f"error: processed root {processed} does not exist"), line


def test_as_of_takes_a_zone_and_versions_are_not_negative(
    tree: IngestionTree, tmp_path: Path
) -> None:
    from datetime import timedelta

    h = timedelta(hours=1)
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0 - h)])
    tree.put("updated", "sales_order", T0 + h, [order(1, T0 + h, created=T0 - h, units_sold=9)])
    processed = str(tmp_path / "processed")
    as_json(totesys("run", "--ingestion", str(tree.root), "--processed", processed, "--json"))

    def units_as_of(moment: str) -> tuple[Any, Any]:
        result = as_json(totesys("current", "--processed", processed, "--as-of", moment, "--json"))
        return result["as_of"], [s["units_sold"] for s in result["sales"]]

    # 10:30 in UTC, written three ways; before the update at 11:00
    assert units_as_of("2024-11-14T10:30:00") == ("2024-11-14T10:30:00", [1001])
    assert units_as_of("2024-11-14T10:30:00Z") == ("2024-11-14T10:30:00", [1001])
    assert units_as_of("2024-11-14T11:30:00+01:00") == ("2024-11-14T10:30:00", [1001])
    assert units_as_of("2024-11-14T11:30:00+00:00") == ("2024-11-14T11:30:00", [9])
    bad = totesys("current", "--processed", processed, "--as-of", "yesterday")
    assert bad.returncode == 2 and "not an ISO 8601 time" in bad.stderr
    for command in (["history", "1"], ["current"], ["tables"]):
        negative = totesys(*command, "--processed", processed, "--version", "-1")
        assert negative.returncode == 2, negative.stderr
        assert "Invalid value for '--version': Input should be greater than or equal to 0" in (
            negative.stderr
        )
    beyond = totesys("history", "1", "--processed", processed, "--version", "99")
    assert "no version 99" in one_error_line(beyond)


def test_ctrl_c_is_one_line_and_the_run_is_recorded_interrupted(tmp_path: Path) -> None:
    import signal
    import time

    from service.lake import Lake
    from service.ledger import Ledger
    from service.storage import LocalStorage
    from service.synthetic import write_ingestion_tree

    ingestion, processed = tmp_path / "ingestion", tmp_path / "processed"
    write_ingestion_tree(ingestion, orders=60_000, updates=3, seed=5)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "run",
            "--ingestion",
            str(ingestion),
            "--processed",
            str(processed),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = processed / "_state" / "runs" / "index.json"
    deadline = time.monotonic() + 120
    while not runs.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the run has recorded itself: it is past start-up
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted: run "), stderr
    run_id = lines[0].split()[2]
    record = Ledger(Lake(LocalStorage(processed))).run(run_id)
    assert record is not None and record.status == "interrupted"
    # the next run applies what the interrupted one left
    after = as_json(
        totesys("run", "--ingestion", str(ingestion), "--processed", processed.as_posix(), "--json")
    )
    assert after["status"] == "succeeded"
