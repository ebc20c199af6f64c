"""Versioned tables over the whole tree (sales_order, purchase_order, payment): which rows
change, are created and deleted in which batch, and the rows of every file that carries them.

`plan_orders` decides for an order table; an `OrderBook` writes: the baseline's rows (a
vectorised frame), each batch's changed and new rows, and the last batch's full snapshot of the
live rows at their latest versions minus the deleted ones (deletion by absence). What differs
between the tables (columns, values, how a row changes, how rows are created) is a
`VersionedTable`; an `OrderKind` for the order tables.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from service.synthetic.dimensions import ORDERS_FROM
from service.synthetic.encoding import Row, ms
from service.synthetic.randomness import random_int63, rng, window_ms

BATCH_INTERVAL = timedelta(minutes=30)


@dataclass
class Batch:
    at: datetime
    changed: list[int]  # existing ids changed in this batch
    first_new: int  # the first id created in this batch
    new: int  # how many created in this batch


@dataclass
class OrderPlan:
    orders: int  # distinct ids over the whole tree
    n_baseline: int  # ids 1..n_baseline are in the baseline
    batches: list[Batch]
    deleted: list[int]  # live before the last batch, missing from its snapshot

    @property
    def version_count(self) -> int:
        return self.n_baseline + sum(len(b.changed) + b.new for b in self.batches)

    @property
    def updated_ids(self) -> list[int]:
        return sorted({oid for b in self.batches for oid in b.changed})


def plan_orders(source: random.Random, orders: int, updates: int, start: datetime) -> OrderPlan:
    """Most orders in the baseline, ≈0.5% per batch created in the batches; ≈0.2% changed per
    batch (at least 2, one of them the hot order); ≈0.5% deleted by the last snapshot."""
    u = updates
    total_new = min(u * max(1, orders // 200), orders // 2) if u else 0
    n_baseline = orders - total_new
    changed_per_batch = max(2, orders // 500)
    # One baseline order changes in every batch: with 2+ batches it has 3+ versions.
    hot_order = source.randint(1, n_baseline)
    batches: list[Batch] = []
    live = n_baseline
    for b in range(u):
        new = total_new * (b + 1) // u - total_new * b // u
        k = min(changed_per_batch, live)
        picked = source.sample(range(1, live + 1), k)
        if hot_order in picked:
            picked.remove(hot_order)
        else:
            picked.pop()
        changed = [*sorted(picked), hot_order]
        batches.append(Batch(start + BATCH_INTERVAL * (b + 1), changed, live + 1, new))
        live += new
    deleted = _deletions(source, orders, hot_order, batches)
    return OrderPlan(orders, n_baseline, batches, deleted)


def _deletions(
    source: random.Random, orders: int, hot_order: int, batches: list[Batch]
) -> list[int]:
    if not batches:
        return []
    last = batches[-1]
    protected = set(last.changed) | {hot_order}
    protected.update(range(last.first_new, last.first_new + last.new))
    n_del = max(1, round(orders * 0.005))
    deleted: set[int] = set()
    # One deleted order that never was in a baseline: created in an earlier batch.
    if len(batches) >= 2 and batches[0].new and batches[0].first_new not in protected:
        deleted.add(batches[0].first_new)
    candidates = last.first_new - 1  # orders live before the last batch
    while len(deleted) < min(n_del, candidates - len(protected)):
        oid = source.randint(1, candidates)
        if oid not in protected:
            deleted.add(oid)
    return sorted(deleted)


class VersionedTable(ABC):
    """A table whose rows have versions (id, last_updated): what its rows are made of."""

    table: str
    id_column: str
    frame: dict[str, pl.DataType]  # internal columns: timestamps in epoch ms, money in cents
    stream: str  # prefix of its random streams ("" for sales_order, whose names predate others)

    @abstractmethod
    def baseline_frame(self, seed: int, n: int) -> pl.DataFrame:
        """Rows 1..n as of the baseline, vectorised."""

    @abstractmethod
    def change(self, source: random.Random, row: Row, at_ms: int) -> Row:
        """A new version of `row`, last updated at `at_ms`."""

    @abstractmethod
    def created(self, source: random.Random, b: int, batch: Batch, prev: datetime) -> list[Row]:
        """The rows created in batch `b` (ids from `batch.first_new`)."""


class OrderKind(VersionedTable):
    """An order table: its new orders are drawn at random times inside their batch."""

    def created(self, source: random.Random, b: int, batch: Batch, prev: datetime) -> list[Row]:
        stamps = sorted(window_ms(source, prev, batch.at) for _ in range(batch.new))
        return [self.new(source, batch.first_new + i, t, b, i) for i, t in enumerate(stamps)]

    @abstractmethod
    def new(self, source: random.Random, order_id: int, at_ms: int, b: int, i: int) -> Row:
        """The `i`th order created in batch `b`, at `at_ms`."""

    def baseline_draws(
        self,
        source: random.Random,
        n: int,
        draws: int,
        start_ms: int,
        also_whole_second: pl.Expr | None = None,
    ) -> pl.DataFrame:
        """The baseline's orders 1..n before their columns: `draws` random columns r0, r1, ...,
        the ids and the creation times (epoch ms), spread over the extract's span and sorted. A
        few orders were created on a whole second (isoformat drops the fraction): r1 % 300 == 0,
        and wherever `also_whole_second` holds."""
        t0 = ms(ORDERS_FROM)
        span = start_ms - 1000 - t0
        r = {f"r{i}": random_int63(source, n) for i in range(draws)}
        df = pl.DataFrame(r).with_columns(
            pl.int_range(1, n + 1, dtype=pl.Int32).alias(self.id_column),
            created_at=(pl.col("r0") % (span + 1)).sort() + t0,
        )
        whole = pl.col("r1") % 300 == 0
        if also_whole_second is not None:
            whole = whole | also_whole_second
        created = pl.col("created_at")
        return df.with_columns(
            created_at=pl.when(whole).then(created - created % 1000).otherwise(created)
        )


class OrderBook:
    """The rows of one versioned table, file by file: `baseline`, then `batch` in order, then
    `snapshot`."""

    def __init__(self, kind: VersionedTable, plan: OrderPlan, seed: int) -> None:
        self.kind = kind
        self.plan = plan
        self.seed = seed
        self.base = pl.DataFrame(schema=kind.frame)
        self.current: dict[int, Row] = {}  # latest version of every row touched after baseline
        self.created: list[list[Row]] = []  # per batch, the rows created in it

    def baseline(self) -> pl.DataFrame:
        self.base = self.kind.baseline_frame(self.seed, self.plan.n_baseline)
        return self.base

    def batch(self, b: int, prev: datetime) -> list[Row]:
        """Batch `b`'s changed and new rows, by (last_updated, id)."""
        batch = self.plan.batches[b]
        source = rng(self.seed, f"{self.kind.stream}batch-{b}")
        id_column = self.kind.id_column
        missing = [oid for oid in batch.changed if oid not in self.current]
        if missing:
            idx = pl.Series([oid - 1 for oid in missing], dtype=pl.Int64)
            for row in self.base.select(pl.all().gather(idx)).iter_rows(named=True):
                self.current[row[id_column]] = row
        rows: list[Row] = []
        for oid in batch.changed:
            changed = self.kind.change(source, self.current[oid], window_ms(source, prev, batch.at))
            self.current[oid] = changed
            rows.append(changed)
        created = self.kind.created(source, b, batch, prev)
        for row in created:
            self.current[row[id_column]] = row
        self.created.append(created)
        rows.extend(created)
        rows.sort(key=lambda r: (r["last_updated"], r[id_column]))
        return rows

    def snapshot(self) -> pl.DataFrame:
        """Every live row at its latest version, minus the deleted ones, by id."""
        id_column, deleted = self.kind.id_column, self.plan.deleted
        touched = pl.DataFrame(list(self.current.values()), schema=self.kind.frame)
        gone = pl.Series(list(self.current) + deleted, dtype=pl.Int32)
        kept_touched = touched.filter(~pl.col(id_column).is_in(deleted))
        untouched = self.base.filter(~pl.col(id_column).is_in(gone.implode()))
        return pl.concat([untouched, kept_touched]).sort(id_column)
