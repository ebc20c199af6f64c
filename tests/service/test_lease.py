"""The run lease on local folders (S3: tests/s3), and runs started together on one root."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import polars as pl
import pytest

from service.lease import PREFIX, Lease, LeaseBusy, LeaseLost, LeaseView, observe
from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import LocalStorage
from service.synthetic import write_ingestion_tree


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _age_entries(root: Path, seconds: float) -> None:
    """Move every lease entry's store stamp back: the store's clock ran on that long."""
    for path in (root / PREFIX).glob("*.json"):
        stat = path.stat()
        os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))


def test_one_holder_at_a_time_then_release(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    a, b = Lease(storage, "run-a", 60), Lease(storage, "run-b", 60, sleep=lambda s: None)
    a.acquire(wait_seconds=0)
    with pytest.raises(LeaseBusy, match="run-a holds the lease") as busy:
        b.acquire(wait_seconds=0)
    assert busy.value.holder == "run-a" and busy.value.expires_at is not None
    a.release()
    b.acquire(wait_seconds=0)
    b.release()


def test_expiry_is_judged_on_the_store_clock_and_the_taker_fences_the_old_holder(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    clock = Clock()
    crashed = Lease(storage, "crashed", 30, clock=clock)
    crashed.acquire(wait_seconds=0)
    view = observe(storage)
    assert not view.free and view.latest is not None and view.latest.holder == "crashed"
    _age_entries(tmp_path, 31)  # 31 s later by the store's clock: a new process sees it at once
    assert observe(storage).free and observe(storage).expired_holder() == "crashed"
    taker = Lease(storage, "taker", 60)
    taker.acquire(wait_seconds=0)
    assert taker.took_over_from == "crashed"
    clock.now += 31  # the old holder wakes: its fence has to ask the store, and loses
    with pytest.raises(LeaseLost):
        crashed.fence()
    with pytest.raises(LeaseLost):
        crashed.fence()  # and stays lost
    taker.fence()
    taker.release()


def test_fence_is_free_while_the_lease_is_fresh_and_renews_when_it_is_not(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    clock = Clock()
    lease = Lease(storage, "run", 30, clock=clock)
    lease.acquire(wait_seconds=0)
    first = lease.sequence
    clock.now += 15  # within seconds - margin (30 - 10): no request, no new entry
    lease.fence()
    assert lease.sequence == first
    clock.now += 6  # 21 s since the last confirmation: the fence renews
    lease.fence()
    assert lease.sequence == (first or 0) + 1
    lease.release()
    assert observe(storage).latest.state == "released"  # type: ignore[union-attr]


def test_a_live_holder_makes_others_busy_after_their_wait_but_a_silent_one_is_waited_out(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    holder = Lease(storage, "holder", 30)
    holder.acquire(wait_seconds=0)
    waiter_clock = Clock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        waiter_clock.now += seconds

    waiter = Lease(storage, "waiter", 30, clock=waiter_clock, sleep=sleep)
    with pytest.raises(LeaseBusy):
        waiter.acquire(wait_seconds=2)  # fresh entry: a live holder, busy after the wait
    assert 2 <= sum(slept) < 3
    # the holder misses heartbeats (its entry is 16 s old by the store's clock: > 1.5 x 10 s):
    # presumed dead, so the waiter waits for its expiry instead of leaving
    _age_entries(tmp_path, 16)
    waits: list[float] = []

    def waited(view: LeaseView) -> None:
        waits.append(view.age_seconds)
        _age_entries(tmp_path, 5)  # the store's clock runs on while the waiter waits

    waiter.acquire(wait_seconds=0, on_wait=waited)
    assert waits and waiter.took_over_from == "holder"
    waiter.release()


def test_heartbeat_keeps_the_lease_while_the_run_works(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    lease = Lease(storage, "worker", 0.3)  # renew every 0.1 s
    lease.acquire(wait_seconds=0)
    first = lease.sequence
    lease.start_heartbeat()
    deadline = time.monotonic() + 5
    while (lease.sequence or 0) < (first or 0) + 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (lease.sequence or 0) >= (first or 0) + 3
    lease.release()
    assert observe(storage).latest.state == "released"  # type: ignore[union-attr]


def _run(ingestion: str, processed: str) -> str:
    settings = Settings(
        ingestion_uri=ingestion,
        processed_uri=processed,
        batch_max_bytes=40_000,
        lease_wait_seconds=120,
    )
    return Pipeline.from_settings(settings).run(trigger="test").status


def _run_timed(ingestion: str, processed: str) -> tuple[str, float, float]:
    started = time.time()
    status = _run(ingestion, processed)
    return status, started, time.time()


def test_runs_started_together_equal_one_serial_run(tmp_path: Path) -> None:
    ingestion = tmp_path / "ingestion"
    write_ingestion_tree(ingestion, orders=300, updates=4, seed=11)
    serial = tmp_path / "serial"
    assert _run(str(ingestion), str(serial)) == "succeeded"
    shared = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_run_timed, [(str(ingestion), str(shared))] * 3)
    assert [status for status, _, _ in results] == ["succeeded"] * 3
    # they really ran together: every process was alive while each of the others started
    starts, ends = [s for _, s, _ in results], [e for _, _, e in results]
    assert max(starts) < min(ends), results

    def table(root: Path, name: str) -> pl.DataFrame:
        frame = pl.read_delta(str(root / name))
        return frame.drop([c for c in ("run_id",) if c in frame.columns]).sort(frame.columns[0])

    for name in ("fact/sales_order", "dimension/staff", "dimension/date", "dimension/location"):
        assert table(serial, name).equals(table(shared, name)), name
    facts = pl.read_delta(str(shared / "fact/sales_order"))
    assert facts["sales_record_id"].is_unique().all()
    assert facts.select("sales_order_id", "last_updated").is_duplicated().sum() == 0
