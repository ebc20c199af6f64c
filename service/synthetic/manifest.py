"""What the generator wrote, for tests to cross-check the pipeline against."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class SyntheticManifest:
    """What `iter_ingestion_files` generated, for tests to cross-check the pipeline.

    Filled in by the generator: complete once the iterator is exhausted (`files` grows as files
    are yielded; the other fields are set before the first file).
    """

    files: list[str] = field(default_factory=list)  # ingestion keys in the order written
    orders_created: int = 0  # distinct sales_order_id ever generated
    # distinct (sales_order_id, last_updated) versions across all files, deletions excluded
    order_versions: int = 0
    # in the first baseline snapshot (or added later), missing from the last one
    deleted_order_ids: list[int] = field(default_factory=list)
    updated_order_ids: list[int] = field(default_factory=list)  # orders with > 1 version
    renamed_department_ids: list[int] = field(default_factory=list)
    changed_address_ids: list[int] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    changed_staff_ids: list[int] = field(default_factory=list)
    new_design_ids: list[int] = field(default_factory=list)  # designs first seen in updated/
    # purchase_order, as sales_order above
    purchase_orders_created: int = 0
    purchase_order_versions: int = 0
    deleted_purchase_order_ids: list[int] = field(default_factory=list)
    updated_purchase_order_ids: list[int] = field(default_factory=list)
    transactions_created: int = 0  # one per sales and purchase order
    payments_created: int = 0  # one per transaction
    # distinct (payment_id, last_updated) versions across all files, deletions excluded
    payment_versions: int = 0
    payments_paid: int = 0  # latest version paid, at the end of the tree (deleted ones included)
    # paid in an update batch: their paid version is in an updated/payment file
    paid_in_updates_payment_ids: list[int] = field(default_factory=list)
    # the payments of the deleted sales and purchase orders, missing from the last snapshot
    deleted_payment_ids: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def summary(self) -> str:
        """One line: what the tree holds."""
        return (
            f"{self.orders_created:,} sales orders ({self.order_versions:,} versions, "
            f"{len(self.deleted_order_ids)} deleted), {self.purchase_orders_created:,} purchase "
            f"orders ({self.purchase_order_versions:,} versions, "
            f"{len(self.deleted_purchase_order_ids)} deleted), {self.payments_created:,} "
            f"transactions and payments ({self.payments_paid:,} paid by the end, "
            f"{len(self.paid_in_updates_payment_ids)} of them in the update batches)"
        )

    def files_of(self, *tables: str) -> list[str]:
        """The keys written for these source tables, in the order written."""
        # `<prefix>/<table>-<stamp>.json`: table names hold no "-".
        return [k for k in self.files if k.split("/", 1)[1].split("-", 1)[0] in tables]
