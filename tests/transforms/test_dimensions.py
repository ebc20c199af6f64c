from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms import dimensions, schemas


def frame(table: str, rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schemas.SOURCE_TABLES[table].columns)


T = datetime(2024, 1, 1)


def staff(**kw: object) -> dict[str, object]:
    return {
        "staff_id": 1,
        "first_name": "Ann",
        "last_name": "Lee",
        "department_id": 1,
        "email_address": "ann.lee@terrifictotes.com",
        "created_at": T,
        "last_updated": T,
        **kw,
    }


def department(**kw: object) -> dict[str, object]:
    return {
        "department_id": 1,
        "department_name": "Sales",
        "location": "Leeds",
        "manager": None,
        "created_at": T,
        "last_updated": T,
        **kw,
    }


def address(**kw: object) -> dict[str, object]:
    return {
        "address_id": 7,
        "address_line_1": "1 Road",
        "address_line_2": None,
        "district": None,
        "city": "York",
        "postal_code": "YO1",
        "country": "UK",
        "phone": "0123",
        "created_at": T,
        "last_updated": T,
        **kw,
    }


def test_latest_source_rows_by_last_updated_not_arrival() -> None:
    rows = frame(
        "department",
        [
            department(department_name="New", last_updated=datetime(2024, 2, 1)),
            department(department_name="Old", last_updated=datetime(2024, 1, 1)),
        ],
    )
    assert dimensions.latest_source_rows(rows, "department_id")["department_name"].to_list() == [
        "New"
    ]


def test_dim_staff_joins_department_and_flags_missing_department() -> None:
    dim = dimensions.dim_staff(
        frame("staff", [staff(), staff(staff_id=2, department_id=99)]),
        frame("department", [department()]),
    )
    assert dict(dim.schema) == schemas.DIM_STAFF
    assert dim.select("staff_id", "department_name", "location", "is_inferred").rows() == [
        (1, "Sales", "Leeds", False),
        (2, "Unknown", None, True),
    ]


def test_dim_counterparty_uses_legal_address() -> None:
    cp = frame(
        "counterparty",
        [
            {
                "counterparty_id": 3,
                "counterparty_legal_name": "Acme",
                "legal_address_id": 7,
                "commercial_contact": None,
                "delivery_contact": None,
                "created_at": T,
                "last_updated": T,
            }
        ],
    )
    dim = dimensions.dim_counterparty(cp, frame("address", [address()]))
    assert dict(dim.schema) == schemas.DIM_COUNTERPARTY
    row = dim.row(0, named=True)
    assert row["counterparty_legal_city"] == "York"
    assert row["counterparty_legal_phone_number"] == "0123"
    assert row["is_inferred"] is False


def test_dim_location_renames_address_id() -> None:
    dim = dimensions.dim_location(frame("address", [address()]))
    assert dim["location_id"].to_list() == [7]
    assert dict(dim.schema) == schemas.DIM_LOCATION


def test_dim_currency_names_from_cldr_and_unknown_codes_reported() -> None:
    cur = frame(
        "currency",
        [
            {"currency_id": i, "currency_code": c, "created_at": T, "last_updated": T}
            for i, c in enumerate(["GBP", "USD", "EUR", "ZZQ"], start=1)
        ],
    )
    dim, unknown = dimensions.dim_currency(cur)
    assert dim["currency_name"].to_list() == [
        "British Pound",
        "US Dollar",
        "Euro",
        "Unknown currency (ZZQ)",
    ]
    assert unknown == ["ZZQ"]


def test_inferred_members_have_placeholders_and_flag() -> None:
    rows = dimensions.inferred_members("dim_currency", pl.Series([5, 5, 3]))
    assert rows.select("currency_id", "currency_code", "currency_name", "is_inferred").rows() == [
        (3, "XXX", "Unknown", True),
        (5, "XXX", "Unknown", True),
    ]
    for name, schema in dimensions.DIMENSION_SCHEMAS.items():
        assert dict(dimensions.inferred_members(name, pl.Series([1])).schema) == schema
