"""fact_sales_order: one row per version of a sales order (../shared/spec/star-schema.md).

The declaration is all there is to it: transforms/fact_versions.py derives the versions of any
declared fact. The functions below are the sales fact's versions of those, for callers that
only ever mean sales.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms import fact_versions
from transforms.fact_spec import FactSpec
from transforms.fact_versions import TIME_FORMAT, Frame
from transforms.schemas import FACT_SALES_ORDER

SALES = FactSpec(
    name="fact_sales_order",
    source="sales_order",
    id_column="sales_order_id",
    record_id="sales_record_id",
    path="fact/sales_order",
    schema=FACT_SALES_ORDER,
    references={
        "sales_staff_id": "dim_staff",
        "counterparty_id": "dim_counterparty",
        "currency_id": "dim_currency",
        "design_id": "dim_design",
        "agreed_delivery_location_id": "dim_location",
    },
    dates=("created_date", "last_updated_date", "agreed_payment_date", "agreed_delivery_date"),
    label="sales order",
    route="sales-orders",
    renamed={"sales_staff_id": "staff_id"},
)

VERSION_KEY = SALES.version_key
__all__ = ["SALES", "TIME_FORMAT", "VERSION_KEY"]


def order_versions(orders: pl.DataFrame) -> pl.DataFrame:
    return fact_versions.source_versions(SALES, orders)


def new_versions(versions: pl.DataFrame, stored: pl.DataFrame) -> pl.DataFrame:
    return fact_versions.new_versions(SALES, versions, stored)


def latest_versions(history: Frame) -> Frame:
    return fact_versions.latest_versions(SALES, history)


def deletion_versions(
    latest: pl.DataFrame,
    snapshot_order_ids: pl.Series,
    snapshot_at: datetime,
    source_file: str,
    file_seq: int,
) -> pl.DataFrame:
    return fact_versions.deletion_versions(
        SALES, latest, snapshot_order_ids, snapshot_at, source_file, file_seq
    )


def number_versions(new: pl.DataFrame, first_id: int, run_id: str) -> pl.DataFrame:
    return fact_versions.number_versions(SALES, new, first_id, run_id)


def current_state(history: Frame) -> Frame:
    return fact_versions.current_state(SALES, history)


def state_as_of(history: Frame, as_of: datetime) -> Frame:
    return fact_versions.state_as_of(SALES, history, as_of)
