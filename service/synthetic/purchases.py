"""purchase_order: its columns, how its values are drawn and changed, and the formats of its files.

Shaped like the real snapshot (../shared/data/totesys-2024-11-15): a 7-character item code of
capitals and digits, 1-999 items at 3.00-999.99 each, delivery 0-7 and payment 0-6 days after the
order's day; staff, counterparty, currency and delivery location drawn from the generated
dimensions. The real extract holds no updated purchase order; the generator still changes and
deletes a few across the batches, exactly as it does sales orders, so their history is exercised.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import polars as pl

from service.synthetic import vocabulary as words
from service.synthetic.encoding import MS_PER_DAY, Fmt, Row, dt
from service.synthetic.orders import OrderBook, OrderKind
from service.synthetic.randomness import between, rng

# The real snapshot's sizes: purchase orders scale with sales orders in this proportion.
REAL_SALES_ORDERS = 11_187
REAL_PURCHASE_ORDERS = 4_649

BASELINE_FMT = Fmt("jsonl", "iso", "iso_us")
# updated/purchase_order of batch b uses BATCH_FMTS[b % 4].
BATCH_FMTS = (
    Fmt("wrapped", "iso", "minute", price_as_string=True),
    Fmt("jsonl", "space_ms", "str"),
    Fmt("array", "epoch_ms", "iso_us", ids_as_strings=True),
    Fmt("array", "str", "minute"),
)
SNAPSHOT_FMT = Fmt("wrapped", "str", "minute", price_as_string=True)

ITEM_CODE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ITEM_CODE_LENGTH = 7
# Internal frame: timestamps as epoch milliseconds, item_unit_price in pence (cents).
PURCHASE_FRAME: dict[str, pl.DataType] = {
    "purchase_order_id": pl.Int32(),
    "created_at": pl.Int64(),
    "last_updated": pl.Int64(),
    "staff_id": pl.Int32(),
    "counterparty_id": pl.Int32(),
    "item_code": pl.String(),
    "item_quantity": pl.Int32(),
    "item_unit_price": pl.Int64(),
    "currency_id": pl.Int32(),
    "agreed_delivery_date": pl.Date(),
    "agreed_payment_date": pl.Date(),
    "agreed_delivery_location_id": pl.Int32(),
}
QUANTITY = (1, 999)
PRICE_CENTS = (300, 99_999)
# Every this-many-th baseline purchase order (from the first) is taken in the same millisecond
# as a sales order, as in the real seed: its transaction and its payment are then numbered in
# different orders (payment_id differs from transaction_id, as for a few real payments).
SAME_MS_EVERY = 100


def purchase_order_count(sales_orders: int) -> int:
    """Purchase orders beside `sales_orders` sales orders, in the real snapshot's proportion."""
    return max(1, round(sales_orders * REAL_PURCHASE_ORDERS / REAL_SALES_ORDERS))


def purchase_dates(source: random.Random, at_ms: int) -> tuple[date, date]:
    day = dt(at_ms).date()
    return day + timedelta(days=source.randint(0, 7)), day + timedelta(days=source.randint(0, 6))


def item_code(source: random.Random) -> str:
    return "".join(source.choice(ITEM_CODE_CHARS) for _ in range(ITEM_CODE_LENGTH))


class PurchaseOrders(OrderKind):
    table = "purchase_order"
    id_column = "purchase_order_id"
    frame = PURCHASE_FRAME
    stream = "purchase-"

    def __init__(self, start_ms: int, n_currencies: int, sales: OrderBook) -> None:
        self.start_ms = start_ms
        self.n_currencies = n_currencies
        self.sales = sales  # its baseline is drawn first: a few purchases share its times

    def baseline_frame(self, seed: int, n: int) -> pl.DataFrame:
        source = rng(seed, "purchase-baseline")
        df = self.baseline_draws(source, n, 11, self.start_ms)  # a few on a whole second ...
        created = pl.col("created_at")
        # ... and a few in the same millisecond as the next sales order.
        sales_times = self.sales.base["created_at"].sort()
        if sales_times.len():
            nearest = sales_times.search_sorted(df["created_at"], side="left")
            same = sales_times.gather(nearest.clip(0, sales_times.len() - 1))
            df = df.with_columns(
                created_at=pl.when(pl.col("purchase_order_id") % SAME_MS_EVERY == 1)
                .then(same)
                .otherwise(created)
            )
        day = created // MS_PER_DAY
        code = pl.concat_str(
            [
                pl.lit(ITEM_CODE_CHARS).str.slice((pl.col("r4") // 36**k) % 36, 1)
                for k in range(ITEM_CODE_LENGTH)
            ]
        )
        return df.select(
            "purchase_order_id",
            "created_at",
            last_updated="created_at",  # none changed before the extract, as in the real one
            staff_id=between(pl.col("r2"), 1, words.N_STAFF).cast(pl.Int32),
            counterparty_id=between(pl.col("r3"), 1, words.N_COUNTERPARTIES).cast(pl.Int32),
            item_code=code,
            item_quantity=between(pl.col("r5"), *QUANTITY).cast(pl.Int32),
            item_unit_price=between(pl.col("r6"), *PRICE_CENTS),
            currency_id=between(pl.col("r7"), 1, self.n_currencies).cast(pl.Int32),
            agreed_delivery_date=(day + pl.col("r8") % 8).cast(pl.Int32).cast(pl.Date),
            agreed_payment_date=(day + pl.col("r9") % 7).cast(pl.Int32).cast(pl.Date),
            agreed_delivery_location_id=between(pl.col("r10"), 1, words.N_ADDRESSES).cast(pl.Int32),
        )

    def change(self, source: random.Random, row: Row, at_ms: int) -> Row:
        new = dict(row)
        kind = source.randrange(4)  # 0 quantity, 1 price, 2 agreed dates, 3 all of them
        if kind in (0, 3):
            while new["item_quantity"] == row["item_quantity"]:
                new["item_quantity"] = source.randint(*QUANTITY)
        if kind in (1, 3):
            while new["item_unit_price"] == row["item_unit_price"]:
                new["item_unit_price"] = source.randint(*PRICE_CENTS)
        if kind in (2, 3):
            delivery, payment = purchase_dates(source, at_ms)
            if (delivery, payment) == (row["agreed_delivery_date"], row["agreed_payment_date"]):
                delivery += timedelta(days=1)
            new["agreed_delivery_date"], new["agreed_payment_date"] = delivery, payment
        new["last_updated"] = at_ms
        return new

    def new(self, source: random.Random, order_id: int, at_ms: int, b: int, i: int) -> Row:
        delivery, payment = purchase_dates(source, at_ms)
        return {
            "purchase_order_id": order_id,
            "created_at": at_ms,
            "last_updated": at_ms,
            "staff_id": source.randint(1, words.N_STAFF),
            "counterparty_id": source.randint(1, words.N_COUNTERPARTIES),
            "item_code": item_code(source),
            "item_quantity": source.randint(*QUANTITY),
            "item_unit_price": source.randint(*PRICE_CENTS),
            "currency_id": source.randint(1, self.n_currencies),
            "agreed_delivery_date": delivery,
            "agreed_payment_date": payment,
            "agreed_delivery_location_id": source.randint(1, words.N_ADDRESSES),
        }
