"""Shared fixtures: ingestion trees written by the tests themselves, in every accepted shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import LocalStorage, Storage

T0 = datetime(2024, 11, 14, 10, 0, 0)


def encode(table: str, records: list[dict[str, Any]], shape: str = "jsonl") -> bytes:
    """One ingestion file's bytes in one of the shapes found in the wild."""
    if shape == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records).encode()
    if shape == "array":
        return json.dumps(records).encode()
    if shape == "wrapped":
        return json.dumps({table: records}).encode()
    raise ValueError(shape)


def ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def dimension_records(
    at: datetime = datetime(2022, 11, 3, 14, 20, 49, 962000),
) -> dict[str, list[dict[str, Any]]]:
    stamp = {"created_at": ts(at), "last_updated": ts(at)}
    return {
        "department": [
            {
                "department_id": 1,
                "department_name": "Sales",
                "location": "Manchester",
                "manager": "R",
                **stamp,
            },
            {
                "department_id": 2,
                "department_name": "Purchasing",
                "location": None,
                "manager": None,
                **stamp,
            },
        ],
        "staff": [
            {
                "staff_id": s,
                "first_name": f"F{s}",
                "last_name": f"L{s}",
                "department_id": 1 + s % 2,
                "email_address": f"f{s}.l{s}@terrifictotes.com",
                **stamp,
            }
            for s in (1, 2, 3)
        ],
        "address": [
            {
                "address_id": a,
                "address_line_1": f"{a} Road",
                "address_line_2": None,
                "district": "D",
                "city": "Leeds",
                "postal_code": f"LS{a}",
                "country": "UK",
                "phone": f"0{a}",
                **stamp,
            }
            for a in (1, 2, 3)
        ],
        "counterparty": [
            {
                "counterparty_id": c,
                "counterparty_legal_name": f"Firm {c}",
                "legal_address_id": c,
                "commercial_contact": None,
                "delivery_contact": "X",
                **stamp,
            }
            for c in (1, 2)
        ],
        "currency": [
            {"currency_id": 1, "currency_code": "GBP", **stamp},
            {"currency_id": 2, "currency_code": "USD", **stamp},
        ],
        "design": [
            {
                "design_id": d,
                "design_name": "Wooden",
                "file_location": "/usr",
                "file_name": f"w{d}.json",
                **stamp,
            }
            for d in (1, 2)
        ],
    }


def order(
    order_id: int, last_updated: datetime, created: datetime | None = None, **kw: Any
) -> dict[str, Any]:
    created = created or last_updated
    return {
        "sales_order_id": order_id,
        "created_at": ts(created),
        "last_updated": ts(last_updated),
        "design_id": 1,
        "staff_id": 1,
        "counterparty_id": 1,
        "units_sold": 1000 + order_id,
        "unit_price": 2.5,
        "currency_id": 1,
        "agreed_delivery_date": "2024-11-20",
        "agreed_payment_date": "2024-11-21",
        "agreed_delivery_location_id": 2,
        **kw,
    }


class IngestionTree:
    """A local ingestion root the test writes files into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage: Storage = LocalStorage(root)

    def put(
        self,
        kind: str,
        table: str,
        at: datetime,
        records: list[dict[str, Any]],
        shape: str = "jsonl",
    ) -> str:
        key = f"{kind}/{table}-{at.isoformat(timespec='microseconds')}.json"
        self.storage.write(key, encode(table, records, shape))
        return key

    def put_raw(self, key: str, data: bytes) -> str:
        self.storage.write(key, data)
        return key

    def dimensions(self, at: datetime = T0) -> None:
        for table, records in dimension_records().items():
            self.put("baseline", table, at, records)


@pytest.fixture
def tree(tmp_path: Path) -> IngestionTree:
    return IngestionTree(tmp_path / "ingestion")


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Callable[..., Pipeline]:
    def make(
        ingestion: Path | None = None, processed: Path | None = None, **settings: Any
    ) -> Pipeline:
        ing = ingestion or tmp_path / "ingestion"
        proc = processed or tmp_path / "processed"
        s = Settings(ingestion_uri=str(ing), processed_uri=str(proc), **settings)
        return Pipeline.from_settings(s)

    return make


# The real Totesys snapshot lives in ../shared/data beside the checkout (CI lays it there too).
REAL_SNAPSHOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "totesys-2024-11"


# The later snapshot of all eleven source tables.
REAL_WAREHOUSE_SNAPSHOT = REAL_SNAPSHOT.parent / "totesys-2024-11-15"


def require_real_snapshot(folder: Path = REAL_SNAPSHOT) -> Path:
    """The snapshot's folder; outside CI a checkout without ../shared skips, in CI it fails
    (a missing snapshot must not pass as a skipped test there)."""
    import os

    if not folder.is_dir():
        message = f"reference snapshot not present at {folder}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder
