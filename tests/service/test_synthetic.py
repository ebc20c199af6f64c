"""The synthetic ingestion tree: deterministic, realistic, and its manifest tells the truth.

The files are parsed here with plain `json`, independently of the pipeline's reader (one test
checks that the reader, too, takes every file whole). The new tables' shape is measured the same
way on the real eleven-table snapshot and on a generated tree.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from service.synthetic import (
    SyntheticManifest,
    iter_ingestion_files,
    write_ingestion_tree,
)
from tests.conftest import require_real_snapshot
from transforms.parse import parse_file

ORDERS = 300
START = datetime(2024, 11, 14, 10, 0)
EPOCH = datetime(1970, 1, 1)
KEY = re.compile(r"^(baseline|updated)/([a-z_]+)-(.+)\.json$")
ID_COLUMNS = {
    "sales_order": "sales_order_id",
    "staff": "staff_id",
    "department": "department_id",
    "counterparty": "counterparty_id",
    "address": "address_id",
    "currency": "currency_id",
    "design": "design_id",
    "payment_type": "payment_type_id",
    "purchase_order": "purchase_order_id",
    "transaction": "transaction_id",
    "payment": "payment_id",
}
ORDER_TABLES = ("sales_order", "purchase_order")
MONEY = ("unit_price", "item_unit_price", "payment_amount")
DATES = ("agreed_delivery_date", "agreed_payment_date", "payment_date")
# `paid` as a JSON boolean or PostgreSQL's text forms.
BOOLS = {True: True, False: False, "t": True, "f": False, "true": True, "false": False}


class ParsedFile:
    def __init__(self, key: str, content: bytes) -> None:
        match = KEY.match(key)
        assert match, key
        self.key = key
        self.prefix, self.table, stamp = match.groups()
        self.at, self.name_form = parse_key_stamp(stamp)
        self.shape, self.raw = parse_content(self.table, content)
        self.rows = [normalise(r) for r in self.raw]


def parse_key_stamp(stamp: str) -> tuple[datetime, str]:
    if re.fullmatch(r"\d{8}T\d{4}Z", stamp):
        return datetime.strptime(stamp, "%Y%m%dT%H%MZ"), "minute"
    form = "iso" if "T" in stamp else "space"
    return datetime.fromisoformat(stamp), form


def parse_content(table: str, content: bytes) -> tuple[str, list[dict[str, Any]]]:
    text = content.decode()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return "jsonl", [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(doc, list):
        return "array", doc
    assert isinstance(doc, dict)
    if list(doc) == [table] and isinstance(doc[table], list):
        return "wrapped", doc[table]
    return "jsonl", [doc]  # JSON Lines holding a single record


def parse_ts(value: Any) -> datetime:
    if isinstance(value, int):
        return EPOCH + timedelta(milliseconds=value)
    assert isinstance(value, str), value
    return datetime.fromisoformat(value)


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in ("created_at", "last_updated"):
            out[name] = parse_ts(value)
        elif name.endswith("_id"):
            out[name] = None if value is None else int(value)
        elif name in MONEY:
            out[name] = Decimal(str(value))
        elif name in DATES:
            out[name] = date.fromisoformat(value)
        elif name == "paid":
            out[name] = BOOLS[value]
        else:
            out[name] = value
    return out


def generate(**kwargs: Any) -> tuple[list[tuple[str, bytes]], SyntheticManifest]:
    manifest = SyntheticManifest()
    files = list(iter_ingestion_files(manifest=manifest, **kwargs))
    return files, manifest


@pytest.fixture(scope="module")
def tree() -> tuple[list[ParsedFile], SyntheticManifest, list[tuple[str, bytes]]]:
    raw, manifest = generate(orders=ORDERS, updates=5, seed=7, start=START)
    return [ParsedFile(k, c) for k, c in raw], manifest, raw


Tree = tuple[list[ParsedFile], SyntheticManifest, list[tuple[str, bytes]]]


def order_files(files: list[ParsedFile]) -> list[ParsedFile]:
    return [f for f in files if f.table == "sales_order"]


def members(files: list[ParsedFile], table: str) -> dict[int, list[dict[str, Any]]]:
    """Every version of every member of a dimension table, by id."""
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for f in files:
        if f.table == table:
            for row in f.rows:
                out[row[ID_COLUMNS[table]]].append(row)
    return out


# ------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_other_seed_other_bytes() -> None:
    first, m1 = generate(orders=ORDERS, updates=3, seed=1)
    second, m2 = generate(orders=ORDERS, updates=3, seed=1)
    assert first == second
    assert m1 == m2
    other, _ = generate(orders=ORDERS, updates=3, seed=2)
    assert [k for k, _ in other] == [k for k, _ in first]  # same layout ...
    differing = [k for (k, a), (_, b) in zip(first, other, strict=True) if a != b]
    assert any("sales_order" in k for k in differing)  # ... different content
    assert len(differing) >= len(first) - 2


def test_manifest_lists_the_files_in_order(tree: Tree) -> None:
    files, manifest, raw = tree
    assert manifest.files == [k for k, _ in raw]
    assert len(set(manifest.files)) == len(manifest.files)
    assert json.loads(manifest.to_json())["files"] == manifest.files
    tables = {f.table for f in files}
    for table in tables:
        assert manifest.files_of(table) == [f.key for f in files if f.table == table]
    assert manifest.files_of(*tables) == manifest.files
    assert manifest.files_of("sales_order_history") == []


def test_layout_baseline_then_half_hourly_batches(tree: Tree) -> None:
    files, manifest, _ = tree
    baseline = [f for f in files if f.prefix == "baseline" and f.at == START]
    assert {f.table for f in baseline} == set(ID_COLUMNS)
    batch_times = sorted({f.at for f in files if f.prefix == "updated"})
    assert batch_times == [START + timedelta(minutes=30 * (i + 1)) for i in range(5)]
    snapshots = [f for f in files if f.prefix == "baseline" and f.table == "sales_order"]
    assert [f.at for f in snapshots] == [START, batch_times[-1]]
    assert manifest.files[-1] == snapshots[-1].key
    # Sizes roughly as asked.
    assert len(members(files, "staff")) == 20
    assert len(members(files, "department")) == 8
    assert len(members(files, "counterparty")) == 20
    assert len(members(files, "address")) == 30
    assert manifest.currencies == ["GBP", "USD", "EUR"]
    codes = {r["currency_code"] for f in files if f.table == "currency" for r in f.rows}
    assert codes == set(manifest.currencies)


def test_update_rows_fall_inside_their_batch_window(tree: Tree) -> None:
    files, _, _ = tree
    previous = START
    for at in sorted({f.at for f in files if f.prefix == "updated"}):
        rows = [r for f in files if f.prefix == "updated" and f.at == at for r in f.rows]
        assert rows
        for row in rows:
            assert previous < row["last_updated"] <= at
            assert row["last_updated"].microsecond % 1000 == 0  # millisecond precision
        previous = at
    for f in files:
        if f.prefix == "baseline" and f.at == START:
            assert all(r["last_updated"] <= START for r in f.rows)


def test_order_versions_and_updates_match_the_manifest(tree: Tree) -> None:
    files, manifest, _ = tree
    versions: dict[int, set[datetime]] = defaultdict(set)
    for f in order_files(files):
        for row in f.rows:
            versions[row["sales_order_id"]].add(row["last_updated"])
    assert len(versions) == manifest.orders_created == ORDERS
    assert sum(len(v) for v in versions.values()) == manifest.order_versions
    assert sorted(i for i, v in versions.items() if len(v) > 1) == manifest.updated_order_ids
    assert max(len(v) for v in versions.values()) >= 3
    # A version is the same row wherever it appears (baseline, updated, snapshot).
    seen: dict[tuple[int, datetime], dict[str, Any]] = {}
    for f in order_files(files):
        for row in f.rows:
            key = (row["sales_order_id"], row["last_updated"])
            assert seen.setdefault(key, row) == row
    # created_at never changes across versions
    created: dict[int, set[datetime]] = defaultdict(set)
    for (oid, _), row in seen.items():
        created[oid].add(row["created_at"])
    assert all(len(c) == 1 for c in created.values())


def test_new_orders_in_batches_have_created_at_equal_last_updated(tree: Tree) -> None:
    files, _, _ = tree
    baseline_ids = {r["sales_order_id"] for r in order_files(files)[0].rows}
    new_rows = [
        r
        for f in order_files(files)
        if f.prefix == "updated"
        for r in f.rows
        if r["sales_order_id"] not in baseline_ids and r["created_at"] > START
    ]
    assert new_rows
    first_seen: dict[int, dict[str, Any]] = {}
    for row in new_rows:
        first_seen.setdefault(row["sales_order_id"], row)
    assert all(r["created_at"] == r["last_updated"] for r in first_seen.values())
    assert min(first_seen) == max(baseline_ids) + 1  # ids continue from the baseline


def test_deleted_orders_are_absent_from_the_last_snapshot_only(tree: Tree) -> None:
    files, manifest, _ = tree
    snapshots = [f for f in order_files(files) if f.prefix == "baseline"]
    first, last = snapshots[0], snapshots[-1]
    deleted = set(manifest.deleted_order_ids)
    assert deleted
    assert len(deleted) >= round(ORDERS * 0.005)
    earlier_ids = {r["sales_order_id"] for f in order_files(files)[:-1] for r in f.rows}
    last_ids = [r["sales_order_id"] for r in last.rows]
    assert len(last_ids) == len(set(last_ids))
    assert deleted <= earlier_ids
    assert not deleted & set(last_ids)
    assert set(last_ids) | deleted == earlier_ids
    # At least one of them was in the first baseline; one may have been created later.
    assert deleted & {r["sales_order_id"] for r in first.rows}
    # The last snapshot holds every live order at its latest version.
    latest: dict[int, datetime] = {}
    for f in order_files(files)[:-1]:
        for r in f.rows:
            oid = r["sales_order_id"]
            latest[oid] = max(latest.get(oid, r["last_updated"]), r["last_updated"])
    assert all(r["last_updated"] == latest[r["sales_order_id"]] for r in last.rows)


def test_every_foreign_key_resolves(tree: Tree) -> None:
    files, _, _ = tree
    ids = {table: set(members(files, table)) for table in ID_COLUMNS}
    for f in order_files(files):
        for r in f.rows:
            assert r["design_id"] in ids["design"]
            assert r["staff_id"] in ids["staff"]
            assert r["counterparty_id"] in ids["counterparty"]
            assert r["currency_id"] in ids["currency"]
            assert r["agreed_delivery_location_id"] in ids["address"]
    for versions in members(files, "staff").values():
        assert all(v["department_id"] in ids["department"] for v in versions)
    for versions in members(files, "counterparty").values():
        assert all(v["legal_address_id"] in ids["address"] for v in versions)


def test_orders_only_use_designs_created_before_them(tree: Tree) -> None:
    files, manifest, _ = tree
    created = {i: v[0]["created_at"] for i, v in members(files, "design").items()}
    for f in order_files(files):
        for r in f.rows:
            assert created[r["design_id"]] <= r["created_at"]
    new_design = manifest.new_design_ids[0]
    assert any(f.prefix == "updated" and f.table == "design" for f in files)
    assert any(r["design_id"] == new_design for f in order_files(files) for r in f.rows)


def test_dimension_changes_match_the_manifest(tree: Tree) -> None:
    files, manifest, _ = tree

    def changed(table: str, column: str) -> list[int]:
        return sorted(
            i
            for i, versions in members(files, table).items()
            if len({v[column] for v in versions}) > 1
        )

    assert manifest.renamed_department_ids == changed("department", "department_name")
    assert manifest.renamed_department_ids
    assert manifest.changed_address_ids == changed("address", "address_line_1")
    assert manifest.changed_address_ids
    assert manifest.changed_staff_ids == changed("staff", "last_updated")
    assert manifest.changed_staff_ids
    # The rename reaches dim_staff (someone works there) and an address change dim_counterparty.
    staff = members(files, "staff")
    assert any(v[0]["department_id"] in manifest.renamed_department_ids for v in staff.values())
    legal = {v[0]["legal_address_id"] for v in members(files, "counterparty").values()}
    assert legal & set(manifest.changed_address_ids)
    for table in ("department", "address", "staff"):
        assert any(f.prefix == "updated" and f.table == table for f in files)
        for versions in members(files, table).values():  # a change keeps created_at
            assert len({v["created_at"] for v in versions}) == 1


def test_shapes_and_encodings_are_mixed(tree: Tree) -> None:
    files, _, raw = tree
    assert {f.shape for f in files} == {"wrapped", "array", "jsonl"}
    assert {f.name_form for f in files} == {"iso", "space", "minute"}
    # The big baseline is JSON Lines, as the real extract.
    assert order_files(files)[0].shape == "jsonl"
    all_ts = [r[c] for f in files for r in f.raw for c in ("created_at", "last_updated")]
    assert any(isinstance(v, int) for v in all_ts)  # epoch milliseconds
    strings = [v for v in all_ts if isinstance(v, str)]
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", v) for v in strings)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", v) for v in strings)
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d", v) for v in strings)
    prices = [r["unit_price"] for f in order_files(files) for r in f.raw]
    assert any(isinstance(p, str) for p in prices)
    assert any(isinstance(p, float) for p in prices)
    assert all(re.fullmatch(r"\d\.\d\d", p) for p in prices if isinstance(p, str))
    assert any(
        isinstance(v, str) for f in files for r in f.raw for k, v in r.items() if k.endswith("_id")
    )
    assert all(content for _, content in raw)


def test_values_are_realistic(tree: Tree) -> None:
    files, _, _ = tree
    for f in order_files(files):
        for r in f.rows:
            assert Decimal("2.00") <= r["unit_price"] <= Decimal("4.00")
            assert r["unit_price"] == r["unit_price"].quantize(Decimal("0.01"))
            assert 1000 <= r["units_sold"] <= 100_000
            assert datetime(2022, 11, 3) <= r["created_at"] <= r["last_updated"]
            assert r["created_at"].microsecond % 1000 == 0
            assert r["agreed_delivery_date"] > r["created_at"].date()
            assert r["agreed_payment_date"] >= r["created_at"].date()
            assert r["agreed_delivery_date"] <= r["last_updated"].date() + timedelta(days=8)
    for versions in members(files, "staff").values():
        for v in versions:
            expected = f"{v['first_name']}.{v['last_name']}@terrifictotes.com".lower()
            assert v["email_address"] == expected
    departments = [v for vs in members(files, "department").values() for v in vs]
    assert any(d["location"] is None for d in departments)
    assert any(d["manager"] is None for d in departments)
    addresses = [v for vs in members(files, "address").values() for v in vs]
    assert any(a["address_line_2"] is None for a in addresses)
    assert any(a["address_line_2"] is not None for a in addresses)
    assert any(a["district"] is None for a in addresses)
    baseline_created = [r["created_at"] for r in order_files(files)[0].rows]
    assert min(baseline_created) < datetime(2022, 12, 1) and max(baseline_created) > datetime(
        2024, 10, 1
    )


def test_many_orders_add_currencies() -> None:
    files, manifest = generate(orders=5000, updates=1, seed=3)
    assert manifest.currencies == ["GBP", "USD", "EUR", "CHF", "JPY"]
    order_rows = [
        r
        for key, content in files
        if "sales_order" in key
        for r in parse_content("sales_order", content)[1]
    ]
    assert {int(r["currency_id"]) for r in order_rows} == {1, 2, 3, 4, 5}


def test_without_updates_there_is_only_a_baseline() -> None:
    files, manifest = generate(orders=50, updates=0)
    assert all(k.startswith("baseline/") for k, _ in files)
    tables = [ParsedFile(k, c).table for k, c in files]
    assert sorted(tables) == sorted(ID_COLUMNS)  # one baseline file of each of the eleven
    assert manifest.order_versions == manifest.orders_created == 50
    assert manifest.deleted_order_ids == manifest.updated_order_ids == []
    assert manifest.renamed_department_ids == manifest.changed_address_ids == []


def test_a_single_batch_still_changes_deletes_and_updates_dimensions() -> None:
    raw, manifest = generate(orders=100, updates=1)
    files = [ParsedFile(k, c) for k, c in raw]
    assert manifest.deleted_order_ids and manifest.updated_order_ids
    assert manifest.renamed_department_ids and manifest.changed_address_ids
    updated_tables = {f.table for f in files if f.prefix == "updated"}
    assert updated_tables == {"sales_order", "department", "address", "staff", "design"} | {
        "purchase_order",
        "transaction",
        "payment",
    }
    assert manifest.deleted_purchase_order_ids and manifest.updated_purchase_order_ids
    assert manifest.paid_in_updates_payment_ids and manifest.deleted_payment_ids
    snapshot = [f for f in files if f.prefix == "baseline" and f.table == "sales_order"][-1]
    assert snapshot.at == START + timedelta(minutes=30)


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError):
        list(iter_ingestion_files(orders=5))
    with pytest.raises(ValueError):
        list(iter_ingestion_files(updates=-1))
    with pytest.raises(ValueError):
        list(iter_ingestion_files(start=datetime(2022, 11, 1)))


def test_write_ingestion_tree(tmp_path: Path) -> None:
    manifest = write_ingestion_tree(tmp_path, orders=40, updates=2, seed=5)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json"))
    assert written == sorted(manifest.files)
    expected = dict(iter_ingestion_files(orders=40, updates=2, seed=5))
    assert all((tmp_path / k).read_bytes() == v for k, v in expected.items())


# ------------------------------------------------------------------------------------------
# purchase_order, transaction and payment: the shape of the real snapshot
# (../shared/data/totesys-2024-11-15), measured the same way on it and on a generated tree.

Key = tuple[str, int]  # (transaction_type, order id)


def distinct_versions(files: list[ParsedFile], table: str) -> dict[int, list[dict[str, Any]]]:
    """Every distinct version (id, last_updated) of a table's rows, by id, oldest first; a
    version is the same row in every file that carries it."""
    seen: dict[int, dict[datetime, dict[str, Any]]] = defaultdict(dict)
    for f in files:
        if f.table == table:
            for row in f.rows:
                versions = seen[row[ID_COLUMNS[table]]]
                assert versions.setdefault(row["last_updated"], row) == row
    return {i: [v[t] for t in sorted(v)] for i, v in seen.items()}


def order_of(transaction: dict[str, Any]) -> Key:
    if transaction["transaction_type"] == "SALE":
        return "SALE", transaction["sales_order_id"]
    return "PURCHASE", transaction["purchase_order_id"]


def amount(order: dict[str, Any]) -> Decimal:
    if "units_sold" in order:
        return Decimal(order["units_sold"]) * order["unit_price"]
    return Decimal(order["item_quantity"]) * order["item_unit_price"]


def payments_shape(
    sales: dict[int, dict[str, Any]],
    purchases: dict[int, dict[str, Any]],
    transactions: dict[int, dict[str, Any]],
    payments: dict[int, dict[str, Any]],
    payment_types: dict[int, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, float]]:
    """What holds of the transactions and payments, and their proportions. Orders as first
    recorded (a payment is made with its order), payments at their latest version."""
    orders: dict[Key, dict[str, Any]] = {("SALE", i): o for i, o in sales.items()}
    orders |= {("PURCHASE", i): o for i, o in purchases.items()}
    per_order = defaultdict(int)
    for t in transactions.values():
        per_order[order_of(t)] += 1
    per_transaction = defaultdict(int)
    for p in payments.values():
        per_transaction[p["transaction_id"]] += 1
    pairs = [(p, transactions[p["transaction_id"]]) for p in payments.values()]
    names = {i: r["payment_type_name"] for i, r in payment_types.items()}
    accounts = [
        p[c] for p in payments.values() for c in ("company_ac_number", "counterparty_ac_number")
    ]
    facts = {
        "exactly one order id, the type's": all(
            (t["sales_order_id"] is None) != (t["purchase_order_id"] is None)
            and (t["transaction_type"] == "SALE") == (t["sales_order_id"] is not None)
            for t in transactions.values()
        ),
        "one transaction per order": set(per_order) == set(orders)
        and set(per_order.values()) == {1},
        "one payment per transaction": set(per_transaction) == set(transactions)
        and set(per_transaction.values()) == {1},
        "payment types by transaction type": sorted(
            {(t["transaction_type"], names[p["payment_type_id"]]) for p, t in pairs}
        ),
        "payment types": sorted(names.values()),
        "a payment carries its order's counterparty, currency, date and amount": all(
            (p["counterparty_id"], p["currency_id"], p["payment_date"], p["payment_amount"])
            == (o["counterparty_id"], o["currency_id"], o["agreed_payment_date"], amount(o))
            for p, t in pairs
            for o in [orders[order_of(t)]]
        ),
        "created with the order": all(
            p["created_at"] == t["created_at"] == orders[order_of(t)]["created_at"]
            for p, t in pairs
        ),
        "transactions never change": all(
            t["created_at"] == t["last_updated"] for t in transactions.values()
        ),
        "paid exactly when last_updated moved": all(
            p["paid"] == (p["last_updated"] > p["created_at"]) for p in payments.values()
        ),
        "some payment_id is not its transaction_id": any(
            i != p["transaction_id"] for i, p in payments.items()
        ),
        "8-digit account numbers": all(
            isinstance(a, int) and 10_000_000 <= a <= 99_999_999 for a in accounts
        ),
    }
    proportions = {
        "purchase orders per sales order": len(purchases) / len(sales),
        "payments per order": len(payments) / len(orders),
        "paid share": sum(p["paid"] for p in payments.values()) / len(payments),
    }
    return facts, proportions


@pytest.fixture(scope="module")
def real_shape() -> tuple[dict[str, Any], dict[str, float]]:
    folder = require_real_snapshot().parent / "totesys-2024-11-15"
    assert folder.is_dir(), f"the eleven-table snapshot is missing at {folder}"

    def rows(table: str) -> dict[int, dict[str, Any]]:
        lines = (folder / f"{table}.jsonl").read_text().splitlines()
        out = [normalise(json.loads(line)) for line in lines if line.strip()]
        return {r[ID_COLUMNS[table]]: r for r in out}

    tables = ("sales_order", "purchase_order", "transaction", "payment", "payment_type")
    return payments_shape(*(rows(t) for t in tables))


def generated_shape(files: list[ParsedFile]) -> tuple[dict[str, Any], dict[str, float]]:
    def first(table: str) -> dict[int, dict[str, Any]]:
        return {i: v[0] for i, v in distinct_versions(files, table).items()}

    def latest(table: str) -> dict[int, dict[str, Any]]:
        return {i: v[-1] for i, v in distinct_versions(files, table).items()}

    return payments_shape(
        first("sales_order"),
        first("purchase_order"),
        latest("transaction"),
        latest("payment"),
        latest("payment_type"),
    )


def test_transactions_and_payments_have_the_real_shape(
    tree: Tree, real_shape: tuple[dict[str, Any], dict[str, float]]
) -> None:
    files, _, _ = tree
    real_facts, real_proportions = real_shape
    facts, proportions = generated_shape(files)
    assert facts == real_facts
    assert real_facts["one payment per transaction"] and real_facts["created with the order"]
    for name, real in real_proportions.items():
        assert proportions[name] == pytest.approx(real, abs=0.01), name


def test_the_shape_and_proportions_hold_at_any_size(
    real_shape: tuple[dict[str, Any], dict[str, float]],
) -> None:
    real_facts, real = real_shape
    for orders, updates in ((40, 2), (3000, 1)):
        raw, manifest = generate(orders=orders, updates=updates, seed=13)
        files = [ParsedFile(k, c) for k, c in raw]
        facts, proportions = generated_shape(files)
        assert facts == real_facts
        assert len(distinct_versions(files, "sales_order")) == orders
        purchases = proportions["purchase orders per sales order"]
        assert purchases * orders == pytest.approx(manifest.purchase_orders_created)
        tolerance = 1 / orders + 0.002  # rounding to whole orders
        assert purchases == pytest.approx(real["purchase orders per sales order"], abs=tolerance)
        assert proportions["payments per order"] == real["payments per order"] == 1
        paid = proportions["paid share"]
        assert paid * manifest.payments_created == pytest.approx(manifest.payments_paid)
        assert paid == pytest.approx(real["paid share"], abs=0.03)


def test_purchase_orders_keep_history_like_sales_orders(tree: Tree) -> None:
    files, manifest, _ = tree
    versions = distinct_versions(files, "purchase_order")
    assert len(versions) == manifest.purchase_orders_created
    assert sum(len(v) for v in versions.values()) == manifest.purchase_order_versions
    updated = sorted(i for i, v in versions.items() if len(v) > 1)
    assert updated == manifest.updated_purchase_order_ids
    assert max(len(v) for v in versions.values()) >= 3
    unchanged = ("created_at", "staff_id", "counterparty_id", "item_code", "currency_id")
    for vs in versions.values():
        assert all(all(v[c] == vs[0][c] for c in unchanged) for v in vs)
    # As in the real extract, the baseline holds no purchase order updated before it ...
    baseline = next(f for f in files if f.table == "purchase_order" and f.at == START)
    assert all(r["created_at"] == r["last_updated"] for r in baseline.rows)
    # ... and orders created in a batch continue its ids.
    created_later = {i for i, v in versions.items() if v[0]["created_at"] > START}
    assert (
        created_later
        and min(created_later) == max(r["purchase_order_id"] for r in baseline.rows) + 1
    )
    assert all(
        versions[i][0]["created_at"] == versions[i][0]["last_updated"] for i in created_later
    )


def test_purchase_orders_are_realistic(tree: Tree) -> None:
    files, _, _ = tree
    ids = {table: set(members(files, table)) for table in ID_COLUMNS}
    rows = [r for f in files if f.table == "purchase_order" for r in f.rows]
    for r in rows:
        assert r["staff_id"] in ids["staff"]
        assert r["counterparty_id"] in ids["counterparty"]
        assert r["currency_id"] in ids["currency"]
        assert r["agreed_delivery_location_id"] in ids["address"]
        assert re.fullmatch(r"[A-Z0-9]{7}", r["item_code"])
        assert 1 <= r["item_quantity"] <= 999
        assert Decimal("1.00") <= r["item_unit_price"] < Decimal("1000")
        assert r["item_unit_price"] == r["item_unit_price"].quantize(Decimal("0.01"))
        assert r["agreed_delivery_date"] >= r["created_at"].date()
        assert r["agreed_payment_date"] >= r["created_at"].date()
    for table in ("staff", "counterparty", "currency"):  # drawn across the dimension
        assert len({r[ID_COLUMNS[table]] for r in rows}) > len(ids[table]) // 2


def test_every_reference_of_the_new_tables_resolves(tree: Tree) -> None:
    files, _, _ = tree
    ids = {table: set(members(files, table)) for table in ID_COLUMNS}
    payments = [r for f in files if f.table == "payment" for r in f.rows]
    transactions = [r for f in files if f.table == "transaction" for r in f.rows]
    assert payments and transactions
    for r in payments:
        assert r["transaction_id"] in ids["transaction"]
        assert r["payment_type_id"] in ids["payment_type"]
        assert r["counterparty_id"] in ids["counterparty"]
        assert r["currency_id"] in ids["currency"]
    for r in transactions:
        assert r["sales_order_id"] is None or r["sales_order_id"] in ids["sales_order"]
        assert r["purchase_order_id"] is None or r["purchase_order_id"] in ids["purchase_order"]


def test_payments_are_created_unpaid_and_paid_later(tree: Tree) -> None:
    files, manifest, _ = tree
    versions = distinct_versions(files, "payment")
    assert len(versions) == manifest.payments_created == manifest.transactions_created
    assert sum(len(v) for v in versions.values()) == manifest.payment_versions
    assert sum(v[-1]["paid"] for v in versions.values()) == manifest.payments_paid
    twice = {i: v for i, v in versions.items() if len(v) > 1}
    assert twice
    for vs in twice.values():
        unpaid, paid = vs  # two versions: created unpaid, then paid
        assert not unpaid["paid"] and unpaid["last_updated"] == unpaid["created_at"]
        assert paid["paid"] and paid["last_updated"] > unpaid["last_updated"]
        same = {k: v for k, v in paid.items() if k not in ("paid", "last_updated")}
        assert same == {k: v for k, v in unpaid.items() if k not in ("paid", "last_updated")}
    updated = [f for f in files if f.prefix == "updated" and f.table == "payment"]
    paid_in_updates = sorted(r["payment_id"] for f in updated for r in f.rows if r["paid"])
    assert paid_in_updates == sorted(twice) == manifest.paid_in_updates_payment_ids
    # Some were created in a batch and paid in a later one: both versions in updated/ files.
    assert {r["payment_id"] for f in updated for r in f.rows if not r["paid"]} & set(twice)
    # The baseline, like the real extract, holds payments already paid (settled before it).
    baseline = next(f for f in files if f.table == "payment" and f.at == START)
    settled = [r for r in baseline.rows if r["paid"]]
    assert settled and len(settled) < len(baseline.rows)
    assert all(r["created_at"] < r["last_updated"] <= START for r in settled)
    assert all(r["last_updated"].date() == r["payment_date"] for r in settled)


def test_bank_details_and_paid_forms_in_the_source_files(tree: Tree) -> None:
    files, _, _ = tree
    payment_files = [f for f in files if f.table == "payment"]
    for f in payment_files:
        for r in f.raw:
            for column in ("company_ac_number", "counterparty_ac_number"):
                assert isinstance(r[column], int) and len(str(r[column])) == 8
    forms = {(type(r["paid"]).__name__, str(r["paid"])) for f in payment_files for r in f.raw}
    assert {("bool", "True"), ("bool", "False"), ("str", "t"), ("str", "f")} <= forms
    assert {("str", "true"), ("str", "false")} & forms
    baseline = next(f for f in payment_files if f.at == START)
    assert all(isinstance(r["paid"], bool) for r in baseline.raw)  # as the real extract


def test_payments_and_purchase_orders_are_deleted_by_absence(tree: Tree) -> None:
    files, manifest, _ = tree
    last_batch = max(f.at for f in files if f.prefix == "updated")
    for table, deleted in (
        ("purchase_order", manifest.deleted_purchase_order_ids),
        ("payment", manifest.deleted_payment_ids),
    ):
        snapshots = [f for f in files if f.prefix == "baseline" and f.table == table]
        assert [f.at for f in snapshots] == [START, last_batch]
        last = snapshots[-1]
        earlier = {
            r[ID_COLUMNS[table]]
            for f in files
            if f.table == table and f is not last
            for r in f.rows
        }
        last_ids = [r[ID_COLUMNS[table]] for r in last.rows]
        assert deleted and len(last_ids) == len(set(last_ids))
        assert set(deleted) <= earlier and not set(deleted) & set(last_ids)
        assert set(last_ids) | set(deleted) == earlier
        latest = {i: v[-1] for i, v in distinct_versions(files, table).items()}
        assert all(r == latest[r[ID_COLUMNS[table]]] for r in last.rows)
    # The payments deleted are exactly those of the deleted orders; their transactions stay.
    transactions = {i: v[-1] for i, v in distinct_versions(files, "transaction").items()}
    gone = {("SALE", i) for i in manifest.deleted_order_ids}
    gone |= {("PURCHASE", i) for i in manifest.deleted_purchase_order_ids}
    payments = {i: v[-1] for i, v in distinct_versions(files, "payment").items()}
    expected = sorted(
        i for i, p in payments.items() if order_of(transactions[p["transaction_id"]]) in gone
    )
    assert expected == manifest.deleted_payment_ids
    assert len(expected) == len(gone)


def test_every_file_is_read_whole_by_the_pipelines_reader(tree: Tree) -> None:
    files, _, raw = tree
    for f, (key, content) in zip(files, raw, strict=True):
        parsed = parse_file(content, f.table, key)
        assert parsed.problems == 0, (key, parsed.rejects.head(3))
        assert parsed.rows.height == parsed.records_read == len(f.raw)


def test_new_tables_take_their_own_random_streams() -> None:
    """How many purchase orders there are changes nothing in the other tables' files."""
    default, manifest = generate(orders=200, updates=2, seed=4)
    fewer, other = generate(orders=200, updates=2, seed=4, purchase_orders=7)
    assert other.purchase_orders_created == 7 != manifest.purchase_orders_created
    assert other.transactions_created == 207

    def untouched(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        new = ("purchase_order", "transaction", "payment")
        return [(k, c) for k, c in files if ParsedFile(k, b"[]").table not in new]

    assert untouched(default) == untouched(fewer)
    with pytest.raises(ValueError):
        list(iter_ingestion_files(orders=50, purchase_orders=0))


def test_totesys_generate_writes_the_tree(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from service.cli import app

    args = ["--out", str(tmp_path), "--orders", "60", "--updates", "1", "--seed", "3"]
    result = CliRunner().invoke(app, ["generate", *args, "--purchase-orders", "9"])
    assert result.exit_code == 0, result.output
    manifest = SyntheticManifest()
    expected = dict(
        iter_ingestion_files(orders=60, updates=1, seed=3, purchase_orders=9, manifest=manifest)
    )
    assert manifest.summary() in " ".join(result.output.split())
    assert "60 sales orders" in manifest.summary() and "9 purchase orders" in manifest.summary()
    written = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*.json")}
    assert written == expected
    assert {ParsedFile(k, b"[]").table for k in written} == set(ID_COLUMNS)
    purchases = {
        r["purchase_order_id"]
        for k, c in written.items()
        if "purchase_order" in k
        for r in ParsedFile(k, c).rows
    }
    assert purchases == set(range(1, 10))
