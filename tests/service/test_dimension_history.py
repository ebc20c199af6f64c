"""Dimension history end to end: real pipeline runs on local Delta tables (issue 20)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.lake import Lake
from service.pipeline import Pipeline
from tests.conftest import T0, IngestionTree, dimension_records, order, ts
from transforms.dimension_history import HISTORIES, history_name
from transforms.dimensions import DIMENSIONS
from transforms.schemas import SOURCE_TABLES

Make = Callable[..., Pipeline]
H = timedelta(hours=1)
BASE = datetime(2022, 11, 3, 14, 20, 49, 962000)  # dimension_records' last_updated


def read(p: Pipeline, name: str) -> pl.DataFrame:
    frame = p.lake.read(name)
    assert frame is not None, name
    return frame


def history(p: Pipeline, dimension: str) -> pl.DataFrame:
    key = DIMENSIONS[dimension].key
    return read(p, history_name(dimension)).sort(key, "valid_from")


def record(table: str, ident: int, at: datetime, **changes: Any) -> dict[str, Any]:
    """A source row of dimension_records() with changes, last updated at `at`."""
    key = {"staff": "staff_id", "department": "department_id", "address": "address_id"}
    key.update(counterparty="counterparty_id", currency="currency_id", design="design_id")
    row = next(r for r in dimension_records()[table] if r[key[table]] == ident)
    return {**row, **changes, "last_updated": ts(at)}


# The changes of the synthetic updates, each its own file (named by its time).
UPDATES: list[tuple[str, list[dict[str, Any]]]] = [
    ("department", [record("department", 1, T0 + 2 * H, department_name="Sales & Marketing")]),
    ("address", [record("address", 1, T0 + 3 * H, city="York", phone="099")]),
    ("staff", [record("staff", 3, T0 + 4 * H, department_id=1)]),  # staff 3 moves to dept 1
    ("department", [record("department", 2, T0 + 5 * H, manager="New")]),  # not shown
    ("design", [record("design", 2, T0 + 6 * H, design_name="Steel")]),
    ("currency", [record("currency", 2, T0 + 7 * H, currency_code="EUR")]),
    ("counterparty", [record("counterparty", 2, T0 + 8 * H, legal_address_id=3)]),
]


def put_updates(tree: IngestionTree, which: list[int]) -> None:
    for i in which:
        table, rows = UPDATES[i]
        tree.put("updated", table, T0 + (10 + i) * H, rows)


def assert_current_rows_equal_dimensions(p: Pipeline) -> None:
    """Issue 20 point 4: the current states are the dimension's rows for every real member."""
    for name, spec in DIMENSIONS.items():
        if not p.lake.exists(name):
            continue
        hist = read(p, history_name(name))
        current = hist.filter(pl.col("is_current")).select(list(spec.schema)).sort(spec.key)
        real = read(p, name).filter(pl.col(spec.key).is_in(hist[spec.key].implode()))
        assert current.equals(real.sort(spec.key)), name
        assert current[spec.key].is_unique().all()
        # every real member (a source row arrived) has a history; placeholders have none
        mirror = read(p, f"source_{spec.sources[0]}")
        assert set(hist[spec.key]) == set(mirror[SOURCE_TABLES[spec.sources[0]].key]), name


def test_states_in_business_time(tree: IngestionTree, make_pipeline: Make) -> None:
    tree.dimensions()
    put_updates(tree, list(range(len(UPDATES))))
    p = make_pipeline()
    assert p.run().status == "succeeded"
    staff = history(p, "dim_staff")
    got = staff.select("staff_id", "department_name", "valid_from", "valid_to", "is_current")
    rename, move = T0 + 2 * H, T0 + 4 * H
    assert got.rows() == [
        (1, "Purchasing", BASE, None, True),  # dept 2: its manager change shows nothing
        (2, "Sales", BASE, rename, False),
        (2, "Sales & Marketing", rename, None, True),  # the rename, from its own time
        (3, "Purchasing", BASE, move, False),
        (3, "Sales & Marketing", move, None, True),  # the move
    ]
    counterparty = history(p, "dim_counterparty")
    assert counterparty.select(
        "counterparty_id",
        "counterparty_legal_city",
        "counterparty_legal_phone_number",
        "valid_from",
    ).rows() == [
        (1, "Leeds", "01", BASE),
        (1, "York", "099", T0 + 3 * H),  # its address changed
        (2, "Leeds", "02", BASE),
        (2, "Leeds", "03", T0 + 8 * H),  # it moved to address 3
    ]
    location = history(p, "dim_location")
    assert location.filter(pl.col("location_id") == 1)["city"].to_list() == ["Leeds", "York"]
    assert history(p, "dim_currency").filter(pl.col("currency_id") == 2)[
        "currency_name"
    ].to_list() == ["US Dollar", "Euro"]
    assert history(p, "dim_design")["design_name"].to_list() == ["Wooden", "Wooden", "Steel"]
    assert_current_rows_equal_dimensions(p)


def test_inferred_placeholders_are_not_history(tree: IngestionTree, make_pipeline: Make) -> None:
    tree.dimensions()
    tree.put("updated", "sales_order", T0, [order(1, T0, staff_id=99, design_id=42)])
    p = make_pipeline()
    p.run()
    assert read(p, "dim_staff").filter(pl.col("staff_id") == 99)["is_inferred"].to_list() == [True]
    assert 99 not in history(p, "dim_staff")["staff_id"].to_list()
    # the real member arrives: its history begins with its own row
    tree.put("updated", "staff", T0 + H, [record("staff", 1, T0 + H) | {"staff_id": 99}])
    p.run()
    assert history(p, "dim_staff").filter(pl.col("staff_id") == 99)["valid_from"].to_list() == [
        T0 + H
    ]
    assert_current_rows_equal_dimensions(p)


def tables(p: Pipeline) -> dict[str, pl.DataFrame]:
    """Every history table written (transaction and payment type have no rows here)."""
    return {n: history(p, s.name) for n, s in HISTORIES.items() if p.lake.exists(n)}


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    arrival=st.permutations(range(len(UPDATES))),
    cuts=st.sets(st.integers(1, len(UPDATES) - 1), max_size=3),
)
def test_arrival_order_does_not_matter(
    tmp_path: Path, make_pipeline: Make, arrival: list[int], cuts: set[int]
) -> None:
    """All at once, one by one, or in any grouped order (late files slotted in): the same
    history tables."""
    case = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    at_once_tree = IngestionTree(case / "in-a")
    at_once_tree.dimensions()
    put_updates(at_once_tree, list(range(len(UPDATES))))
    at_once = make_pipeline(ingestion=case / "in-a", processed=case / "out-a")
    at_once.run()
    expected = tables(at_once)

    tree = IngestionTree(case / "in-b")
    later = make_pipeline(ingestion=case / "in-b", processed=case / "out-b")
    tree.dimensions()
    bounds = [0, *sorted(cuts), len(UPDATES)]
    for lo, hi in pairwise(bounds):
        put_updates(tree, arrival[lo:hi])
        later.run()
    for name, frame in tables(later).items():
        assert frame.equals(expected[name]), name
    assert_current_rows_equal_dimensions(later)


def test_late_file_with_an_older_change_is_slotted_in(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    put_updates(tree, [0])  # the rename at T0+2h
    p = make_pipeline()
    p.run()
    # a file arriving later, carrying an older rename (T0+1h) of the same department
    tree.put(
        "updated", "department", T0 + 30 * H, [record("department", 1, T0 + H, department_name="S")]
    )
    p.run()
    staff2 = history(p, "dim_staff").filter(pl.col("staff_id") == 2)
    assert staff2.select("department_name", "valid_from", "valid_to").rows() == [
        ("Sales", BASE, T0 + H),
        ("S", T0 + H, T0 + 2 * H),  # slotted in: its neighbours' valid_to follow
        ("Sales & Marketing", T0 + 2 * H, None),
    ]
    assert read(p, "dim_staff").filter(pl.col("staff_id") == 2)["department_name"].to_list() == [
        "Sales & Marketing"  # the dimension keeps the latest
    ]
    assert_current_rows_equal_dimensions(p)


def history_versions(p: Pipeline) -> dict[str, int]:
    return {n: t.version() for n in HISTORIES if (t := p.lake.table(n)) is not None}


def test_redelivery_and_invisible_changes_write_no_history(
    tree: IngestionTree, make_pipeline: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.dimensions()
    p = make_pipeline()
    p.run()
    versions = history_versions(p)
    assert len(versions) == 5  # all but transaction and payment type
    source_rows = read(p, "source_history_department").height
    opened: list[str] = []
    table = Lake.table

    def watched(self: Lake, name: str, version: int | None = None) -> Any:
        opened.append(name)
        return table(self, name, version)

    monkeypatch.setattr(Lake, "table", watched)
    # every dimension file again under new names; a sales-only file; a change nobody shows
    for t, records in dimension_records().items():
        tree.put("baseline", t, T0 + H, records, shape="array")
    tree.put("updated", "sales_order", T0 + 2 * H, [order(1, T0)])
    put_updates(tree, [3])  # department 2's manager
    assert p.run().status == "succeeded"
    assert not [n for n in opened if n in HISTORIES], opened  # not even opened
    monkeypatch.undo()
    assert history_versions(p) == versions
    # the source history kept the new version only (the redelivered ones once)
    assert read(p, "source_history_department").height == source_rows + 1


def test_history_survives_maintenance(tree: IngestionTree, make_pipeline: Make) -> None:
    tree.dimensions()
    p = make_pipeline()
    p.run()
    for i in range(len(UPDATES)):  # one run per change: many small files
        put_updates(tree, [i])
        p.run()
    before = tables(p)
    for retention in (1, 0):
        _, result = p.maintain(retention)
        assert "dim_staff_history" in result["tables"]
        p.lake.forget()
        after = tables(p)
        for name, frame in before.items():
            assert after[name].equals(frame), (retention, name)
    assert before["dim_staff_history"].height == 5


def test_root_written_before_history_starts_from_its_mirrors(
    tree: IngestionTree, make_pipeline: Make, tmp_path: Path
) -> None:
    tree.dimensions()
    put_updates(tree, [0])
    p = make_pipeline()
    p.run()
    # a root as the code before this change left it: mirrors and dimensions, no history
    processed = tmp_path / "processed"
    shutil.rmtree(processed / "_state" / "source_history")
    shutil.rmtree(processed / "dimension_history")
    (processed / "_state" / "catalog.json").unlink()
    p = make_pipeline()
    put_updates(tree, [1, 2])  # an address change, staff 3 moving
    assert p.run().status == "succeeded"
    staff = history(p, "dim_staff")
    # staff 2's history starts from the state the mirror holds (the rename's), not before
    assert staff.select("staff_id", "department_name", "valid_from").rows() == [
        (1, "Purchasing", BASE),
        (2, "Sales & Marketing", T0 + 2 * H),
        (3, "Purchasing", BASE),
        (3, "Sales & Marketing", T0 + 4 * H),
    ]
    seeded = read(p, "source_history_department")
    assert seeded.height == 2  # the mirror's rows, as they were
    assert history(p, "dim_location").filter(pl.col("location_id") == 1)["city"].to_list() == [
        "Leeds",
        "York",
    ]
    assert_current_rows_equal_dimensions(p)


def test_crash_before_source_versions_are_stored_is_completed_by_the_rerun(
    tree: IngestionTree, make_pipeline: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.dimensions()
    p = make_pipeline()
    p.run()
    put_updates(tree, [0, 2])
    append = Lake.append

    def crash(self: Lake, name: str, frame: pl.DataFrame, run_id: str | None) -> int:
        if name.startswith("source_history_"):
            raise RuntimeError("crash")
        return append(self, name, frame, run_id)

    monkeypatch.setattr(Lake, "append", crash)
    with pytest.raises(RuntimeError, match="crash"):
        p.run()
    assert read(p, "dim_staff_history").height == 5  # the states were written, not the versions
    monkeypatch.undo()
    assert p.run().status == "succeeded"
    clean_tree = IngestionTree(tree.root.parent / "clean-in")
    clean_tree.dimensions()
    put_updates(clean_tree, [0, 2])
    clean = make_pipeline(ingestion=clean_tree.root, processed=tree.root.parent / "clean-out")
    clean.run()
    for name, frame in tables(clean).items():
        assert tables(p)[name].equals(frame), name


REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "totesys-2024-11-15"


def test_real_snapshot_history_equals_the_dimensions(tmp_path: Path, make_pipeline: Make) -> None:
    """The eleven real tables, then a real-shaped department rename: the current rows equal
    every dimension, and the rename starts a state for every staff member in the department."""
    assert REAL.is_dir(), f"the real snapshot is not at {REAL}"
    tree = IngestionTree(tmp_path / "ingestion")
    for path in sorted(REAL.glob("*.jsonl")):
        tree.put_raw(f"baseline/{path.stem}-2024-11-15T00:00:00.000000.json", path.read_bytes())
    p = make_pipeline()
    assert p.run().rows_rejected == 0
    assert_current_rows_equal_dimensions(p)
    assert len(tables(p)) == len(HISTORIES)  # all seven, transaction and payment type too
    assert read(p, "dim_transaction_history").height == 15836
    staff_rows = pl.read_ndjson(REAL / "staff.jsonl")
    busiest = staff_rows["department_id"].mode().sort()[0]
    departments = pl.read_ndjson(REAL / "department.jsonl")
    department = departments.filter(pl.col("department_id") == busiest).row(0, named=True)
    in_it = staff_rows.filter(pl.col("department_id") == department["department_id"])
    members = in_it["staff_id"].to_list()
    renamed_at = datetime(2024, 11, 16, 9, 0)
    tree.put(
        "updated",
        "department",
        renamed_at,
        [{**department, "department_name": "Renamed", "last_updated": ts(renamed_at)}],
    )
    p.run()
    staff = history(p, "dim_staff")
    started = staff.filter(pl.col("valid_from") == renamed_at)
    assert sorted(started["staff_id"].to_list()) == sorted(members) and members
    assert set(started["department_name"]) == {"Renamed"}
    assert staff.height == staff_rows.height + len(members)
    assert_current_rows_equal_dimensions(p)


def test_named_query_answers_the_department_at_each_sale(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    """sales_staff_department_then against plain Python over the very records written."""
    from service.sql import engine
    from service.sql.named import bind, named_queries

    tree.dimensions()
    put_updates(tree, [0, 2, 3])  # dept 1 renamed at +2h, staff 3 moves at +4h, dept 2 manager
    sales = [
        order(1, T0 + H, staff_id=2),  # before the rename
        order(2, T0 + 3 * H, staff_id=2),  # after it
        order(3, T0 + 3 * H, staff_id=3),  # before the move
        order(4, T0 + 5 * H, staff_id=3),  # after it
        order(5, BASE - 24 * H, staff_id=1),  # before the salesperson's first row: nulls
        order(6, T0 + 6 * H, staff_id=1),  # after the manager change (no new state)
    ]
    tree.put("updated", "sales_order", T0 + 20 * H, sales)
    p = make_pipeline()
    p.run()
    got = engine.run(p.lake, bind(named_queries()["sales_staff_department_then"], []))

    records = dimension_records()
    staff_versions = records["staff"] + UPDATES[2][1]
    department_versions = records["department"] + UPDATES[0][1] + UPDATES[3][1]

    def latest(rows: list[dict[str, Any]], key: str, ident: int, moment: str) -> Any:
        found = [r for r in rows if r[key] == ident and r["last_updated"] <= moment]
        return max(found, key=lambda r: r["last_updated"]) if found else None

    expected = []
    for sale in sales:
        moment = sale["last_updated"]
        person = latest(staff_versions, "staff_id", sale["staff_id"], moment)
        dept = person and latest(
            department_versions, "department_id", person["department_id"], moment
        )
        expected.append((sale["sales_order_id"], dept["department_name"] if dept else None))
    assert got.select("sales_order_id", "department_name").rows() == expected
    assert expected == [
        (1, "Sales"),
        (2, "Sales & Marketing"),
        (3, "Purchasing"),
        (4, "Sales & Marketing"),
        (5, None),
        (6, "Purchasing"),
    ]
