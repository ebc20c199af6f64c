"""Explicit schemas: the Totesys source tables as they arrive, and the star schema as stored.

Source schemas are declared, never inferred from the first rows of a file, so a file whose
first rows happen to hold strings (or nulls) parses the same as any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

# Delta has microsecond timestamps without a zone (timestampNtz); Totesys timestamps are naive.
TIMESTAMP = pl.Datetime("us")
PRICE = pl.Decimal(10, 2)


@dataclass(frozen=True)
class SourceTable:
    """One Totesys source table: its key, its typed columns and which of them may be null."""

    name: str
    key: str
    columns: dict[str, pl.DataType]
    nullable: frozenset[str] = frozenset()
    # Fields of the source rows the warehouse never carries (bank details): not columns, never
    # kept in a reject's raw value, a mirror or a log line.
    sensitive: frozenset[str] = frozenset()

    @property
    def required(self) -> list[str]:
        return [c for c in self.columns if c not in self.nullable]


SOURCE_TABLES: dict[str, SourceTable] = {
    t.name: t
    for t in (
        SourceTable(
            "sales_order",
            "sales_order_id",
            {
                "sales_order_id": pl.Int32(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
                "design_id": pl.Int32(),
                "staff_id": pl.Int32(),
                "counterparty_id": pl.Int32(),
                "units_sold": pl.Int32(),
                "unit_price": PRICE,
                "currency_id": pl.Int32(),
                "agreed_delivery_date": pl.Date(),
                "agreed_payment_date": pl.Date(),
                "agreed_delivery_location_id": pl.Int32(),
            },
        ),
        SourceTable(
            "staff",
            "staff_id",
            {
                "staff_id": pl.Int32(),
                "first_name": pl.String(),
                "last_name": pl.String(),
                "department_id": pl.Int32(),
                "email_address": pl.String(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
            },
        ),
        SourceTable(
            "department",
            "department_id",
            {
                "department_id": pl.Int32(),
                "department_name": pl.String(),
                "location": pl.String(),
                "manager": pl.String(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
            },
            nullable=frozenset({"location", "manager"}),
        ),
        SourceTable(
            "counterparty",
            "counterparty_id",
            {
                "counterparty_id": pl.Int32(),
                "counterparty_legal_name": pl.String(),
                "legal_address_id": pl.Int32(),
                "commercial_contact": pl.String(),
                "delivery_contact": pl.String(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
            },
            nullable=frozenset({"commercial_contact", "delivery_contact"}),
        ),
        SourceTable(
            "address",
            "address_id",
            {
                "address_id": pl.Int32(),
                "address_line_1": pl.String(),
                "address_line_2": pl.String(),
                "district": pl.String(),
                "city": pl.String(),
                "postal_code": pl.String(),
                "country": pl.String(),
                "phone": pl.String(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
            },
            nullable=frozenset({"address_line_2", "district"}),
        ),
        SourceTable(
            "currency",
            "currency_id",
            {
                "currency_id": pl.Int32(),
                "currency_code": pl.String(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
            },
        ),
        SourceTable(
            "design",
            "design_id",
            {
                "design_id": pl.Int32(),
                "created_at": TIMESTAMP,
                "design_name": pl.String(),
                "file_location": pl.String(),
                "file_name": pl.String(),
                "last_updated": TIMESTAMP,
            },
        ),
        SourceTable(
            "purchase_order",
            "purchase_order_id",
            {
                "purchase_order_id": pl.Int32(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
                "staff_id": pl.Int32(),
                "counterparty_id": pl.Int32(),
                "item_code": pl.String(),
                "item_quantity": pl.Int32(),
                "item_unit_price": PRICE,
                "currency_id": pl.Int32(),
                "agreed_delivery_date": pl.Date(),
                "agreed_payment_date": pl.Date(),
                "agreed_delivery_location_id": pl.Int32(),
            },
        ),
        SourceTable(
            "payment",
            "payment_id",
            {
                "payment_id": pl.Int32(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
                "transaction_id": pl.Int32(),
                "counterparty_id": pl.Int32(),
                "payment_amount": PRICE,
                "currency_id": pl.Int32(),
                "payment_type_id": pl.Int32(),
                "paid": pl.Boolean(),
                "payment_date": pl.Date(),
            },
            sensitive=frozenset({"company_ac_number", "counterparty_ac_number"}),
        ),
        SourceTable(
            "transaction",
            "transaction_id",
            {
                "transaction_id": pl.Int32(),
                "transaction_type": pl.String(),
                "sales_order_id": pl.Int32(),
                "purchase_order_id": pl.Int32(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
            },
            nullable=frozenset({"sales_order_id", "purchase_order_id"}),
        ),
        SourceTable(
            "payment_type",
            "payment_type_id",
            {
                "payment_type_id": pl.Int32(),
                "payment_type_name": pl.String(),
                "created_at": TIMESTAMP,
                "last_updated": TIMESTAMP,
            },
        ),
    )
}

# Totesys tables this stage does not model: their files are recognised and recorded as skipped.
IGNORED_SOURCE_TABLES = frozenset({"sales_order_history"})

# ---------------------------------------------------------------------------------------------
# Star schema (../shared/spec/star-schema.md), column order as stored.

# Lineage, after every fact's schema columns.
FACT_LINEAGE: dict[str, pl.DataType] = {
    "last_updated": TIMESTAMP,  # the version's identity with the fact's id, as a sortable value
    "change_type": pl.String(),  # insert | update | delete
    "source_file": pl.String(),  # ingestion key the version came from
    "run_id": pl.String(),  # the run that stored it
}

# Every fact splits the source row's created_at and last_updated into a date and a time.
VERSION_TIMES: dict[str, pl.DataType] = {
    "created_date": pl.Date(),
    "created_time": pl.String(),
    "last_updated_date": pl.Date(),
    "last_updated_time": pl.String(),
}

FACT_SALES_ORDER: dict[str, pl.DataType] = {
    "sales_record_id": pl.Int64(),
    "sales_order_id": pl.Int32(),
    **VERSION_TIMES,
    "sales_staff_id": pl.Int32(),
    "counterparty_id": pl.Int32(),
    "units_sold": pl.Int32(),
    "unit_price": PRICE,
    "currency_id": pl.Int32(),
    "design_id": pl.Int32(),
    "agreed_payment_date": pl.Date(),
    "agreed_delivery_date": pl.Date(),
    "agreed_delivery_location_id": pl.Int32(),
    **FACT_LINEAGE,
}

# ../shared/spec/warehouse-stars.md
FACT_PURCHASE_ORDER: dict[str, pl.DataType] = {
    "purchase_record_id": pl.Int64(),
    "purchase_order_id": pl.Int32(),
    **VERSION_TIMES,
    "staff_id": pl.Int32(),
    "counterparty_id": pl.Int32(),
    "item_code": pl.String(),
    "item_quantity": pl.Int32(),
    "item_unit_price": PRICE,
    "currency_id": pl.Int32(),
    "agreed_delivery_date": pl.Date(),
    "agreed_payment_date": pl.Date(),
    "agreed_delivery_location_id": pl.Int32(),
    **FACT_LINEAGE,
}

FACT_PAYMENT: dict[str, pl.DataType] = {
    "payment_record_id": pl.Int64(),
    "payment_id": pl.Int32(),
    **VERSION_TIMES,
    "transaction_id": pl.Int32(),
    "counterparty_id": pl.Int32(),
    "payment_amount": PRICE,
    "currency_id": pl.Int32(),
    "payment_type_id": pl.Int32(),
    "paid": pl.Boolean(),
    "payment_date": pl.Date(),
    **FACT_LINEAGE,
}

DIM_DATE: dict[str, pl.DataType] = {
    "date_id": pl.Date(),
    "year": pl.Int32(),
    "month": pl.Int32(),
    "day": pl.Int32(),
    "day_of_week": pl.Int32(),
    "day_name": pl.String(),
    "month_name": pl.String(),
    "quarter": pl.Int32(),
}

# `is_inferred` marks a placeholder member made for a fact that referenced a key not yet seen
# (or a member whose joined row, a department or address, has not arrived yet).
DIM_STAFF: dict[str, pl.DataType] = {
    "staff_id": pl.Int32(),
    "first_name": pl.String(),
    "last_name": pl.String(),
    "department_name": pl.String(),
    "location": pl.String(),
    "email_address": pl.String(),
    "is_inferred": pl.Boolean(),
}

DIM_LOCATION: dict[str, pl.DataType] = {
    "location_id": pl.Int32(),
    "address_line_1": pl.String(),
    "address_line_2": pl.String(),
    "district": pl.String(),
    "city": pl.String(),
    "postal_code": pl.String(),
    "country": pl.String(),
    "phone": pl.String(),
    "is_inferred": pl.Boolean(),
}

DIM_DESIGN: dict[str, pl.DataType] = {
    "design_id": pl.Int32(),
    "design_name": pl.String(),
    "file_location": pl.String(),
    "file_name": pl.String(),
    "is_inferred": pl.Boolean(),
}

DIM_CURRENCY: dict[str, pl.DataType] = {
    "currency_id": pl.Int32(),
    "currency_code": pl.String(),
    "currency_name": pl.String(),
    "is_inferred": pl.Boolean(),
}

DIM_COUNTERPARTY: dict[str, pl.DataType] = {
    "counterparty_id": pl.Int32(),
    "counterparty_legal_name": pl.String(),
    "counterparty_legal_address_line_1": pl.String(),
    "counterparty_legal_address_line_2": pl.String(),
    "counterparty_legal_district": pl.String(),
    "counterparty_legal_city": pl.String(),
    "counterparty_legal_postal_code": pl.String(),
    "counterparty_legal_country": pl.String(),
    "counterparty_legal_phone_number": pl.String(),
    "is_inferred": pl.Boolean(),
}

DIM_TRANSACTION: dict[str, pl.DataType] = {
    "transaction_id": pl.Int32(),
    "transaction_type": pl.String(),
    "sales_order_id": pl.Int32(),
    "purchase_order_id": pl.Int32(),
    "is_inferred": pl.Boolean(),
}

DIM_PAYMENT_TYPE: dict[str, pl.DataType] = {
    "payment_type_id": pl.Int32(),
    "payment_type_name": pl.String(),
    "is_inferred": pl.Boolean(),
}

# Rejected rows, kept with the reason (one row per problem: a row with two bad fields has two).
REJECTS: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_table": pl.String(),
    "record_number": pl.Int64(),  # 1-based position of the record in the file; 0 = whole file
    "field": pl.String(),  # the offending field, or "<json>" / "<file>"
    "reason": pl.String(),
    "raw_value": pl.String(),
}
