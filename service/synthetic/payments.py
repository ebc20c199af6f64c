"""transaction and payment: one transaction per order, one payment per transaction.

Shaped like the real snapshot (../shared/data/totesys-2024-11-15):
- a transaction and its payment are created in the same millisecond as their order; a
  transaction is `SALE` with its sales_order_id or `PURCHASE` with its purchase_order_id (the other
  null), and never changes; ids follow creation time (payments break ties the other way round,
  so a payment's id is not always its transaction's);
- a payment carries its order's counterparty, currency and agreed payment date (payment_date), its
  amount is the order's quantity × unit price, its type 1 (SALES_RECEIPT) or 3
  (PURCHASE_PAYMENT), and it holds random 8-digit company and counterparty account numbers;
- a payment is created unpaid and later updated to paid (its last_updated moves): in the real
  snapshot 9,648 of 15,836 are paid. Here the same share is paid by the end of the tree: in the
  baseline, payments settled by the daily run (07:55 on their payment date) before `start`; in
  each batch a few more, whose paid version an updated/payment file carries (one of them created
  in the batch before, so both its versions arrive in updated/ files).
- the payment of an order deleted by the last order snapshot is missing from the last payment
  snapshot (its transaction stays).
"""

from __future__ import annotations

import random
from datetime import datetime

import polars as pl

from service.synthetic.encoding import MS_PER_DAY, Fmt, Row, ms
from service.synthetic.orders import Batch, OrderBook, OrderPlan, VersionedTable
from service.synthetic.randomness import between, random_int63, rng

REAL_PAYMENTS = 15_836
REAL_PAID = 9_648
SETTLEMENT_MS = ms(datetime(1970, 1, 1, 7, 55, 11))  # the daily payment run's time of day
ACCOUNT_NUMBERS = (10_000_000, 99_999_999)
SALE, PURCHASE = 0, 1
PAYMENT_TYPE_IDS = {SALE: 1, PURCHASE: 3}  # SALES_RECEIPT, PURCHASE_PAYMENT

TRANSACTION_BASELINE_FMT = Fmt("jsonl", "iso", "iso_us")
TRANSACTION_BATCH_FMTS = (
    Fmt("array", "str", "minute"),
    Fmt("wrapped", "space_ms", "iso_us", ids_as_strings=True),
    Fmt("jsonl", "epoch_ms", "str"),
)
PAYMENT_BASELINE_FMT = Fmt("jsonl", "iso", "iso_us")
# Booleans as PostgreSQL's text forms in two of them, as some extract jobs write.
PAYMENT_BATCH_FMTS = (
    Fmt("wrapped", "iso", "minute", bools="pg_short"),
    Fmt("array", "space_ms", "str", price_as_string=True),
    Fmt("jsonl", "str", "iso_us", bools="pg_word"),
    Fmt("array", "epoch_ms", "minute", ids_as_strings=True),
)
PAYMENT_SNAPSHOT_FMT = Fmt("wrapped", "str", "minute", price_as_string=True)

TRANSACTION_FRAME: dict[str, pl.DataType] = {
    "transaction_id": pl.Int32(),
    "transaction_type": pl.String(),
    "sales_order_id": pl.Int32(),
    "purchase_order_id": pl.Int32(),
    "created_at": pl.Int64(),
    "last_updated": pl.Int64(),
}
# Internal frame: timestamps as epoch milliseconds, payment_amount in pence (cents).
PAYMENT_FRAME: dict[str, pl.DataType] = {
    "payment_id": pl.Int32(),
    "created_at": pl.Int64(),
    "last_updated": pl.Int64(),
    "transaction_id": pl.Int32(),
    "counterparty_id": pl.Int32(),
    "payment_amount": pl.Int64(),
    "currency_id": pl.Int32(),
    "payment_type_id": pl.Int32(),
    "paid": pl.Boolean(),
    "payment_date": pl.Date(),
    "company_ac_number": pl.Int32(),
    "counterparty_ac_number": pl.Int32(),
}


def orders_to_pay(sales: pl.DataFrame, purchases: pl.DataFrame) -> pl.DataFrame:
    """One row per order (sales then purchases): what its transaction and payment take."""
    return pl.concat(
        [
            sales.select(
                kind=pl.lit(SALE, pl.Int8),
                order_id="sales_order_id",
                created_at="created_at",
                counterparty_id="counterparty_id",
                currency_id="currency_id",
                amount=pl.col("units_sold").cast(pl.Int64) * pl.col("unit_price"),
                payment_date="agreed_payment_date",
            ),
            purchases.select(
                kind=pl.lit(PURCHASE, pl.Int8),
                order_id="purchase_order_id",
                created_at="created_at",
                counterparty_id="counterparty_id",
                currency_id="currency_id",
                amount=pl.col("item_quantity").cast(pl.Int64) * pl.col("item_unit_price"),
                payment_date="agreed_payment_date",
            ),
        ]
    )


def link(orders: pl.DataFrame, first_id: int, source: random.Random) -> pl.DataFrame:
    """The transactions and payments of `orders`, numbered from `first_id` in creation order:
    one row per order with both ids and every column of both tables (see `transactions_of`,
    `payments_of`)."""
    by_tx = orders.sort(["created_at", "kind", "order_id"]).with_row_index(
        "transaction_id", offset=first_id
    )
    by_payment = by_tx.sort(
        ["created_at", "kind", "order_id"], descending=[False, True, False]
    ).with_row_index("payment_id", offset=first_id)
    n = by_payment.height
    accounts = pl.DataFrame(
        {"r0": random_int63(source, n), "r1": random_int63(source, n)},
        schema={"r0": pl.Int64, "r1": pl.Int64},
    )
    return pl.concat([by_payment, accounts], how="horizontal").with_columns(
        pl.col("transaction_id", "payment_id").cast(pl.Int32),
        company_ac_number=between(pl.col("r0"), *ACCOUNT_NUMBERS).cast(pl.Int32),
        counterparty_ac_number=between(pl.col("r1"), *ACCOUNT_NUMBERS).cast(pl.Int32),
    )


def transactions_of(linked: pl.DataFrame) -> pl.DataFrame:
    sale = pl.col("kind") == SALE
    return linked.sort("transaction_id").select(
        "transaction_id",
        transaction_type=pl.when(sale).then(pl.lit("SALE")).otherwise(pl.lit("PURCHASE")),
        sales_order_id=pl.when(sale).then(pl.col("order_id")).cast(pl.Int32),
        purchase_order_id=pl.when(~sale).then(pl.col("order_id")).cast(pl.Int32),
        created_at="created_at",
        last_updated="created_at",
    )


def payments_of(linked: pl.DataFrame) -> pl.DataFrame:
    """Unpaid payments, by payment_id."""
    return linked.sort("payment_id").select(
        "payment_id",
        "created_at",
        last_updated="created_at",
        transaction_id="transaction_id",
        counterparty_id="counterparty_id",
        payment_amount="amount",
        currency_id="currency_id",
        payment_type_id=pl.col("kind").replace_strict(PAYMENT_TYPE_IDS, return_dtype=pl.Int32),
        paid=pl.lit(False),
        payment_date="payment_date",
        company_ac_number="company_ac_number",
        counterparty_ac_number="counterparty_ac_number",
    )


class Payments(VersionedTable):
    """payment as a versioned table: its rows come from `Links`; a change pays it."""

    table = "payment"
    id_column = "payment_id"
    frame = PAYMENT_FRAME
    stream = "payment-"

    def __init__(self, baseline: pl.DataFrame, created: list[list[Row]]) -> None:
        self.baseline = baseline
        self.batch_rows = created

    def baseline_frame(self, seed: int, n: int) -> pl.DataFrame:
        return self.baseline

    def change(self, source: random.Random, row: Row, at_ms: int) -> Row:
        return {**row, "paid": True, "last_updated": at_ms}

    def created(self, source: random.Random, b: int, batch: Batch, prev: datetime) -> list[Row]:
        return [dict(row) for row in self.batch_rows[b]]


class Links:
    """Every transaction and payment of the tree, from the order books (run to their end)."""

    def __init__(self, seed: int, start: datetime, sales: OrderBook, purchases: OrderBook) -> None:
        self.seed = seed
        self.start = start
        linked = self._link(sales, purchases)  # the baseline's, then each batch's
        self.transactions = [transactions_of(frame) for frame in linked]
        self.total = sum(frame.height for frame in linked)
        self.target_paid = round(self.total * REAL_PAID / REAL_PAYMENTS)
        self.per_batch = max(2, self.total // 500)
        self.deleted = self._of_deleted_orders(linked, sales.plan.deleted, purchases.plan.deleted)
        base = self._settled(payments_of(linked[0]), len(sales.plan.batches))
        created = [payments_of(f).to_dicts() for f in linked[1:]]
        self.paid_in_baseline = int(base["paid"].sum())
        plan = self._plan(base, created, [b.at for b in sales.plan.batches])
        self.book = OrderBook(Payments(base, created), plan, seed)

    def _link(self, sales: OrderBook, purchases: OrderBook) -> list[pl.DataFrame]:
        """The transactions and payments of the baseline's orders, then of each batch's."""
        seed = self.seed
        linked = [link(orders_to_pay(sales.base, purchases.base), 1, rng(seed, "payment-links"))]
        next_id = linked[0].height + 1
        for b, (s, p) in enumerate(zip(sales.created, purchases.created, strict=True)):
            orders = orders_to_pay(
                pl.DataFrame(s, schema=sales.kind.frame),
                pl.DataFrame(p, schema=purchases.kind.frame),
            )
            linked.append(link(orders, next_id, rng(seed, f"payment-links-{b}")))
            next_id += linked[-1].height
        return linked

    @staticmethod
    def _of_deleted_orders(
        linked: list[pl.DataFrame], sales: list[int], purchases: list[int]
    ) -> list[int]:
        """The payments of the deleted orders, by id."""
        gone = [(SALE, i) for i in sales] + [(PURCHASE, i) for i in purchases]
        deleted = pl.DataFrame(gone, schema={"kind": pl.Int8, "order_id": pl.Int32}, orient="row")
        everything = pl.concat([f.select("payment_id", "kind", "order_id") for f in linked])
        found = everything.join(deleted, on=["kind", "order_id"], how="semi")
        return sorted(found["payment_id"].to_list())

    def _settled(self, base: pl.DataFrame, updates: int) -> pl.DataFrame:
        """The baseline's payments, those settled before `start` at their paid version: enough
        that, with `per_batch` paid in each batch, the target share is paid at the end."""
        day = pl.col("payment_date").cast(pl.Int64)
        settle = day * MS_PER_DAY + SETTLEMENT_MS + (day * 389) % 1000
        eligible = (settle > pl.col("created_at")) & (settle < ms(self.start))
        keyed = base.with_columns(
            settle=settle, key=random_int63(rng(self.seed, "payment-settled"), base.height)
        )
        wanted = max(0, self.target_paid - self.per_batch * updates)
        chosen = keyed.filter(eligible).sort(["key", "payment_id"]).head(wanted)["payment_id"]
        paid = pl.col("payment_id").is_in(chosen.implode())
        return keyed.select(
            pl.exclude("settle", "key", "last_updated", "paid"),
            last_updated=pl.when(paid).then("settle").otherwise("created_at"),
            paid=paid,
        ).select(list(PAYMENT_FRAME))

    def _plan(self, base: pl.DataFrame, created: list[list[Row]], ats: list[datetime]) -> OrderPlan:
        """Which payments each batch pays: `per_batch` unpaid ones (never one of a deleted
        order), the first of them created in the batch before when there is one."""
        source = rng(self.seed, "payment-plan")
        deleted = set(self.deleted)
        unpaid_ids = base.filter(~pl.col("paid"))["payment_id"].to_list()
        unpaid = [p for p in unpaid_ids if p not in deleted]
        batches: list[Batch] = []
        next_id = base.height + 1
        for b, at in enumerate(ats):
            fresh = [r["payment_id"] for r in created[b - 1]] if b else []
            fresh = [p for p in fresh if p not in deleted]
            forced = fresh[:1]
            k = min(self.per_batch - len(forced), len(unpaid))
            picked = forced + source.sample(unpaid, k)
            batches.append(Batch(at, sorted(picked), next_id, len(created[b])))
            next_id += len(created[b])
            chosen = set(picked)
            unpaid = [p for p in unpaid + fresh if p not in chosen]
        return OrderPlan(next_id - 1, base.height, batches, self.deleted)

    @property
    def paid_at_end(self) -> int:
        """Payments whose latest version is paid (deleted ones included)."""
        return self.paid_in_baseline + sum(len(b.changed) for b in self.book.plan.batches)
