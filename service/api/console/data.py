"""What the console's pages show, read with the same Lake, Ledger and queries as the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from service import queries
from service.fact_columns import measures
from service.lake import TABLE_PATHS, Lake
from service.ledger import Ledger, RunRecord
from transforms.fact_payment import PAYMENT
from transforms.fact_purchase_order import PURCHASE
from transforms.fact_sales_order import SALES
from transforms.fact_spec import FactSpec

# A fact's columns in its timeline: what a version says (its lineage columns follow).
TIMELINE_COLUMNS: dict[str, list[str]] = {
    SALES.name: [
        "units_sold",
        "unit_price",
        "currency_id",
        "design_id",
        "sales_staff_id",
        "counterparty_id",
        "agreed_delivery_date",
        "agreed_payment_date",
        "agreed_delivery_location_id",
    ],
    PURCHASE.name: [
        "item_code",
        "item_quantity",
        "item_unit_price",
        "currency_id",
        "staff_id",
        "counterparty_id",
        "agreed_delivery_date",
        "agreed_payment_date",
        "agreed_delivery_location_id",
    ],
    PAYMENT.name: [
        "paid",
        "payment_amount",
        "currency_id",
        "payment_type_id",
        "payment_date",
        "transaction_id",
        "counterparty_id",
    ],
}


def timeline_columns(spec: FactSpec) -> list[str]:
    """The columns of a fact's timeline (a fact nobody chose them for: all its measures)."""
    return TIMELINE_COLUMNS.get(spec.name) or measures(spec)


REJECTS_SHOWN = 500


def duration_seconds(run: RunRecord) -> float | None:
    if run.started_at and run.finished_at:
        return (run.finished_at - run.started_at).total_seconds()
    return None


def run_files(lake: Lake, run_id: str) -> list[dict[str, Any]]:
    """The ledger rows this run wrote (one per file it decided), by key."""
    return Ledger(lake).run_files(run_id).to_dicts()


def rejects_of(lake: Lake, files: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """The stored rejects of these files (replaced whenever a file is applied again): the count
    and the first REJECTS_SHOWN by file and record."""
    if not files:
        return 0, []
    frame = lake.read("rejects", where=pl.col("source_file").is_in(files))
    if frame is None:
        return 0, []
    ordered = frame.sort(["source_file", "record_number", "field"])
    return ordered.height, ordered.head(REJECTS_SHOWN).to_dicts()


@dataclass
class VersionView:
    row: dict[str, Any]
    changed: set[str] = field(default_factory=set)
    is_state: bool = False


def timeline(spec: FactSpec, history: pl.DataFrame, state_record: int | None) -> list[VersionView]:
    """Each version oldest first, with the columns that differ from the previous version (an
    insert changes nothing, a deletion repeats the last values); `is_state` marks the version
    that is the id's state at the chosen time."""
    columns = timeline_columns(spec)
    views: list[VersionView] = []
    previous: dict[str, Any] | None = None
    for row in history.iter_rows(named=True):
        changed: set[str] = set()
        if previous is not None and row["change_type"] != "delete":
            changed = {c for c in columns if row.get(c) != previous.get(c)}
        views.append(VersionView(row, changed, row[spec.record_id] == state_record))
        previous = row
    return views


def table_overview(lake: Lake) -> list[dict[str, Any]]:
    """Every star table (the eleven: facts first), written or not, with version, rows and
    last commit."""
    infos = {info.name: info for info in queries.table_infos(lake)}
    return [
        {"name": name, "info": infos.get(name)}
        for name in TABLE_PATHS  # the schema's order, fact first
    ]


class BadInput(ValueError):
    """A form value the page cannot use; the message says which and why."""


def parse_moment(value: str | None) -> datetime | None:
    """A datetime-local or ISO 8601 input as naive UTC; None when empty."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"{value!r} is not a date and time (ISO 8601, e.g. 2024-11-14T10:00)"
        ) from None
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def parse_version(value: str | None) -> int | None:
    """A Delta version input; None when empty."""
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadInput(f"version {value!r} is not a whole number ≥ 0")
    return int(value)
