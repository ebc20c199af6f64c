"""What a fact is, declared: one FactSpec per fact; transforms/fact_versions.py and the service's
fact store (service/fact_store.py) run any of them.

A fact keeps one row per version of a source row: a version is (id, last_updated); `created_at`
and `last_updated` are split into a date and a time; every other star column is the source column
of the same name (or the one `renamed` names); the lineage columns follow
(transforms/schemas.py FACT_LINEAGE). The declarations: transforms/fact_sales_order.py,
fact_purchase_order.py, fact_payment.py; the registry: transforms/facts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from transforms.schemas import FACT_LINEAGE

# Star columns derived from a source timestamp: (column, source timestamp, part).
TIMESTAMP_PARTS: dict[str, tuple[str, str]] = {
    "created_date": ("created_at", "date"),
    "created_time": ("created_at", "time"),
    "last_updated_date": ("last_updated", "date"),
    "last_updated_time": ("last_updated", "time"),
}


@dataclass(frozen=True)
class FactSpec:
    name: str  # the table: fact_sales_order
    source: str  # the source table whose rows are versioned: sales_order
    id_column: str  # the source row's id: sales_order_id
    record_id: str  # the version's surrogate key: sales_record_id
    path: str  # under the processed root: fact/sales_order
    schema: dict[str, pl.DataType]  # every stored column, in order (record id first, lineage last)
    references: dict[str, str]  # fact column -> the dimension it references
    dates: tuple[str, ...]  # date columns dim_date must cover
    label: str  # in messages: "sales order"
    route: str  # in URLs: "sales-orders"
    renamed: dict[str, str] = field(default_factory=dict)  # fact column -> source column

    @property
    def star_columns(self) -> list[str]:
        """The star schema's columns (the spec's table), without lineage."""
        return [c for c in self.schema if c not in FACT_LINEAGE]

    @property
    def version_key(self) -> list[str]:
        return [self.id_column, "last_updated"]

    @property
    def index_key_columns(self) -> list[str]:
        """What the fact index keeps of every stored version (service/fact_index.py)."""
        return [self.id_column, "last_updated", "change_type"]

    @property
    def zorder(self) -> list[str]:
        """Maintenance clusters the table by the id: a version lookup reads few files."""
        return [self.id_column]

    @property
    def id_dtype(self) -> pl.DataType:
        return self.schema[self.id_column]

    def source_column(self, column: str) -> str:
        return self.renamed.get(column, column)
