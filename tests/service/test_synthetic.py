"""The synthetic ingestion tree: deterministic, realistic, and its manifest tells the truth.

The files are parsed here with plain `json`, independently of the pipeline's reader.
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
}


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
            out[name] = int(value)
        elif name == "unit_price":
            out[name] = Decimal(str(value))
        elif name.startswith("agreed_") and name.endswith("_date"):
            out[name] = date.fromisoformat(value)
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
    assert len(files) == 8
    assert manifest.order_versions == manifest.orders_created == 50
    assert manifest.deleted_order_ids == manifest.updated_order_ids == []
    assert manifest.renamed_department_ids == manifest.changed_address_ids == []


def test_a_single_batch_still_changes_deletes_and_updates_dimensions() -> None:
    raw, manifest = generate(orders=100, updates=1)
    files = [ParsedFile(k, c) for k, c in raw]
    assert manifest.deleted_order_ids and manifest.updated_order_ids
    assert manifest.renamed_department_ids and manifest.changed_address_ids
    updated_tables = {f.table for f in files if f.prefix == "updated"}
    assert updated_tables == {"sales_order", "department", "address", "staff", "design"}
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
