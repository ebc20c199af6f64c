"""Crash safety with real processes: `totesys run` killed (SIGKILL), paused (SIGSTOP) past its
lease, interrupted (SIGTERM), or busy; each time the tables end exactly as one serial run left
them, nobody waits for long, and the run records tell the truth.

A run is paused at the worst moment with the test-only fault injection point
TOTESYS_FAULT_STOP_BEFORE_COMMIT=<table> (service/lake.py): the process stops itself right before
that commit, after writing its data file; the test then resumes it with SIGCONT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import psutil
import pytest

from service.lake import Lake
from service.lease import PREFIX, observe
from service.ledger import Ledger
from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import LocalStorage
from service.synthetic import write_ingestion_tree

TABLES = ("fact/sales_order", "dimension/staff", "dimension/date", "dimension/counterparty")


def _start(ingestion: Path, processed: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "totesys"), "run", "--json", *args],
        env={
            **os.environ,
            "TOTESYS_INGESTION_URI": str(ingestion),
            "TOTESYS_PROCESSED_URI": str(processed),
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_stopped(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended before its fault point: {proc.returncode}\n{err[-2000:]}")
        if psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED:
            return
        time.sleep(0.05)
    pytest.fail("the run never reached its fault point")


def _wait_lease_taken(processed: Path, timeout: float = 60) -> str:
    storage = LocalStorage(processed)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = observe(storage)
        if view.latest is not None and view.latest.state == "held":
            return view.latest.holder
        time.sleep(0.02)
    pytest.fail("no run took the lease")


def _serial(ingestion: Path, root: Path) -> Path:
    settings = Settings(ingestion_uri=str(ingestion), processed_uri=str(root))
    assert Pipeline.from_settings(settings).run(trigger="test").status == "succeeded"
    return root


def _table(root: Path, name: str) -> pl.DataFrame:
    frame = pl.read_delta(str(root / name))
    frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
    return frame.sort(frame.columns, nulls_last=True)


def _assert_same_tables(actual: Path, expected: Path) -> None:
    for name in TABLES:
        assert _table(actual, name).equals(_table(expected, name)), name
    facts = pl.read_delta(str(actual / "fact/sales_order"))
    assert facts["sales_record_id"].is_unique().all()
    assert facts.select("sales_order_id", "last_updated").is_duplicated().sum() == 0


def _late_update(ingestion: Path) -> tuple[str, bytes]:
    """An update file for five orders, stamped after every file of the tree."""
    baseline = next(
        p
        for p in sorted(ingestion.glob("baseline/sales_order-*.json"))
        if p.read_bytes().startswith(b'{"sales_order_id"')  # the JSON Lines one
    )
    rows = [json.loads(line) for line in baseline.read_text().splitlines()[:5]]
    for row in rows:
        row.update(last_updated="2030-01-01T00:00:00.000000", units_sold=4242)
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return "updated/sales_order-2030-01-01T00:00:00.000000.json", body


@pytest.fixture
def ingestion(tmp_path: Path) -> Path:
    root = tmp_path / "ingestion"
    write_ingestion_tree(root, orders=400, updates=3, seed=5)
    return root


def test_killed_run_is_taken_over_within_its_lease_and_marked_abandoned(
    tmp_path: Path, ingestion: Path
) -> None:
    processed = tmp_path / "shared"
    victim = _start(
        ingestion,
        processed,
        TOTESYS_LEASE_SECONDS="4",
        TOTESYS_FAULT_STOP_BEFORE_COMMIT="fact_sales_order",
    )
    _wait_stopped(victim)  # mid-run: lease held, dimensions committed, facts not yet
    victim_id = _wait_lease_taken(processed)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    time.sleep(4.5)  # its lease ran out: readers no longer show it running
    shown = Ledger(Lake(LocalStorage(processed))).run(victim_id)
    assert shown is not None and shown.status == "abandoned"

    started = time.monotonic()
    taker = _start(ingestion, processed, TOTESYS_LEASE_SECONDS="4")
    _, err = taker.communicate(timeout=120)
    waited = time.monotonic() - started
    assert taker.returncode == 0, err[-2000:]
    assert waited < 4 + 30  # the dead holder's lease (4 s) and the run itself, not 15 minutes

    _assert_same_tables(processed, _serial(ingestion, tmp_path / "serial"))
    runs = {r.run_id: r for r in Ledger(Lake(LocalStorage(processed))).runs()}
    dead = runs[victim_id]
    assert dead.status == "abandoned"
    assert "noticed at" in (dead.error or "") and "by run" in (dead.error or "")


def test_paused_run_commits_nothing_after_another_took_over(
    tmp_path: Path, ingestion: Path
) -> None:
    processed = tmp_path / "shared"
    paused = _start(
        ingestion,
        processed,
        TOTESYS_LEASE_SECONDS="2",
        TOTESYS_FAULT_STOP_BEFORE_COMMIT="fact_sales_order",
    )
    _wait_stopped(paused)  # its fact data file is written, its commit not yet
    paused_id = _wait_lease_taken(processed)
    time.sleep(2.5)  # past its lease: its heartbeat is stopped with it

    taker = _start(ingestion, processed, TOTESYS_LEASE_SECONDS="30")
    _, err = taker.communicate(timeout=120)
    assert taker.returncode == 0, err[-2000:]
    fact_version = Lake(LocalStorage(processed)).table("fact_sales_order").version()  # type: ignore[union-attr]

    os.kill(paused.pid, signal.SIGCONT)
    _, err = paused.communicate(timeout=120)
    assert paused.returncode == 1
    assert "lost the lease" in err and len(err.strip().splitlines()) == 1, err

    # it committed nothing after resuming: the fact table did not move, tables equal serial
    assert Lake(LocalStorage(processed)).table("fact_sales_order").version() == fact_version  # type: ignore[union-attr]
    _assert_same_tables(processed, _serial(ingestion, tmp_path / "serial"))
    record = Ledger(Lake(LocalStorage(processed))).run(paused_id)
    assert record is not None and record.status == "failed" and "LeaseLost" in (record.error or "")


def test_busy_run_returns_at_once_and_the_holder_applies_its_files(
    tmp_path: Path, ingestion: Path
) -> None:
    processed = tmp_path / "shared"
    late = _late_update(ingestion)

    holder = _start(
        ingestion,
        processed,
        TOTESYS_LEASE_SECONDS="60",
        TOTESYS_FAULT_STOP_BEFORE_COMMIT="fact_sales_order",
    )
    _wait_stopped(holder)
    late_key, body = late
    (ingestion / late_key).write_bytes(body)  # a file lands while the holder works

    started = time.monotonic()
    busy = _start(ingestion, processed, "--wait", "0")
    _, err = busy.communicate(timeout=60)
    assert busy.returncode == 75, err
    assert time.monotonic() - started < 20  # returns in seconds, not minutes
    assert "holds the lease" in err and "wake marker" in err
    assert list((processed / PREFIX).glob("wake-*.json"))

    os.kill(holder.pid, signal.SIGCONT)
    _, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err[-2000:]
    # the holder re-planned before letting go: the late file is applied, nothing is pending
    statuses = Ledger(Lake(LocalStorage(processed))).file_statuses()
    applied = set(statuses.filter(pl.col("outcome") == "applied")["source_file"].to_list())
    assert late_key in applied
    assert not list((processed / PREFIX).glob("wake-*.json"))
    _assert_same_tables(processed, _serial(ingestion, tmp_path / "serial"))


def test_sigterm_records_the_run_interrupted_and_frees_the_lease(
    tmp_path: Path, ingestion: Path
) -> None:
    processed = tmp_path / "shared"
    proc = _start(
        ingestion,
        processed,
        TOTESYS_LEASE_SECONDS="60",
        TOTESYS_FAULT_STOP_BEFORE_COMMIT="fact_sales_order",
    )
    _wait_stopped(proc)
    run_id = _wait_lease_taken(processed)
    os.kill(proc.pid, signal.SIGTERM)  # delivered when it continues
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    record = Ledger(Lake(LocalStorage(processed))).run(run_id)
    assert record is not None and record.status == "interrupted"
    view = observe(LocalStorage(processed))
    assert view.latest is not None and view.latest.state == "released"
    # the next run starts at once and completes the work
    again = _start(ingestion, processed, "--wait", "0")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    _assert_same_tables(processed, _serial(ingestion, tmp_path / "serial"))


def test_random_kills_converge_exactly(tmp_path: Path, ingestion: Path) -> None:
    """Rounds of `kill -9` at random moments (lease 2 s), each followed by the next run: the
    last run ends with exactly the serial tables, whatever was half-done."""
    import random

    rng = random.Random(20261127)
    processed = tmp_path / "shared"
    # many small batches, so a kill lands between (or inside) commits of a long run
    env = {"TOTESYS_LEASE_SECONDS": "2", "TOTESYS_BATCH_MAX_BYTES": "20000"}
    killed = 0
    for _ in range(4):
        proc = _start(ingestion, processed, **env)
        time.sleep(rng.uniform(0.5, 4.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed >= 2  # the runs take longer than the kills leave them
    final = _start(ingestion, processed, **env)
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err[-2000:]
    _assert_same_tables(processed, _serial(ingestion, tmp_path / "serial"))
    runs = Ledger(Lake(LocalStorage(processed))).runs()
    assert not [r for r in runs if r.status == "running"]
