"""The run lease on local folders (S3: tests/s3), and runs started together on one root."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import polars as pl
import pytest

from service.lease import Lease, LeaseBusy, LeaseLost
from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import LocalStorage
from service.synthetic import write_ingestion_tree


def test_one_holder_at_a_time_then_release(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    a, b = Lease(storage, "run-a", 60), Lease(storage, "run-b", 60)
    a.acquire(wait_seconds=0)
    with pytest.raises(LeaseBusy, match="run-a holds the lease"):
        b.acquire(wait_seconds=0.3)
    a.release()
    b.acquire(wait_seconds=0)
    b.release()


def test_expired_lease_is_taken_over_and_its_holder_told(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    crashed = Lease(storage, "crashed", 1)
    crashed.acquire(wait_seconds=0)
    time.sleep(1.1)
    taker = Lease(storage, "taker", 60)
    taker.acquire(wait_seconds=0)
    with pytest.raises(LeaseLost):
        crashed.renew()
    taker.renew()  # the holder can renew
    taker.release()


def _run(ingestion: str, processed: str) -> str:
    settings = Settings(
        ingestion_uri=ingestion,
        processed_uri=processed,
        batch_max_bytes=40_000,
        lease_wait_seconds=120,
    )
    return Pipeline.from_settings(settings).run(trigger="test").status


def test_runs_started_together_equal_one_serial_run(tmp_path: Path) -> None:
    ingestion = tmp_path / "ingestion"
    write_ingestion_tree(ingestion, orders=300, updates=4, seed=11)
    serial = tmp_path / "serial"
    assert _run(str(ingestion), str(serial)) == "succeeded"
    shared = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        statuses = pool.starmap(_run, [(str(ingestion), str(shared))] * 3)
    assert statuses == ["succeeded"] * 3

    def table(root: Path, name: str) -> pl.DataFrame:
        frame = pl.read_delta(str(root / name))
        return frame.drop([c for c in ("run_id",) if c in frame.columns]).sort(frame.columns[0])

    for name in ("fact/sales_order", "dimension/staff", "dimension/date", "dimension/location"):
        assert table(serial, name).equals(table(shared, name)), name
    facts = pl.read_delta(str(shared / "fact/sales_order"))
    assert facts["sales_record_id"].is_unique().all()
    assert facts.select("sales_order_id", "last_updated").is_duplicated().sum() == 0
