"""fact_purchase_order: one row per version of a purchase order
(../shared/spec/warehouse-stars.md). Versions, deletions and numbering: transforms/fact_versions.py.
"""

from __future__ import annotations

from transforms.fact_spec import FactSpec
from transforms.schemas import FACT_PURCHASE_ORDER

PURCHASE = FactSpec(
    name="fact_purchase_order",
    source="purchase_order",
    id_column="purchase_order_id",
    record_id="purchase_record_id",
    path="fact/purchase_order",
    schema=FACT_PURCHASE_ORDER,
    references={
        "staff_id": "dim_staff",
        "counterparty_id": "dim_counterparty",
        "currency_id": "dim_currency",
        "agreed_delivery_location_id": "dim_location",
    },
    dates=("created_date", "last_updated_date", "agreed_delivery_date", "agreed_payment_date"),
    label="purchase order",
    route="purchase-orders",
)
