"""The Lambda handler with AWS's event shapes (tests/service/events/) against loopback S3: it
routes each event, runs the pipeline, and writes JSON logs and EMF metrics to stdout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from service import handler
from service.storage import open_storage
from service.synthetic import iter_ingestion_files
from tests.s3.conftest import S3Env
from transforms.ingestion_key import parse_ingestion_key
from transforms.schemas import IGNORED_SOURCE_TABLES

pytestmark = pytest.mark.xdist_group("moto")
EVENTS = Path(__file__).resolve().parents[1] / "service" / "events"


@dataclass
class FakeContext:
    function_name: str = "totesys-transform"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:eu-west-2:123456789012:function:totesys-transform"
    aws_request_id: str = "6f3c1a4e-0000-4000-8000-000000000001"
    log_group_name: str = "/aws/lambda/totesys-transform"
    log_stream_name: str = "2024/11/14/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def stdout_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is JSON


def emf(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's main EMF blob (the one with RunFailed)."""
    blobs = [
        line
        for line in lines
        if "_aws" in line
        and any(
            m["Name"] == "RunFailed"
            for d in line["_aws"]["CloudWatchMetrics"]
            for m in d["Metrics"]
        )
    ]
    assert len(blobs) == 1, lines
    blob = blobs[0]
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TotesysTransform"
    assert blob["service"] == "totesys-transform"
    return blob


def value(blob: dict[str, Any], name: str) -> float:
    """A metric's value in an EMF blob (a number, or a list of numbers)."""
    raw = blob[name]
    return float(sum(raw)) if isinstance(raw, list) else float(raw)


def logs(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" not in line]


@pytest.fixture
def tree(moto_s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("TOTESYS_INGESTION_URI", moto_s3.ingestion_uri)
    monkeypatch.setenv("TOTESYS_PROCESSED_URI", moto_s3.processed_uri)
    storage = open_storage(moto_s3.ingestion_uri)
    keys = []
    for key, data in iter_ingestion_files(orders=80, updates=1, seed=4):
        storage.write(key, data)
        keys.append(key)
    return keys


def skipped(keys: list[str]) -> list[str]:
    """The keys of tables the pipeline does not model: recorded as skipped, not applied."""
    return [k for k in keys if parse_ingestion_key(k).table in IGNORED_SOURCE_TABLES]


def s3_notification(env: S3Env, keys: list[str]) -> dict[str, Any]:
    event = load("s3_notification.json")
    template = event["Records"][0]
    records = []
    for key in [*keys, "reports/daily summary.csv"]:
        record = json.loads(json.dumps(template))
        record["s3"]["bucket"]["name"] = env.ingestion_bucket
        record["s3"]["object"]["key"] = quote_plus(f"landing/{key}", safe="/")
        records.append(record)
    event["Records"] = records
    return event


def test_s3_notification_applies_pending_files(
    moto_s3: S3Env, tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    event = s3_notification(moto_s3, tree[:2])  # names two files; every pending one is applied
    result = handler.lambda_handler(event, FakeContext())
    assert result["status"] == "succeeded"
    assert result["files_applied"] == len(tree) - len(skipped(tree))

    lines = stdout_lines(capsys)
    blob = emf(lines)
    assert value(blob, "RunFailed") == 0
    assert value(blob, "FilesApplied") == result["files_applied"]
    assert value(blob, "FilesSkipped") == len(skipped(tree))  # tables outside the stars
    assert value(blob, "FilesRejected") == 0
    assert value(blob, "RowsWritten") == sum(result["rows_written"].values()) > 0
    assert value(blob, "RunDuration") > 0
    units = {m["Name"]: m["Unit"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["RunDuration"] == "Milliseconds"
    per_table = {
        line["Table"]: value(line, "RowsWritten")
        for line in lines
        if "_aws" in line and "Table" in line
    }
    assert per_table["fact_sales_order"] == result["rows_written"]["fact_sales_order"]

    records = logs(lines)
    assert all(r["function_name"] == "totesys-transform" for r in records)
    arrived = next(r for r in records if r["message"] == "ingestion files arrived")
    assert sorted(arrived["file_keys"]) == sorted(tree[:2])  # unquoted: spaces, colons
    ignored = next(r for r in records if r["message"].startswith("ignoring keys"))
    assert ignored["file_keys"] == [
        f"s3://{moto_s3.ingestion_bucket}/landing/reports/daily summary.csv"
    ]
    per_file = [r for r in records if r["message"].startswith("file ")]
    assert {r["file_key"] for r in per_file} == set(tree)
    assert all(r["run_id"] == result["run_id"] and r["outcome"] for r in per_file)
    finished = next(r for r in records if r["message"] == "run finished")
    assert finished["outcome"] == "succeeded" and finished["run_id"] == result["run_id"]


def test_eventbridge_object_created_then_redelivery(
    moto_s3: S3Env, tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    event = load("eventbridge_object_created.json")
    event["detail"]["bucket"]["name"] = moto_s3.ingestion_bucket
    event["detail"]["object"]["key"] = quote_plus(f"landing/{tree[-1]}", safe="/")
    first = handler.lambda_handler(event, FakeContext())
    assert first["files_applied"] > 0
    capsys.readouterr()
    again = handler.lambda_handler(event, FakeContext())  # at-least-once delivery
    assert again["files_applied"] == 0 and again["status"] == "succeeded"
    assert value(emf(stdout_lines(capsys)), "FilesApplied") == 0


def test_keys_outside_ingestion_prefixes_start_no_run(
    moto_s3: S3Env, tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    event = s3_notification(moto_s3, [])
    assert handler.lambda_handler(event, FakeContext())["status"] == "ignored"
    assert not [line for line in stdout_lines(capsys) if "_aws" in line]
    assert not open_storage(moto_s3.processed_uri).exists(
        "_state/runs/_delta_log/00000000000000000000.json"
    )


def test_schedule_and_direct_run_with_run_id(
    moto_s3: S3Env, tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    result = handler.lambda_handler(load("scheduled_event.json"), FakeContext())
    assert result["status"] == "succeeded" and result["trigger"] == "schedule"
    capsys.readouterr()
    direct = handler.lambda_handler({"action": "run", "run_id": "run-from-api-1"}, FakeContext())
    assert direct["run_id"] == "run-from-api-1" and direct["files_applied"] == 0
    lines = stdout_lines(capsys)
    assert all(line.get("run_id") == "run-from-api-1" for line in logs(lines) if "run_id" in line)
    assert value(emf(lines), "RunFailed") == 0


def test_failed_run_logs_one_error_and_run_failed_metric(
    moto_s3: S3Env,
    tree: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOTESYS_PROCESSED_URI", "s3://no-such-bucket-totesys/warehouse")
    monkeypatch.setenv("TOTESYS_LEASE_WAIT_SECONDS", "1")
    with pytest.raises(Exception):  # noqa: B017 - the storage error is re-raised for Lambda
        handler.lambda_handler(load("scheduled_event.json"), FakeContext())
    lines = stdout_lines(capsys)
    errors = [r for r in logs(lines) if r["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["message"] == "run failed"
    assert errors[0]["outcome"] == "failed" and errors[0]["run_id"]
    assert value(emf(lines), "RunFailed") == 1


@pytest.mark.parametrize("name", ["api_gateway_v2.json", "api_gateway_v1.json"])
def test_http_events_reach_the_api(
    moto_s3: S3Env, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOTESYS_INGESTION_URI", moto_s3.ingestion_uri)
    monkeypatch.setenv("TOTESYS_PROCESSED_URI", moto_s3.processed_uri)
    event = load(name)
    if event.get("version") == "2.0":
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/health"
    else:
        event["path"] = "/health"
        event["pathParameters"] = {"proxy": "health"}
    response = handler.lambda_handler(event, FakeContext())
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])


def test_direct_maintain_action(
    moto_s3: S3Env, tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    handler.lambda_handler(load("scheduled_event.json"), FakeContext())
    capsys.readouterr()
    result = handler.lambda_handler({"action": "maintain"}, FakeContext())
    assert isinstance(result, dict)
    finished = [r for r in logs(stdout_lines(capsys)) if r["message"] == "maintenance finished"]
    assert len(finished) == 1 and finished[0]["run_id"]


def test_maintain_action_is_recorded_as_a_run(moto_s3: S3Env, tree: list[str]) -> None:
    from service.lake import Lake
    from service.ledger import Ledger

    handler.lambda_handler(load("scheduled_event.json"), FakeContext())
    result = handler.lambda_handler({"action": "maintain", "run_id": "maint-1"}, FakeContext())
    assert result["status"] == "succeeded"
    record = Ledger(Lake(open_storage(moto_s3.processed_uri))).run("maint-1")
    assert record is not None
    assert (record.status, record.trigger) == ("succeeded", "maintenance")


def test_reprocess_job_applies_only_its_keys(moto_s3: S3Env, tree: list[str]) -> None:
    """The API's asynchronous reprocess: `only_keys` and `trigger` reach the pipeline."""
    from service.lake import Lake
    from service.ledger import Ledger

    first = handler.lambda_handler(load("scheduled_event.json"), FakeContext())
    applied = first["files_applied"]
    assert applied > 2
    key = next(k for k in tree if k.startswith("updated/sales_order"))
    job = {"action": "run", "run_id": "reproc-1", "trigger": "reprocess", "only_keys": [key]}
    result = handler.lambda_handler(job, FakeContext())
    assert (result["files_applied"], result["trigger"]) == (1, "reprocess")
    record = Ledger(Lake(open_storage(moto_s3.processed_uri))).run("reproc-1")
    assert record is not None and record.trigger == "reprocess" and record.files_applied == 1
    assert record.rows_written.get("fact_sales_order", 0) == 0  # versions already stored


def test_s3_event_while_a_live_run_holds_the_lease_is_busy_within_seconds(
    moto_s3: S3Env, tree: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A burst of events during a long run: each invocation leaves a wake marker and returns
    `busy` in seconds (not minutes), naming the holder; nothing is lost (the next holder answers
    the markers)."""
    import time

    from service.lake import Lake
    from service.lease import MARKER_PREFIX, Lease
    from service.ledger import Ledger

    processed = open_storage(moto_s3.processed_uri)
    holder = Lease(processed, "long-run", 60)
    holder.acquire(0)
    holder.start_heartbeat()
    try:
        started = time.monotonic()
        result = handler.lambda_handler(s3_notification(moto_s3, tree[:1]), FakeContext())
        took = time.monotonic() - started
    finally:
        holder.release()
    assert result["status"] == "busy" and "long-run" in result["error"]
    assert "expires" in result["error"]
    assert took < 15  # TOTESYS_LEASE_WAIT_SECONDS (5 s) and the marker, not 120 s
    blob = emf(stdout_lines(capsys))
    assert value(blob, "RunFailed") == 0  # busy is not a failure: no alarm, no Lambda retry
    assert [o.key for o in processed.list(MARKER_PREFIX)]

    # the next run (here: the schedule) answers the marker and applies every pending file
    result = handler.lambda_handler(load("scheduled_event.json"), FakeContext())
    assert result["status"] == "succeeded"
    assert result["files_applied"] == len(tree) - len(skipped(tree))
    assert not list(processed.list(MARKER_PREFIX))
    runs = Ledger(Lake(processed)).runs()
    assert [r.status for r in runs] == ["succeeded"]
