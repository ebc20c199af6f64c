"""Large appends written by Polars and committed by us (service/lake.py `Lake._own_write`) give
the very tables delta-rs's own writes give, and a frame that does not match its table is left to
delta-rs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from service import lake as lake_module
from service.lake import ALL_PATHS
from service.pipeline import Pipeline
from service.synthetic import write_ingestion_tree

Make = Callable[..., Pipeline]


def _every_table(p: Pipeline) -> dict[str, pl.DataFrame]:
    out = {}
    for name in sorted(ALL_PATHS):
        if name in ("runs", "ledger"):  # run ids and times differ between any two roots
            continue
        frame = p.lake.read(name)
        if frame is None:
            continue
        frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
        out[name] = frame.sort(frame.columns)
    return out


def test_own_writes_give_the_same_tables_as_delta_rs(
    tmp_path: Path, make_pipeline: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingestion = tmp_path / "ingestion"
    write_ingestion_tree(ingestion, orders=3_000, updates=3, seed=5)  # all eleven tables
    by_delta_rs = make_pipeline(ingestion, tmp_path / "delta-rs")
    assert by_delta_rs.run().status == "succeeded"

    monkeypatch.setattr(lake_module, "OWN_WRITE_ROWS", 1)  # every append written by us
    own = make_pipeline(ingestion, tmp_path / "own")
    assert own.run().status == "succeeded"

    expected, got = _every_table(by_delta_rs), _every_table(own)
    assert got.keys() == expected.keys()
    assert len(got) > 20
    for name, frame in expected.items():
        assert got[name].equals(frame), name
    # the tables really were written by us, and delta-rs reads them as its own
    fact = DeltaTable(str(tmp_path / "own" / ALL_PATHS["fact_sales_order"]))
    engines = {entry.get("engineInfo") for entry in fact.history()}
    assert "totesys-transform" in engines
    read_fresh = pl.read_delta(str(tmp_path / "own" / ALL_PATHS["fact_sales_order"]))
    assert read_fresh.height == got["fact_sales_order"].height


def test_a_frame_unlike_its_table_is_appended_by_delta_rs(
    tmp_path: Path, make_pipeline: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake_module, "OWN_WRITE_ROWS", 1)
    p = make_pipeline(tmp_path / "ingestion", tmp_path / "processed")
    (tmp_path / "ingestion").mkdir()
    rows = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    name = "rejects"  # any table: created by the first append with the frame's schema
    assert p.lake.append(name, rows, "run-1") == 2
    reordered = pl.DataFrame({"b": ["z"], "a": [3]})  # the same columns, another order
    assert p.lake.append(name, reordered, "run-2") == 1
    table = p.lake.read(name)
    assert table is not None
    assert table.sort("a").rows() == [(1, "x"), (2, "y"), (3, "z")]
    history = DeltaTable(str(tmp_path / "processed" / ALL_PATHS[name])).history()
    engines = [entry.get("engineInfo", "") for entry in reversed(history)]
    assert engines[0] == "totesys-transform"  # ours: a new table takes the frame's schema
    assert engines[1] != "totesys-transform"  # delta-rs: the schema differs in order
