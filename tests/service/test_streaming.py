"""Large sales_order files applied in pieces (service/streaming.py) give exactly the tables and
rejects of the whole-file path, and memory that does not grow with the file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from service.pipeline import Pipeline
from service.settings import Settings
from tests.conftest import T0, IngestionTree, encode, order

Make = Callable[..., Pipeline]
H = timedelta(hours=1)
PIECE = 300  # bytes: every file below is cut into many pieces
SEPARATOR_IN_STRING = '}, {"sales_order_id": 999, "x": "'


def _baseline_records(count: int, at: Any) -> list[Any]:
    records: list[Any] = []
    for i in range(1, count + 1):
        record = order(i, at - H, units_sold=i)
        if i % 7 == 0:
            record["units_sold"] = "many"  # a bad value
        if i % 11 == 0:
            del record["created_at"]  # a missing required field
        if i % 5 == 0:
            record["note"] = SEPARATOR_IN_STRING  # a record separator inside a string
        records.append(record)
    # the same order again later in the file: a second version and a redelivered one
    records.append(order(3, at - H / 2, units_sold=33))
    records.append(order(3, at - H / 2, units_sold=34))
    return records


def _write(tree: IngestionTree, key: str, records: list[Any], shape: str, bad: bool) -> None:
    data = encode("sales_order", records, shape)
    if bad and shape == "jsonl":
        lines = data.split(b"\n")
        lines.insert(len(lines) // 2, b'{"sales_order_id": 77, "units_sold": ')  # not JSON
        lines.insert(len(lines) // 3, b"")  # a blank line: not a record
        lines.insert(len(lines) // 4, b"[1, 2]")  # JSON, but not an object
        data = b"\n".join(lines)
    elif bad:
        # an element that is not an object, in the middle of the array
        data = data.replace(b'}, {"sales_order_id": 40,', b'}, 17, {"sales_order_id": 40,', 1)
        assert b", 17, " in data
    tree.put_raw(key, data)


def _scenario(tree: IngestionTree, shape: str) -> None:
    tree.dimensions()
    key = f"baseline/sales_order-{T0.isoformat(timespec='microseconds')}.json"
    _write(tree, key, _baseline_records(60, T0), shape, bad=True)
    tree.put(
        "updated",
        "sales_order",
        T0 + H,
        [order(2, T0 + H, created=T0 - H, units_sold=5), order(61, T0 + H, design_id=9)],
    )
    # a clean later baseline lacking orders 1-9: deletions, against the fact index
    later = T0 + 3 * H
    kept = [order(i, T0 + 2 * H, created=T0 - H, units_sold=i + 1) for i in range(10, 70)]
    tree.put_raw(
        f"baseline/sales_order-{later.isoformat(timespec='microseconds')}.json",
        encode("sales_order", kept, shape),
    )


def _tables(p: Pipeline) -> dict[str, pl.DataFrame]:
    out = {}
    for name in (
        "fact_sales_order",
        "dim_date",
        "dim_staff",
        "dim_location",
        "dim_design",
        "dim_currency",
        "dim_counterparty",
        "rejects",
    ):
        frame = p.lake.read(name)
        if frame is None:
            assert name == "rejects"
            continue
        frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
        out[name] = frame.sort(frame.columns)
    files = p.ledger.files.frame.select(
        "source_file", "outcome", "records_read", "rows_rejected", "reason"
    )
    out["ledger"] = files.sort("source_file")
    return out


def _fact_data_files(p: Pipeline) -> int:
    handle = p.lake.table("fact_sales_order")
    assert handle is not None
    return len(handle.file_uris())


@pytest.mark.parametrize("shape", ["jsonl", "array", "wrapped"])
def test_pieces_give_the_same_tables_and_rejects_as_the_whole_file(
    tmp_path: Path, shape: str, make_pipeline: Make, caplog: pytest.LogCaptureFixture
) -> None:
    tree = IngestionTree(tmp_path / "ingestion")
    _scenario(tree, shape)
    whole = make_pipeline(processed=tmp_path / "whole")
    streamed = make_pipeline(processed=tmp_path / "streamed", chunk_bytes=PIECE)
    assert whole.run().status == "succeeded"
    summary = streamed.run()
    assert summary.status == "succeeded"
    assert "applied whole" not in caplog.text  # every file really went in pieces

    expected, got = _tables(whole), _tables(streamed)
    for name, frame in expected.items():
        assert got[name].equals(frame), name
    # the pieces really were pieces: one data file each, far more than the whole-file path
    assert _fact_data_files(streamed) > 5 * _fact_data_files(whole)
    fact = got["fact_sales_order"]
    deleted = fact.filter(pl.col("change_type") == "delete")["sales_order_id"]
    assert deleted.sort().to_list() == [1, 2, 3, 4, 5, 6, 8, 9]  # 7 was rejected
    rejects = got["rejects"]
    assert rejects.filter(pl.col("field") == "units_sold").height >= 8
    if shape == "jsonl":
        # the line numbers in the reasons are the file's, not the piece's
        data = tree.storage.read(rejects["source_file"][0])
        bad = rejects.filter(pl.col("field") == "<json>")
        assert bad.height == 2
        for reason, raw in zip(bad["reason"], bad["raw_value"], strict=True):
            line = int(reason.split("line ")[1].split(":")[0].split(" ")[0])
            assert data.split(b"\n")[line - 1].decode().strip() == raw


def test_an_order_out_of_time_order_across_pieces_is_applied_whole(
    tmp_path: Path, make_pipeline: Make
) -> None:
    tree = IngestionTree(tmp_path / "ingestion")
    tree.dimensions()
    records = [order(i, T0 - H) for i in range(1, 30)]
    records.append(order(2, T0 - 2 * H))  # an earlier version of order 2, pieces later
    tree.put("updated", "sales_order", T0, records)
    whole = make_pipeline(processed=tmp_path / "whole")
    streamed = make_pipeline(processed=tmp_path / "streamed", chunk_bytes=PIECE)
    whole.run()
    streamed.run()
    expected, got = _tables(whole), _tables(streamed)
    for name, frame in expected.items():
        assert got[name].equals(frame), name
    assert got.keys() == expected.keys()
    history = _tables(streamed)["fact_sales_order"].filter(pl.col("sales_order_id") == 2)
    assert history.sort("last_updated")["change_type"].to_list() == ["insert", "update"]


MEASURE = textwrap.dedent(
    """
    import json, sys, threading, time
    import psutil
    from service.pipeline import Pipeline
    from service.settings import Settings

    root, chunk_bytes = sys.argv[1], int(sys.argv[2])
    settings = Settings(
        ingestion_uri=root + "/ingestion", processed_uri=root + "/processed",
        chunk_bytes=chunk_bytes,
    )
    pipeline = Pipeline.from_settings(settings)
    me = psutil.Process()
    base = me.memory_info().rss
    peak, done = [base], []

    def sample():
        while not done:
            peak.append(me.memory_info().rss)
            time.sleep(0.005)

    threading.Thread(target=sample, daemon=True).start()
    summary = pipeline.run()
    done.append(1)
    assert summary.status == "succeeded", summary.error
    rows = sum(v for k, v in summary.rows_written.items() if k.startswith("fact_"))
    print(json.dumps({"growth": max(peak) - base, "rows": rows}))
    """
)
SMALL, LARGE = 30_000, 240_000  # orders in the one sales_order file: ~9 MB and ~75 MB


def peak_growth(root: Path, chunk_bytes: int) -> int:
    """Peak RSS above the RSS before the run, of a run in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(root), str(chunk_bytes)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    growth: int = result["growth"]
    return growth


# The dimensions a fact file finds applied before it: its run applies the fact file alone.
# (dim_transaction's source is as large as the payments: a dimension file is applied whole, so
# the transactions are applied by an earlier, unmeasured run, as they arrive before payments.)
DIMENSION_SOURCES = ("address", "counterparty", "currency", "department", "design", "staff")
RELATED = {"payment": ("payment_type", "transaction")}


@pytest.mark.parametrize("source", ["sales_order", "purchase_order", "payment"])
def test_memory_does_not_grow_with_the_file(tmp_path: Path, source: str) -> None:
    """Peak memory during a run over an 8x larger fact file (sales orders, purchase orders or
    payments) stays near the smaller one's (the whole-file path grows by a few times the file's
    size: > 150 MB more here)."""
    from service.synthetic import write_ingestion_tree

    growth = {}
    for orders in (SMALL, LARGE):
        root = tmp_path / str(orders)
        write_ingestion_tree(root / "ingestion", orders=orders, updates=0, seed=3)
        held = root / "held"
        held.mkdir()
        for path in sorted((root / "ingestion").rglob("*.json")):
            table = path.name.split("-", 1)[0]
            if table == source:
                path.rename(held / path.name)  # applied, measured, after the dimensions
            elif table not in (*DIMENSION_SOURCES, *RELATED.get(source, ())):
                path.unlink()
        settings = Settings(
            ingestion_uri=str(root / "ingestion"), processed_uri=str(root / "processed")
        )
        assert Pipeline.from_settings(settings).run().status == "succeeded"
        for path in held.iterdir():
            path.rename(root / "ingestion" / "baseline" / path.name)
        growth[orders] = peak_growth(root, chunk_bytes=1_000_000)
    assert growth[LARGE] < growth[SMALL] + 60e6, growth
