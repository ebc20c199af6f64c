"""The member dimensions, declared (DIMENSIONS), and how each is built from the latest source rows.

Each builder takes the latest row of every member of its source tables (the `_state/source/*`
mirrors) and returns the whole dimension. A member whose joined row (a department, an address)
has not arrived yet gets placeholder values and `is_inferred = true` until it does. Inferred
members for keys that facts reference before the member itself arrives come from
`inferred_members`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from babel.numbers import get_currency_name, is_currency

from transforms import schemas

UNKNOWN = "Unknown"


def latest_source_rows(rows: pl.DataFrame, key: str) -> pl.DataFrame:
    """The latest row of each member by the source's `last_updated` (not by arrival order);
    on a tie the later-applied file wins."""
    if rows[key].n_unique() == rows.height:  # one row per member (a baseline): no choice
        return rows if rows[key].is_sorted() else rows.sort(key)  # sorted: no copy
    order = ["last_updated"] + [c for c in ("file_seq", "record_number") if c in rows.columns]
    return rows.sort([key, *order]).unique(subset=key, keep="last", maintain_order=True)


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def dim_staff(staff: pl.DataFrame, department: pl.DataFrame) -> pl.DataFrame:
    joined = staff.join(
        department.select("department_id", "department_name", "location"),
        on="department_id",
        how="left",
    )
    return _conform(
        joined.with_columns(
            pl.col("department_name").is_null().alias("is_inferred"),
            pl.col("department_name").fill_null(UNKNOWN),
        ),
        schemas.DIM_STAFF,
    ).sort("staff_id")


def dim_location(address: pl.DataFrame) -> pl.DataFrame:
    return _conform(
        address.rename({"address_id": "location_id"}).with_columns(
            pl.lit(False).alias("is_inferred")
        ),
        schemas.DIM_LOCATION,
    ).sort("location_id")


def dim_design(design: pl.DataFrame) -> pl.DataFrame:
    return _conform(
        design.with_columns(pl.lit(False).alias("is_inferred")), schemas.DIM_DESIGN
    ).sort("design_id")


def currency_name(code: str) -> str | None:
    """English name of an ISO 4217 code from CLDR (via Babel); None when CLDR doesn't know it."""
    code = code.strip().upper()
    return get_currency_name(code, locale="en") if is_currency(code) else None


def dim_currency(currency: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """The dimension and the codes CLDR does not know (named `Unknown currency (XYZ)`)."""
    codes = currency["currency_code"].unique().to_list()
    names = {c: currency_name(c) for c in codes}
    unknown = sorted(c for c, n in names.items() if n is None)
    mapping = pl.DataFrame(
        {
            "currency_code": list(names),
            "currency_name": [n or f"{UNKNOWN} currency ({c})" for c, n in names.items()],
        },
        schema={"currency_code": pl.String, "currency_name": pl.String},
    )
    frame = currency.join(mapping, on="currency_code", how="left").with_columns(
        pl.lit(False).alias("is_inferred")
    )
    return _conform(frame, schemas.DIM_CURRENCY).sort("currency_id"), unknown


def dim_counterparty(counterparty: pl.DataFrame, address: pl.DataFrame) -> pl.DataFrame:
    legal = address.select(
        pl.col("address_id").alias("legal_address_id"),
        pl.col("address_line_1").alias("counterparty_legal_address_line_1"),
        pl.col("address_line_2").alias("counterparty_legal_address_line_2"),
        pl.col("district").alias("counterparty_legal_district"),
        pl.col("city").alias("counterparty_legal_city"),
        pl.col("postal_code").alias("counterparty_legal_postal_code"),
        pl.col("country").alias("counterparty_legal_country"),
        pl.col("phone").alias("counterparty_legal_phone_number"),
    )
    joined = counterparty.join(legal, on="legal_address_id", how="left")
    required = [
        "counterparty_legal_address_line_1",
        "counterparty_legal_city",
        "counterparty_legal_postal_code",
        "counterparty_legal_country",
        "counterparty_legal_phone_number",
    ]
    return _conform(
        joined.with_columns(
            pl.col("counterparty_legal_address_line_1").is_null().alias("is_inferred"),
            *[pl.col(c).fill_null(UNKNOWN) for c in required],
        ),
        schemas.DIM_COUNTERPARTY,
    ).sort("counterparty_id")


def dim_transaction(transaction: pl.DataFrame) -> pl.DataFrame:
    return _conform(
        transaction.with_columns(pl.lit(False).alias("is_inferred")), schemas.DIM_TRANSACTION
    ).sort("transaction_id")


def dim_payment_type(payment_type: pl.DataFrame) -> pl.DataFrame:
    return _conform(
        payment_type.with_columns(pl.lit(False).alias("is_inferred")), schemas.DIM_PAYMENT_TYPE
    ).sort("payment_type_id")


def _currency_with_warnings(currency: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    dim, unknown = dim_currency(currency)
    return dim, [
        f"currency code {c!r} is not in ISO 4217 (CLDR); named 'Unknown currency ({c})'"
        for c in unknown
    ]


Build = Callable[..., tuple[pl.DataFrame, list[str]]]  # the mirrors of `sources` -> dim, warnings


def _no_warnings(build: Callable[..., pl.DataFrame]) -> Build:
    return lambda *mirrors: (build(*mirrors), [])


@dataclass(frozen=True)
class DimensionSpec:
    """One member dimension: its key, columns and path, the source tables it is built from (their
    latest rows, `_state/source/<table>`, in the order `build` takes them: the member's own table
    first, then the tables it joins, each named in `joins` with the column of the member's row
    that holds its key) and the values of a placeholder member made for a key a fact references
    before the member arrives (other text columns `Unknown`, the `nullable` ones null)."""

    name: str
    key: str
    path: str
    schema: dict[str, pl.DataType]
    sources: tuple[str, ...]
    build: Build
    placeholder: dict[str, Any] = field(default_factory=dict)
    nullable: frozenset[str] = frozenset()
    joins: dict[str, str] = field(default_factory=dict)  # joined source -> member's column


DIMENSIONS: dict[str, DimensionSpec] = {
    spec.name: spec
    for spec in (
        DimensionSpec(
            "dim_staff",
            "staff_id",
            "dimension/staff",
            schemas.DIM_STAFF,
            ("staff", "department"),
            _no_warnings(dim_staff),
            nullable=frozenset({"location"}),
            joins={"department": "department_id"},
        ),
        DimensionSpec(
            "dim_location",
            "location_id",
            "dimension/location",
            schemas.DIM_LOCATION,
            ("address",),
            _no_warnings(dim_location),
            nullable=frozenset({"address_line_2", "district"}),
        ),
        DimensionSpec(
            "dim_design",
            "design_id",
            "dimension/design",
            schemas.DIM_DESIGN,
            ("design",),
            _no_warnings(dim_design),
        ),
        DimensionSpec(
            "dim_currency",
            "currency_id",
            "dimension/currency",
            schemas.DIM_CURRENCY,
            ("currency",),
            _currency_with_warnings,
            placeholder={"currency_code": "XXX"},  # ISO 4217: no currency
        ),
        DimensionSpec(
            "dim_counterparty",
            "counterparty_id",
            "dimension/counterparty",
            schemas.DIM_COUNTERPARTY,
            ("counterparty", "address"),
            _no_warnings(dim_counterparty),
            nullable=frozenset(
                {"counterparty_legal_address_line_2", "counterparty_legal_district"}
            ),
            joins={"address": "legal_address_id"},
        ),
        DimensionSpec(
            "dim_transaction",
            "transaction_id",
            "dimension/transaction",
            schemas.DIM_TRANSACTION,
            ("transaction",),
            _no_warnings(dim_transaction),
            nullable=frozenset({"sales_order_id", "purchase_order_id"}),
        ),
        DimensionSpec(
            "dim_payment_type",
            "payment_type_id",
            "dimension/payment_type",
            schemas.DIM_PAYMENT_TYPE,
            ("payment_type",),
            _no_warnings(dim_payment_type),
        ),
    )
}

DIMENSION_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    name: spec.schema for name, spec in DIMENSIONS.items()
}


def dimensions_from_source(table: str) -> list[str]:
    """The dimensions rebuilt when rows of a source table arrive."""
    return [name for name, spec in DIMENSIONS.items() if table in spec.sources]


def inferred_members(dimension: str, keys: pl.Series) -> pl.DataFrame:
    """Placeholder members for keys a fact references before the member arrives: every text
    column `Unknown` unless the declaration says otherwise (nullable ones null)."""
    spec = DIMENSIONS[dimension]
    ids = keys.unique().sort().cast(spec.schema[spec.key])
    height = len(ids)
    columns: dict[str, pl.Series] = {}
    for name, dtype in spec.schema.items():
        if name == spec.key:
            columns[name] = ids.alias(name)
        elif name == "is_inferred":
            columns[name] = pl.Series(name, [True] * height, dtype=pl.Boolean)
        elif name in spec.placeholder:
            columns[name] = pl.Series(name, [spec.placeholder[name]] * height, dtype=dtype)
        elif name in spec.nullable:
            columns[name] = pl.Series(name, [None] * height, dtype=dtype)
        else:
            columns[name] = pl.Series(name, [UNKNOWN] * height, dtype=dtype)
    return pl.DataFrame(columns)
