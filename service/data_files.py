"""Parquet data files the pipeline writes itself (Polars' writer) and the Delta actions that
commit them (service/lake.py `commit_data_files`): a streamed fact's pieces and a baseline's large
appends. Their statistics and a new table's protocol and metadata are delta-rs's own."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import polars as pl
from deltalake import write_deltalake

CHECKPOINT_INTERVAL = 10
NEW_TABLE_CONFIGURATION: dict[str, str | None] = {
    "delta.checkpointInterval": str(CHECKPOINT_INTERVAL)
}


def file_statistics(frame: pl.DataFrame) -> dict[str, Any]:
    """Delta file statistics (numRecords, min/max, null counts) for a data file we write
    ourselves. Min/max only for integer and date columns, exact in any reader's format; other
    columns have none, which only means a reader cannot skip files on them."""
    stats: dict[str, Any] = {
        "numRecords": frame.height,
        "minValues": {},
        "maxValues": {},
        "nullCount": {c: int(frame[c].null_count()) for c in frame.columns},
    }
    for column, dtype in frame.schema.items():
        values = frame[column].drop_nulls()
        if values.is_empty() or not (dtype.is_integer() or dtype == pl.Date):
            continue
        low, high = values.min(), values.max()
        if dtype == pl.Date:
            low, high = str(low), str(high)
        stats["minValues"][column] = low
        stats["maxValues"][column] = high
    return stats


@dataclass(frozen=True)
class DataFile:
    """A Parquet data file written under a table, ready for its `add` action."""

    path: str  # relative to the table
    size: int
    rows: int
    stats: dict[str, Any]


def new_table_actions(schema: dict[str, pl.DataType]) -> list[dict[str, Any]]:
    """The protocol and metaData actions delta-rs writes when it creates a table of `schema`
    (with NEW_TABLE_CONFIGURATION): taken from a table it creates in a scratch folder, so the
    schema's Delta types and the protocol's features are delta-rs's own."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="totesys-schema-") as scratch:
        write_deltalake(
            scratch,
            pl.DataFrame(schema=schema),
            mode="append",
            configuration=NEW_TABLE_CONFIGURATION,
        )
        first = os.path.join(scratch, "_delta_log", f"{0:020d}.json")
        with open(first, encoding="utf-8") as log_entry:
            actions = [json.loads(line) for line in log_entry if line.strip()]
    out = [a for a in actions if "protocol" in a or "metaData" in a]
    for action in out:
        if "metaData" in action:
            action["metaData"]["id"] = str(uuid.uuid4())
            action["metaData"]["createdTime"] = int(time.time() * 1000)
    return out
