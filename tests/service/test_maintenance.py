"""`maintain`: compaction, checkpoints, log expiry and vacuum keep every answer inside the
time-travel window and remove only what versions older than the window needed."""

from __future__ import annotations

import json
import os
import time
from itertools import groupby
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from service import queries
from service.lake import ALL_PATHS, Lake
from service.lease import Lease, LeaseBusy
from service.maintenance import maintain
from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import LocalStorage
from service.synthetic import SyntheticManifest, iter_ingestion_files
from transforms.ingestion_key import parse_ingestion_key

DAY_MS = 86_400_000


class Runs:
    """A synthetic tree fed to the pipeline one half-hourly batch at a time, one run each."""

    def __init__(self, root: Path, updates: int = 6) -> None:
        self.manifest = SyntheticManifest()
        files = list(
            iter_ingestion_files(orders=400, updates=updates, seed=3, manifest=self.manifest)
        )
        self.batches = [
            list(group)
            for _, group in groupby(files, key=lambda f: parse_ingestion_key(f[0]).timestamp)
        ]
        self.ingestion = LocalStorage(root / "ingestion")
        self.processed = root / "processed"
        settings = Settings(
            ingestion_uri=str(root / "ingestion"), processed_uri=str(self.processed)
        )
        self.pipeline = Pipeline.from_settings(settings)
        self.lake: Lake = self.pipeline.lake

    def run(self, batches: int) -> None:
        for _ in range(batches):
            for key, content in self.batches.pop(0):
                self.ingestion.write(key, content)
            assert self.pipeline.run().status == "succeeded"

    def fact_version(self) -> int:
        dt = self.lake.table("fact_sales_order")
        assert dt is not None
        return dt.version()

    def active_files(self, name: str) -> int:
        dt = self.lake.table(name)
        assert dt is not None
        return len(dt.file_uris())

    def data_files(self, name: str) -> int:
        return len(list((self.processed / ALL_PATHS[name]).glob("*.parquet")))


def answers(lake: Lake, version: int, order_ids: list[int]) -> dict[str, Any]:
    """What an analyst gets from the fact table at one Delta version."""
    history = lake.read("fact_sales_order", version=version)
    assert history is not None
    as_of = history["last_updated"].median()
    return {
        "history": history.sort("sales_record_id"),
        "current": queries.current_sales(lake, version=version),
        "as_of": queries.current_sales(lake, as_of=as_of, version=version),  # type: ignore[arg-type]
        "sales": {i: queries.sale_history(lake, i, version) for i in order_ids},
    }


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for name in ("history", "current", "as_of"):
        assert_frame_equal(before[name], after[name])
    for order_id, frame in before["sales"].items():
        assert_frame_equal(frame, after["sales"][order_id])


def tables(lake: Lake) -> dict[str, pl.DataFrame]:
    out = {}
    for name in ALL_PATHS:
        frame = lake.read(name)
        if frame is not None:
            out[name] = frame.sort(frame.columns)
    return out


def test_maintenance_keeps_every_answer_and_compacts(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.run(5)  # baseline + 4 update runs: one fact version each
    latest = runs.fact_version()
    ids = runs.manifest.updated_order_ids[:3] + runs.manifest.deleted_order_ids[:2]
    before = {v: answers(runs.lake, v, ids) for v in range(latest + 1)}
    state_before = tables(runs.lake)
    files_before = runs.active_files("fact_sales_order")
    assert files_before >= 5

    result = maintain(runs.lake, retention_days=30)

    fact = result["tables"]["fact_sales_order"]
    assert fact["files_before"] == files_before
    assert fact["files_after"] == runs.active_files("fact_sales_order") == 1
    # the file ledger and run records are state objects now, not Delta tables to compact
    assert "ledger" not in result["tables"] and "runs" not in result["tables"]
    # Every version is inside the window: nothing is vacuumed, the log is not cut.
    assert all(t["files_vacuumed"] == 0 for t in result["tables"].values())
    assert all(t["log_entries_removed"] == 0 for t in result["tables"].values())
    for version, expected in before.items():
        assert_same(expected, answers(runs.lake, version, ids))
    assert_frame_equal(
        answers(runs.lake, runs.fact_version(), ids)["current"], before[latest]["current"]
    )
    for name, frame in tables(runs.lake).items():
        assert_frame_equal(frame, state_before[name])

    # Runs after maintenance go on as before, and a second maintenance is harmless.
    runs.run(1)
    maintain(runs.lake, retention_days=30)
    assert runs.active_files("fact_sales_order") == 1
    for version, expected in before.items():
        assert_same(expected, answers(runs.lake, version, ids))


def _age_table(processed: Path, name: str, days: int) -> None:
    """Pretend every commit of a table so far happened `days` ago (its log and its files)."""
    shift = days * DAY_MS
    log = processed / ALL_PATHS[name] / "_delta_log"
    for path in log.iterdir():
        if path.name.endswith(".checkpoint.parquet") or path.name == "_last_checkpoint":
            path.unlink()  # replay the (aged) JSON commits instead
    for path in sorted(log.glob("*.json")):
        actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for action in actions:
            for kind, field in (
                ("commitInfo", "timestamp"),
                ("add", "modificationTime"),
                ("remove", "deletionTimestamp"),
            ):
                if kind in action and action[kind].get(field) is not None:
                    action[kind][field] -= shift
        path.write_text("".join(json.dumps(a) + "\n" for a in actions))
    then = time.time() - days * 86_400
    for path in (processed / ALL_PATHS[name]).rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def test_vacuum_removes_only_what_versions_older_than_the_window_need(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.run(3)
    old_version = runs.fact_version()
    maintain(runs.lake, retention_days=30)  # compacts: the first runs' files are now removed
    compacted_at = runs.fact_version()
    _age_table(runs.processed, "fact_sales_order", days=40)  # ... 40 days ago
    runs.run(2)  # two runs inside the window
    latest = runs.fact_version()
    ids = runs.manifest.updated_order_ids[:3] + runs.manifest.deleted_order_ids[:2]
    inside = {v: answers(runs.lake, v, ids) for v in range(compacted_at, latest + 1)}
    files_on_disk = runs.data_files("fact_sales_order")

    result = maintain(runs.lake, retention_days=30)

    fact = result["tables"]["fact_sales_order"]
    # The files only versions before the (aged) compaction read are gone ...
    assert fact["files_vacuumed"] == old_version + 1
    assert fact["bytes_vacuumed"] > 0
    assert runs.data_files("fact_sales_order") < files_on_disk
    # ... every version inside the window gives the same answers as before ...
    for version, expected in inside.items():
        assert_same(expected, answers(runs.lake, version, ids))
    # ... and a version older than the window no longer can.
    with pytest.raises(Exception):  # noqa: B017 - delta-rs raises a generic error
        runs.lake.read("fact_sales_order", version=old_version)


def test_log_is_cut_only_before_the_window(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.run(3)
    maintain(runs.lake, retention_days=30)  # writes a checkpoint
    checkpoint = runs.fact_version()
    _age_table(runs.processed, "fact_sales_order", days=40)
    # _age_table drops checkpoints; write one back at the aged version, as a real year would have.
    dt = runs.lake.table("fact_sales_order")
    assert dt is not None
    dt.create_checkpoint()
    then = time.time() - 40 * 86_400
    log = runs.processed / ALL_PATHS["fact_sales_order"] / "_delta_log"
    for path in log.glob("*.checkpoint.parquet"):
        os.utime(path, (then, then))
    runs.run(2)
    latest = runs.fact_version()
    ids = runs.manifest.updated_order_ids[:3]
    inside = {v: answers(runs.lake, v, ids) for v in range(checkpoint + 1, latest + 1)}

    result = maintain(runs.lake, retention_days=30)

    # The commits before the aged checkpoint are gone (delta-rs's automatic cleanup may already
    # have removed them during the runs, with the window maintenance set); the checkpoint and
    # everything after it are kept.
    assert result["tables"]["fact_sales_order"]["log_entries_removed"] >= 0
    kept = sorted(int(p.name[:20]) for p in log.glob("*.json"))
    assert kept == list(range(checkpoint, runs.fact_version() + 1))
    for version, expected in inside.items():
        assert_same(expected, answers(runs.lake, version, ids))


def test_retention_zero_keeps_the_current_state(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.run(4)
    state = tables(runs.lake)
    current = queries.current_sales(runs.lake)
    result = maintain(runs.lake, retention_days=0)
    assert result["tables"]["fact_sales_order"]["files_vacuumed"] > 0
    assert runs.data_files("fact_sales_order") == 1
    assert_frame_equal(queries.current_sales(runs.lake), current)
    for name, frame in tables(runs.lake).items():
        assert_frame_equal(frame, state[name])
    runs.run(1)  # the pipeline still works on the vacuumed tables
    assert queries.current_sales(runs.lake).height >= current.height - 5


def test_maintenance_waits_for_the_run_lease(tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    runs.run(1)
    lease = Lease(runs.lake.storage, "a-run", 60)
    lease.acquire(0)
    try:
        with pytest.raises(LeaseBusy):
            maintain(runs.lake, retention_days=30, lease_wait_seconds=0.2)
    finally:
        lease.release()
    assert maintain(runs.lake, retention_days=30)["tables"]


def test_negative_retention_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        maintain(Lake(LocalStorage(tmp_path)), retention_days=-1)
