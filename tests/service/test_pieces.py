"""A large file of a dimension's source table is parsed in pieces (service/pieces.py): the same
rows, rejects and counts as the whole file, and the same tables from the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from service.pieces import NotStreamable, parse_in_pieces
from service.pipeline import Pipeline
from service.storage import open_storage
from tests.conftest import T0, IngestionTree, encode, ts
from transforms.parse import DEFAULT_LIMITS, ParsedFile, parse_file

Make = Callable[..., Pipeline]
PIECE = 256  # bytes: every file below is cut into many pieces
H = timedelta(hours=1)


def _transactions(count: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        sale = i % 3 != 0
        record: dict[str, Any] = {
            "transaction_id": i,
            "transaction_type": "SALE" if sale else "PURCHASE",
            "sales_order_id": i if sale else None,
            "purchase_order_id": None if sale else i,
            "created_at": ts(T0 - H),
            "last_updated": ts(T0 - H),
        }
        if i % 7 == 0:
            record["sales_order_id"] = "seven"  # a bad value
        if i % 11 == 0:
            del record["last_updated"]  # a missing required field
        if i % 5 == 0:
            record["transaction_type"] = '}, {"transaction_id": 1, "x": "'  # a separator in text
        records.append(record)
    records.append({**records[1], "last_updated": ts(T0)})  # a later version of 2
    return records


def _file(shape: str) -> bytes:
    data = encode("transaction", _transactions(80), shape)
    if shape == "jsonl":
        lines = data.split(b"\n")
        lines.insert(len(lines) // 2, b'{"transaction_id": 77, "sales_order_id": ')  # not JSON
        lines.insert(len(lines) // 3, b"[1, 2]")  # JSON, but not an object
        return b"\n".join(lines)
    # an element that is not an object, in the middle of the array
    bad = data.replace(b'}, {"transaction_id": 40,', b'}, 17, {"transaction_id": 40,', 1)
    assert bad != data
    return bad


def _same(got: ParsedFile, expected: ParsedFile) -> None:
    assert got.rows.equals(expected.rows)
    assert got.rejects.equals(expected.rejects)
    assert got.records_read == expected.records_read
    assert got.records_rejected == expected.records_rejected
    assert expected.reject_counts is not None and got.reject_counts is not None
    assert got.reject_counts.sort("field", "reason").equals(
        expected.reject_counts.sort("field", "reason")
    )


@pytest.mark.parametrize("shape", ["jsonl", "array", "wrapped"])
def test_pieces_parse_exactly_as_the_whole_file(tmp_path: Path, shape: str) -> None:
    storage = open_storage(str(tmp_path))
    key = "baseline/transaction-2024-11-14T10:00:00.000000.json"
    data = _file(shape)
    storage.write(key, data)
    expected = parse_file(data, "transaction", key)
    got = parse_in_pieces(storage, key, len(data), "transaction", PIECE, DEFAULT_LIMITS)
    _same(got, expected)
    assert expected.rows.height > 40 and expected.rejects.height > 15  # the file is mixed
    if shape == "jsonl":  # the reasons name the file's lines, not the piece's
        bad = got.rejects.filter(pl.col("field") == "<json>")
        assert bad.height == 2
        lines = data.split(b"\n")
        for reason, raw in zip(bad["reason"], bad["raw_value"], strict=True):
            line = int(reason.split("line ")[1].split(":")[0].split(" ")[0])
            assert lines[line - 1].decode().strip() == raw


def test_the_detail_cap_and_the_counts_hold_across_pieces(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path))
    key = "baseline/transaction-2024-11-14T10:00:00.000000.json"
    data = _file("jsonl")
    storage.write(key, data)
    limits = replace(DEFAULT_LIMITS, max_reject_details=5)
    expected = parse_file(data, "transaction", key, limits)
    got = parse_in_pieces(storage, key, len(data), "transaction", PIECE, limits)
    _same(got, expected)
    assert got.rejects.height == 5 and got.problems > 15


def test_a_file_the_pieces_cannot_reproduce_is_left_to_the_whole_file_parse(
    tmp_path: Path,
) -> None:
    storage = open_storage(str(tmp_path))
    key = "baseline/transaction-2024-11-14T10:00:00.000000.json"
    data = b'{"transaction": {"transaction_id": 1}}' + b" " * 600  # one document, no records
    storage.write(key, data)
    with pytest.raises(NotStreamable):
        parse_in_pieces(storage, key, len(data), "transaction", PIECE, DEFAULT_LIMITS)


def _tables(p: Pipeline) -> dict[str, pl.DataFrame]:
    out = {}
    for name in ("dim_transaction", "dim_transaction_history", "rejects"):
        frame = p.lake.read(name)
        assert frame is not None, name
        frame = frame.drop([c for c in ("run_id",) if c in frame.columns])
        out[name] = frame.sort(frame.columns)
    out["ledger"] = p.ledger.files.frame.select(
        "source_file", "outcome", "records_read", "rows_rejected"
    ).sort("source_file")
    return out


@pytest.mark.parametrize("shape", ["jsonl", "wrapped"])
def test_a_dimension_file_in_pieces_gives_the_same_tables(
    tmp_path: Path, shape: str, make_pipeline: Make
) -> None:
    tree = IngestionTree(tmp_path / "ingestion")
    tree.dimensions()
    tree.put_raw(f"baseline/transaction-{T0.isoformat(timespec='microseconds')}.json", _file(shape))
    whole = make_pipeline(processed=tmp_path / "whole")
    pieces = make_pipeline(processed=tmp_path / "pieces", chunk_bytes=PIECE)
    assert whole.run().status == "succeeded"
    assert pieces.run().status == "succeeded"
    expected, got = _tables(whole), _tables(pieces)
    for name, frame in expected.items():
        assert got[name].equals(frame), name
    assert expected["dim_transaction"].height > 40
    assert expected["rejects"].height > 15
