"""The whole ingestion tree: which file comes when, and the public entry points."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from service.synthetic import payments, purchases, sales
from service.synthetic.dimensions import Dimensions
from service.synthetic.encoding import Row, encode_frame, encode_rows, ingestion_key, ms
from service.synthetic.manifest import SyntheticManifest
from service.synthetic.orders import OrderBook, plan_orders
from service.synthetic.payments import Links
from service.synthetic.purchases import PurchaseOrders, purchase_order_count
from service.synthetic.randomness import rng
from service.synthetic.sales import SalesOrders

DEFAULT_START = datetime(2024, 11, 14, 10, 0)
EARLIEST_START = datetime(2022, 12, 1)


def iter_ingestion_files(
    orders: int = 2000,
    updates: int = 5,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    manifest: SyntheticManifest | None = None,
    purchase_orders: int | None = None,
) -> Iterator[tuple[str, bytes]]:
    """Yield `(ingestion key, content)` of a synthetic ingestion tree, one file at a time.

    `orders` is the number of distinct sales orders over the whole tree (most in the baseline,
    ≈0.5% per batch created in the update batches). `start` is the baseline's time; batch `b`
    (0-based) is at `start + 30 min * (b + 1)`. An order with 3 versions needs `updates >= 2`.
    `purchase_orders` (the same over the whole tree) defaults to the real snapshot's proportion
    of sales orders (4,649 to 11,187); every order has one transaction and one payment.
    """
    if orders < 10:
        raise ValueError("orders must be at least 10")
    if purchase_orders is None:
        purchase_orders = purchase_order_count(orders)
    if purchase_orders < 1:
        raise ValueError("purchase_orders must be at least 1")
    if updates < 0:
        raise ValueError("updates must not be negative")
    if start.tzinfo is not None or start < EARLIEST_START:
        raise ValueError(f"start must be a naive datetime not before {EARLIEST_START}")
    tree = _Tree(orders, updates, seed, start, purchase_orders)
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
    """The plan of the whole tree, made up front (so the manifest is known before the first
    file); `files` then encodes it, file by file."""

    def __init__(
        self, orders: int, updates: int, seed: int, start: datetime, purchase_orders: int
    ) -> None:
        self.updates = updates
        self.start = start
        n_currencies = 5 if orders >= 5000 else 3
        n_designs = min(max(orders // 25, 5), 400)
        self.dims = Dimensions(seed, updates, n_currencies, n_designs, start)
        self.sales_plan = plan_orders(rng(seed, "plan"), orders, updates, start)
        sales_kind = SalesOrders(self.dims, ms(start), n_currencies)
        self.sales = OrderBook(sales_kind, self.sales_plan, seed)
        purchase_plan = plan_orders(rng(seed, "purchase-plan"), purchase_orders, updates, start)
        purchase_kind = PurchaseOrders(ms(start), n_currencies, self.sales)
        self.purchases = OrderBook(purchase_kind, purchase_plan, seed)
        self.sales_rows = self._run(self.sales)
        self.purchase_rows = self._run(self.purchases)
        self.links = Links(seed, start, self.sales, self.purchases)
        self.payments = self.links.book
        self.payment_rows = self._run(self.payments)

    def _run(self, book: OrderBook) -> list[list[Row]]:
        """The baseline and every batch's rows of one versioned table."""
        book.baseline()
        prev, rows = self.start, []
        for b, batch in enumerate(book.plan.batches):
            rows.append(book.batch(b, prev))
            prev = batch.at
        return rows

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
        bought, paying = self.purchases.plan, self.payments.plan
        m.purchase_orders_created = bought.orders
        m.purchase_order_versions = bought.version_count
        m.deleted_purchase_order_ids = list(bought.deleted)
        m.updated_purchase_order_ids = bought.updated_ids
        m.transactions_created = self.links.total
        m.payments_created = paying.orders
        m.payment_versions = paying.version_count
        m.payments_paid = self.links.paid_at_end
        m.paid_in_updates_payment_ids = paying.updated_ids
        m.deleted_payment_ids = list(paying.deleted)

    def files(self) -> Iterator[tuple[str, bytes]]:
        yield from self._baseline_files()
        prev = self.start
        for b, batch in enumerate(self.sales_plan.batches):
            yield from self.dims.update_files(b, prev, batch.at)
            yield from self._batch_files(b, batch.at)
            prev = batch.at
        if self.sales_plan.batches:
            at = self.sales_plan.batches[-1].at
            for book, fmt in (
                (self.purchases, purchases.SNAPSHOT_FMT),
                (self.payments, payments.PAYMENT_SNAPSHOT_FMT),
                (self.sales, sales.SNAPSHOT_FMT),
            ):
                table = book.kind.table
                key = ingestion_key("baseline", table, at, fmt.name)
                yield key, encode_frame(table, book.snapshot(), fmt)

    def _baseline_files(self) -> Iterator[tuple[str, bytes]]:
        start = self.start
        yield from self.dims.baseline_files(start)
        fmt = sales.BASELINE_FMT
        key = ingestion_key("baseline", "sales_order", start, fmt.name)
        yield key, encode_frame("sales_order", self.sales.base, fmt)
        yield self.dims.payment_type_file(start)
        for table, frame, fmt in (
            ("purchase_order", self.purchases.base, purchases.BASELINE_FMT),
            ("transaction", self.links.transactions[0], payments.TRANSACTION_BASELINE_FMT),
            ("payment", self.payments.base, payments.PAYMENT_BASELINE_FMT),
        ):
            yield ingestion_key("baseline", table, start, fmt.name), encode_frame(table, frame, fmt)

    def _batch_files(self, b: int, at: datetime) -> Iterator[tuple[str, bytes]]:
        """Batch `b`'s files of the order tables, transactions and payments (not empty ones)."""
        transactions = self.links.transactions[b + 1]
        for table, rows, fmts in (
            ("sales_order", self.sales_rows[b], sales.BATCH_FMTS),
            ("purchase_order", self.purchase_rows[b], purchases.BATCH_FMTS),
            ("transaction", transactions.to_dicts(), payments.TRANSACTION_BATCH_FMTS),
            ("payment", self.payment_rows[b], payments.PAYMENT_BATCH_FMTS),
        ):
            if rows or table == "sales_order":
                fmt = fmts[b % len(fmts)]
                yield ingestion_key("updated", table, at, fmt.name), encode_rows(table, rows, fmt)
