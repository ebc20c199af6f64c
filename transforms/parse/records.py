"""Records as read: one all-String frame of a table's columns numbered by record, with the
problems found while reading (the shape readers and the JSON Lines path both build these)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl
from polars.exceptions import PanicException, PolarsError

from transforms.parse.tally import (
    FILE_FIELD,
    LONE_SURROGATE,
    MAX_QUOTED,
    MAX_RAW_VALUE,
    RECORD_NUMBER,
    Found,
    clip,
)
from transforms.parse.values import as_text, decode, dumps
from transforms.schemas import SourceTable

# What a Polars read of bad input may raise.
READ_ERRORS = (PolarsError, PanicException, ValueError)
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Raw:
    frame: pl.DataFrame  # every table column as String, then record_number
    found: Found  # "<json>" / "<file>" rejects, and lone surrogates found by json
    records_read: int


class Records:
    """Builds the frames of one table's records (every column read as text)."""

    def __init__(self, spec: SourceTable, cap: int) -> None:
        self.spec = spec
        self.cap = cap
        self.schema: dict[str, pl.DataType] = {c: pl.String() for c in spec.columns}

    def no_rows(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def numbered(self, frame: pl.DataFrame, first_number: int = 1) -> pl.DataFrame:
        numbers = pl.int_range(
            first_number, first_number + frame.height, dtype=pl.Int64(), eager=True
        )
        return frame.with_columns(numbers.alias(RECORD_NUMBER))

    def read_lines(self, data: bytes) -> pl.DataFrame:
        """JSON Lines read by Polars (raises READ_ERRORS when it cannot)."""
        return pl.read_ndjson(data, schema=self.schema)

    def file_reject(self, kind: str, reason: str, data: bytes) -> Raw:
        found = Found(self.cap)
        found.add(0, FILE_FIELD, kind, reason, decode(data[: MAX_RAW_VALUE * 4]))
        return Raw(self.numbered(self.no_rows()), found, 0)

    def from_dicts(
        self, records: list[dict[str, Any]], numbers: list[int], found: Found
    ) -> pl.DataFrame:
        """Records decoded by json, each value rendered as the text Polars would have given.

        A string holding a lone surrogate (`"\\ud800"`, which json keeps as is) rejects its
        record: it is not text, and storing it would change it.
        """
        kept: list[dict[str, Any]] = []
        kept_numbers: list[int] = []
        for record, number in zip(records, numbers, strict=True):
            bad = False
            for column in self.spec.columns:
                value = record.get(column)
                text = as_text(value)
                if text is not None and _SURROGATE_CHAR.search(text):
                    bad = True
                    found.add(
                        number,
                        column,
                        LONE_SURROGATE,
                        f"{LONE_SURROGATE}: {clip(dumps(value), MAX_QUOTED)}",
                        dumps(value),
                    )
            if bad:
                found.records += 1
            else:
                kept.append(record)
                kept_numbers.append(number)
        columns = {c: [as_text(r.get(c)) for r in kept] for c in self.spec.columns}
        frame = pl.DataFrame(columns, schema=self.schema)
        return frame.with_columns(pl.Series(RECORD_NUMBER, kept_numbers, dtype=pl.Int64()))
