"""`totesys sql` on a processed root in S3 (moto server): the same answers as on a local
folder, and the plan check accepts the tables' s3:// files and nothing else."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from service.lake import Lake
from service.sql import engine
from service.sql.named import bind, named_queries
from service.storage import open_storage
from service.synthetic import DEFAULT_START
from tests.s3.conftest import S3Env
from tests.s3.test_pipeline_s3 import local_pipeline, synthetic_files, upload
from tests.star_files import star_files

ROOT = Path(__file__).resolve().parents[2]


def test_named_queries_on_s3_match_a_local_root(moto_s3: S3Env, tmp_path: Path) -> None:
    stars = star_files(start=DEFAULT_START, purchase_orders=60, sales_orders=20, updates=2)
    files = [*synthetic_files(orders=300, updates=2, seed=5), *stars.baseline, *stars.updates]
    remote, local = moto_s3.pipeline(), local_pipeline(tmp_path)
    upload(remote.ingestion, files)  # type: ignore[arg-type]
    upload(local.ingestion, files)  # type: ignore[arg-type]
    remote.run(trigger="test")
    local.run(trigger="test")
    s3_lake = Lake(open_storage(moto_s3.processed_uri))
    params = {
        "sale_history": ["1"],
        "sales_as_of": ["2024-11-14T10:30:00"],
        "top_counterparties": ["GBP"],
        "payment_history": [str(stars.paid_later[0])],
        "purchase_order_history": [str(stars.updated_orders[0])],
    }
    for name, query in named_queries().items():
        sql = bind(query, params.get(name, []))
        on_s3, on_disk = engine.run(s3_lake, sql), engine.run(local.lake, sql)
        assert on_disk.height > 0, name
        # run ids differ between the two runs; every other value is the same
        assert_frame_equal(on_s3.drop("run_id", strict=False), on_disk.drop("run_id", strict=False))

    # the real command, streaming CSV from S3
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    query = "SELECT * FROM fact_sales_order_current ORDER BY sales_order_id"
    args = ["sql", query, "--processed", moto_s3.processed_uri, "--csv"]
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = engine.run(local.lake, "SELECT * FROM fact_sales_order_current")
    got = pl.read_csv(io.StringIO(proc.stdout), schema=expected.schema)
    assert_frame_equal(got.drop("run_id"), expected.sort("sales_order_id").drop("run_id"))

    with pytest.raises(engine.SqlError, match="refused"):
        engine.prepare(s3_lake, f"SELECT * FROM read_parquet('{moto_s3.processed_uri}/x')")
