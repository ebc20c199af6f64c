"""The optimistic read (integers and booleans typed by Polars as it reads) gives exactly what the
text path gives, on clean and dirty input alike, and clean input never pays for the text path."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.conftest import encode
from tests.transforms.test_parse_hostile import field_values
from tests.transforms.test_parse_tables import record
from transforms.parse import ParsedFile, ParseLimits, parse_file
from transforms.parse.records import Records
from transforms.schemas import SOURCE_TABLES

SOURCE = "baseline/x-2024-11-15T10:20:30.jsonl"
TABLES = sorted(SOURCE_TABLES)
SMALL = ParseLimits(max_string_chars=40, max_reject_details=5)
EQUIVALENCE = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Values the typed read must refuse (or take exactly as the text path does) in a typed column.
ODD = st.sampled_from(
    [None, 42, -0, "42", " 42", 42.0, 4.2e1, 42.5, 2**31, -(2**31) - 1, True, "t", "true", "f"]
)


def text_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse the way it was before the optimistic read: every column read as text."""
    monkeypatch.setattr(Records, "read_lines_typed", Records.read_lines)


def assert_same(fast: ParsedFile, text: ParsedFile) -> None:
    assert_frame_equal(fast.rows, text.rows)
    assert_frame_equal(fast.rejects, text.rejects)
    assert fast.reject_counts is not None and text.reject_counts is not None
    assert_frame_equal(fast.reject_counts, text.reject_counts)
    assert (fast.records_read, fast.records_rejected) == (text.records_read, text.records_rejected)


@EQUIVALENCE
@given(
    table=st.sampled_from(TABLES),
    changes=st.lists(st.dictionaries(st.integers(0, 20), field_values | ODD), max_size=6),
    shape=st.sampled_from(["jsonl", "array", "wrapped"]),
)
def test_typed_and_text_reads_give_the_same_file(
    monkeypatch: pytest.MonkeyPatch, table: str, changes: list[dict[int, Any]], shape: str
) -> None:
    columns = list(SOURCE_TABLES[table].columns)
    records = [record(table, n) for n in range(1, 5)]
    for n, change in enumerate(changes):
        for index, value in change.items():
            records[n % len(records)][columns[index % len(columns)]] = value
    data = encode(table, records, shape)
    fast = parse_file(data, table, SOURCE, SMALL)
    with monkeypatch.context() as patched:
        text_path(patched)
        text = parse_file(data, table, SOURCE, SMALL)
    assert_same(fast, text)


@pytest.mark.parametrize("shape", ["jsonl", "array", "wrapped"])
@pytest.mark.parametrize("table", TABLES)
def test_clean_files_are_read_once_typed(
    monkeypatch: pytest.MonkeyPatch, table: str, shape: str
) -> None:
    def no_text_read(self: Records, data: bytes) -> pl.DataFrame:
        raise AssertionError("read as text")

    data = encode(table, [record(table, n) for n in range(1, 4)], shape)
    expected = parse_file(data, table, SOURCE)
    monkeypatch.setattr(Records, "read_lines", no_text_read)
    parsed = parse_file(data, table, SOURCE)
    assert parsed.rows.height == 3 and parsed.rejects.is_empty()
    assert_frame_equal(parsed.rows, expected.rows)


def test_a_value_the_typed_read_refuses_sends_the_piece_to_the_text_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []
    text_read = Records.read_lines

    def counted(self: Records, data: bytes) -> pl.DataFrame:
        reads.append("text")
        return text_read(self, data)

    monkeypatch.setattr(Records, "read_lines", counted)
    orders = [record("sales_order", 1), {**record("sales_order", 2), "units_sold": "17"}]
    parsed = parse_file(encode("sales_order", orders), "sales_order", SOURCE)
    assert reads == ["text"]
    assert parsed.rows["units_sold"].to_list() == [7, 17]
    paid = [{**record("payment", 2), "paid": "t"}, {**record("payment", 3), "paid": 1}]
    parsed = parse_file(encode("payment", paid), "payment", SOURCE)
    assert parsed.rows["paid"].to_list() == [True]
    assert parsed.rejects.select("record_number", "field").rows() == [(2, "paid")]


def test_missing_required_integers_read_typed_are_rejected_as_before() -> None:
    orders = [record("sales_order", 1), {**record("sales_order", 2), "staff_id": None}]
    data = "".join(json.dumps(o) + "\n" for o in orders).encode()
    parsed = parse_file(data, "sales_order", SOURCE)
    assert parsed.rows["sales_order_id"].to_list() == [1]
    assert parsed.rejects.select("record_number", "field", "reason", "raw_value").rows() == [
        (2, "staff_id", "missing required field", None)
    ]


STAMPS = st.sampled_from(
    [
        "2022-11-03T14:20:52.186000",
        "2022-11-03T14:20:53",
        "2022-11-03 14:20:52.186",
        "2022-11-04T09:00:00.000001",
        1667485252186,
        "1667485252186",
        "2022-11-03T14:20:52Z",
        " 2022-11-03T14:20:52 ",
        "0001-01-01T00:00:00",
        "not a time",
        None,
        "",
    ]
)


@EQUIVALENCE
@given(
    pairs=st.lists(st.tuples(STAMPS, STAMPS | st.just("same")), min_size=1, max_size=12),
    table=st.sampled_from(["sales_order", "payment", "purchase_order", "staff"]),
)
def test_timestamps_parsed_once_for_two_columns_give_the_same_file(
    monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[Any, Any]], table: str
) -> None:
    """created_at and last_updated holding the same text are parsed once (typed._same_text):
    what comes out is what parsing each column on its own gives, problems included."""
    records = []
    for number, (created, updated) in enumerate(pairs, start=1):
        row = record(table, number)
        row["created_at"] = created
        row["last_updated"] = created if updated == "same" else updated
        records.append(row)
    data = encode(table, records)
    once = parse_file(data, table, SOURCE, SMALL)
    with monkeypatch.context() as patched:
        patched.setattr("transforms.parse.typed._same_text", lambda *args: {})
        each = parse_file(data, table, SOURCE, SMALL)
    assert_same(once, each)


def test_a_new_orders_timestamps_are_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from transforms.parse import columns

    calls: list[int] = []
    real_apply = columns.apply

    def counted(parser: Any, values: pl.Series) -> pl.Series:
        calls.append(len(values))
        return real_apply(parser, values)

    monkeypatch.setattr("transforms.parse.typed.apply", counted)
    orders = [record("sales_order", n) for n in range(1, 11)]
    orders[3]["last_updated"] = "2022-11-05T10:00:00.000000"
    parsed = parse_file(encode("sales_order", orders), "sales_order", SOURCE)
    assert calls == [1]  # only the one last_updated that differs is parsed on its own
    assert parsed.rows["last_updated"][3] == parsed.rows["created_at"][3].replace(
        day=5, hour=10, minute=0, second=0, microsecond=0
    )
    assert (parsed.rows["last_updated"] == parsed.rows["created_at"]).sum() == 9


ITEMS = st.binary(max_size=400) | st.lists(
    st.sampled_from(
        [
            '{"sales_order_id": 1, "created_at": "2022-11-03T14:20:52"}',
            json.dumps(record("sales_order", 2)),
            json.dumps(record("sales_order", 3)).replace(", ", ",\n"),
            '"}, {"',
            "NaN",
            '{"units_sold": Infinity}',
            '{"a": "\\ud800"}',
            "[1, 2]",
            "",
            "{",
            "\xff",
        ]
    ),
    max_size=6,
).map(lambda parts: ", ".join(parts).encode("utf-8", "surrogatepass"))


@EQUIVALENCE
@given(items=ITEMS, table=st.sampled_from(["sales_order", "payment", "staff"]))
def test_an_arrays_inside_parses_as_the_array(items: bytes, table: str) -> None:
    """parse_array_items(inside) is parse_file of the array around it, whatever the inside."""
    from transforms.parse import parse_array_items

    assert_same(
        parse_array_items(items, table, SOURCE, SMALL),
        parse_file(b"[" + items + b"]", table, SOURCE, SMALL),
    )
