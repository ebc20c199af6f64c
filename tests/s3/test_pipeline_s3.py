"""The pipeline on a real S3 API (moto server, SeaweedFS) gives the tables of a local-folder run
of the same files: baseline, updates, deletions, out-of-order arrival, redelivery, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from service.lake import ALL_PATHS, Lake
from service.ledger import Ledger
from service.pipeline import Pipeline
from service.settings import Settings
from service.storage import LocalStorage, S3Storage, open_storage
from service.synthetic import SyntheticManifest, iter_ingestion_files
from tests.s3.conftest import S3Env, assert_same_lakes
from transforms.ingestion_key import parse_ingestion_key
from transforms.schemas import IGNORED_SOURCE_TABLES

ROOT = Path(__file__).resolve().parents[2]


def synthetic_files(orders: int = 500, updates: int = 4, seed: int = 11) -> list[tuple[str, bytes]]:
    manifest = SyntheticManifest()
    files = list(iter_ingestion_files(orders=orders, updates=updates, seed=seed, manifest=manifest))
    assert manifest.deleted_order_ids, "the tree should contain deletions"
    return files


def modelled(files: list[tuple[str, bytes]]) -> list[str]:
    """The keys a run applies: the files of tables outside the stars are recorded as skipped."""
    return [k for k, _ in files if parse_ingestion_key(k).table not in IGNORED_SOURCE_TABLES]


def upload(storage: S3Storage | LocalStorage, files: list[tuple[str, bytes]]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: storage.write(*kv), files))


def local_pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline.from_settings(
        Settings(
            ingestion_uri=str(tmp_path / "ingestion"), processed_uri=str(tmp_path / "processed")
        )
    )


def test_staged_delivery_matches_local_folder_run(s3: S3Env, tmp_path: Path) -> None:
    """Updates before their baseline (out of order), then the baselines, then a redelivered
    file under a new name: every table equals the local run of the same stages."""
    files = synthetic_files()
    updates = [f for f in files if f[0].startswith("updated/")]
    baselines = [f for f in files if f[0].startswith("baseline/")]
    redelivered = next(f for f in updates if "sales_order" in f[0])
    redelivery = [("updated/sales_order-2024-11-15T09:00:00.000000.json", redelivered[1])]

    remote, local = s3.pipeline(), local_pipeline(tmp_path)
    for stage in (updates, baselines, redelivery):
        for pipeline in (remote, local):
            upload(pipeline.ingestion, stage)  # type: ignore[arg-type]
            summary = pipeline.run(trigger="test")
            assert summary.status == "succeeded"
            assert summary.count("applied") == len(modelled(stage))
            assert summary.count("skipped") == len(stage) - len(modelled(stage))

    assert_same_lakes(remote.lake, local.lake)

    # nothing pending: a further run commits nothing
    def versions() -> dict[str, int]:
        remote.lake.new_session()
        return {n: i.version for n, i in ((n, remote.lake.info(n)) for n in ALL_PATHS) if i}

    before = versions()
    assert remote.run(trigger="test").files == []
    assert versions() == before
    fact = remote.lake.read("fact_sales_order")
    assert fact is not None and (fact["change_type"] == "delete").any()


def test_concurrent_runs_match_one_serial_run(s3: S3Env, tmp_path: Path) -> None:
    """Several `totesys run` processes at once on the same buckets: the lease lets one apply
    the files while the others wait and then find nothing pending."""
    files = synthetic_files(orders=300, updates=3, seed=5)
    local = local_pipeline(tmp_path)
    upload(local.ingestion, files)  # type: ignore[arg-type]
    local.run(trigger="test")
    remote = s3.pipeline()
    upload(remote.ingestion, files)  # type: ignore[arg-type]

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TOTESYS_INGESTION_URI": s3.ingestion_uri,
        "TOTESYS_PROCESSED_URI": s3.processed_uri,
        # small batches: the winner renews its lease between batches while the others poll
        "TOTESYS_BATCH_MAX_BYTES": str(64 * 1024),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "service.cli", "run", "--json"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()[-3000:]
    applied = sorted(int(pl.read_json(out)["files_applied"][0]) for out, _ in results)
    assert applied[-1] > 0 and sum(applied) == len(modelled(files))

    assert_same_lakes(remote.lake, local.lake)
    runs = Ledger(remote.lake).runs()
    assert len(runs) == 4 and {r.status for r in runs} == {"succeeded"}


def test_listing_pages_past_1000_keys(s3: S3Env) -> None:
    storage = open_storage(s3.ingestion_uri)
    keys = [f"many/key-{i:05d}.json" for i in range(1100)]
    upload(storage, [(k, b"{}") for k in keys])  # type: ignore[arg-type]
    listed = [o.key for o in storage.list("many/")]
    assert sorted(listed) == keys
    assert all(o.size == 2 for o in storage.list("many/key-0100"))


def test_put_if_absent_is_exclusive(s3: S3Env) -> None:
    """The lease's primitive: of several creates of one key, exactly one wins."""
    storage = open_storage(s3.processed_uri)
    with ThreadPoolExecutor(8) as pool:
        wins = list(
            pool.map(lambda i: storage.put_if_absent("_state/x.json", str(i).encode()), range(8))
        )
    assert wins.count(True) == 1
    assert storage.read("_state/x.json") == str(wins.index(True)).encode()


def test_cli_reads_s3_roots(s3: S3Env, tmp_path: Path) -> None:
    """Every command takes s3:// roots (here through the env settings and --processed)."""
    remote = s3.pipeline()
    upload(remote.ingestion, synthetic_files(orders=100, updates=1, seed=2))  # type: ignore[arg-type]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOTESYS_INGESTION_URI": s3.ingestion_uri}
    base = [sys.executable, "-m", "service.cli"]
    for args in (
        ["run", "--processed", s3.processed_uri, "--json"],
        ["tables", "--processed", s3.processed_uri, "--json"],
        ["current", "--processed", s3.processed_uri, "--json"],
        ["history", "1", "--processed", s3.processed_uri, "--json"],
    ):
        proc = subprocess.run(base + args, env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert proc.returncode == 0, (args, proc.stderr.decode()[-2000:])
    assert Lake(open_storage(s3.processed_uri)).exists("fact_sales_order")


def test_large_files_read_in_pieces_by_ranged_gets_match_the_local_run(
    s3: S3Env, tmp_path: Path
) -> None:
    """With a tiny piece size every sales_order file is read in ranged GETs and applied in
    pieces (service/streaming.py): the tables equal a local whole-file run of the same files."""
    files = synthetic_files(orders=300, updates=2)
    remote = s3.pipeline(chunk_bytes=4096)
    local = local_pipeline(tmp_path)
    for pipeline in (remote, local):
        upload(pipeline.ingestion, files)  # type: ignore[arg-type]
        assert pipeline.run(trigger="test").status == "succeeded"
    handle = remote.lake.table("fact_sales_order")
    assert handle is not None and len(handle.file_uris()) > 20  # one data file per piece
    assert_same_lakes(remote.lake, local.lake)
