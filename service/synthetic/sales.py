"""sales_order: its columns, how its values are drawn and changed, and the formats of its files."""

from __future__ import annotations

import random
from datetime import date, timedelta

import polars as pl

from service.synthetic import vocabulary as words
from service.synthetic.dimensions import Dimensions
from service.synthetic.encoding import MS_PER_DAY, Fmt, Row, dt
from service.synthetic.orders import OrderKind
from service.synthetic.randomness import between, rng

BASELINE_FMT = Fmt("jsonl", "iso", "iso_us")
# updated/sales_order of batch b uses BATCH_FMTS[b % 5].
BATCH_FMTS = (
    Fmt("array", "space_ms", "minute", price_as_string=True),
    Fmt("wrapped", "epoch_ms", "str"),
    Fmt("jsonl", "iso", "iso_us", price_as_string=True),
    Fmt("wrapped", "str", "minute", price_as_string=True),
    Fmt("array", "iso", "str"),
)
# The deletion snapshot: what `json.dumps({"sales_order": rows}, default=str)` writes.
SNAPSHOT_FMT = Fmt("wrapped", "str", "minute", price_as_string=True)

# Internal frame of sales orders: timestamps as epoch milliseconds, unit_price in pence (cents).
ORDER_FRAME: dict[str, pl.DataType] = {
    "sales_order_id": pl.Int32(),
    "created_at": pl.Int64(),
    "last_updated": pl.Int64(),
    "design_id": pl.Int32(),
    "staff_id": pl.Int32(),
    "counterparty_id": pl.Int32(),
    "units_sold": pl.Int32(),
    "unit_price": pl.Int32(),
    "currency_id": pl.Int32(),
    "agreed_delivery_date": pl.Date(),
    "agreed_payment_date": pl.Date(),
    "agreed_delivery_location_id": pl.Int32(),
}


def agreed_dates(source: random.Random, at_ms: int) -> tuple[date, date]:
    """Delivery 1-7 days after the order's day, payment 0-7 days after it."""
    day = dt(at_ms).date()
    return day + timedelta(days=source.randint(1, 7)), day + timedelta(days=source.randint(0, 7))


class SalesOrders(OrderKind):
    table = "sales_order"
    id_column = "sales_order_id"
    frame = ORDER_FRAME
    stream = ""

    def __init__(self, dims: Dimensions, start_ms: int, n_currencies: int) -> None:
        self.dims = dims
        self.start_ms = start_ms
        self.n_currencies = n_currencies

    def baseline_frame(self, seed: int, n: int) -> pl.DataFrame:
        source = rng(seed, "baseline-orders")
        # a few orders created on a whole second, always order 1
        on_second = pl.col("sales_order_id") % 250 == 1
        df = self.baseline_draws(source, n, 13, self.start_ms, also_whole_second=on_second)
        created = pl.col("created_at")
        # ≈3% of the baseline's orders were already changed before the extract.
        df = df.with_columns(
            last_updated=pl.when(pl.col("r2") % 100 < 3)
            .then(created + pl.col("r3") % (self.start_ms - created))
            .otherwise(created)
        )
        designs = pl.Series(self.dims.design_created_ms, dtype=pl.Int64)
        available = designs.search_sorted(df["created_at"], side="right").cast(pl.Int64)
        day = created // MS_PER_DAY
        return df.with_columns(available=available).select(
            "sales_order_id",
            "created_at",
            "last_updated",
            design_id=(pl.col("r4") % pl.col("available") + 1).cast(pl.Int32),
            staff_id=between(pl.col("r5"), 1, words.N_STAFF).cast(pl.Int32),
            counterparty_id=between(pl.col("r6"), 1, words.N_COUNTERPARTIES).cast(pl.Int32),
            units_sold=between(pl.col("r7"), 1000, 100_000).cast(pl.Int32),
            unit_price=between(pl.col("r8"), 200, 400).cast(pl.Int32),
            currency_id=between(pl.col("r9"), 1, self.n_currencies).cast(pl.Int32),
            agreed_delivery_date=(day + between(pl.col("r10"), 1, 7)).cast(pl.Int32).cast(pl.Date),
            agreed_payment_date=(day + pl.col("r11") % 8).cast(pl.Int32).cast(pl.Date),
            agreed_delivery_location_id=between(pl.col("r12"), 1, words.N_ADDRESSES).cast(pl.Int32),
        )

    def change(self, source: random.Random, row: Row, at_ms: int) -> Row:
        new = dict(row)
        kind = source.randrange(4)  # 0 units, 1 price, 2 agreed dates, 3 all of them
        if kind in (0, 3):
            while new["units_sold"] == row["units_sold"]:
                new["units_sold"] = source.randint(1000, 100_000)
        if kind in (1, 3):
            while new["unit_price"] == row["unit_price"]:
                new["unit_price"] = source.randint(200, 400)
        if kind in (2, 3):
            delivery, payment = agreed_dates(source, at_ms)
            if (delivery, payment) == (row["agreed_delivery_date"], row["agreed_payment_date"]):
                delivery += timedelta(days=1)
            new["agreed_delivery_date"], new["agreed_payment_date"] = delivery, payment
        new["last_updated"] = at_ms
        return new

    def new(self, source: random.Random, order_id: int, at_ms: int, b: int, i: int) -> Row:
        # Designs created in an earlier batch may be used by new orders.
        designs = self.dims.n_designs + (1 if b > self.dims.design_batch else 0)
        delivery, payment = agreed_dates(source, at_ms)
        order = {
            "sales_order_id": order_id,
            "created_at": at_ms,
            "last_updated": at_ms,
            "design_id": source.randint(1, designs),
            "staff_id": source.randint(1, words.N_STAFF),
            "counterparty_id": source.randint(1, words.N_COUNTERPARTIES),
            "units_sold": source.randint(1000, 100_000),
            "unit_price": source.randint(200, 400),
            "currency_id": source.randint(1, self.n_currencies),
            "agreed_delivery_date": delivery,
            "agreed_payment_date": payment,
            "agreed_delivery_location_id": source.randint(1, words.N_ADDRESSES),
        }
        if b == self.dims.design_batch + 1 and i == 0:
            order["design_id"] = self.dims.new_design_id  # the new design is used
        return order
