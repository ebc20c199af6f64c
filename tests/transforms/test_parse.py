from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import require_real_snapshot
from transforms.parse import ParsedFile, parse_file
from transforms.schemas import REJECTS, SOURCE_TABLES

SOURCE = "baseline/sales_order-2024-11-14T10:20:30.json"

# ---------------------------------------------------------------------------------------------
# helpers


def sales_order(sales_order_id: int = 1, **changes: Any) -> dict[str, Any]:
    """A sales_order record as the real extracts write it; `field=...` overrides, MISSING drops."""
    record: dict[str, Any] = {
        "sales_order_id": sales_order_id,
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
    return {k: v for k, v in record.items() if v is not MISSING}


MISSING: Any = object()


def jsonl(records: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def array(records: list[Any]) -> bytes:
    return json.dumps(records).encode()


def wrapped(records: list[Any], key: str = "sales_order") -> bytes:
    return json.dumps({key: records}).encode()


def parse(data: bytes, table: str = "sales_order") -> ParsedFile:
    return parse_file(data, table, SOURCE)


def expected_row(sales_order_id: int = 1, record_number: int = 1, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sales_order_id": sales_order_id,
        "created_at": datetime(2022, 11, 3, 14, 20, 52, 186000),
        "last_updated": datetime(2022, 11, 3, 14, 20, 52, 186000),
        "design_id": 3,
        "staff_id": 19,
        "counterparty_id": 8,
        "units_sold": 42972,
        "unit_price": Decimal("3.94"),
        "currency_id": 2,
        "agreed_delivery_date": date(2022, 11, 7),
        "agreed_payment_date": date(2022, 11, 8),
        "agreed_delivery_location_id": 8,
        "record_number": record_number,
    }
    row.update(changes)
    return row


def rows_frame(rows: list[dict[str, Any]], table: str = "sales_order") -> pl.DataFrame:
    schema = {**SOURCE_TABLES[table].columns, "record_number": pl.Int64()}
    return pl.DataFrame(rows, schema=schema, orient="row")


def single_value(field: str, value: Any) -> Any:
    """Parse one sales_order with `field` set to `value`; return the typed value."""
    parsed = parse(jsonl([sales_order(**{field: value})]))
    assert parsed.rejects.is_empty(), parsed.rejects.to_dicts()
    return parsed.rows[field][0]


def rejects_of(parsed: ParsedFile) -> list[tuple[int, str, str, str | None]]:
    return [
        (r["record_number"], r["field"], r["reason"], r["raw_value"])
        for r in parsed.rejects.to_dicts()
    ]


def assert_schemas(parsed: ParsedFile, table: str = "sales_order") -> None:
    assert parsed.rows.schema == pl.Schema(
        {**SOURCE_TABLES[table].columns, "record_number": pl.Int64()}
    )
    assert parsed.rejects.schema == pl.Schema(REJECTS)


# ---------------------------------------------------------------------------------------------
# shapes


RECORDS = [
    sales_order(1),
    sales_order(2, unit_price="2.91", units_sold="17", created_at="2022-11-03 14:20:52.186"),
    sales_order(3, created_at=1667485252186, last_updated="1667485252186", design_id="4"),
]
EXPECTED = rows_frame(
    [
        expected_row(1, 1),
        expected_row(2, 2, unit_price=Decimal("2.91"), units_sold=17),
        expected_row(3, 3, design_id=4),
    ]
)
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(jsonl, id="jsonl"),
        pytest.param(lambda r: jsonl(r).replace(b"\n", b"\r\n"), id="jsonl-crlf"),
        pytest.param(lambda r: b"\n\n" + jsonl(r).replace(b"\n", b"\n  \n") + b"\n", id="blanks"),
        pytest.param(lambda r: jsonl(r).rstrip(b"\n"), id="jsonl-no-final-newline"),
        pytest.param(lambda r: BOM + jsonl(r), id="jsonl-bom"),
        pytest.param(array, id="array"),
        pytest.param(lambda r: json.dumps(r, indent=2).encode(), id="array-pretty"),
        pytest.param(lambda r: json.dumps(r, separators=(",", ":")).encode(), id="array-compact"),
        pytest.param(lambda r: b"  \n" + array(r) + b"\n\n", id="array-padded"),
        pytest.param(lambda r: BOM + array(r), id="array-bom"),
        pytest.param(wrapped, id="wrapped"),
        pytest.param(lambda r: wrapped(r, "records"), id="wrapped-other-key"),
        pytest.param(
            lambda r: json.dumps({"sales_order": r}, indent=4).encode(), id="wrapped-pretty"
        ),
        pytest.param(lambda r: BOM + wrapped(r), id="wrapped-bom"),
    ],
)
def test_every_shape_gives_the_same_typed_frame(make: Callable[[list[Any]], bytes]) -> None:
    parsed = parse(make(RECORDS))
    assert_schemas(parsed)
    assert parsed.rejects.is_empty(), parsed.rejects.to_dicts()
    assert parsed.records_read == 3
    assert_frame_equal(parsed.rows, EXPECTED)


@pytest.mark.parametrize("table", sorted(SOURCE_TABLES))
def test_every_table_has_the_declared_schemas(table: str) -> None:
    for data in (b"", b'[{"unknown": 1}]'):
        assert_schemas(parse(data, table), table)


def test_single_record_document_is_one_record() -> None:
    parsed = parse(json.dumps(sales_order(), indent=2).encode())
    assert parsed.rejects.is_empty()
    assert_frame_equal(parsed.rows, rows_frame([expected_row()]))


def test_array_separators_inside_strings_and_nested_values_still_parse() -> None:
    # The fast path rewrites "}, {" between records into new lines; inside a string or a nested
    # value that guess is wrong, and the file must still parse right (through the slow path).
    records = [
        {
            "design_id": 1,
            "created_at": "2022-11-03T14:20:52.186",
            "design_name": "a}, {b",
            "file_location": "/x",
            "file_name": "f}\n{.json",
            "last_updated": "2022-11-03T14:20:52",
        },
        {
            "design_id": 2,
            "created_at": "2022-11-03T14:20:52.186",
            "design_name": "n",
            "file_location": [{"a": 1}, {"b": 2}],
            "file_name": "g",
            "last_updated": 1667485252186,
        },
    ]
    for data in (array(records), wrapped(records, "design"), jsonl(records)):
        parsed = parse(data, "design")
        assert parsed.rejects.is_empty()
        assert parsed.rows["design_name"].to_list() == ["a}, {b", "n"]
        assert parsed.rows["file_name"].to_list() == ["f}\n{.json", "g"]
        assert json.loads(parsed.rows["file_location"][1]) == [{"a": 1}, {"b": 2}]
        assert parsed.rows["last_updated"][1] == datetime(2022, 11, 3, 14, 20, 52, 186000)


def test_array_with_inconsistent_separators() -> None:
    data = b"[" + jsonl([sales_order(1)]).strip() + b",{" + jsonl([sales_order(2)])[1:].strip()
    data += b" ,\n\t" + jsonl([sales_order(3)]).strip() + b"]"
    parsed = parse(data)
    assert parsed.rejects.is_empty()
    assert parsed.rows["sales_order_id"].to_list() == [1, 2, 3]


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n\t ", b"\n\n\n", BOM, b"[]", b" [ ] ", b'{"sales_order": []}', b'{"x":[]}'],
)
def test_empty_inputs_give_no_rows_and_no_rejects(data: bytes) -> None:
    parsed = parse(data)
    assert_schemas(parsed)
    assert parsed.rows.is_empty()
    assert parsed.rejects.is_empty()
    assert parsed.records_read == 0


def test_unknown_table_raises() -> None:
    with pytest.raises(ValueError, match="unknown source table 'nope'"):
        parse_file(b"[]", "nope", SOURCE)


def test_extra_fields_are_ignored() -> None:
    parsed = parse(jsonl([sales_order(extra="x", nested={"a": [1]})]))
    assert parsed.rejects.is_empty()
    assert_frame_equal(parsed.rows, rows_frame([expected_row()]))


# ---------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2022-11-03T14:20:52.186000", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        ("2022-11-03T14:20:52.186", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        ("2022-11-03 14:20:52.186", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        ("2022-11-03 14:20:52.186000", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        ("2023-02-16T09:26:10", datetime(2023, 2, 16, 9, 26, 10)),
        ("2023-02-16 09:26:10", datetime(2023, 2, 16, 9, 26, 10)),
        ("2023-02-16T09:26:10.123456789", datetime(2023, 2, 16, 9, 26, 10, 123456)),
        (1667485252186, datetime(2022, 11, 3, 14, 20, 52, 186000)),
        ("1667485252186", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        (1667485252000, datetime(2022, 11, 3, 14, 20, 52)),
        ("2022-11-03T14:20:52.186Z", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        ("2022-11-03T14:20:52.186+00:00", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        ("2022-11-03 15:20:52.186+01:00", datetime(2022, 11, 3, 14, 20, 52, 186000)),
        (" 2022-11-03T14:20:52.186 ", datetime(2022, 11, 3, 14, 20, 52, 186000)),
    ],
)
def test_timestamp_forms(raw: Any, expected: datetime) -> None:
    assert single_value("created_at", raw) == expected
    # The same value after a first value of another form (the column's fast form differs).
    parsed = parse(jsonl([sales_order(1), sales_order(2, created_at=raw)]))
    assert parsed.rejects.is_empty()
    assert parsed.rows["created_at"][1] == expected


def test_a_column_written_in_another_form_throughout() -> None:
    stamps = ["2022-11-03 14:20:52.186", "2023-02-16 09:26:10", "2022-11-03T14:20:52.186000"]
    epochs = [1667485252186, 1676539570000, "1667485252186"]
    records = [
        sales_order(i, created_at=s, last_updated=e)
        for i, (s, e) in enumerate(zip(stamps, epochs, strict=True), start=1)
    ]
    parsed = parse(jsonl(records))
    assert parsed.rejects.is_empty()
    assert parsed.rows["created_at"].to_list() == [
        datetime(2022, 11, 3, 14, 20, 52, 186000),
        datetime(2023, 2, 16, 9, 26, 10),
        datetime(2022, 11, 3, 14, 20, 52, 186000),
    ]
    assert parsed.rows["last_updated"].to_list() == [
        datetime(2022, 11, 3, 14, 20, 52, 186000),
        datetime(2023, 2, 16, 9, 26, 10),
        datetime(2022, 11, 3, 14, 20, 52, 186000),
    ]
    assert parsed.rows.schema["created_at"] == pl.Datetime("us")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2022-11-07", date(2022, 11, 7)),
        ("2022-11-07T00:00:00", date(2022, 11, 7)),
        ("2022-11-07 13:45:00.123", date(2022, 11, 7)),
        (1667779200000, date(2022, 11, 7)),
        ("1667865599999", date(2022, 11, 7)),
        (" 2022-11-07 ", date(2022, 11, 7)),
    ],
)
def test_date_forms(raw: Any, expected: date) -> None:
    assert single_value("agreed_delivery_date", raw) == expected
    parsed = parse(jsonl([sales_order(1), sales_order(2, agreed_payment_date=raw)]))
    assert parsed.rejects.is_empty()
    assert parsed.rows["agreed_payment_date"][1] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (42, 42),
        ("42", 42),
        ("42.0", 42),
        (42.0, 42),
        (" 42 ", 42),
        ("-7", -7),
        (2147483647, 2147483647),
    ],
)
def test_integers_from_numbers_and_strings(raw: Any, expected: int) -> None:
    assert single_value("units_sold", raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3.94, "3.94"),
        ("3.94", "3.94"),
        ("3", "3.00"),
        (3, "3.00"),
        (3.9400000000000004, "3.94"),
        ("3.944", "3.94"),
        ("3.945", "3.95"),  # half away from zero (PostgreSQL's numeric rounding)
        ("3.955", "3.96"),
        ("-3.945", "-3.95"),
        ("0.005", "0.01"),
        (" 3.94 ", "3.94"),
        ("1e2", "100.00"),
        ("99999999.99", "99999999.99"),
    ],
)
def test_decimals(raw: Any, expected: str) -> None:
    value = single_value("unit_price", raw)
    assert value == Decimal(expected)
    assert str(value) == expected


def test_strings_keep_their_text_and_numbers_become_text() -> None:
    record = {
        "address_id": 1,
        "address_line_1": " 6826 Herzog Via ",
        "address_line_2": None,
        "city": "New Patienceburgh",
        "postal_code": 28441,
        "country": "Turkey",
        "phone": "1803 637401",
        "created_at": "2022-11-03T14:20:49.962000",
        "last_updated": "2022-11-03T14:20:49.962000",
    }
    parsed = parse(jsonl([record]), "address")
    assert parsed.rejects.is_empty()
    row = parsed.rows.row(0, named=True)
    assert row["address_line_1"] == " 6826 Herzog Via "
    assert row["postal_code"] == "28441"
    assert row["address_line_2"] is None
    assert row["district"] is None  # nullable and absent


# ---------------------------------------------------------------------------------------------
# rejects


def test_nullable_columns_may_be_null_or_missing() -> None:
    records = [
        {
            "department_id": 1,
            "department_name": "Sales",
            "location": None,
            "manager": None,
            "created_at": "2022-11-03T14:20:49.962000",
            "last_updated": "2022-11-03T14:20:49.962",
        },
        {
            "department_id": 2,
            "department_name": "Purchasing",
            "created_at": "2022-11-03T14:20:49.962000",
            "last_updated": "2022-11-03T14:20:49.962",
        },
    ]
    parsed = parse(jsonl(records), "department")
    assert parsed.rejects.is_empty()
    assert parsed.rows["location"].to_list() == [None, None]
    assert parsed.rows["manager"].to_list() == [None, None]


@pytest.mark.parametrize("value", [None, MISSING])
def test_required_null_or_missing_rejects_the_row(value: Any) -> None:
    records = [
        {
            "department_id": 1,
            "department_name": "Sales",
            "location": "Leeds",
            "created_at": "2022-11-03T14:20:49.962000",
            "last_updated": "2022-11-03T14:20:49.962",
        },
        {
            "department_id": 2,
            "department_name": value,
            "location": "Leeds",
            "created_at": "2022-11-03T14:20:49.962000",
            "last_updated": "2022-11-03T14:20:49.962",
        },
    ]
    records = [{k: v for k, v in r.items() if v is not MISSING} for r in records]
    parsed = parse(jsonl(records), "department")
    assert parsed.rows["department_id"].to_list() == [1]
    assert parsed.rejects.to_dicts() == [
        {
            "source_file": SOURCE,
            "source_table": "department",
            "record_number": 2,
            "field": "department_name",
            "reason": "missing required field",
            "raw_value": None,
        }
    ]
    assert parsed.records_read == 2


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("units_sold", "abc", "not an integer: 'abc'"),
        ("units_sold", "42.5", "not an integer: '42.5'"),
        ("units_sold", 42.5, "not an integer: '42.5'"),
        ("units_sold", "", "not an integer: ''"),
        ("units_sold", True, "not an integer: 'true'"),
        ("units_sold", "3000000000", "out of range for int32: '3000000000'"),
        ("units_sold", "1e12", "out of range for int32: '1e12'"),
        ("created_at", "yesterday", "not a timestamp: 'yesterday'"),
        ("created_at", "2022-13-03T14:20:52", "not a timestamp: '2022-13-03T14:20:52'"),
        ("created_at", "2022-11-03", "not a timestamp: '2022-11-03'"),
        ("created_at", "9999999999999999", "not a timestamp: '9999999999999999'"),  # year > 9999
        ("agreed_delivery_date", "07/11/2022", "not a date: '07/11/2022'"),
        ("agreed_delivery_date", "2022-02-30", "not a date: '2022-02-30'"),
        ("unit_price", "abc", "not a decimal: 'abc'"),
        ("unit_price", "3,94", "not a decimal: '3,94'"),
        ("unit_price", "123456789.00", "out of range for decimal(10,2): '123456789.00'"),
        ("unit_price", "99999999.995", "out of range for decimal(10,2): '99999999.995'"),
    ],
)
def test_bad_values_reject_the_row(field: str, raw: Any, reason: str) -> None:
    parsed = parse(jsonl([sales_order(1), sales_order(2, **{field: raw}), sales_order(3)]))
    assert parsed.rows["sales_order_id"].to_list() == [1, 3]
    assert parsed.rows["record_number"].to_list() == [1, 3]
    expected_raw = raw if isinstance(raw, str) else json.dumps(raw)
    assert rejects_of(parsed) == [(2, field, reason, expected_raw)]
    assert parsed.rejects["source_file"].to_list() == [SOURCE]
    assert parsed.rejects["source_table"].to_list() == ["sales_order"]
    assert parsed.records_read == 3


def test_long_bad_values_are_clipped_in_the_reason_not_in_raw_value() -> None:
    raw = "x" * 500
    parsed = parse(jsonl([sales_order(units_sold=raw)]))
    (reject,) = parsed.rejects.to_dicts()
    assert reject["raw_value"] == raw
    assert reject["reason"] == "not an integer: '" + "x" * 100 + "…'"


def test_one_reject_per_problem_and_record_numbers_kept() -> None:
    records = [
        sales_order(1),
        sales_order(2, units_sold="abc", staff_id=None, created_at="nope"),
        sales_order(3, design_id=MISSING),
        sales_order(4),
        sales_order(5, unit_price="x"),
        sales_order(6),
    ]
    parsed = parse(array(records))
    assert parsed.rows["sales_order_id"].to_list() == [1, 4, 6]
    assert parsed.rows["record_number"].to_list() == [1, 4, 6]
    assert rejects_of(parsed) == [
        (2, "created_at", "not a timestamp: 'nope'", "nope"),
        (2, "staff_id", "missing required field", None),
        (2, "units_sold", "not an integer: 'abc'", "abc"),
        (3, "design_id", "missing required field", None),
        (5, "unit_price", "not a decimal: 'x'", "x"),
    ]
    assert parsed.records_read == 6


def test_jsonl_with_a_broken_line() -> None:
    lines = (
        jsonl([sales_order(1)])
        + b'{"sales_order_id": 2, "created_at": \n'
        + jsonl([sales_order(3)])
    )
    parsed = parse(lines)
    assert parsed.rows["sales_order_id"].to_list() == [1, 3]
    assert parsed.rows["record_number"].to_list() == [1, 3]
    ((number, field, reason, raw),) = rejects_of(parsed)
    assert (number, field, raw) == (2, "<json>", '{"sales_order_id": 2, "created_at":')
    assert reason.startswith("invalid JSON on line 2: ")
    assert parsed.records_read == 3
    assert_frame_equal(parsed.rows, rows_frame([expected_row(1, 1), expected_row(3, 3)]))


def test_jsonl_record_numbers_skip_blank_lines_and_reasons_name_the_line() -> None:
    data = b"\n" + jsonl([sales_order(1)]) + b"\n   \n[1, 2]\n42\n" + jsonl([sales_order(4)])
    parsed = parse(data)
    assert parsed.rows["record_number"].to_list() == [1, 4]
    assert rejects_of(parsed) == [
        (2, "<json>", "line 5 is not a JSON object: an array", "[1, 2]"),
        (3, "<json>", "line 6 is not a JSON object: a number (42)", "42"),
    ]
    assert parsed.records_read == 4


def test_jsonl_bad_utf8_line_is_a_json_reject() -> None:
    data = jsonl([sales_order(1)]) + b'{"sales_order_id": "\xff"}\n' + jsonl([sales_order(3)])
    parsed = parse(data)
    assert parsed.rows["sales_order_id"].to_list() == [1, 3]
    assert [(n, f) for n, f, _, _ in rejects_of(parsed)] == [(2, "<json>")]


@pytest.mark.parametrize("bad", [(1,), (2_345,), (5_000,), (1, 777, 778, 3_000, 4_999)])
def test_large_jsonl_with_broken_lines(bad: tuple[int, ...]) -> None:
    # Big enough (~1.7 MB) that the reader splits the file rather than going line by line.
    lines = [json.dumps(sales_order(i)) for i in range(1, 5_001)]
    for number in bad:
        lines[number - 1] = lines[number - 1][:40]
    parsed = parse("\n".join(lines).encode())
    assert parsed.records_read == 5_000
    numbers = parsed.rows["record_number"].to_list()
    assert numbers == [n for n in range(1, 5_001) if n not in bad]
    assert parsed.rows["sales_order_id"].to_list() == numbers
    assert [(n, f) for n, f, _, _ in rejects_of(parsed)] == [(n, "<json>") for n in bad]
    for number, _, reason, _ in rejects_of(parsed):
        assert reason.startswith(f"invalid JSON on line {number}: ")


def test_array_element_that_is_not_an_object() -> None:
    parsed = parse(
        b"[" + array([sales_order(1)])[1:-1] + b", 42, null, " + array([sales_order(4)])[1:]
    )
    assert parsed.rows["record_number"].to_list() == [1, 4]
    assert rejects_of(parsed) == [
        (2, "<json>", "record is not a JSON object: a number (42)", "42"),
        (3, "<json>", "record is not a JSON object: null", "null"),
    ]
    assert parsed.records_read == 4


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, world", "not valid JSON"),
        (b"sales_order_id,created_at\n1,2022-11-03\n", "not valid JSON"),
        (b"<xml/>", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'[{"sales_order_id": 1}', "not valid JSON"),
        (b'[{"sales_order_id": 1}] trailing', "not valid JSON"),
        (b'{"sales_order": [1, 2', "not valid JSON"),
        (b'"just a string"', "JSON document is a string"),
        (b"42", "JSON document is a number (42)"),
        (b"null", "JSON document is null"),
        (b"true", "JSON document is a boolean"),
        (b'{"x": 1}', "neither"),
        (b'{"sales_order": 5}', "neither"),
        (b'{"sales_order": [], "count": 0}', "neither"),
        (b"[1, 2, 3]", "JSON array holds no objects (first element is a number (1))"),
        (b'[[1], ["a"]]', "JSON array holds no objects (first element is an array)"),
        (b'{"sales_order": ["a", "b"]}', "JSON array holds no objects"),
    ],
)
def test_a_file_that_is_not_records_is_one_file_reject(data: bytes, reason: str) -> None:
    parsed = parse(data)
    assert_schemas(parsed)
    assert parsed.rows.is_empty()
    assert parsed.records_read == 0
    ((number, field, got_reason, raw),) = rejects_of(parsed)
    assert (number, field) == (0, "<file>")
    assert reason in got_reason
    assert raw is not None


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b"[",
        b"}",
        b"]",
        b"{}",
        b"{\n}\n",
        b"[{]",
        b"\x00\x01",
        b"{}{}",
        b'{"a": [}',
        b"\n{\n",
        b"[,]",
        b"[{},]",
        b'{"sales_order": [{}]} {}',
        b'{"sales_order_id": 1',
    ],
)
def test_assorted_junk_is_one_file_reject(data: bytes) -> None:
    parsed = parse(data)
    assert_schemas(parsed)
    assert parsed.rows.is_empty()
    assert [(n, f) for n, f, _, _ in rejects_of(parsed)] == [(0, "<file>")]


def test_an_empty_object_in_an_array_is_a_record_missing_every_field() -> None:
    parsed = parse(b"[{}]")
    assert parsed.records_read == 1
    assert {(n, r) for n, _, r, _ in rejects_of(parsed)} == {(1, "missing required field")}
    assert [f for _, f, _, _ in rejects_of(parsed)] == list(SOURCE_TABLES["sales_order"].columns)


# ---------------------------------------------------------------------------------------------
# real data


def test_real_sales_order_snapshot() -> None:
    data = (require_real_snapshot() / "sales_order.jsonl").read_bytes()
    parsed = parse_file(data, "sales_order", "baseline/sales_order-2024-11-14T10:20:30.jsonl")
    assert_schemas(parsed)
    assert parsed.rows.height == 11_175
    assert parsed.records_read == 11_175
    assert parsed.rejects.is_empty()
    assert (parsed.rows["created_at"].dt.microsecond() == 0).sum() == 23
    # The same records in the other shapes give the same frame.
    records = [json.loads(line) for line in data.splitlines()]
    assert_frame_equal(parse(array(records)).rows, parsed.rows)
    assert_frame_equal(parse(wrapped(records)).rows, parsed.rows)


@pytest.mark.parametrize("table", sorted(SOURCE_TABLES))
def test_real_snapshot_tables_parse_cleanly(table: str) -> None:
    path = require_real_snapshot() / f"{table}.jsonl"
    if not path.exists():  # the Purchases and Payments tables are in the later snapshot only
        path = path.parent.with_name("totesys-2024-11-15") / f"{table}.jsonl"
    parsed = parse_file(path.read_bytes(), table, f"baseline/{table}-20241114T1020Z.jsonl")
    assert parsed.rejects.is_empty(), parsed.rejects.head(5).to_dicts()
    assert parsed.rows.height == parsed.records_read > 0
