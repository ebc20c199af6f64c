"""The derived state a small run relies on instead of opening tables (service/catalog.py): the
fact index, the catalog's members, calendar and table summaries. It may lag the tables, never
lead them, and a lag must never duplicate or lose anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from service import queries
from service.catalog import CATALOG_KEY, Catalog
from service.fact_index import INDEX_ROOT, FactIndex
from service.lake import TABLE_PATHS
from service.maintenance import maintain
from service.storage import LocalStorage
from tests.service.test_maintenance import Runs
from transforms.fact_sales_order import SALES


def _scan_history(runs: Runs, order_id: int) -> pl.DataFrame:
    rows = runs.lake.read("fact_sales_order", where=pl.col("sales_order_id") == order_id)
    assert rows is not None
    return rows.sort(["last_updated", "sales_record_id"])


def _sample_ids(runs: Runs) -> list[int]:
    m = runs.manifest
    return [*m.updated_order_ids[:4], *m.deleted_order_ids[:2], 1, 399]


def test_history_from_the_index_equals_the_table_scan_before_and_after_maintenance(
    tmp_path: Path,
) -> None:
    runs = Runs(tmp_path)
    runs.run(5)
    for moment in ("after runs", "after maintenance"):
        for order_id in _sample_ids(runs):
            fast = queries._history_from_index(runs.lake, SALES, order_id)
            assert fast is not None, (moment, order_id)  # the index was trusted
            assert_frame_equal(
                fast.sort(["last_updated", "sales_record_id"]), _scan_history(runs, order_id)
            )
        no_such_sale = queries._history_from_index(runs.lake, SALES, 10**6)
        assert no_such_sale is not None  # empty
        runs.pipeline.maintain(30)  # compacts, then re-points the index at the new files
    catalog = Catalog.load(LocalStorage(runs.processed))
    assert catalog.facts["fact_sales_order"].index_version == runs.fact_version()
    # maintenance run outside the pipeline moves the table under the index: not trusted
    runs.run(1)
    maintain(runs.lake, retention_days=30)
    order_id = _sample_ids(runs)[0]
    assert queries._history_from_index(runs.lake, SALES, order_id) is None
    assert_frame_equal(queries.sale_history(runs.lake, order_id), _scan_history(runs, order_id))


def test_a_lagging_index_is_not_trusted_and_is_rebuilt(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.run(3)
    order_id = runs.manifest.updated_order_ids[0]
    before = _scan_history(runs, order_id)
    # as if a run died after its fact commit, before it wrote the index and the catalog:
    # roll the catalog back to an older one
    catalog_path = runs.processed / CATALOG_KEY
    stale = Catalog.load(LocalStorage(runs.processed))
    entry = stale.facts["fact_sales_order"]
    entry.index_version = (entry.index_version or 1) - 1
    stale.tables["fact_sales_order"].version -= 1
    stale.save(LocalStorage(runs.processed))
    assert queries._history_from_index(runs.lake, SALES, order_id) is None  # falls back to the scan
    assert_frame_equal(queries.sale_history(runs.lake, order_id), before)
    runs.run(2)  # the next run notices the lag, rebuilds the index and duplicates nothing
    facts = runs.lake.read("fact_sales_order")
    assert facts is not None
    assert facts.select("sales_order_id", "last_updated").is_duplicated().sum() == 0
    assert facts["sales_record_id"].is_unique().all()
    assert catalog_path.exists()
    assert queries._history_from_index(runs.lake, SALES, order_id) is not None


def test_losing_the_catalog_and_index_changes_nothing(tmp_path: Path) -> None:
    """A root whose derived state is gone (or written by an older version) must end with the
    same tables: members and calendar days are checked against the tables, not assumed."""
    whole, lost = Runs(tmp_path / "whole"), Runs(tmp_path / "lost")
    whole.run(6)
    lost.run(3)
    (lost.processed / CATALOG_KEY).unlink()
    shutil.rmtree(lost.processed / INDEX_ROOT)
    lost.run(3)
    for name in TABLE_PATHS:
        a, b = whole.lake.read(name), lost.lake.read(name)
        if a is None:  # a star these runs never touched: lost has none either
            assert b is None, name
            continue
        assert b is not None
        a, b = (f.drop("run_id", strict=False) for f in (a, b))
        assert_frame_equal(a.sort(a.columns), b.sort(b.columns), check_exact=True), name
    dates = lost.lake.read("dim_date")
    assert dates is not None and dates["date_id"].is_unique().all()


def test_the_recent_overlay_folds_into_its_buckets_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small runs add their index rows to one small overlay object (not to every bucket their
    orders fall in); past its limit it is folded into the buckets. Either way the index holds
    exactly the table's versions."""
    from service import fact_index

    monkeypatch.setattr(fact_index, "RECENT_MAX_ROWS", 30)
    runs = Runs(tmp_path, updates=8)
    runs.run(9)
    storage = LocalStorage(runs.processed)
    sales_index = FactIndex(storage, SALES, Catalog.load(storage).facts[SALES.name].index_prefix)
    recent = runs.processed / sales_index.recent_key
    if recent.exists():
        assert pl.read_parquet(recent).height <= 30 + 60  # folded when it passed the limit
    catalog = Catalog.load(storage)
    buckets = catalog.facts[SALES.name].index_buckets
    index = sales_index.read(buckets, buckets)
    facts = runs.lake.read("fact_sales_order", columns=SALES.index_key_columns)
    assert facts is not None
    key = ["sales_order_id", "last_updated"]
    assert index.height == facts.height  # every version once: none lost, none twice
    assert_frame_equal(
        index.select(SALES.index_key_columns).sort(key), facts.sort(key), check_dtypes=False
    )
    for order_id in _sample_ids(runs):
        fast = queries._history_from_index(runs.lake, SALES, order_id)
        assert fast is not None
        assert_frame_equal(
            fast.sort(["last_updated", "sales_record_id"]), _scan_history(runs, order_id)
        )
