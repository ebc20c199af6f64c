"""One ingestion file -> typed rows of its source table, its rejects and their tally."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.parse.plausibility import DEFAULT_LIMITS, ParseLimits
from transforms.parse.reader import Reader
from transforms.parse.records import Raw
from transforms.parse.redact import redact, redact_series
from transforms.parse.shapes import BOM, locate
from transforms.parse.tally import FILE_FIELD, RECORD_NUMBER, REJECT_COUNTS, clip_raw
from transforms.parse.typed import Typed, type_rows
from transforms.schemas import REJECTS, SOURCE_TABLES, SourceTable


@dataclass(frozen=True)
class ParsedFile:
    """The typed good rows of one file, its rejects, and how many records it held."""

    rows: pl.DataFrame  # SOURCE_TABLES[table].columns, in order, then record_number (Int64)
    rejects: pl.DataFrame  # schemas.REJECTS: the first `max_reject_details` problems, in order
    records_read: int  # records found in the file, good and bad
    records_rejected: int = 0  # records with at least one problem (a file reject: 0)
    reject_counts: pl.DataFrame | None = None  # REJECT_COUNTS: every problem, counted

    @property
    def file_rejected(self) -> bool:
        """The whole file is unusable (a record 0 reject)."""
        return bool(self.rejects.height) and self.rejects["record_number"][0] == 0

    @property
    def problems(self) -> int:
        """Every problem found (rejects beyond the detailed ones included)."""
        if self.reject_counts is None:
            return self.rejects.height
        return int(self.reject_counts["count"].sum())


def parse_file(
    data: bytes, table: str, source_file: str, limits: ParseLimits = DEFAULT_LIMITS
) -> ParsedFile:
    """Parse one ingestion file of `table` (a key of SOURCE_TABLES).

    Never raises for bad content: unreadable records and values, implausible dates and
    over-long strings become rejects. Raises ValueError only for a table this module has no
    schema for.
    """
    spec = _spec(table)
    if data.startswith(BOM):
        data = data[len(BOM) :]
    raw = _read(Reader(spec, limits.max_reject_details), data)
    return _parsed(raw, spec, source_file, limits)


def _parsed(raw: Raw, spec: SourceTable, source_file: str, limits: ParseLimits) -> ParsedFile:
    typed = type_rows(raw.frame, spec, limits)
    return ParsedFile(
        rows=typed.rows,
        rejects=_rejects(raw, typed, spec, source_file, limits.max_reject_details),
        records_read=raw.records_read,
        records_rejected=raw.found.records + typed.bad_records,
        reject_counts=_counts(raw, typed),
    )


def parse_array_items(
    items: bytes, table: str, source_file: str, limits: ParseLimits = DEFAULT_LIMITS
) -> ParsedFile:
    """The inside of a JSON array of `table` records (brackets excluded), exactly as
    `parse_file(b"[" + items + b"]", ...)` parses it, without first copying it into an array:
    the streamed pieces of an array file (transforms/chunks.py) are such insides."""
    spec = _spec(table)
    reader = Reader(spec, limits.max_reject_details)
    raw = reader.array(items, 0, len(items), whole=lambda: b"[" + items + b"]")
    return _parsed(raw, spec, source_file, limits)


def rejected_file(table: str, source_file: str, reason: str) -> ParsedFile:
    """A file that could not be read or parsed at all: no rows, one "<file>" reject."""
    spec = _spec(table)
    reason = redact(reason, spec.sensitive) or ""  # it may quote what it could not read
    reject = pl.DataFrame(
        [(source_file, table, 0, FILE_FIELD, clip_raw(reason), None)], schema=REJECTS, orient="row"
    )
    counts = pl.DataFrame(
        [(FILE_FIELD, reason.partition(":")[0], 1)], schema=REJECT_COUNTS, orient="row"
    )
    rows = pl.DataFrame(schema={**spec.columns, RECORD_NUMBER: pl.Int64()})
    return ParsedFile(rows=rows, rejects=reject, records_read=0, reject_counts=counts)


def _spec(table: str) -> SourceTable:
    spec = SOURCE_TABLES.get(table)
    if spec is None:
        raise ValueError(f"unknown source table {table!r}; known: {sorted(SOURCE_TABLES)}")
    return spec


def _read(reader: Reader, data: bytes) -> Raw:
    """The records of the file, read the way its shape asks."""
    shape = locate(data, data, len(data))
    if shape is None:
        return reader.empty()
    if shape.kind == "array":
        return reader.array(data, shape.start, shape.end)
    if shape.kind == "lines":
        return reader.lines(data)
    return reader.document(data)


def _rejects(raw: Raw, typed: Typed, spec: SourceTable, source_file: str, cap: int) -> pl.DataFrame:
    details = [d for d in (raw.found.frame(), typed.details) if d.height]
    if not details:
        return pl.DataFrame(schema=REJECTS)
    found = pl.concat(details).sort(RECORD_NUMBER, maintain_order=True).head(cap)
    if spec.sensitive:  # a bad line or file may hold them: never in a reject
        found = found.with_columns(
            redact_series(found["reason"], spec.sensitive),
            redact_series(found["raw_value"], spec.sensitive, clip=clip_raw),
        )
    return found.select(
        pl.lit(source_file, dtype=pl.String()).alias("source_file"),
        pl.lit(spec.name, dtype=pl.String()).alias("source_table"),
        pl.col(RECORD_NUMBER),
        pl.col("field"),
        pl.col("reason"),
        pl.col("raw_value"),
    )


def _counts(raw: Raw, typed: Typed) -> pl.DataFrame:
    counts = pl.concat([raw.found.counts(), typed.counts])
    if not counts.height:
        return counts
    return (
        counts.group_by("field", "reason")
        .agg(pl.col("count").sum())
        .sort(["count", "field", "reason"], descending=[True, False, False])
    )
