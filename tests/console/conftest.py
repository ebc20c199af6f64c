"""Console fixtures: a processed root made by a real pipeline run (with a rejected file and
rejected rows), and `totesys serve` on loopback over it, with or without a token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from service.pipeline import Pipeline
from service.settings import Settings

# The API's fixtures (app over temporary roots with a token, a lake loaded by a real run).
from tests.api.conftest import (  # noqa: F401
    app,
    client,
    demo_keys,
    jobs,
    load_demo,
    loaded,
    settings,
)
from tests.api.test_serve import free_port
from tests.conftest import T0, IngestionTree, order
from tests.star_files import load_demo_stars

ROOT = Path(__file__).resolve().parents[2]
H = timedelta(hours=1)
TOKEN = "console-token-0123456789"


@dataclass
class ConsoleData:
    ingestion: Path
    processed: Path
    first_run: str  # the demo's files
    reject_run: str  # the run that rejected a file and some rows
    rejected_file: str  # wholly rejected (not JSON)
    partly_rejected_file: str  # applied, one record rejected
    pending_file: str  # written after the first run


def build_console_data(root: Path) -> ConsoleData:
    tree = IngestionTree(root / "ingestion")
    load_demo(tree)
    load_demo_stars(tree)  # purchase orders and payments: every star table is written
    roots = Settings(ingestion_uri=str(tree.root), processed_uri=str(root / "processed"))
    first = Pipeline.from_settings(roots).run(trigger="test")
    assert first.status == "succeeded", first.error
    rejected = tree.put_raw(
        f"updated/sales_order-{(T0 + 4 * H).isoformat(timespec='microseconds')}.json",
        b'{"sales_order_id": 4, "units_sold": ',
    )
    partly = tree.put(
        "updated",
        "sales_order",
        T0 + 5 * H,
        [
            order(2, T0 + 5 * H, created=T0 - H, units_sold="plenty"),
            order(5, T0 + 5 * H, units_sold=40),
        ],
    )
    summary = Pipeline.from_settings(roots).run(trigger="test")
    assert summary.status == "succeeded", summary.error
    assert summary.count("rejected") == 1, summary.files
    pending = tree.put("updated", "sales_order", T0 + 6 * H, [order(6, T0 + 6 * H, units_sold=66)])
    return ConsoleData(
        tree.root, root / "processed", first.run_id, summary.run_id, rejected, partly, pending
    )


@pytest.fixture(scope="module")
def console_data(tmp_path_factory: pytest.TempPathFactory) -> ConsoleData:
    return build_console_data(tmp_path_factory.mktemp("console"))


def start_server(data: ConsoleData, token: str | None) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOTESYS_", "AWS_LAMBDA"))}
    env["PYTHONPATH"] = str(ROOT)
    if token:
        env["TOTESYS_API_TOKEN"] = token
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ingestion",
            str(data.ingestion),
            "--processed",
            str(data.processed),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return base, process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("server did not answer /health in 30 s")
        time.sleep(0.1)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def serve(console_data: ConsoleData) -> Iterator[Callable[[str | None], str]]:
    """Start `totesys serve` over the console data (once per token value); its base URL."""
    started: dict[str | None, tuple[str, subprocess.Popen[bytes]]] = {}

    def get(token: str | None) -> str:
        if token not in started:
            started[token] = start_server(console_data, token)
        return started[token][0]

    yield get
    for _, process in started.values():
        stop_server(process)
