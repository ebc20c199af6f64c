"""The type-2 states of the member dimensions, against an independent oracle: at every moment a
source row changed, the state covering it is the dimension built from the latest rows then."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import dimension_history as history
from transforms.dimensions import DIMENSIONS, DimensionSpec, latest_source_rows
from transforms.schemas import SOURCE_TABLES

T0 = datetime(2024, 1, 1)


def at(n: int) -> datetime:
    return T0 + timedelta(hours=n)


def frame(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SOURCE_TABLES[table].columns)


def staff(sid: int, dept: int, t: int, name: str = "A") -> dict[str, Any]:
    return {
        "staff_id": sid,
        "first_name": name,
        "last_name": "L",
        "department_id": dept,
        "email_address": f"{sid}@x",
        "created_at": at(0),
        "last_updated": at(t),
    }


def department(did: int, t: int, name: str, manager: str = "M") -> dict[str, Any]:
    return {
        "department_id": did,
        "department_name": name,
        "location": "Leeds",
        "manager": manager,
        "created_at": at(0),
        "last_updated": at(t),
    }


def address(aid: int, t: int, city: str, phone: str = "0") -> dict[str, Any]:
    return {
        "address_id": aid,
        "address_line_1": f"{aid} Road",
        "address_line_2": None,
        "district": None,
        "city": city,
        "postal_code": "P",
        "country": "UK",
        "phone": phone,
        "created_at": at(0),
        "last_updated": at(t),
    }


def counterparty(cid: int, addr: int, t: int, name: str = "Firm") -> dict[str, Any]:
    return {
        "counterparty_id": cid,
        "counterparty_legal_name": name,
        "legal_address_id": addr,
        "commercial_contact": None,
        "delivery_contact": "X",
        "created_at": at(0),
        "last_updated": at(t),
    }


STAFF = DIMENSIONS["dim_staff"]
COUNTERPARTY = DIMENSIONS["dim_counterparty"]
TRANSACTION = DIMENSIONS["dim_transaction"]


def test_rename_move_and_invisible_change() -> None:
    histories = {
        "staff": frame("staff", [staff(1, 1, 0), staff(2, 1, 1), staff(2, 2, 5)]),
        "department": frame(
            "department",
            [
                department(1, 0, "Sales"),
                department(1, 2, "Sales", manager="N"),  # nothing dim_staff shows
                department(1, 3, "Marketing"),
                department(2, 0, "Ops"),
            ],
        ),
    }
    states = history.member_states(STAFF, histories)
    got = states.select("staff_id", "department_name", "valid_from", "valid_to", "is_current")
    assert got.rows() == [
        (1, "Sales", at(0), at(3), False),
        (1, "Marketing", at(3), None, True),  # the rename starts a state for staff 1 ...
        (2, "Sales", at(1), at(3), False),
        (2, "Marketing", at(3), at(5), False),  # ... and for staff 2, then in it
        (2, "Ops", at(5), None, True),  # the move
    ]
    assert states.schema == history.history_schema(STAFF)


def test_member_whose_department_arrives_later_in_business_time() -> None:
    histories = {
        "staff": frame("staff", [staff(1, 7, 2)]),
        "department": frame("department", [department(7, 4, "Late")]),
    }
    rows = history.member_states(STAFF, histories).to_dicts()
    assert [(r["department_name"], r["is_inferred"], r["valid_from"]) for r in rows] == [
        ("Unknown", True, at(2)),
        ("Late", False, at(4)),
    ]


def test_address_change_reaches_the_location_and_every_counterparty_at_it() -> None:
    histories = {
        "counterparty": frame(
            "counterparty", [counterparty(1, 1, 0), counterparty(2, 1, 1), counterparty(3, 2, 1)]
        ),
        "address": frame(
            "address", [address(1, 0, "Leeds"), address(1, 6, "York"), address(2, 0, "Hull")]
        ),
    }
    cp = history.member_states(COUNTERPARTY, histories)
    assert cp.select("counterparty_id", "counterparty_legal_city", "valid_from").rows() == [
        (1, "Leeds", at(0)),
        (1, "York", at(6)),
        (2, "Leeds", at(1)),
        (2, "York", at(6)),
        (3, "Hull", at(1)),
    ]
    loc = history.member_states(DIMENSIONS["dim_location"], {"address": histories["address"]})
    assert loc.select("location_id", "city", "valid_from", "is_current").rows() == [
        (1, "Leeds", at(0), False),
        (1, "York", at(6), True),
        (2, "Hull", at(0), True),
    ]


# -- properties --------------------------------------------------------------------------------
NAMES = st.sampled_from(["Sales", "Ops", "Marketing"])


@st.composite
def staff_versions(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Up to 3 staff and 3 departments, versions at distinct times per member."""
    staff_rows = []
    for sid in range(1, draw(st.integers(1, 3)) + 1):
        for t in draw(st.sets(st.integers(0, 12), min_size=1, max_size=4)):
            dept = draw(st.integers(1, 3))
            staff_rows.append(staff(sid, dept, t, draw(st.sampled_from(["A", "B"]))))
    dept_rows = [
        department(did, t, draw(NAMES), draw(st.sampled_from(["M", "N"])))
        for did in range(1, 4)
        for t in draw(st.sets(st.integers(0, 12), max_size=3))
    ]
    return {"staff": staff_rows, "department": dept_rows}


@st.composite
def counterparty_versions(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    cp_rows = []
    for cid in range(1, draw(st.integers(1, 3)) + 1):
        for t in draw(st.sets(st.integers(0, 12), min_size=1, max_size=3)):
            cp_rows.append(counterparty(cid, draw(st.integers(1, 2)), t, draw(NAMES)))
    addr_rows = [
        address(aid, t, draw(st.sampled_from(["Leeds", "York"])), draw(st.sampled_from("01")))
        for aid in (1, 2)
        for t in draw(st.sets(st.integers(0, 12), max_size=3))
    ]
    return {"counterparty": cp_rows, "address": addr_rows}


def transaction(tid: int, t: int, sale: bool, order: int) -> dict[str, Any]:
    return {
        "transaction_id": tid,
        "transaction_type": "SALE" if sale else "PURCHASE",
        "sales_order_id": order if sale else None,
        "purchase_order_id": None if sale else order,
        "created_at": at(0),
        "last_updated": at(t),
    }


@st.composite
def transaction_versions(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """A dimension of one source table (no joins: its own fast path): up to 4 transactions,
    versions at distinct times per member, some changing nothing the dimension shows."""
    rows = []
    for tid in range(1, draw(st.integers(1, 4)) + 1):
        for t in draw(st.sets(st.integers(0, 12), min_size=1, max_size=4)):
            rows.append(transaction(tid, t, draw(st.booleans()), draw(st.integers(1, 2))))
    return {"transaction": rows}


def frames_of(rows: dict[str, list[dict[str, Any]]]) -> history.Histories:
    return {t: frame(t, r) for t, r in rows.items()}


def oracle_check(spec: DimensionSpec, histories: history.Histories) -> None:
    """At every moment any source row changed, each member that existed then has exactly one
    state covering it, and that state is `build` over the latest rows at that moment."""
    states = history.member_states(spec, histories)
    values = list(spec.schema)
    moments = sorted(set(pl.concat([h["last_updated"] for h in histories.values()]).to_list()))
    for moment in moments:
        snapshot = [
            latest_source_rows(
                histories[t].filter(pl.col("last_updated") <= moment), SOURCE_TABLES[t].key
            )
            for t in spec.sources
        ]
        expected, _ = spec.build(*snapshot)
        covering = states.filter(
            (pl.col("valid_from") <= moment)
            & (pl.col("valid_to").is_null() | (pl.col("valid_to") > moment))
        )
        assert covering.select(values).sort(spec.key).rows() == expected.sort(spec.key).rows()
    # one row per distinct state: consecutive states of a member differ
    for _, member in states.group_by(spec.key):
        rows = member.sort("valid_from").select(values).rows()
        assert all(a != b for a, b in pairwise(rows))
        chain = member.sort("valid_from")
        assert chain["valid_to"].to_list()[:-1] == chain["valid_from"].to_list()[1:]
        assert chain["is_current"].to_list() == [False] * (chain.height - 1) + [True]


@settings(max_examples=60, deadline=None)
@given(staff_versions())
def test_staff_states_match_the_oracle(rows: dict[str, list[dict[str, Any]]]) -> None:
    oracle_check(STAFF, frames_of(rows))


@settings(max_examples=60, deadline=None)
@given(counterparty_versions())
def test_counterparty_states_match_the_oracle(rows: dict[str, list[dict[str, Any]]]) -> None:
    oracle_check(COUNTERPARTY, frames_of(rows))


@settings(max_examples=60, deadline=None)
@given(transaction_versions())
def test_transaction_states_match_the_oracle(rows: dict[str, list[dict[str, Any]]]) -> None:
    oracle_check(TRANSACTION, frames_of(rows))


def test_a_seeded_member_of_a_one_table_dimension_starts_at_its_seeded_row() -> None:
    """A root written before the history: the member's seeded row is where its history
    starts; a late version older than it is not slotted in before it."""
    seeded = frame("transaction", [transaction(1, 5, True, 1)]).with_columns(
        pl.lit(True).alias(history.SEEDED)
    )
    late = frame("transaction", [transaction(1, 2, False, 1), transaction(1, 8, False, 2)])
    histories = {
        "transaction": pl.concat([seeded, late.with_columns(pl.lit(False).alias(history.SEEDED))])
    }
    states = history.member_states(TRANSACTION, histories)
    assert states.select("transaction_type", "valid_from").rows() == [
        ("SALE", at(5)),
        ("PURCHASE", at(8)),
    ]


def incremental(
    spec: DimensionSpec, arrivals: list[dict[str, list[dict[str, Any]]]]
) -> pl.DataFrame:
    """The pipeline's way: versions arrive in chunks; each chunk's new versions update the
    stored history through `apply_versions` (redelivered versions are not new)."""
    stored_versions = {t: frame(t, []) for t in spec.sources}
    table: pl.DataFrame | None = None
    for chunk in arrivals:
        new = {}
        for t, rows in chunk.items():
            incoming = history.source_versions(frame(t, rows), t)
            fresh = history.new_versions(incoming, stored_versions[t], t)
            if not fresh.is_empty():
                new[t] = fresh
        if not new:
            continue
        update = history.apply_versions(spec, stored_versions, new, table is not None)
        if table is None:
            table = update.rows if not update.rows.is_empty() else None
        else:
            table = history.replace_members(table, update, spec.key)
        stored_versions = history.with_versions(stored_versions, new)
    return table if table is not None else history.empty_history(spec)


def chunks(
    rows: dict[str, list[dict[str, Any]]], order: list[int], cuts: list[int]
) -> list[dict[str, list[dict[str, Any]]]]:
    flat = [(t, r) for t, rs in rows.items() for r in rs]
    flat = [flat[i % len(flat)] for i in order] + flat  # some redelivered, then all of them
    bounds = sorted({c % (len(flat) + 1) for c in cuts} | {0, len(flat)})
    out = []
    for lo, hi in pairwise(bounds):
        chunk: dict[str, list[dict[str, Any]]] = {}
        for t, r in flat[lo:hi]:
            chunk.setdefault(t, []).append(r)
        out.append(chunk)
    return out


@pytest.mark.parametrize(
    "spec,versions",
    [
        (STAFF, staff_versions),
        (COUNTERPARTY, counterparty_versions),
        (TRANSACTION, transaction_versions),
    ],
)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_arrival_order_does_not_matter(
    spec: DimensionSpec, versions: Any, data: st.DataObject
) -> None:
    rows = data.draw(versions())
    size = sum(len(r) for r in rows.values())
    order = data.draw(st.lists(st.integers(0, size - 1), max_size=size))
    cuts = data.draw(st.lists(st.integers(0, 3 * size), max_size=6))
    at_once = history.member_states(spec, frames_of(rows))
    arrived = incremental(spec, chunks(rows, order, cuts))
    one_by_one = incremental(spec, chunks(rows, order, list(range(2 * size + 1))))
    assert arrived.sort([spec.key, "valid_from"]).equals(at_once)
    assert one_by_one.sort([spec.key, "valid_from"]).equals(at_once)


def test_only_members_touched_by_new_versions_are_recomputed() -> None:
    old = {
        "staff": frame("staff", [staff(1, 1, 0), staff(2, 2, 0), staff(3, 1, 0)]),
        "department": frame("department", [department(1, 0, "Sales"), department(2, 0, "Ops")]),
    }
    rename = {"department": frame("department", [department(2, 4, "Operations")])}
    update = history.apply_versions(STAFF, old, rename, exists=True)
    assert update.members is not None and update.members.to_list() == [2]
    assert update.rows["staff_id"].to_list() == [2, 2]
    invisible = {"department": frame("department", [department(1, 4, "Sales", manager="Z")])}
    assert history.apply_versions(STAFF, old, invisible, exists=True).empty


def test_every_dimension_has_a_history_table_but_the_calendar() -> None:
    assert set(history.HISTORIES) == {f"{n}_history" for n in DIMENSIONS}
    assert history.history_path(STAFF) == "dimension_history/staff"
    assert "dim_date_history" not in history.HISTORIES
