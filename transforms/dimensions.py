"""dim_staff, dim_location, dim_design, dim_currency, dim_counterparty from the latest source rows.

Each builder takes the latest row of every member of its source tables (the `_state/source/*`
mirrors) and returns the whole dimension. A member whose joined row (a department, an address)
has not arrived yet gets placeholder values and `is_inferred = true` until it does. Inferred
members for keys that facts reference before the member itself arrives come from
`inferred_members`.
"""

from __future__ import annotations

import polars as pl
from babel.numbers import get_currency_name, is_currency

from transforms import schemas

UNKNOWN = "Unknown"


def latest_source_rows(rows: pl.DataFrame, key: str) -> pl.DataFrame:
    """The latest row of each member by the source's `last_updated` (not by arrival order);
    on a tie the later-applied file wins."""
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


# Dimension name → (its key, the fact column that references it).
DIMENSION_KEYS: dict[str, tuple[str, str]] = {
    "dim_staff": ("staff_id", "sales_staff_id"),
    "dim_counterparty": ("counterparty_id", "counterparty_id"),
    "dim_currency": ("currency_id", "currency_id"),
    "dim_design": ("design_id", "design_id"),
    "dim_location": ("location_id", "agreed_delivery_location_id"),
}

DIMENSION_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "dim_staff": schemas.DIM_STAFF,
    "dim_counterparty": schemas.DIM_COUNTERPARTY,
    "dim_currency": schemas.DIM_CURRENCY,
    "dim_design": schemas.DIM_DESIGN,
    "dim_location": schemas.DIM_LOCATION,
}


def inferred_members(dimension: str, keys: pl.Series) -> pl.DataFrame:
    """Placeholder members for keys a fact references before the member arrives: every text
    column `Unknown` (nullable ones null), currency code `XXX` (ISO 4217: no currency)."""
    key, _ = DIMENSION_KEYS[dimension]
    schema = DIMENSION_SCHEMAS[dimension]
    nullable = {"address_line_2", "district", "location"} | {
        c for c in schema if c.endswith(("_line_2", "_district"))
    }
    ids = keys.unique().sort().cast(schema[key])
    columns: dict[str, pl.Series] = {}
    for name, dtype in schema.items():
        if name == key:
            columns[name] = ids.alias(name)
        elif name == "is_inferred":
            columns[name] = pl.Series(name, [True] * len(ids), dtype=pl.Boolean)
        elif name == "currency_code":
            columns[name] = pl.Series(name, ["XXX"] * len(ids), dtype=dtype)
        elif name in nullable:
            columns[name] = pl.Series(name, [None] * len(ids), dtype=dtype)
        else:
            columns[name] = pl.Series(name, [UNKNOWN] * len(ids), dtype=dtype)
    return pl.DataFrame(columns)
