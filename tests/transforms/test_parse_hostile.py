"""parse_file against hostile input: properties over arbitrary bytes, JSON and field values
(Hypothesis), and the bounds on what a bad file can cost or put in a row."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.parse import (
    DEFAULT_LIMITS,
    FILE_FIELD,
    JSON_FIELD,
    REJECT_COUNTS,
    ParsedFile,
    ParseLimits,
    parse_file,
)
from transforms.schemas import REJECTS, SOURCE_TABLES

SOURCE = "updated/sales_order-2024-11-14T10:20:30.json"
TABLES = sorted(SOURCE_TABLES)
# Small limits make the caps reachable with small examples.
SMALL = ParseLimits(max_string_chars=40, max_reject_details=5)
# derandomized: CI runs the same examples every time (no flaky counterexample hunt in CI)
PROPERTY = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_SURROGATE = __import__("re").compile("[\ud800-\udfff]")


def good_order(order_id: int = 1, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sales_order_id": order_id,
        "created_at": "2022-11-03T14:20:52.186000",
        "last_updated": "2022-11-03T14:20:52.186000",
        "design_id": 3,
        "staff_id": 19,
        "counterparty_id": 8,
        "units_sold": 42972,
        "unit_price": 3.94,
        "currency_id": 2,
        "agreed_delivery_date": "2022-11-07",
        "agreed_payment_date": "2022-11-08",
        "agreed_delivery_location_id": 8,
    }
    record.update(changes)
    return record


def jsonl(records: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def assert_star_schema_ranges(parsed: ParsedFile, table: str, limits: ParseLimits) -> None:
    """Every row parse_file returns is one the star schema can hold, and the bookkeeping adds
    up: rows + rejected records = records read; detail within the cap; raw values clipped."""
    spec = SOURCE_TABLES[table]
    rows = parsed.rows
    assert dict(rows.schema) == {**spec.columns, "record_number": pl.Int64()}
    for column, dtype in spec.columns.items():
        values = rows[column]
        if column not in spec.nullable:
            assert values.null_count() == 0, column
        present = values.drop_nulls()
        if not len(present):
            continue
        if isinstance(dtype, pl.Datetime):
            assert present.min() >= limits.min_timestamp, column  # type: ignore[operator]
            assert present.max() <= limits.max_timestamp, column  # type: ignore[operator]
        elif dtype == pl.Date():
            assert present.min() >= limits.min_date, column  # type: ignore[operator]
            assert present.max() <= limits.max_date, column  # type: ignore[operator]
        elif dtype == pl.String():
            assert present.str.len_chars().max() <= limits.max_string_chars, column  # type: ignore[operator]
    numbers = rows["record_number"]
    assert numbers.n_unique() == rows.height
    if rows.height:
        assert numbers.min() >= 1 and numbers.max() <= parsed.records_read  # type: ignore[operator]
    assert rows.height + parsed.records_rejected == parsed.records_read
    # rejects: schema, cap, order, clipped raw values, exact counts cover the detail
    assert dict(parsed.rejects.schema) == REJECTS
    assert parsed.rejects.height <= limits.max_reject_details
    assert parsed.rejects["record_number"].is_sorted()
    raw = parsed.rejects["raw_value"].drop_nulls()
    assert not len(raw) or raw.str.len_chars().max() <= 1_000  # type: ignore[operator]
    assert parsed.reject_counts is not None
    assert dict(parsed.reject_counts.schema) == REJECT_COUNTS
    assert parsed.problems >= parsed.rejects.height
    if parsed.problems:
        assert parsed.rejects.height == min(parsed.problems, limits.max_reject_details)
    if parsed.file_rejected:
        assert rows.height == 0 and parsed.rejects["field"].to_list() == [FILE_FIELD]


# ---------------------------------------------------------------------------------------------
# properties

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@PROPERTY
@given(data=st.binary(max_size=3_000), table=st.sampled_from(TABLES))
def test_arbitrary_bytes_never_raise(data: bytes, table: str) -> None:
    assert_star_schema_ranges(parse_file(data, table, SOURCE, SMALL), table, SMALL)


@PROPERTY
@given(
    values=st.lists(json_values, max_size=8),
    shape=st.sampled_from(["jsonl", "array", "wrapped", "single"]),
    table=st.sampled_from(TABLES),
)
def test_arbitrary_json_never_raises(values: list[Any], shape: str, table: str) -> None:
    if shape == "jsonl":
        data = "\n".join(json.dumps(v) for v in values).encode()
    elif shape == "array":
        data = json.dumps(values).encode()
    elif shape == "wrapped":
        data = json.dumps({table: values}).encode()
    else:
        data = json.dumps(values[0] if values else {}).encode()
    assert_star_schema_ranges(parse_file(data, table, SOURCE, SMALL), table, SMALL)


def _iso(moment: datetime, sep: str) -> str:
    return moment.isoformat(sep=sep)


field_values = (
    json_scalars
    | st.text(max_size=60)  # around the 40-character cap, surrogates included
    | st.datetimes().map(lambda d: _iso(d, "T"))
    | st.datetimes().map(lambda d: _iso(d, " "))
    | st.dates().map(date.isoformat)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-(10**16), max_value=10**16).map(str)  # epoch ms and friends
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.sampled_from(["0000-01-01T00:00:00", "9999-12-31", "+10000-01-01", "\ud800", "a\udfffb"])
    | json_values
)


@PROPERTY
@given(
    changes=st.lists(
        st.dictionaries(st.sampled_from(list(SOURCE_TABLES["sales_order"].columns)), field_values),
        min_size=1,
        max_size=6,
    ),
    shape=st.sampled_from(["jsonl", "array"]),
)
def test_arbitrary_field_values_never_raise_and_rows_stay_in_range(
    changes: list[dict[str, Any]], shape: str
) -> None:
    records = [good_order(i, **c) for i, c in enumerate(changes, start=1)]
    data = jsonl(records) if shape == "jsonl" else json.dumps(records).encode()
    parsed = parse_file(data, "sales_order", SOURCE, SMALL)
    assert_star_schema_ranges(parsed, "sales_order", SMALL)
    try:
        json.dumps(records, allow_nan=False)
        strict = True
    except ValueError:  # NaN/Infinity: json.dumps writes tokens that are not JSON
        strict = False
    if shape == "jsonl" or strict:
        assert parsed.records_read == len(records)
    else:  # an array that is not JSON may be rejected whole, with the reason
        assert parsed.file_rejected and parsed.rows.is_empty()
    # a record holding a lone surrogate anywhere in a field is never a row
    kept = set(parsed.rows["record_number"].to_list())
    for number, record in enumerate(records, start=1):
        if any(_SURROGATE.search(json.dumps(v, ensure_ascii=False)) for v in record.values()):
            assert number not in kept


@PROPERTY
@given(
    lines=st.lists(
        st.sampled_from(["good", "broken", "blank", "array", "bad-utf8", "surrogate"]),
        min_size=1,
        max_size=40,
    )
)
def test_json_lines_mixtures_keep_every_good_record(lines: list[str]) -> None:
    text = {
        "broken": b'{"sales_order_id": 1, "created_at": ',
        "blank": b"  ",
        "array": b"[1, 2]",
        "bad-utf8": b'{"sales_order_id": "\xff"}',
        "surrogate": json.dumps(good_order(1, staff_id="x\ud800")).encode(),
    }
    data = b"\n".join(
        json.dumps(good_order(i)).encode() if kind == "good" else text[kind]
        for i, kind in enumerate(lines, start=1)
    )
    parsed = parse_file(data, "sales_order", SOURCE, SMALL)
    assert_star_schema_ranges(parsed, "sales_order", SMALL)
    present = [k for k in lines if k != "blank"]
    if not {"good", "surrogate"} & set(present):
        # not one line is a record: junk, one "<file>" reject (or nothing at all, if blank)
        assert parsed.rows.is_empty() and parsed.rejects.height == (1 if present else 0)
        return
    assert parsed.records_read == len(present)
    if "good" in present:
        goods = [n for n, k in enumerate(present, start=1) if k == "good"]
        assert parsed.rows["record_number"].to_list() == goods
        assert parsed.records_rejected == len(present) - len(goods)


# ---------------------------------------------------------------------------------------------
# examples


def reasons(parsed: ParsedFile) -> list[tuple[int, str, str]]:
    return [(r["record_number"], r["field"], r["reason"]) for r in parsed.rejects.to_dicts()]


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("last_updated", "0000-01-01T00:00:00"),
        ("created_at", "1899-12-31 23:59:59.999999"),
        ("created_at", "2200-01-01T00:00:00"),
        ("last_updated", -5_000_000_000_000),  # epoch ms in 1811
        ("agreed_delivery_date", "9999-12-31"),
        ("agreed_payment_date", "1066-10-14"),
    ],
)
def test_implausible_dates_are_rejected(field: str, raw: Any) -> None:
    parsed = parse_file(
        jsonl([good_order(1), good_order(2, **{field: raw})]), "sales_order", SOURCE
    )
    assert parsed.rows["sales_order_id"].to_list() == [1]
    ((number, where, reason),) = reasons(parsed)
    assert (number, where) == (2, field)
    assert reason == f"implausible date: '{raw}' is outside 1900-01-01..2199-12-31"


def test_the_window_comes_from_the_limits() -> None:
    limits = ParseLimits(min_date=date(2022, 11, 4), max_date=date(2030, 1, 1))
    parsed = parse_file(jsonl([good_order(1)]), "sales_order", SOURCE, limits)
    assert parsed.rows.is_empty()
    assert {r[1] for r in reasons(parsed)} == {"created_at", "last_updated"}
    edge = good_order(2, created_at="2022-11-04T00:00:00", last_updated="2030-01-01T23:59:59")
    parsed = parse_file(jsonl([edge]), "sales_order", SOURCE, limits)
    assert parsed.rows["sales_order_id"].to_list() == [2]


def test_strings_over_the_cap_are_rejected_and_raw_value_is_clipped() -> None:
    staff = {
        "staff_id": 1,
        "first_name": "x" * 5_000,
        "last_name": "L",
        "department_id": 1,
        "email_address": "e@x",
        "created_at": "2022-11-03T14:20:52",
        "last_updated": "2022-11-03T14:20:52",
    }
    ok = {**staff, "staff_id": 2, "first_name": "y" * 1_000}
    parsed = parse_file(jsonl([staff, ok]), "staff", "updated/staff-2024-11-14T10:20:30.json")
    assert parsed.rows["staff_id"].to_list() == [2]
    (reject,) = parsed.rejects.to_dicts()
    assert reject["field"] == "first_name"
    assert reject["reason"].startswith("string longer than 1000 characters (5000): 'xxx")
    assert len(reject["raw_value"]) == 1_000 and reject["raw_value"].endswith("…")


@pytest.mark.parametrize("shape", ["jsonl", "array"])
def test_a_lone_surrogate_rejects_its_record_a_pair_is_text(shape: str) -> None:
    records = [good_order(1), good_order(2, units_sold="\ud800"), good_order(3)]
    data = jsonl(records) if shape == "jsonl" else json.dumps(records).encode()
    parsed = parse_file(data, "sales_order", SOURCE)
    assert parsed.rows["sales_order_id"].to_list() == [1, 3]
    assert reasons(parsed) == [(2, "units_sold", 'lone surrogate: "\\ud800"')]
    staff = {
        "staff_id": 1,
        "first_name": "Zoë \U0001f600",  # a surrogate pair in the JSON text
        "last_name": "lone \udfff",
        "department_id": 1,
        "email_address": "e@x",
        "created_at": "2022-11-03T14:20:52",
        "last_updated": "2022-11-03T14:20:52",
    }
    paired = {**staff, "staff_id": 2, "last_name": "ok"}
    parsed = parse_file(jsonl([staff, paired]), "staff", SOURCE)
    assert parsed.rows["first_name"].to_list() == ["Zoë \U0001f600"]
    assert [r[:2] for r in reasons(parsed)] == [(1, "last_name")]


@pytest.mark.parametrize(
    "data",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
)
def test_deep_nesting_is_a_file_reject(data: bytes) -> None:
    parsed = parse_file(data, "sales_order", SOURCE)
    assert parsed.rows.is_empty()
    assert [r[1] for r in reasons(parsed)] == [FILE_FIELD]


def test_a_deep_json_lines_record_rejects_only_itself() -> None:
    deep = b'{"sales_order_id": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    parsed = parse_file(
        jsonl([good_order(1)]) + deep + b"\n" + jsonl([good_order(3)]), "sales_order", SOURCE
    )
    assert parsed.rows["sales_order_id"].to_list() == [1, 3]
    assert [(n, f) for n, f, _ in reasons(parsed)] == [(2, JSON_FIELD)]


def test_invalid_utf8_in_one_record_keeps_the_others() -> None:
    bad = json.dumps(good_order(2, staff_id="@")).encode().replace(b"@", b"\xc3\x28")
    parsed = parse_file(
        jsonl([good_order(1)]) + bad + b"\n" + jsonl([good_order(3)]), "sales_order", SOURCE
    )
    assert parsed.rows["sales_order_id"].to_list() == [1, 3]
    ((number, field, reason),) = reasons(parsed)
    assert (number, field) == (2, JSON_FIELD) and reason.startswith("invalid UTF-8 on line 2: ")


def test_rejects_are_capped_and_counted_exactly() -> None:
    limits = ParseLimits(max_reject_details=7)
    parsed = parse_file(b"{}\n" * 3_000, "sales_order", SOURCE, limits)
    assert parsed.rows.is_empty() and parsed.records_read == 3_000
    assert parsed.records_rejected == 3_000
    assert parsed.rejects.height == 7
    assert parsed.rejects["record_number"].to_list() == [1] * 7  # the first problems, in order
    assert parsed.reject_counts is not None
    counts = {(r["field"], r["reason"]): r["count"] for r in parsed.reject_counts.to_dicts()}
    assert counts == {
        (c, "missing required field"): 3_000 for c in SOURCE_TABLES["sales_order"].columns
    }


def test_json_lines_rejects_are_counted_by_kind() -> None:
    lines = []
    for i in range(1, 2_001):
        line = json.dumps(good_order(i))
        lines.append(line if i % 2 else (line[:-1] if i % 4 else "[1]"))
    parsed = parse_file(
        "\n".join(lines).encode(), "sales_order", SOURCE, ParseLimits(max_reject_details=3)
    )
    assert parsed.rows.height == 1_000 and parsed.records_rejected == 1_000
    assert [(n, f) for n, f, _ in reasons(parsed)] == [
        (2, JSON_FIELD),
        (4, JSON_FIELD),
        (6, JSON_FIELD),
    ]
    assert parsed.reject_counts is not None
    counts = {(r["field"], r["reason"]): r["count"] for r in parsed.reject_counts.to_dicts()}
    assert counts == {(JSON_FIELD, "invalid JSON"): 500, (JSON_FIELD, "not a JSON object"): 500}


def test_default_limits_are_the_documented_ones() -> None:
    assert ParseLimits(date(1900, 1, 1), date(2199, 12, 31), 1_000, 1_000) == DEFAULT_LIMITS
