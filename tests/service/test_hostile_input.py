"""Bad input never stops the pipeline: poison files of every kind beside one good update. The
good file is applied in the same run, every bad one is recorded with its reason, nothing
implausible reaches a table, and the next run (the real `totesys` command) exits 0."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from service import batch as batch_module
from service import queries
from service.lake import ALL_PATHS
from service.ledger import Ledger
from service.pipeline import Pipeline
from service.storage import LocalStorage, StorageError, check_roots_apart
from tests.conftest import T0, IngestionTree, dimension_records, order

ROOT = Path(__file__).resolve().parents[2]
H = timedelta(hours=1)
Make = Callable[..., Pipeline]
MIN_TS, MAX_TS = datetime(1900, 1, 1), datetime(2199, 12, 31, 23, 59, 59, 999999)


def stamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def assert_nothing_implausible(p: Pipeline) -> None:
    """Every date and timestamp of every table in the window; every string short and text."""
    for name in ALL_PATHS:
        frame = p.lake.read(name)
        if frame is None:
            continue
        for column, dtype in frame.schema.items():
            values = frame[column].drop_nulls()
            if not len(values):
                continue
            if isinstance(dtype, pl.Datetime) and column != "recorded_at":
                assert MIN_TS <= values.min() <= values.max() <= MAX_TS, (name, column)  # type: ignore[operator]
            elif dtype == pl.Date():
                assert date(1900, 1, 1) <= values.min() <= values.max() <= date(2199, 12, 31), (  # type: ignore[operator]
                    name,
                    column,
                )
            elif dtype == pl.String() and name not in {"ledger", "rejects", "runs"}:
                assert values.str.len_chars().max() <= 1_000, (name, column)  # type: ignore[operator]
                assert not values.str.contains("\x00", literal=True).any(), (name, column)


def test_poison_files_beside_a_good_update(
    tree: IngestionTree,
    make_pipeline: Make,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tree.dimensions()
    tree.put("baseline", "sales_order", T0, [order(1, T0 - H), order(2, T0 - H)])
    p = make_pipeline()
    assert p.run().status == "succeeded"

    at = T0 + H
    poison: dict[str, str] = {}  # key -> what its ledger reason must say

    def key(table: str, minutes: int, kind: str = "updated") -> str:
        return f"{kind}/{table}-{stamp(at + timedelta(minutes=minutes))}.json"

    # a version dated year 0 (used to be appended, then break the calendar for every run)
    poison[
        tree.put_raw(
            key("sales_order", 1),
            json.dumps(
                {**order(2, at, created=T0 - H), "last_updated": "0000-01-01T00:00:00"}
            ).encode(),
        )
    ] = "implausible date"
    # file names: a zone that overflows, a year out of the window
    poison[tree.put_raw("updated/staff-9999-12-31T23:59:59-01:00.json", b"[]")] = "implausible"
    poison[tree.put_raw("updated/staff-1850-01-01T00:00:00.json", b"[]")] = "implausible date"
    # JSON nested thousands of levels deep
    poison[tree.put_raw(key("sales_order", 2), b"[" * 50_000 + b"]" * 50_000)] = "too deep"
    # symbolic links: to a file outside the root, and dangling
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps([order(3, at)]))
    link = tree.root / key("sales_order", 3)
    os.symlink(outside, link)
    poison[key("sales_order", 3)] = "symbolic link"
    os.symlink(tmp_path / "nowhere.json", tree.root / key("sales_order", 4))
    poison[key("sales_order", 4)] = "symbolic link"
    # 20,000 empty records: counted exactly, described up to the cap
    poison[tree.put_raw(key("sales_order", 5), b"{}\n" * 20_000)] = (
        "sales_order_id: missing required field ×20000"
    )
    # JSON Lines, every other line broken
    lines = [json.dumps(order(100 + i, at)) for i in range(200)]
    broken = "\n".join(line if i % 2 else line[:-3] for i, line in enumerate(lines))
    poison[tree.put_raw(key("sales_order", 6), broken.encode())] = "100 of 200 records rejected"
    # invalid UTF-8 in one record, a lone surrogate, a 5,000-character name
    staff = dimension_records()["staff"][0]
    bad_utf8 = json.dumps({**staff, "first_name": "@"}).encode().replace(b"@", b"\xff")
    good_line = json.dumps({**staff, "staff_id": 7}).encode()
    poison[tree.put_raw(key("staff", 7), bad_utf8 + b"\n" + good_line + b"\n")] = "invalid UTF-8"
    poison[
        tree.put_raw(key("staff", 8), json.dumps([{**staff, "last_name": "x\ud800"}]).encode())
    ] = "lone surrogate"
    poison[
        tree.put_raw(
            key("staff", 9), json.dumps([{**staff, "email_address": "e" * 5_000}]).encode()
        )
    ] = "string longer than 1000 characters"
    # a file the parser fails on unexpectedly. No known input does that any more, so this one
    # is injected: the parser raises for this key alone.
    crash = tree.put_raw(key("design", 10), json.dumps(dimension_records()["design"]).encode())
    poison[crash] = "internal error: RuntimeError: injected parser failure"
    real_parse = batch_module.parse_file

    def parse_or_crash(data: bytes, table: str, source_file: str, *args: Any) -> Any:
        if source_file == crash:
            raise RuntimeError("injected parser failure")
        return real_parse(data, table, source_file, *args)

    monkeypatch.setattr(batch_module, "parse_file", parse_or_crash)
    # ... and one good update, last in application order
    good = tree.put(
        "updated", "sales_order", at + H, [order(1, at + H, created=T0 - H, units_sold=5)]
    )

    caplog.set_level(logging.WARNING, logger="totesys.pipeline")
    summary = p.run()
    assert summary.status == "succeeded"
    outcomes = {f.source_file: f for f in summary.files}
    assert outcomes[good].outcome == "applied" and not outcomes[good].rows_rejected
    assert [v["units_sold"] for v in queries.sale_history(p.lake, 1).to_dicts()] == [1001, 5]
    assert queries.sale_history(p.lake, 2).height == 1  # the year-0 version never arrived
    for name, says in poison.items():
        assert name in outcomes, name
        assert says in (outcomes[name].reason or ""), (name, outcomes[name].reason)
    assert outcomes[key("staff", 7)].outcome == "applied"  # its good record was kept
    assert "7" in {str(s) for s in p.lake.read("dim_staff")["staff_id"].to_list()}  # type: ignore[index]
    assert outcomes[key("sales_order", 5)].rows_rejected == 20_000
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"file {crash} rejected: internal error: RuntimeError: injected parser failure"
    ]
    # rejects: capped per file, raw values clipped
    rejects = p.lake.read("rejects")
    assert rejects is not None
    per_file = rejects.group_by("source_file").len()
    assert per_file["len"].max() <= 1_000  # type: ignore[operator]
    assert rejects["raw_value"].drop_nulls().str.len_chars().max() <= 1_000  # type: ignore[operator]
    # nothing pending, nothing implausible
    statuses = Ledger(p.lake).file_report(p.list_ingestion())
    assert "pending" not in statuses["status"].to_list()
    assert_nothing_implausible(p)

    # the next run, as a user runs it: exit 0, nothing to do; history readable
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TOTESYS_INGESTION_URI": str(tree.root),
        "TOTESYS_PROCESSED_URI": str(tmp_path / "processed"),
    }
    for args in (["run", "--json"], ["history", "2", "--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["versions"][0]["sales_order_id"] == 2


def test_a_batch_with_an_implausible_version_commits_nothing_of_it(
    tree: IngestionTree, make_pipeline: Make
) -> None:
    """The calendar used to fail after the fact was appended; now the version is a reject and
    the rest of the batch (dimension rows, the good version) is applied consistently."""
    tree.dimensions()
    tree.put(
        "updated",
        "sales_order",
        T0,
        [order(1, T0), order(2, T0, agreed_delivery_date="0001-01-01"), order(3, T0)],
    )
    p = make_pipeline()
    summary = p.run()
    assert summary.status == "succeeded"
    facts = p.lake.read("fact_sales_order")
    assert facts is not None and sorted(facts["sales_order_id"].to_list()) == [1, 3]
    calendar = p.lake.read("dim_date")
    assert calendar is not None
    assert calendar["date_id"].min() == (T0.date())
    assert_nothing_implausible(p)
    assert p.run().status == "succeeded"


def test_roots_inside_one_another_are_refused(tmp_path: Path, make_pipeline: Make) -> None:
    with pytest.raises(ValueError, match="inside the ingestion root"):
        make_pipeline(ingestion=tmp_path / "in", processed=tmp_path / "in" / "processed")
    with pytest.raises(ValueError, match="holds the ingestion root"):
        make_pipeline(ingestion=tmp_path / "out" / "in", processed=tmp_path / "out")
    with pytest.raises(ValueError, match="same as the ingestion root"):
        make_pipeline(ingestion=tmp_path / "x", processed=tmp_path / "x")
    make_pipeline(ingestion=tmp_path / "a", processed=tmp_path / "ab")  # a prefix, not a parent
    from service.storage import S3Storage

    check_roots_apart(S3Storage("s3://b/in"), S3Storage("s3://b/out"))
    with pytest.raises(ValueError, match="inside"):
        check_roots_apart(S3Storage("s3://b"), S3Storage("s3://b/processed"))
    check_roots_apart(S3Storage("s3://b/x"), S3Storage("s3://c/x"))


def test_a_missing_ingestion_root_is_an_error(tmp_path: Path, make_pipeline: Make) -> None:
    p = make_pipeline(ingestion=tmp_path / "missing")
    with pytest.raises(StorageError, match=r"ingestion root .* does not exist"):
        p.run()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="is not a folder"):
        make_pipeline(ingestion=tmp_path / "file").run()


def test_interrupted_run_is_recorded(tree: IngestionTree, make_pipeline: Make) -> None:
    tree.dimensions()
    p = make_pipeline()

    def interrupt(message: str, done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        p.run(run_id="run-ctrl-c", progress=interrupt)
    record = Ledger(p.lake).run("run-ctrl-c")
    assert record is not None and record.status == "interrupted"
    assert p.run().status == "succeeded"  # the files it left are pending, applied now
    assert len(Ledger(p.lake).file_statuses()) == len(dimension_records())


def test_local_storage_reports_links_and_special_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.write("updated/a.json", b"[]")
    target = tmp_path / "secret.json"
    target.write_text("secret")
    os.symlink(target, tmp_path / "root" / "updated" / "link.json")
    os.mkfifo(tmp_path / "root" / "updated" / "pipe.json")
    os.symlink(tmp_path / "root" / "updated", tmp_path / "root" / "linked-folder")
    keys = [o.key for o in storage.list("updated/")]
    assert keys == ["updated/a.json", "updated/link.json", "updated/pipe.json"]
    assert storage.read("updated/a.json") == b"[]"
    from service.storage import UnreadableObject

    with pytest.raises(UnreadableObject, match="symbolic link"):
        storage.read("updated/link.json")
    with pytest.raises(UnreadableObject, match="not a regular file"):  # never blocks on it
        storage.read("updated/pipe.json")
    with pytest.raises(UnreadableObject, match="symbolic link"):
        storage.read("linked-folder/a.json")
    with pytest.raises(UnreadableObject, match="cannot be read"):
        storage.read("updated/gone.json")


def test_plausibility_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    monkeypatch.setenv("TOTESYS_MIN_DATE", "2000-01-01")
    monkeypatch.setenv("TOTESYS_MAX_STRING_CHARS", "50")
    limits = Settings().parse_limits()
    assert (limits.min_date, limits.max_date, limits.max_string_chars) == (
        date(2000, 1, 1),
        date(2199, 12, 31),
        50,
    )
    monkeypatch.setenv("TOTESYS_MAX_DATE", "1999-12-31")
    with pytest.raises(ValidationError, match="before min_date"):
        Settings()
