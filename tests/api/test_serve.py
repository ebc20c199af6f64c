"""`totesys serve` as a real process on loopback: demo data through POST /runs, poll the run,
read an updated sale's history back over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from service.cli import app as cli
from service.cli import is_loopback_host
from service.synthetic import write_ingestion_tree

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOTESYS_", "AWS_LAMBDA"))}
    env["PYTHONPATH"] = str(ROOT)
    ingestion = tmp_path / "ingestion"
    ingestion.mkdir()  # a missing ingestion root is an error (503), not "nothing to do"
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
            str(ingestion),
            "--processed",
            str(tmp_path / "processed"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # generous: on a loaded 2-core machine importing the app alone took 10 s of wall time
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {process.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not answer /health in 120 s")
            time.sleep(0.1)
        yield base, ingestion
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_serve_runs_demo_data_and_answers_history(server: tuple[str, Path]) -> None:
    base, ingestion = server
    manifest = write_ingestion_tree(ingestion, orders=40, updates=2, seed=3)
    with httpx.Client(base_url=base, timeout=30) as http:
        pending = http.get("/files", params={"status": "pending"}).json()
        assert pending["total"] == len(manifest.files)

        accepted = http.post("/runs", json={})
        assert accepted.status_code == 202
        run_id = accepted.json()["run_id"]
        deadline = time.monotonic() + 120
        while True:
            run = http.get(f"/runs/{run_id}").json()
            if run["status"] in {"succeeded", "failed"}:
                break
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
        assert run["status"] == "succeeded", run
        assert run["files_applied"] + run["files_skipped"] == len(manifest.files)

        sale = manifest.updated_order_ids[0]
        history = http.get(f"/sales-orders/{sale}/history")
        assert history.status_code == 200
        versions = history.json()["versions"]
        assert len(versions) >= 2
        assert versions[0]["change_type"] == "insert"
        assert {v["change_type"] for v in versions[1:]} <= {"update", "delete"}
        assert all(isinstance(v["unit_price"], str) for v in versions if v["unit_price"])

        proxied = http.get("/runs", headers={"X-Forwarded-For": "203.0.113.5"})
        assert proxied.status_code == 401


def test_serve_without_a_token_refuses_what_a_web_page_could_send(
    server: tuple[str, Path],
) -> None:
    """DNS rebinding (a foreign Host) and cross-site simple requests (a foreign Origin, a
    text/plain or form POST) against the real server; loopback names with the port pass."""
    base, _ = server
    port = base.rsplit(":", 1)[1]
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/runs", headers={"Host": f"localhost:{port}"}).status_code == 200
        rebound = http.get("/tables", headers={"Host": "evil.example.com"})
        assert rebound.status_code == 403 and "loopback name" in rebound.json()["detail"]
        assert http.get("/docs", headers={"Host": f"evil.example.com:{port}"}).status_code == 403
        plain = http.post(
            "/maintenance",
            content=b'{"retention_days": 7}',
            headers={"Content-Type": "text/plain", "Origin": base},
        )
        assert plain.status_code == 415
        form = http.post("/runs", data={"x": "1"})
        assert form.status_code == 415
        foreign = http.post(
            "/runs",
            json={},
            headers={"Origin": "http://evil.example.com", "Host": "evil.example.com"},
        )
        assert foreign.status_code == 403
        cross_site = http.post("/runs", json={}, headers={"Origin": "http://evil.example.com"})
        assert cross_site.status_code == 403 and "origin" in cross_site.json()["detail"]
        assert http.get("/runs").json()["total"] == 0  # nothing above started a run
        same_origin = http.post("/reprocess", json={"prefix": "updated/"}, headers={"Origin": base})
        assert same_origin.status_code == 404  # admitted: nothing under that prefix
        assert http.get("/health", headers={"Host": "evil.example.com"}).status_code == 200


def test_serve_refuses_a_public_address_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOTESYS_API_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to serve on 0.0.0.0 without a token" in result.output


def test_loopback_hosts() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback_host, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))
