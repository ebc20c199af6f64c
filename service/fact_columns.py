"""How a person reads a fact's versions (the CLI's tables, the demo): which columns, and what to
call the rows. The JSON forms carry every column."""

from __future__ import annotations

from service.queries import HISTORY_VIEW_COLUMNS
from transforms.fact_payment import PAYMENT
from transforms.fact_purchase_order import PURCHASE
from transforms.fact_sales_order import SALES
from transforms.fact_spec import TIMESTAMP_PARTS, FactSpec
from transforms.facts import FACTS, fact_named

# An id's versions: what each says, then where it came from.
HISTORY_COLUMNS: dict[str, list[str]] = {
    SALES.name: HISTORY_VIEW_COLUMNS,
    PURCHASE.name: [
        "purchase_record_id",
        "change_type",
        "last_updated",
        "item_code",
        "item_quantity",
        "item_unit_price",
        "currency_id",
        "agreed_delivery_date",
        "agreed_payment_date",
        "source_file",
    ],
    PAYMENT.name: [
        "payment_record_id",
        "change_type",
        "last_updated",
        "paid",
        "payment_amount",
        "currency_id",
        "payment_type_id",
        "payment_date",
        "source_file",
    ],
}

# Every live id's state.
CURRENT_COLUMNS: dict[str, list[str]] = {
    SALES.name: [
        "sales_record_id",
        "sales_order_id",
        "created_date",
        "created_time",
        "last_updated_date",
        "last_updated_time",
        "sales_staff_id",
        "counterparty_id",
        "units_sold",
        "unit_price",
        "currency_id",
        "design_id",
    ],
    PURCHASE.name: [
        "purchase_record_id",
        "purchase_order_id",
        "created_date",
        "last_updated_date",
        "staff_id",
        "counterparty_id",
        "item_code",
        "item_quantity",
        "item_unit_price",
        "currency_id",
        "agreed_delivery_date",
        "agreed_payment_date",
    ],
    PAYMENT.name: [
        "payment_record_id",
        "payment_id",
        "created_date",
        "last_updated_date",
        "transaction_id",
        "counterparty_id",
        "payment_type_id",
        "payment_amount",
        "currency_id",
        "paid",
        "payment_date",
    ],
}


def measures(spec: FactSpec) -> list[str]:
    """What a fact's versions say: its star columns but the record id, the id and the split
    timestamps (the columns of a fact nobody chose them for)."""
    skip = {spec.record_id, spec.id_column, *TIMESTAMP_PARTS}
    return [c for c in spec.star_columns if c not in skip]


def history_columns(spec: FactSpec) -> list[str]:
    default = [spec.record_id, "change_type", "last_updated", *measures(spec), "source_file"]
    return HISTORY_COLUMNS.get(spec.name, default)


def current_columns(spec: FactSpec) -> list[str]:
    default = [spec.record_id, spec.id_column, *measures(spec)]
    return CURRENT_COLUMNS.get(spec.name, default)


def plural(spec: FactSpec) -> str:
    """What the rows are called in `totesys current`'s JSON and title: sales, purchase_orders,
    payments."""
    return "sales" if spec.name == SALES.name else spec.route.replace("-", "_")


def fact_option(value: str) -> FactSpec:
    """The `--fact` of a command: a fact's short name (purchase_order), its table name
    (fact_purchase_order) or its route (purchase-orders)."""
    by_route = {spec.route: spec for spec in FACTS.values()}
    if value in by_route:
        return by_route[value]
    return fact_named(value)
