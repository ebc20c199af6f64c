"""The whole ingestion tree: which file comes when, and the public entry points."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from service.synthetic.dimensions import Dimensions
from service.synthetic.encoding import encode_frame, encode_rows, ingestion_key, ms
from service.synthetic.manifest import SyntheticManifest
from service.synthetic.orders import OrderBook, plan_orders
from service.synthetic.randomness import rng
from service.synthetic.sales import BASELINE_FMT, BATCH_FMTS, SNAPSHOT_FMT, SalesOrders

DEFAULT_START = datetime(2024, 11, 14, 10, 0)
EARLIEST_START = datetime(2022, 12, 1)


def iter_ingestion_files(
    orders: int = 2000,
    updates: int = 5,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    manifest: SyntheticManifest | None = None,
) -> Iterator[tuple[str, bytes]]:
    """Yield `(ingestion key, content)` of a synthetic ingestion tree, one file at a time.

    `orders` is the number of distinct sales orders over the whole tree (most in the baseline,
    ≈0.5% per batch created in the update batches). `start` is the baseline's time; batch `b`
    (0-based) is at `start + 30 min * (b + 1)`. An order with 3 versions needs `updates >= 2`.
    """
    if orders < 10:
        raise ValueError("orders must be at least 10")
    if updates < 0:
        raise ValueError("updates must not be negative")
    if start.tzinfo is not None or start < EARLIEST_START:
        raise ValueError(f"start must be a naive datetime not before {EARLIEST_START}")
    tree = _Tree(orders, updates, seed, start)
    m = manifest if manifest is not None else SyntheticManifest()
    tree.fill_manifest(m)
    for key, content in tree.files():
        m.files.append(key)
        yield key, content


def write_ingestion_tree(root: str | Path, **kwargs: Any) -> SyntheticManifest:
    """Write the tree under a local folder (`root/<key>`); arguments as `iter_ingestion_files`."""
    manifest = SyntheticManifest()
    for key, content in iter_ingestion_files(manifest=manifest, **kwargs):
        path = Path(root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return manifest


class _Tree:
    def __init__(self, orders: int, updates: int, seed: int, start: datetime) -> None:
        self.updates = updates
        self.start = start
        n_currencies = 5 if orders >= 5000 else 3
        n_designs = min(max(orders // 25, 5), 400)
        self.dims = Dimensions(seed, updates, n_currencies, n_designs, start)
        self.sales_plan = plan_orders(rng(seed, "plan"), orders, updates, start)
        self.sales = OrderBook(
            SalesOrders(self.dims, ms(start), n_currencies), self.sales_plan, seed
        )

    def fill_manifest(self, m: SyntheticManifest) -> None:
        u, dims, plan = self.updates, self.dims, self.sales_plan
        m.files = []
        m.orders_created = plan.orders
        m.order_versions = plan.version_count
        m.deleted_order_ids = list(plan.deleted)
        m.updated_order_ids = plan.updated_ids
        m.renamed_department_ids = [dims.renamed_department] if u else []
        m.changed_address_ids = list(dims.changed_addresses) if u else []
        m.changed_staff_ids = [dims.changed_staff] if u else []
        m.new_design_ids = [dims.new_design_id] if u else []
        m.currencies = [c["currency_code"] for c in dims.currency]

    def files(self) -> Iterator[tuple[str, bytes]]:
        start = self.start
        yield from self.dims.baseline_files(start)
        base = self.sales.baseline()
        key = ingestion_key("baseline", "sales_order", start, BASELINE_FMT.name)
        yield key, encode_frame("sales_order", base, BASELINE_FMT)
        yield self.dims.payment_type_file(start)

        prev = start
        for b, batch in enumerate(self.sales_plan.batches):
            yield from self.dims.update_files(b, prev, batch.at)
            rows = self.sales.batch(b, prev)
            fmt = BATCH_FMTS[b % len(BATCH_FMTS)]
            key = ingestion_key("updated", "sales_order", batch.at, fmt.name)
            yield key, encode_rows("sales_order", rows, fmt)
            prev = batch.at

        if self.sales_plan.batches:
            at = self.sales_plan.batches[-1].at
            key = ingestion_key("baseline", "sales_order", at, SNAPSHOT_FMT.name)
            yield key, encode_frame("sales_order", self.sales.snapshot(), SNAPSHOT_FMT)
