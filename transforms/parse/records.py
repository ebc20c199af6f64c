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
    # every table column as String (or already typed: integers, booleans), then record_number
    frame: pl.DataFrame
    found: Found  # "<json>" / "<file>" rejects, and lone surrogates found by json
    records_read: int


class Records:
    """Builds the frames of one table's records (every column read as text)."""

    def __init__(self, spec: SourceTable, cap: int) -> None:
        self.spec = spec
        self.cap = cap
        self.schema: dict[str, pl.DataType] = {c: pl.String() for c in spec.columns}
        # The optimistic read: integers and booleans declared as what they are. Polars reads
        # them strictly (42.0, "42", 1e10 into Int32 or "t" into Boolean fail the read, never
        # coerce), so a read that succeeds holds exactly the values the text path would give;
        # one that fails is read again as text.
        self.typed_schema: dict[str, pl.DataType] = {
            c: t if t.is_integer() or t == pl.Boolean() else pl.String()
            for c, t in spec.columns.items()
        }

    def no_rows(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def numbered(self, frame: pl.DataFrame, first_number: int = 1) -> pl.DataFrame:
        numbers = pl.int_range(
            first_number, first_number + frame.height, dtype=pl.Int64(), eager=True
        )
        return frame.with_columns(numbers.alias(RECORD_NUMBER))

    def read_lines(self, data: bytes) -> pl.DataFrame:
        """JSON Lines read by Polars, every column as text (raises READ_ERRORS when it cannot)."""
        return pl.read_ndjson(data, schema=self.schema)

    def read_lines_typed(self, data: bytes) -> pl.DataFrame:
        """JSON Lines read by Polars, integers and booleans typed if every value reads as one,
        else every column as text (raises READ_ERRORS when it cannot read it at all)."""
        if self.typed_schema != self.schema:
            try:
                return pl.read_ndjson(data, schema=self.typed_schema)
            except READ_ERRORS:
                pass
        return self.read_lines(data)

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
