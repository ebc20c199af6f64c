"""Transient S3 errors are retried (boto3 and delta-rs), and a run that fails for good leaves the
tables consistent and its unfinished files pending: the next run gives the same tables as a run
that never failed. A small HTTP proxy in front of moto injects the faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from service.pipeline import Pipeline
from service.settings import Settings
from service.synthetic import iter_ingestion_files
from tests.s3.conftest import S3Env, assert_same_lakes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("moto")


class FaultProxy:
    """The proxy (tests/s3/fault_proxy.py) in its own process, configured over HTTP."""

    def __init__(self, upstream: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.s3.fault_proxy", upstream],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().decode().strip()
        assert self.endpoint.startswith("http://"), self.endpoint

    def _control(self, query: str) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.endpoint}/__fault__?{query}", timeout=10) as r:
            stats: dict[str, int] = json.loads(r.read())
        return stats

    def set(self, mode: str, arg: str = "") -> None:
        self._control(urlencode({"mode": mode, "arg": arg}))

    @property
    def injected(self) -> int:
        return self._control("")["injected"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def proxy(moto_s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_s3.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", p.endpoint)  # boto3 and delta-rs go through it
    try:
        yield p
    finally:
        p.stop()


def _files() -> list[tuple[str, bytes]]:
    return list(iter_ingestion_files(orders=120, updates=2, seed=9))


def _local(tmp_path: Path, files: list[tuple[str, bytes]]) -> Pipeline:
    p = Pipeline.from_settings(
        Settings(ingestion_uri=str(tmp_path / "in"), processed_uri=str(tmp_path / "out"))
    )
    for key, data in files:
        p.ingestion.write(key, data)
    assert p.run().status == "succeeded"
    return p


def test_transient_slow_down_is_retried(moto_s3: S3Env, proxy: FaultProxy, tmp_path: Path) -> None:
    files = _files()
    remote = moto_s3.pipeline()
    for key, data in files:
        remote.ingestion.write(key, data)
    proxy.set("slowdown", "30")
    summary = remote.run()
    assert summary.status == "succeeded"
    assert proxy.injected == 30  # boto3 (listing, reading, lease) and delta-rs both retried
    assert_same_lakes(remote.lake, _local(tmp_path, files).lake)


def test_run_failing_for_good_leaves_files_pending(
    moto_s3: S3Env, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Commits to the fact table are refused mid-run (a non-retryable 403): the run fails after
    the dimension commits; nothing is recorded as applied; the next run completes the work."""
    files = _files()
    remote = moto_s3.pipeline()
    for key, data in files:
        remote.ingestion.write(key, data)

    proxy.set("deny-put", "/fact/sales_order/")
    with pytest.raises(Exception, match="AccessDenied"):  # delta-rs's DeltaError
        remote.run()
    assert proxy.injected > 0
    statuses = remote.ledger.file_statuses()
    assert set(statuses["outcome"]) <= {"skipped"}  # only the files decided without reading
    runs = remote.ledger.runs()
    assert runs[0].status == "failed" and runs[0].error

    proxy.set("none")
    assert remote.run().status == "succeeded"
    assert_same_lakes(remote.lake, _local(tmp_path, files).lake)
