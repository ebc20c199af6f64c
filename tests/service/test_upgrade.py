"""A processed root written by the release before facts were declared (tests/fixtures/
release-2026-12-06, built by that release's code: see build_release_root.py) opens as it is:
its sales index and catalog are read, not rebuilt; the purchase and payment files it recorded
`skipped` are applied by the first run of this release (backfill), and the result equals a root
built from scratch (record ids aside)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from service import queries
from service.catalog import Catalog
from service.lake import TABLE_PATHS
from service.pipeline import Pipeline
from service.storage import LocalStorage
from tests.conftest import T0, IngestionTree, order
from transforms.fact_sales_order import SALES
from transforms.facts import FACTS

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "release-2026-12-06"
REBUILT = "rebuilding the fact index"


def _tables(pipeline: Pipeline, drop_record_ids: bool) -> dict[str, pl.DataFrame]:
    out = {}
    for name in TABLE_PATHS:
        frame = pipeline.lake.read(name)
        if frame is None:
            continue
        frame = frame.drop("run_id", strict=False)
        if drop_record_ids and name in FACTS:
            frame = frame.drop(FACTS[name].record_id)
        out[name] = frame.sort(frame.columns)
    return out


def test_an_old_root_is_read_as_it_is_and_backfills_the_skipped_files(
    tmp_path: Path, make_pipeline: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old"
    shutil.copytree(RELEASE, old)
    raw = json.loads((old / "processed/_state/catalog.json").read_text())
    assert "facts" not in raw and raw["fact_index_version"] == 0  # the old format
    assert Catalog.load(LocalStorage(old / "processed")).facts["fact_sales_order"].index_prefix == (
        "_state/fact_index/"
    )
    skipped = {
        r["source_file"]
        for r in pl.read_parquet(old / "processed/_state/files.parquet").iter_rows(named=True)
        if r["outcome"] == "skipped"
    }
    assert len(skipped) == 5

    caplog.set_level(logging.INFO)
    upgraded = make_pipeline(old / "ingestion", old / "processed")
    summary = upgraded.run()
    assert summary.status == "succeeded"
    assert {o.source_file for o in summary.files if o.outcome == "applied"} == skipped
    assert REBUILT not in caplog.text  # the sales index was read, not rebuilt

    catalog = Catalog.load(LocalStorage(old / "processed"))
    sales = catalog.facts["fact_sales_order"]
    assert sales.index_prefix == "_state/fact_index/"  # where the old release left it
    assert sales.index_version == catalog.tables["fact_sales_order"].version == 0
    for name in ("fact_purchase_order", "fact_payment"):
        assert catalog.facts[name].index_prefix == f"_state/fact_index/{name}/"
    history = queries._history_from_index(upgraded.lake, SALES, 2)
    assert history is not None and history.height == 2  # served by the old index

    # from scratch, the same files give the same tables (record ids aside)
    fresh = tmp_path / "fresh"
    shutil.copytree(RELEASE / "ingestion", fresh / "ingestion")
    scratch = make_pipeline(fresh / "ingestion", fresh / "processed")
    scratch.run()
    a, b = _tables(upgraded, True), _tables(scratch, True)
    assert set(a) == set(b) == set(TABLE_PATHS)
    for name in a:
        assert_frame_equal(a[name], b[name], check_exact=True)
    payments = upgraded.lake.read("fact_payment")
    assert payments is not None
    assert payments.filter(pl.col("paid")).height == 3 and payments.height == 10

    # the next run keeps using the old index: a sales update is looked up there
    tree = IngestionTree(old / "ingestion")
    at = T0 + timedelta(hours=3)
    tree.put("updated", "sales_order", at, [order(3, at, created=T0, units_sold=9)])
    caplog.clear()
    assert upgraded.run().count("applied") == 1
    assert REBUILT not in caplog.text
    facts = upgraded.lake.read("fact_sales_order")
    assert facts is not None and sorted(facts["sales_record_id"].to_list()) == [1, 2, 3, 4, 5]
