"""fact_payment: one row per version of a payment (../shared/spec/warehouse-stars.md). A payment
is created unpaid and later paid: two versions. The bank account numbers of the source rows are
never read (transforms/schemas.py marks them sensitive). Versions, deletions and numbering:
transforms/fact_versions.py.
"""

from __future__ import annotations

from transforms.fact_spec import FactSpec
from transforms.schemas import FACT_PAYMENT

PAYMENT = FactSpec(
    name="fact_payment",
    source="payment",
    id_column="payment_id",
    record_id="payment_record_id",
    path="fact/payment",
    schema=FACT_PAYMENT,
    references={
        "transaction_id": "dim_transaction",
        "counterparty_id": "dim_counterparty",
        "currency_id": "dim_currency",
        "payment_type_id": "dim_payment_type",
    },
    dates=("created_date", "last_updated_date", "payment_date"),
    label="payment",
    route="payments",
)
