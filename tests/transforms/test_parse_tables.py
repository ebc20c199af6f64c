"""Every declared source table parses (the Purchases and Payments tables included), `paid` reads
booleans, and payment's bank account numbers never reach a reject (transforms/parse/redact.py)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.conftest import encode
from transforms.parse import (
    FILE_FIELD,
    JSON_FIELD,
    ParsedFile,
    ParseLimits,
    parse_file,
    rejected_file,
)
from transforms.parse.redact import REDACTED, redact
from transforms.schemas import SOURCE_TABLES

SOURCE = "baseline/payment-2024-11-15T10:20:30.jsonl"
TABLES = sorted(SOURCE_TABLES)
# Eight-digit account numbers, like the real ones; no other field of a test record holds them.
COMPANY_AC = 31415926
COUNTERPARTY_AC = 27182818
ACCOUNTS = (str(COMPANY_AC), str(COUNTERPARTY_AC))
SENSITIVE = SOURCE_TABLES["payment"].sensitive


def record(table: str, number: int = 1) -> dict[str, Any]:
    """A valid record of `table` as the extracts write it (numbers as JSON numbers, timestamps
    ISO with microseconds); a payment carries the bank details the warehouse drops."""
    spec = SOURCE_TABLES[table]
    out: dict[str, Any] = {}
    for column, dtype in spec.columns.items():
        if column == spec.key:
            out[column] = number
        elif isinstance(dtype, pl.Datetime):
            out[column] = "2022-11-03T14:20:52.186000"
        elif dtype == pl.Date():
            out[column] = "2022-11-07"
        elif isinstance(dtype, pl.Decimal):
            out[column] = 3.94
        elif dtype.is_integer():
            out[column] = 7
        elif dtype == pl.Boolean():
            out[column] = number % 2 == 0
        else:
            out[column] = f"{column} {number}"
    if table == "payment":
        out["company_ac_number"] = COMPANY_AC
        out["counterparty_ac_number"] = COUNTERPARTY_AC
    return out


def expected(table: str, numbers: list[int]) -> pl.DataFrame:
    spec = SOURCE_TABLES[table]
    rows = []
    for position, number in enumerate(numbers, start=1):
        row: dict[str, Any] = {}
        for column, dtype in spec.columns.items():
            if column == spec.key:
                row[column] = number
            elif isinstance(dtype, pl.Datetime):
                row[column] = datetime(2022, 11, 3, 14, 20, 52, 186000)
            elif dtype == pl.Date():
                row[column] = date(2022, 11, 7)
            elif isinstance(dtype, pl.Decimal):
                row[column] = Decimal("3.94")
            elif dtype.is_integer():
                row[column] = 7
            elif dtype == pl.Boolean():
                row[column] = number % 2 == 0
            else:
                row[column] = f"{column} {number}"
        row["record_number"] = position
        rows.append(row)
    return pl.DataFrame(rows, schema={**spec.columns, "record_number": pl.Int64()}, orient="row")


def texts(parsed: ParsedFile) -> list[str]:
    """Every reason and raw value of the file's rejects."""
    rejects = parsed.rejects
    return [t for t in rejects["reason"].to_list() + rejects["raw_value"].to_list() if t]


def assert_no_account(parsed: ParsedFile) -> None:
    for text in texts(parsed):
        for account in ACCOUNTS:
            assert account not in text, text


# ---------------------------------------------------------------------------------------------
# every table


@pytest.mark.parametrize("shape", ["jsonl", "array", "wrapped"])
@pytest.mark.parametrize("table", TABLES)
def test_valid_records_of_every_table_parse_in_every_shape(table: str, shape: str) -> None:
    parsed = parse_file(encode(table, [record(table, n) for n in (1, 2, 3)], shape), table, SOURCE)
    assert parsed.rejects.is_empty(), parsed.rejects.to_dicts()
    assert parsed.records_read == 3
    assert_frame_equal(parsed.rows, expected(table, [1, 2, 3]))


def test_sensitive_fields_are_not_columns() -> None:
    parsed = parse_file(encode("payment", [record("payment")]), "payment", SOURCE)
    assert sorted(SENSITIVE) == ["company_ac_number", "counterparty_ac_number"]
    assert not SENSITIVE & set(parsed.rows.columns)
    assert parsed.rows.height == 1


# ---------------------------------------------------------------------------------------------
# paid: a boolean


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (True, True),
        (False, False),
        ("t", True),
        ("f", False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        (" f ", False),
    ],
)
@pytest.mark.parametrize("shape", ["jsonl", "array"])
def test_paid_reads_json_and_postgresql_booleans(raw: Any, value: bool, shape: str) -> None:
    data = encode("payment", [{**record("payment"), "paid": raw}, record("payment", 2)], shape)
    parsed = parse_file(data, "payment", SOURCE)
    assert parsed.rejects.is_empty(), parsed.rejects.to_dicts()
    assert parsed.rows["paid"].to_list() == [value, True]
    assert parsed.rows.schema["paid"] == pl.Boolean()


@pytest.mark.parametrize(
    ("raw", "text"),
    [("yes", "yes"), (1, "1"), (0, "0"), ("maybe", "maybe"), ("", ""), ("1", "1"), ("no", "no")],
)
def test_paid_rejects_anything_else_naming_the_field(raw: Any, text: str) -> None:
    data = encode("payment", [record("payment", 2), {**record("payment", 4), "paid": raw}])
    parsed = parse_file(data, "payment", SOURCE)
    assert parsed.rows["payment_id"].to_list() == [2]
    rejects = parsed.rejects.select("record_number", "field", "reason", "raw_value").rows()
    assert rejects == [(2, "paid", f"not a boolean (true/false, t/f): '{text}'", text)]
    assert parsed.records_rejected == 1


def test_paid_missing_is_a_missing_required_field() -> None:
    payment = {k: v for k, v in record("payment").items() if k != "paid"}
    parsed = parse_file(encode("payment", [payment]), "payment", SOURCE)
    assert parsed.rows.is_empty()
    assert parsed.rejects.select("field", "reason").rows() == [("paid", "missing required field")]


# ---------------------------------------------------------------------------------------------
# account numbers never reach a reject


def line(number: int = 2, **changes: Any) -> str:
    return json.dumps({**record("payment", number), **changes})


BAD_LINES = {
    "truncated after the accounts": line()[:-20],
    "truncated inside an account": line()[: line().index(str(COUNTERPARTY_AC)) + 5],
    "missing comma": line().replace(', "counterparty_ac_number"', ' "counterparty_ac_number"'),
    "missing colons": line().replace('_number":', '_number"'),
    "escaped keys": line().replace("company_ac", "company\\u005fac").replace("}", ""),
    "single quotes": line().replace('"', "'"),
    "bare keys": line().replace('"company_ac_number"', "company_ac_number"),
    "string accounts": line(company_ac_number=str(COMPANY_AC))[:-3],
    "nested accounts": line(company_ac_number={"no": [COMPANY_AC, "]"]})[:-1],
    "upper-case keys": line().upper()[:-1],
    "not an object": json.dumps([record("payment", 2)]),
    "NaN": line().replace('"paid": true', '"paid": NaN'),
}


@pytest.mark.parametrize("bad", list(BAD_LINES.values()), ids=list(BAD_LINES))
def test_a_bad_json_line_keeps_its_text_but_not_the_accounts(bad: str) -> None:
    data = "\n".join([line(1), bad, line(3)]).encode()
    parsed = parse_file(data, "payment", SOURCE)
    assert parsed.rows["payment_id"].to_list() == [1, 3]
    (reject,) = parsed.rejects.to_dicts()
    assert (reject["record_number"], reject["field"]) == (2, JSON_FIELD)
    assert REDACTED in reject["raw_value"]
    assert '"payment_id": 2' in reject["raw_value"].replace("'", '"').lower() or (
        "PAYMENT_ID" in reject["raw_value"]
    )
    assert_no_account(parsed)


def test_an_invalid_utf8_line_keeps_its_text_but_not_the_accounts() -> None:
    bad = line().encode().replace(b'"created_at"', b'"cr\xffeated_at"')
    data = b"\n".join([line(1).encode(), bad, line(3).encode()])
    parsed = parse_file(data, "payment", SOURCE)
    assert parsed.rows["payment_id"].to_list() == [1, 3]
    assert parsed.rejects["reason"][0].startswith("invalid UTF-8 on line 2")
    assert_no_account(parsed)


def test_bad_array_elements_never_show_accounts() -> None:
    elements: list[Any] = [
        record("payment", 1),
        [record("payment", 2)],
        f"company_ac_number: {COMPANY_AC}",
        {**record("payment", 4), "created_at": "\ud800"},  # a lone surrogate: json path
        record("payment", 5),
    ]
    parsed = parse_file(json.dumps(elements).encode(), "payment", SOURCE)
    assert parsed.rows["payment_id"].to_list() == [1, 5]
    assert parsed.rejects.select("record_number", "field").rows() == [
        (2, JSON_FIELD),
        (3, JSON_FIELD),
        (4, "created_at"),
    ]
    assert_no_account(parsed)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(json.dumps({"payment": [record("payment")]})[:-30], id="truncated"),
        pytest.param(
            json.dumps({"payment": [record("payment")], "meta": {"company_ac_number": COMPANY_AC}}),
            id="extra-keys",
        ),
        pytest.param(json.dumps({"payment": [record("payment")]}) + "}", id="trailing-junk"),
        pytest.param(json.dumps([record("payment")], indent=2)[:-40], id="pretty-truncated"),
        pytest.param(json.dumps([record("payment"), 1e999]), id="infinity"),
    ],
)
def test_a_file_rejected_whole_never_shows_accounts(data: str) -> None:
    parsed = parse_file(data.encode(), "payment", SOURCE)
    assert parsed.file_rejected, parsed.rejects.to_dicts()
    assert parsed.rejects["field"].to_list() == [FILE_FIELD]
    assert REDACTED in parsed.rejects["raw_value"][0]
    assert_no_account(parsed)


def test_a_file_rejected_by_the_caller_never_shows_accounts() -> None:
    quoted = f'not valid JSON: {{"company_ac_number": {COMPANY_AC}, "payment_id": 1'
    parsed = rejected_file("payment", SOURCE, quoted)
    assert parsed.rejects["reason"].to_list() == [
        'not valid JSON: {"company_ac_number": "<redacted>", "payment_id": 1'
    ]
    assert rejected_file("staff", SOURCE, quoted).rejects["reason"].to_list() == [quoted]


def test_another_fields_own_bad_value_is_kept_even_if_it_looks_like_an_account() -> None:
    payment = {**record("payment"), "payment_amount": f"{COMPANY_AC}x", "company_ac_number": 1}
    parsed = parse_file(encode("payment", [payment]), "payment", SOURCE)
    assert parsed.rejects.select("field", "raw_value").rows() == [
        ("payment_amount", f"{COMPANY_AC}x")
    ]


def test_tables_without_sensitive_fields_keep_their_raw_lines_as_they_are() -> None:
    bad = json.dumps({"staff_id": 2, "company_ac_number": COMPANY_AC})[:-1]
    data = "\n".join([json.dumps(record("staff", 1)), bad]).encode()
    parsed = parse_file(data, "staff", SOURCE)
    assert parsed.rejects["raw_value"].to_list() == [bad]


def test_a_long_line_is_redacted_then_clipped() -> None:
    long = line(payment_type_id="x" * 990)[:-1]  # the accounts come after character 1,000
    also = line(counterparty_ac_number=COUNTERPARTY_AC, note="y" * 900)[:-1]
    data = "\n".join([line(1), long, also]).encode()
    parsed = parse_file(data, "payment", SOURCE)
    raw = parsed.rejects["raw_value"].to_list()
    assert len(raw) == 2 and all(len(r) <= 1_000 for r in raw)
    assert_no_account(parsed)


def test_redact_leaves_text_without_sensitive_keys_alone() -> None:
    text = '{"payment_id": 31415926, "note": "O\'Brien: 5"}'
    assert redact(text, SENSITIVE) == text
    assert redact(None, SENSITIVE) is None
    assert redact(text, frozenset()) == text


CUTS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@CUTS
@given(
    cut=st.integers(min_value=0, max_value=400),
    drop=st.sampled_from(["", ",", ":", '"', "}", " "]),
    shape=st.sampled_from(["jsonl", "array", "wrapped"]),
)
def test_damaged_payment_files_never_show_accounts(cut: int, drop: str, shape: str) -> None:
    """A payment file cut short anywhere, or missing some structural character: whatever the
    parser makes of it, no reject carries an account number."""
    data = encode("payment", [record("payment", n) for n in (1, 2, 3)], shape).decode()
    middle = len(data) // 3 + cut
    damaged = data[:middle] + data[middle:].replace(drop, "", 3) if drop else data[:middle]
    parsed = parse_file(damaged.encode(), "payment", SOURCE, ParseLimits(max_reject_details=50))
    assert_no_account(parsed)
    assert parsed.rows.height + parsed.records_rejected == parsed.records_read
