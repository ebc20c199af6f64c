"""A fact is a declaration: a test declares a small extra fact (refunds, over dim_currency) and the
generic engine runs it end to end — versions, redelivery, a deletion, an inferred member, the
calendar, its own index and catalog entry — whole and in pieces alike."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from service import lake as lake_module
from service.catalog import Catalog
from service.pipeline import Pipeline
from service.storage import LocalStorage
from tests.conftest import T0, IngestionTree, ts
from transforms import facts
from transforms.fact_spec import FactSpec
from transforms.schemas import FACT_LINEAGE, PRICE, SOURCE_TABLES, TIMESTAMP, SourceTable

REFUND_SOURCE = SourceTable(
    "refund",
    "refund_id",
    {
        "refund_id": pl.Int32(),
        "created_at": TIMESTAMP,
        "last_updated": TIMESTAMP,
        "currency_id": pl.Int32(),
        "refund_amount": PRICE,
        "refund_date": pl.Date(),
    },
)
REFUND = FactSpec(
    name="fact_refund",
    source="refund",
    id_column="refund_id",
    record_id="refund_record_id",
    path="fact/refund",
    schema={
        "refund_record_id": pl.Int64(),
        "refund_id": pl.Int32(),
        "created_date": pl.Date(),
        "created_time": pl.String(),
        "last_updated_date": pl.Date(),
        "last_updated_time": pl.String(),
        "currency_id": pl.Int32(),
        "amount": PRICE,
        "refund_date": pl.Date(),
        **FACT_LINEAGE,
    },
    references={"currency_id": "dim_currency"},
    dates=("created_date", "last_updated_date", "refund_date"),
    label="refund",
    route="refunds",
    renamed={"amount": "refund_amount"},
)


@pytest.fixture
def refund_declared(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Declare the extra fact the way a new fact is declared: its source table, its FactSpec,
    and the registries the lake derives from the declarations."""
    monkeypatch.setitem(SOURCE_TABLES, "refund", REFUND_SOURCE)
    monkeypatch.setitem(facts.FACTS, REFUND.name, REFUND)
    monkeypatch.setitem(facts.FACTS_BY_SOURCE, REFUND.source, REFUND)
    for registry, value in (
        (lake_module.TABLE_PATHS, REFUND.path),
        (lake_module.ALL_PATHS, REFUND.path),
        (lake_module.TABLE_SCHEMAS, REFUND.schema),
    ):
        monkeypatch.setitem(registry, REFUND.name, value)  # type: ignore[arg-type]
    yield


def refund(refund_id: int, at: datetime, amount: float = 10.0, **kw: Any) -> dict[str, Any]:
    return {
        "refund_id": refund_id,
        "created_at": ts(T0 - timedelta(days=1)),
        "last_updated": ts(at),
        "currency_id": 1,
        "refund_amount": amount,
        "refund_date": "2024-11-30",
        **kw,
    }


def _apply_refunds(tree: IngestionTree, pipeline: Pipeline) -> list[str]:
    tree.dimensions()
    first = [refund(1, T0), refund(2, T0), refund(3, T0, currency_id=99, refund_date="2031-01-02")]
    keys = [tree.put("baseline", "refund", T0, first)]
    pipeline.run()
    # an update of refund 1, redelivered in a second file, and a later baseline without refund 2
    later = T0 + timedelta(hours=1)
    keys.append(tree.put("updated", "refund", later, [refund(1, later, amount=12.5)]))
    keys.append(
        tree.put("updated", "refund", later + timedelta(minutes=1), [refund(1, later, 12.5)])
    )
    snapshot_at = T0 + timedelta(hours=2)
    keys.append(
        tree.put(
            "baseline",
            "refund",
            snapshot_at,
            [refund(1, later, 12.5), refund(3, T0, currency_id=99, refund_date="2031-01-02")],
        )
    )
    pipeline.run()
    return keys


def _check_refunds(processed: Path, pipeline: Pipeline, keys: list[str]) -> pl.DataFrame:
    table = pipeline.lake.read("fact_refund")
    assert table is not None
    rows = table.sort("refund_record_id")
    assert rows.columns == list(REFUND.schema)
    # one insert per refund, the update once (redelivery stores nothing twice), one deletion
    assert rows.select("refund_id", "change_type").rows() == [
        (1, "insert"),
        (2, "insert"),
        (3, "insert"),
        (1, "update"),
        (2, "delete"),
    ]
    assert rows["refund_record_id"].to_list() == [1, 2, 3, 4, 5]  # application order
    deleted = rows.row(4, named=True)
    assert deleted["source_file"] == keys[3] and deleted["amount"] == 10  # last known values
    assert rows.filter(pl.col("change_type") == "update")["amount"].to_list() == [12.5]
    # the unknown currency is an inferred member; the calendar covers the far refund date
    currency = pipeline.lake.read("dim_currency")
    assert currency is not None
    inferred = currency.filter(pl.col("currency_id") == 99).row(0, named=True)
    assert inferred["is_inferred"] and inferred["currency_code"] == "XXX"
    dates = pipeline.lake.read("dim_date")
    assert dates is not None
    assert dates["date_id"].max() == datetime(2031, 1, 2).date()
    assert dates["date_id"].min() <= (T0 - timedelta(days=1)).date()
    assert dates.height == (dates["date_id"].max() - dates["date_id"].min()).days + 1
    # its own index and catalog entry
    catalog = Catalog.load(LocalStorage(processed))
    entry = catalog.facts["fact_refund"]
    assert entry.index_prefix == "_state/fact_index/fact_refund/"
    assert entry.next_record_id == 6
    assert entry.index_version == catalog.tables["fact_refund"].version
    assert any((processed / "_state/fact_index/fact_refund").glob("*.parquet"))
    return rows.drop("run_id")


def test_a_declared_fact_runs_end_to_end(
    refund_declared: None,
    tree: IngestionTree,
    make_pipeline: Callable[..., Pipeline],
    tmp_path: Path,
) -> None:
    pipeline = make_pipeline()
    keys = _apply_refunds(tree, pipeline)
    whole = _check_refunds(tmp_path / "processed", pipeline, keys)
    again = make_pipeline().run()  # nothing pending: a re-run changes nothing
    assert again.count("applied") == 0
    assert _check_refunds(tmp_path / "processed", pipeline, keys).equals(whole)


def test_a_declared_fact_streams_in_pieces_like_the_whole_file(
    refund_declared: None,
    tmp_path: Path,
    make_pipeline: Callable[..., Pipeline],
    caplog: pytest.LogCaptureFixture,
) -> None:
    results = []
    for name, chunk_bytes in (("whole", 1 << 30), ("pieces", 1024)):
        tree = IngestionTree(tmp_path / name / "ingestion")
        processed = tmp_path / name / "processed"
        pipeline = make_pipeline(tree.root, processed, chunk_bytes=chunk_bytes)
        tree.dimensions()
        many = [refund(i, T0 + timedelta(seconds=i), amount=i) for i in range(1, 400)]
        tree.put("baseline", "refund", T0 + timedelta(hours=1), many)
        summary = pipeline.run()
        assert summary.count("applied") == 7, json.dumps(summary.to_dict(), default=str)
        table = pipeline.lake.read("fact_refund")
        assert table is not None and table.height == 399
        results.append(table.drop("run_id").sort("refund_record_id"))
    assert results[0].equals(results[1])
    assert "applied whole" not in caplog.text  # the pieces path really ran
    assert results[1]["source_file"].n_unique() == 1
