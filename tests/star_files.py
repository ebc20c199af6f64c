"""Ingestion files of the Purchases and Payments stars (purchase_order, payment, transaction,
payment_type) written by the tests, in the real data's shape (../shared/spec/warehouse-stars.md):
one transaction per order, one payment per transaction, payment type 1 for sales and 3 for
purchases, a payment created unpaid and later updated to paid.

`load_demo_stars` is a handful of rows with known histories (the API and console tests);
`write_star_files` a few hundred, at random but reproducibly (the `totesys sql` warehouse).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from service.storage import Storage
from tests.conftest import T0, IngestionTree, encode, ts

H = timedelta(hours=1)
PAYMENT_TYPES = ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND")
CREATED = datetime(2022, 11, 3, 14, 20, 49, 962000)


def purchase_order(
    po_id: int, last_updated: datetime, created: datetime | None = None, **kw: Any
) -> dict[str, Any]:
    created = created or last_updated
    return {
        "purchase_order_id": po_id,
        "created_at": ts(created),
        "last_updated": ts(last_updated),
        "staff_id": 2,
        "counterparty_id": 2,
        "item_code": f"ITEM{po_id:03d}",
        "item_quantity": 100 + po_id,
        "item_unit_price": "12.50",
        "currency_id": 1,
        "agreed_delivery_date": "2024-11-22",
        "agreed_payment_date": "2024-11-25",
        "agreed_delivery_location_id": 3,
        **kw,
    }


def payment(
    payment_id: int, last_updated: datetime, created: datetime | None = None, **kw: Any
) -> dict[str, Any]:
    created = created or last_updated
    return {
        "payment_id": payment_id,
        "created_at": ts(created),
        "last_updated": ts(last_updated),
        "transaction_id": payment_id,
        "counterparty_id": 1,
        "payment_amount": "1250.00",
        "currency_id": 1,
        "payment_type_id": 3,
        "paid": False,
        "payment_date": "2024-11-25",
        "company_ac_number": 52923196,
        "counterparty_ac_number": 32957646,
        **kw,
    }


def transaction(
    transaction_id: int,
    at: datetime,
    sales_order_id: int | None = None,
    purchase_order_id: int | None = None,
) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "transaction_type": "SALE" if sales_order_id is not None else "PURCHASE",
        "sales_order_id": sales_order_id,
        "purchase_order_id": purchase_order_id,
        "created_at": ts(at),
        "last_updated": ts(at),
    }


def payment_types(at: datetime = CREATED) -> list[dict[str, Any]]:
    return [
        {
            "payment_type_id": i,
            "payment_type_name": name,
            "created_at": ts(at),
            "last_updated": ts(at),
        }
        for i, name in enumerate(PAYMENT_TYPES, start=1)
    ]


def load_demo_stars(root: IngestionTree | Storage) -> dict[str, str]:
    """Into an ingestion root (a local tree or any Storage, e.g. S3), beside
    tests/api/conftest.py's sales demo (same times, same dimensions):

    - purchase orders 1-3 in a baseline; order 1 updated (quantity 150); order 3 deleted
      (absent from a second baseline snapshot);
    - transactions 1-2 (purchase orders 1-2) and 3 (sales order 1);
    - payments 1-3 created unpaid; payment 1 paid an hour later, payment 2 two hours later
      (PostgreSQL's text form `"t"`); payment 3 (of the sale) is deleted by the snapshot.
    """
    storage = root.storage if isinstance(root, IngestionTree) else root

    def put(kind: str, table: str, at: datetime, rows: list[dict[str, Any]]) -> str:
        key = _key(kind, table, at)
        storage.write(key, encode(table, rows))
        return key

    created = T0 - H
    orders = [purchase_order(i, created) for i in (1, 2, 3)]
    payments = [
        payment(1, created),
        payment(2, created, counterparty_id=2, payment_amount="99.95", currency_id=2),
        payment(3, created, payment_type_id=1, payment_amount="25.00"),
    ]
    paid_1 = payment(1, T0 + H, created=created, paid=True)
    paid_2 = {**payments[1], "last_updated": ts(T0 + 2 * H), "paid": "t"}
    return {
        "payment_type": put("baseline", "payment_type", T0, payment_types()),
        "transaction": put(
            "baseline",
            "transaction",
            T0,
            [
                transaction(1, created, purchase_order_id=1),
                transaction(2, created, purchase_order_id=2),
                transaction(3, created, sales_order_id=1),
            ],
        ),
        "purchase_baseline": put("baseline", "purchase_order", T0, orders),
        "purchase_update": put(
            "updated",
            "purchase_order",
            T0 + H,
            [purchase_order(1, T0 + H, created=created, item_quantity=150)],
        ),
        "purchase_snapshot": put(
            "baseline",
            "purchase_order",
            T0 + 3 * H,
            [purchase_order(1, T0 + H, created=created, item_quantity=150), orders[1]],
        ),
        "payment_baseline": put("baseline", "payment", T0, payments),
        "payment_paid_1": put("updated", "payment", T0 + H, [paid_1]),
        "payment_paid_2": put("updated", "payment", T0 + 2 * H, [paid_2]),
        "payment_snapshot": put(
            "baseline", "payment", T0 + 3 * H, [paid_1, {**paid_2, "paid": True}]
        ),
    }


@dataclass
class StarManifest:
    purchase_orders: int = 0
    payments: int = 0
    paid_later: list[int] = field(default_factory=list)  # payment ids paid by an update
    updated_orders: list[int] = field(default_factory=list)
    deleted_payments: list[int] = field(default_factory=list)
    baseline: list[tuple[str, bytes]] = field(default_factory=list)  # (key, content) at start
    updates: list[tuple[str, bytes]] = field(default_factory=list)  # the later files


def _key(kind: str, table: str, at: datetime) -> str:
    return f"{kind}/{table}-{at.isoformat(timespec='microseconds')}.json"


def _day(moment: datetime, days: int) -> str:
    return (moment.date() + timedelta(days=days)).isoformat()


def write_star_files(storage: Storage, **kwargs: Any) -> StarManifest:
    """`star_files` written to an ingestion root, all at once."""
    manifest = star_files(**kwargs)
    for key, content in [*manifest.baseline, *manifest.updates]:
        storage.write(key, content)
    return manifest


def star_files(
    *,
    start: datetime,
    purchase_orders: int = 300,
    sales_orders: int = 100,
    updates: int = 4,
    seed: int = 7,
    counterparties: int = 20,
    currencies: int = 3,
    staff: int = 20,
    locations: int = 30,
) -> StarManifest:
    """The files (`baseline` and `updates` of the manifest): a baseline at `start` (purchase
    orders created over the two years before it, a transaction and an unpaid payment for each
    purchase order and for sales orders 1..`sales_orders`), then `updates` batches 30 minutes
    apart that pay some payments and change some orders' quantities, then a payment snapshot
    missing a few unpaid payments (deletions)."""
    rng = random.Random(seed)
    manifest = StarManifest(purchase_orders=purchase_orders)
    orders: dict[int, dict[str, Any]] = {}
    for po_id in range(1, purchase_orders + 1):
        created = start - timedelta(days=rng.randint(1, 730), seconds=rng.randint(0, 86_399))
        orders[po_id] = purchase_order(
            po_id,
            created,
            staff_id=rng.randint(1, staff),
            counterparty_id=rng.randint(1, counterparties),
            item_code=f"I{rng.randint(0, 99999):05d}",
            item_quantity=rng.randint(1, 1000),
            item_unit_price=str(Decimal(rng.randint(100, 99_999)) / 100),
            currency_id=rng.randint(1, currencies),
            agreed_delivery_date=_day(created, rng.randint(1, 10)),
            agreed_payment_date=_day(created, rng.randint(1, 10)),
            agreed_delivery_location_id=rng.randint(1, locations),
        )
    transactions = [
        transaction(i, datetime.fromisoformat(o["created_at"]), purchase_order_id=i)
        for i, o in orders.items()
    ]
    payments: dict[int, dict[str, Any]] = {}
    for po_id, o in orders.items():
        amount = Decimal(o["item_quantity"]) * Decimal(o["item_unit_price"])
        payments[po_id] = payment(
            po_id,
            datetime.fromisoformat(o["created_at"]),
            counterparty_id=o["counterparty_id"],
            payment_amount=str(amount),
            currency_id=o["currency_id"],
            payment_date=o["agreed_payment_date"],
        )
    for so_id in range(1, sales_orders + 1):
        tid = purchase_orders + so_id
        at = start - timedelta(days=rng.randint(1, 365))
        transactions.append(transaction(tid, at, sales_order_id=so_id))
        payments[tid] = payment(
            tid,
            at,
            transaction_id=tid,
            counterparty_id=rng.randint(1, counterparties),
            payment_amount=str(Decimal(rng.randint(100, 9_999_999)) / 100),
            currency_id=rng.randint(1, currencies),
            payment_type_id=1,
            payment_date=_day(at, rng.randint(0, 30)),
        )
    manifest.payments = len(payments)

    def put(kind: str, table: str, at: datetime, rows: list[dict[str, Any]], later: bool) -> None:
        file = (_key(kind, table, at), encode(table, rows))
        (manifest.updates if later else manifest.baseline).append(file)

    put("baseline", "payment_type", start, payment_types(), False)
    put("baseline", "transaction", start, transactions, False)
    put("baseline", "purchase_order", start, list(orders.values()), False)
    put("baseline", "payment", start, list(payments.values()), False)
    unpaid = sorted(payments)
    for batch in range(1, updates + 1):
        at = start + batch * timedelta(minutes=30)
        paying = sorted(rng.sample(unpaid, len(unpaid) // 4))
        unpaid = [p for p in unpaid if p not in set(paying)]
        for pid in paying:
            payments[pid] = {**payments[pid], "paid": True, "last_updated": ts(at)}
        manifest.paid_later += paying
        put("updated", "payment", at, [payments[p] for p in paying], True)
        changing = sorted(rng.sample(sorted(orders), 5))
        for po_id in changing:
            quantity = orders[po_id]["item_quantity"] + 1
            orders[po_id] = {**orders[po_id], "item_quantity": quantity, "last_updated": ts(at)}
        manifest.updated_orders += changing
        put("updated", "purchase_order", at, [orders[o] for o in changing], True)
    manifest.deleted_payments = sorted(rng.sample(unpaid, 3))
    kept = [payments[p] for p in sorted(payments) if p not in manifest.deleted_payments]
    snapshot_at = start + (updates + 1) * timedelta(minutes=30)
    put("baseline", "payment", snapshot_at, kept, True)
    return manifest


__all__ = [
    "PAYMENT_TYPES",
    "StarManifest",
    "load_demo_stars",
    "payment",
    "payment_types",
    "purchase_order",
    "star_files",
    "transaction",
    "write_star_files",
]
