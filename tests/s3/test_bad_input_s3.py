"""Bad input on a real S3 API: an object that cannot be read is rejected, the run goes on; a
processed root with nothing in it is not read as an empty warehouse."""

from __future__ import annotations

import json

import pytest

from service.storage import S3Storage, StorageError, UnreadableObject, check_root
from tests.conftest import T0, dimension_records, order
from tests.s3.conftest import S3Env


def test_vanished_object_is_unreadable_and_roots_are_checked(moto_s3: S3Env) -> None:
    ingestion = S3Storage(moto_s3.ingestion_uri)
    with pytest.raises(UnreadableObject, match="NoSuchKey"):
        ingestion.read("updated/sales_order-2024-11-14T10:00:00.json")
    processed = S3Storage(moto_s3.processed_uri)
    with pytest.raises(StorageError, match="does not exist"):
        check_root(processed, "processed", must_exist_with_content=True)
    with pytest.raises(StorageError, match="cannot be listed"):
        check_root(S3Storage("s3://no-such-bucket-here/x"), "processed", True)
    check_root(processed, "processed")  # a run may start on an empty processed root


def test_poison_and_good_files_on_s3(moto_s3: S3Env) -> None:
    pipeline = moto_s3.pipeline()
    stamp = T0.isoformat(timespec="microseconds")
    for table, records in dimension_records().items():
        pipeline.ingestion.write(f"baseline/{table}-{stamp}.json", json.dumps(records).encode())
    good = f"updated/sales_order-{stamp}.json"
    pipeline.ingestion.write(good, json.dumps([order(1, T0)]).encode())
    deep = "updated/sales_order-2024-11-14T10:05:00.json"
    pipeline.ingestion.write(deep, b"[" * 20_000 + b"]" * 20_000)
    year_zero = "updated/sales_order-2024-11-14T10:06:00.json"
    pipeline.ingestion.write(
        year_zero, json.dumps([{**order(2, T0), "created_at": "0000-01-01T00:00:00"}]).encode()
    )
    pipeline.ingestion.write("updated/staff-9999-12-31T23:59:59-01:00.json", b"[]")
    summary = pipeline.run(trigger="test")
    assert summary.status == "succeeded"
    outcomes = {f.source_file: f for f in summary.files}
    assert outcomes[good].outcome == "applied"
    assert outcomes[deep].outcome == "rejected" and "too deep" in (outcomes[deep].reason or "")
    assert "implausible date" in (outcomes[year_zero].reason or "")
    assert outcomes["updated/staff-9999-12-31T23:59:59-01:00.json"].outcome == "rejected"
    facts = pipeline.lake.read("fact_sales_order")
    assert facts is not None and facts["sales_order_id"].to_list() == [1]
    assert pipeline.run(trigger="test").status == "succeeded"
