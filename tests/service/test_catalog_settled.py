"""A settled catalog (saved after a batch's last commit, unsettled before the next commit to a
public table) answers the table summaries without a check per table; otherwise they are checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from service import queries
from service.catalog import Catalog
from service.lake import TABLE_PATHS, Lake
from service.pipeline import Pipeline
from tests.conftest import T0, IngestionTree, order

Make = Callable[..., Pipeline]


def truth(p: Pipeline) -> dict[str, tuple[int, int]]:
    fresh = Lake(p.processed)
    return {
        name: (info.version, info.rows)
        for name in TABLE_PATHS
        if (info := fresh.info(name)) is not None
    }


def summaries(p: Pipeline) -> dict[str, tuple[int, int]]:
    return {i.name: (i.version, i.rows) for i in queries.table_infos(Lake(p.processed))}


def test_settled_after_a_run_and_exact_without_checks(
    tree: IngestionTree, make_pipeline: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0)])
    p = make_pipeline()
    p.run()
    catalog = Catalog.load(p.processed)
    assert catalog.settled
    assert "fact_purchase_order" in catalog.absent and "dim_transaction_history" in catalog.absent
    assert set(catalog.absent) | (set(catalog.tables) & set(TABLE_PATHS)) == set(TABLE_PATHS)
    expected = truth(p)
    checks: list[str] = []
    exists = type(p.processed).exists

    def counted(self: Any, key: str) -> bool:
        checks.append(key)
        return exists(self, key)

    monkeypatch.setattr(type(p.processed), "exists", counted)
    monkeypatch.setattr(Lake, "info", lambda *a, **k: pytest.fail("opened a table"))
    assert summaries(p) == expected
    assert checks == []


def test_a_commit_after_the_catalog_unsettles_it_first(
    tree: IngestionTree, make_pipeline: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.dimensions()
    p = make_pipeline()
    p.run()
    assert Catalog.load(p.processed).settled
    tree.put("updated", "sales_order", T0, [order(1, T0)])
    append = Lake.append

    def crash_after_dim_date(self: Lake, name: str, frame: pl.DataFrame, run_id: Any) -> int:
        written = append(self, name, frame, run_id)
        if name == "dim_date":
            raise RuntimeError("crash after a commit, before the catalog")
        return written

    monkeypatch.setattr(Lake, "append", crash_after_dim_date)
    with pytest.raises(RuntimeError):
        p.run()
    monkeypatch.undo()
    catalog = Catalog.load(p.processed)
    assert not catalog.settled  # written before the first commit of the batch
    assert "fact_sales_order" not in catalog.tables  # it lags ...
    assert summaries(p) == truth(p)  # ... and readers check: the fact table is shown
    p.run()
    assert Catalog.load(p.processed).settled and summaries(p) == truth(p)


def test_maintenance_leaves_it_settled_and_exact(tree: IngestionTree, make_pipeline: Make) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0)])
    p = make_pipeline()
    p.run()
    p.maintain(1)
    assert Catalog.load(p.processed).settled
    assert summaries(p) == truth(p)
