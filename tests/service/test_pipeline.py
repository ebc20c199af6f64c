"""The pipeline end to end on local folders: every rule of the core issue, each with data that
would expose its violation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from service import queries
from service.ledger import FileBook, Ledger
from service.pipeline import Pipeline
from tests.conftest import T0, IngestionTree, order, require_real_snapshot

Make = Callable[..., Pipeline]
H = timedelta(hours=1)


def epoch_ms(value: datetime) -> int:
    """pandas `to_json` style: naive UTC as milliseconds since the epoch."""
    return int((value - datetime(1970, 1, 1)).total_seconds() * 1000)


def fact(p: Pipeline) -> pl.DataFrame:
    frame = p.lake.read("fact_sales_order")
    assert frame is not None
    return frame


def dim(p: Pipeline, name: str) -> pl.DataFrame:
    frame = p.lake.read(name)
    assert frame is not None
    return frame


def versions(p: Pipeline) -> dict[str, int]:
    return {name: info.version for name, info in ((i.name, i) for i in queries.table_infos(p.lake))}


def test_order_updated_twice_has_three_versions(tree: IngestionTree, make_pipeline: Make) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0 - H), order(2, T0 - H)])
    tree.put("updated", "sales_order", T0 + H, [order(1, T0 + H, created=T0 - H, units_sold=5)])
    tree.put(
        "updated", "sales_order", T0 + 2 * H, [order(1, T0 + 2 * H, created=T0 - H, units_sold=7)]
    )
    p = make_pipeline()
    summary = p.run()
    assert summary.status == "succeeded"
    h = queries.sale_history(p.lake, 1)
    assert h["change_type"].to_list() == ["insert", "update", "update"]
    assert h["units_sold"].to_list() == [1001, 5, 7]
    assert h["created_date"].unique().to_list() == [(T0 - H).date()]
    state = queries.sale_state(p.lake, 1)
    assert state.status == "current" and state.row is not None and state.row["units_sold"] == 7
    f = fact(p)
    assert f["sales_record_id"].n_unique() == f.height == 4
    assert set(f["source_file"]) >= {"updated/sales_order-2024-11-14T11:00:00.000000.json"}


def test_redelivered_and_overlapping_files_store_each_version_once(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    rows = [order(i, T0) for i in range(1, 6)]
    tree.put("updated", "sales_order", T0, rows)
    p = make_pipeline()
    p.run()
    # the same content again under a new name, and a file overlapping it by two versions
    tree.put("updated", "sales_order", T0 + H, rows, shape="array")
    tree.put(
        "updated", "sales_order", T0 + 2 * H, [*rows[3:], order(9, T0 + 2 * H)], shape="wrapped"
    )
    p.run()
    # and an explicit reprocess of every file
    p.run(only_keys=[o.key for o in p.list_ingestion()])
    f = fact(p)
    assert f.height == 6
    assert f.select("sales_order_id", "last_updated").is_duplicated().sum() == 0
    assert f["sales_record_id"].is_unique().all()


def test_second_run_with_no_new_files_commits_nothing(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0)])
    p = make_pipeline()
    first = p.run()
    assert first.count("applied") == 7
    # tables are created checkpointing often (many small runs replay the log otherwise)
    fact_table = p.lake.table("fact_sales_order")
    assert fact_table is not None
    assert fact_table.metadata().configuration.get("delta.checkpointInterval") == "10"
    before = versions(p)
    second = p.run()
    assert second.files == []
    assert versions(p) == before


def test_sales_record_ids_identical_on_rerun_from_empty_root(
    tree: IngestionTree, make_pipeline: Make, tmp_path: Path
) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(i, T0 - H) for i in (5, 3, 9)])
    tree.put("updated", "sales_order", T0 + H, [order(3, T0 + H), order(11, T0 + H)])
    tree.put(
        "baseline",
        "sales_order",
        T0 + 2 * H,
        [order(3, T0 + H), order(9, T0 - H), order(11, T0 + H)],
    )
    a = make_pipeline(processed=tmp_path / "a")
    a.run()
    b = make_pipeline(processed=tmp_path / "b")
    b.run()
    cols = ["sales_record_id", "sales_order_id", "last_updated", "change_type", "source_file"]
    fa, fb = (
        fact(a).select(cols).sort("sales_record_id"),
        fact(b).select(cols).sort("sales_record_id"),
    )
    assert fa.equals(fb)
    assert fa["sales_record_id"].to_list() == list(range(1, fa.height + 1))


def test_files_applied_out_of_order_give_the_same_tables(
    tree: IngestionTree, make_pipeline: Make, tmp_path: Path
) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0 - H), order(2, T0 - H)])
    late_dept = [
        {
            "department_id": 1,
            "department_name": "Sales EMEA",
            "location": "Leeds",
            "manager": "R",
            "created_at": "2022-11-03T14:20:49.962000",
            "last_updated": "2024-11-14T12:00:00",
        }
    ]
    early_dept = [
        {**late_dept[0], "department_name": "Sales UK", "last_updated": "2024-11-14T11:00:00"}
    ]
    in_order = make_pipeline(processed=tmp_path / "in-order")
    out_of_order = make_pipeline(processed=tmp_path / "out-of-order")

    later = [order(1, T0 + 2 * H, created=T0 - H, units_sold=2)]
    earlier = [order(1, T0 + H, created=T0 - H, units_sold=1)]
    # in order: earlier then later
    tree.put("updated", "sales_order", T0 + H, earlier)
    tree.put("updated", "department", T0 + H, early_dept)
    in_order.run()
    out_of_order.run(only_keys=[k.key for k in out_of_order.list_ingestion() if "T11" not in k.key])
    tree.put("updated", "sales_order", T0 + 2 * H, later)
    tree.put("updated", "department", T0 + 2 * H, late_dept)
    in_order.run()
    # out of order: the later files first, then the earlier ones
    out_of_order.run(only_keys=[k.key for k in out_of_order.list_ingestion() if "T12" in k.key])
    out_of_order.run()

    for p in (in_order, out_of_order):
        assert dim(p, "dim_staff").filter(pl.col("staff_id") == 2)["department_name"].to_list() == [
            "Sales EMEA"
        ]
        state = queries.sale_state(p.lake, 1)
        assert state.row is not None and state.row["units_sold"] == 2
        assert queries.sale_history(p.lake, 1)["units_sold"].to_list() == [1001, 1, 2]
    key = ["sales_order_id", "last_updated"]
    assert fact(in_order).select(key).sort(key).equals(fact(out_of_order).select(key).sort(key))
    for name in (
        "dim_staff",
        "dim_location",
        "dim_counterparty",
        "dim_currency",
        "dim_design",
        "dim_date",
    ):
        k = dim(in_order, name).columns[0]
        assert dim(in_order, name).sort(k).equals(dim(out_of_order, name).sort(k)), name


def test_order_missing_from_later_baseline_gets_a_delete_version(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0 - H), order(2, T0 - H), order(3, T0 - H)])
    p = make_pipeline()
    p.run()
    snapshot_at = T0 + 3 * H
    tree.put("baseline", "sales_order", snapshot_at, [order(1, T0 - H), order(3, T0 - H)])
    p.run()
    h = queries.sale_history(p.lake, 2)
    assert h["change_type"].to_list() == ["insert", "delete"]
    deletion = h.row(-1, named=True)
    assert deletion["last_updated"] == snapshot_at
    assert deletion["last_updated_date"] == snapshot_at.date()
    assert deletion["units_sold"] == 1002  # last known values
    state = queries.sale_state(p.lake, 2)
    assert state.status == "deleted" and state.deleted_at == snapshot_at
    assert queries.current_sales(p.lake)["sales_order_id"].to_list() == [1, 3]
    assert queries.current_sales(p.lake, as_of=T0)["sales_order_id"].to_list() == [1, 2, 3]
    # the same snapshot again (or a later identical one) deletes nothing more
    tree.put("baseline", "sales_order", snapshot_at + H, [order(1, T0 - H), order(3, T0 - H)])
    p.run()
    assert fact(p).filter(pl.col("change_type") == "delete").height == 1


def test_department_rename_reaches_dim_staff_without_staff_change(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0)])
    p = make_pipeline()
    p.run()
    assert set(
        dim(p, "dim_staff").filter(pl.col("department_name") == "Purchasing")["staff_id"]
    ) == {1, 3}
    tree.put(
        "updated",
        "department",
        T0 + H,
        [
            {
                "department_id": 2,
                "department_name": "Procurement",
                "location": "York",
                "manager": None,
                "created_at": "2022-11-03T14:20:49.962000",
                "last_updated": (T0 + H).isoformat(),
            }
        ],
    )
    tree.put(
        "updated",
        "address",
        T0 + H,
        [
            {
                "address_id": 1,
                "address_line_1": "99 New Street",
                "address_line_2": "Flat 2",
                "district": None,
                "city": "Hull",
                "postal_code": "HU1",
                "country": "UK",
                "phone": "01",
                "created_at": "2022-11-03T14:20:49.962000",
                "last_updated": (T0 + H).isoformat(),
            }
        ],
    )
    p.run()
    staff = dim(p, "dim_staff").sort("staff_id")
    assert staff.select("staff_id", "department_name", "location").rows() == [
        (1, "Procurement", "York"),
        (2, "Sales", "Manchester"),
        (3, "Procurement", "York"),
    ]
    cp = dim(p, "dim_counterparty").filter(pl.col("counterparty_id") == 1).row(0, named=True)
    assert (cp["counterparty_legal_address_line_1"], cp["counterparty_legal_city"]) == (
        "99 New Street",
        "Hull",
    )
    loc = dim(p, "dim_location").filter(pl.col("location_id") == 1).row(0, named=True)
    assert (loc["address_line_2"], loc["city"]) == ("Flat 2", "Hull")
    assert dim(p, "dim_staff").height == 3  # members are replaced, never duplicated


def test_late_arriving_dimension_member_is_inferred_then_replaced(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    tree.put(
        "updated",
        "sales_order",
        T0 + H,
        [
            order(
                1,
                T0 + H,
                staff_id=42,
                currency_id=9,
                design_id=77,
                counterparty_id=5,
                agreed_delivery_location_id=66,
            )
        ],
    )
    p = make_pipeline()
    p.run()
    f = fact(p)
    for name, key, value in [
        ("dim_staff", "staff_id", 42),
        ("dim_currency", "currency_id", 9),
        ("dim_design", "design_id", 77),
        ("dim_counterparty", "counterparty_id", 5),
        ("dim_location", "location_id", 66),
    ]:
        member = dim(p, name).filter(pl.col(key) == value)
        assert member.height == 1 and member["is_inferred"][0], name
    # every fact key resolves
    assert f.join(
        dim(p, "dim_staff"), left_on="sales_staff_id", right_on="staff_id", how="anti"
    ).is_empty()
    tree.put(
        "updated",
        "staff",
        T0 + 2 * H,
        [
            {
                "staff_id": 42,
                "first_name": "Late",
                "last_name": "Comer",
                "department_id": 1,
                "email_address": "late@terrifictotes.com",
                "created_at": "2024-01-01T00:00:00",
                "last_updated": "2024-11-14T12:00:00",
            }
        ],
    )
    p.run()
    member = dim(p, "dim_staff").filter(pl.col("staff_id") == 42).row(0, named=True)
    assert (member["first_name"], member["department_name"], member["is_inferred"]) == (
        "Late",
        "Sales",
        False,
    )
    assert dim(p, "dim_staff").filter(pl.col("staff_id") == 42).height == 1


def test_mixed_shapes_and_formats_give_identical_tables(
    tree: IngestionTree, make_pipeline: Make, tmp_path: Path
) -> None:
    rows = [order(i, T0 - H) for i in (1, 2)]
    variants = {
        "jsonl": (rows, "jsonl"),
        "array": (rows, "array"),
        "wrapped": (
            [
                {
                    **r,
                    "unit_price": str(r["unit_price"]),
                    "units_sold": str(r["units_sold"]),
                    "last_updated": r["last_updated"].replace("T", " ")[:-3],
                }
                for r in rows
            ],
            "wrapped",
        ),
        "epoch": (
            [{**r, "created_at": epoch_ms(T0 - H), "last_updated": epoch_ms(T0 - H)} for r in rows],
            "array",
        ),
    }
    results = []
    for name, (records, shape) in variants.items():
        t = IngestionTree(tmp_path / f"in-{name}")
        t.dimensions()
        t.put("updated", "sales_order", T0, records, shape=shape)
        p = make_pipeline(ingestion=t.root, processed=tmp_path / f"out-{name}")
        summary = p.run()
        assert summary.rows_rejected == 0, (name, summary.to_dict()["rejected_content"])
        results.append(fact(p).drop("source_file", "run_id").sort("sales_order_id"))
    for other in results[1:]:
        assert results[0].equals(other)


def test_bad_input_is_rejected_recorded_and_never_lost(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    garbage = tree.put_raw("updated/sales_order-2024-11-14T11:00:00.json", b"this is not json {")
    partly = tree.put(
        "updated",
        "sales_order",
        T0 + 2 * H,
        [
            order(1, T0 + H),
            {**order(2, T0 + H), "units_sold": "many"},
            {k: v for k, v in order(3, T0 + H).items() if k != "staff_id"},
            order(4, T0 + H),
        ],
    )
    badname = tree.put_raw("updated/sales_order-yesterday.json", b"[]")
    before = {
        k: hashlib.sha256((tree.root / k).read_bytes()).hexdigest()
        for k in (garbage, partly, badname)
    }
    p = make_pipeline()
    summary = p.run()
    assert summary.status == "succeeded"
    by_key = {f.source_file: f for f in summary.files}
    assert by_key[garbage].outcome == "rejected" and by_key[garbage].reason
    assert by_key[badname].outcome == "rejected" and "yesterday" in (by_key[badname].reason or "")
    assert by_key[partly].outcome == "applied" and by_key[partly].rows_rejected == 2
    assert sorted(fact(p)["sales_order_id"].to_list()) == [1, 4]
    rejects = p.lake.read("rejects")
    assert rejects is not None
    problems = {(r["source_file"], r["record_number"], r["field"]) for r in rejects.to_dicts()}
    assert (partly, 2, "units_sold") in problems
    assert (partly, 3, "staff_id") in problems
    assert any(r[0] == garbage and r[1] == 0 for r in problems)
    # source files untouched, every outcome in the ledger, rejects not duplicated on reprocess
    after = {k: hashlib.sha256((tree.root / k).read_bytes()).hexdigest() for k in before}
    assert after == before
    statuses = Ledger(p.lake).file_statuses()
    assert set(statuses["source_file"]) == {o.key for o in p.list_ingestion()}
    n = rejects.height
    p.run(only_keys=[partly])
    again = p.lake.read("rejects")
    assert again is not None and again.height == n
    doc = summary.to_dict()
    assert {item["key"] for item in doc["rejected_content"]} == {garbage, partly, badname}


def test_other_totesys_tables_are_skipped_not_errors(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.put("baseline", "sales_order_history", T0, [{"sales_order_id": 1}])
    tree.put("updated", "supplier_rating", T0, [{"supplier_id": 1}])
    summary = make_pipeline().run()
    assert summary.count("skipped") == 2 and summary.count("rejected") == 0


def test_dim_date_covers_every_fact_date_contiguously(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    tree.dimensions()
    tree.put(
        "updated",
        "sales_order",
        T0,
        [order(1, T0, agreed_delivery_date="2025-01-03", agreed_payment_date="2025-02-01")],
    )
    p = make_pipeline()
    p.run()
    tree.put("updated", "sales_order", T0 + H, [order(2, T0 + H, created=datetime(2024, 10, 1))])
    p.run()
    cal = dim(p, "dim_date").sort("date_id")
    days = cal["date_id"].to_list()
    assert days[0] == date(2024, 10, 1) and days[-1] == date(2025, 2, 1)
    assert len(days) == len(set(days)) == (days[-1] - days[0]).days + 1
    f = fact(p)
    for column in (
        "created_date",
        "last_updated_date",
        "agreed_payment_date",
        "agreed_delivery_date",
    ):
        assert f.join(cal, left_on=column, right_on="date_id", how="anti").is_empty()


def test_crashed_run_rerun_duplicates_nothing(
    tree: IngestionTree, make_pipeline: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the run dies after the fact commit, before the ledger records the files."""
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(i, T0) for i in range(1, 4)])
    p = make_pipeline()

    def crash(self: FileBook) -> None:
        raise OSError("simulated crash before the ledger write")

    with monkeypatch.context() as m:
        m.setattr(FileBook, "save", crash)
        with pytest.raises(OSError):
            p.run()
    assert fact(p).height == 3  # facts were committed
    assert Ledger(p.lake).recorded_files() == set()  # ...but every file is still pending
    runs = Ledger(p.lake).runs()
    assert runs[0].status == "failed" and "simulated crash" in (runs[0].error or "")
    summary = p.run()
    assert summary.count("applied") == 7
    assert fact(p).height == 3
    assert dim(p, "dim_staff").height == 3


def test_real_totesys_snapshot(tmp_path: Path, make_pipeline: Make) -> None:
    source = require_real_snapshot()
    tree = IngestionTree(tmp_path / "ingestion")
    counts = {}
    for path in sorted(source.glob("*.jsonl")):
        table = path.stem
        tree.put_raw(f"baseline/{table}-2024-11-14T10:00:00.000000.json", path.read_bytes())
        counts[table] = sum(1 for line in path.read_text().splitlines() if line.strip())
    p = make_pipeline()
    summary = p.run()
    assert summary.rows_rejected == 0 and summary.count("applied") == 7
    assert fact(p).height == counts["sales_order"] == 11175
    assert dim(p, "dim_staff").filter(~pl.col("is_inferred")).height == counts["staff"]
    assert dim(p, "dim_location").filter(~pl.col("is_inferred")).height == counts["address"]
    assert dim(p, "dim_design").filter(~pl.col("is_inferred")).height == counts["design"]
    assert dim(p, "dim_currency").height == counts["currency"]
    assert dim(p, "dim_counterparty").height == counts["counterparty"]
    assert dim(p, "dim_currency").sort("currency_id")["currency_name"].to_list() == [
        "British Pound",
        "US Dollar",
        "Euro",
    ]
