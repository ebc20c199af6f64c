"""A large ingestion file read and parsed in pieces: memory set by the piece size, not the file.

The file is read in ranged reads and cut into pieces of whole records (transforms/chunks.py);
each piece is typed and validated by `parse_file` on its own, and its rejects are numbered in the
file (records and lines before it added). Streaming a fact file (service/streaming.py) applies
each piece as it comes; a large file of a dimension's source table is parsed here piece by piece
and its typed rows joined (`parse_in_pieces`): the typed rows of a file are a fraction of its
JSON, and the whole text is never held at once.

A file the pieces cannot reproduce exactly (a piece that does not read as records on its own, say
a cut inside a string) raises NotStreamable, and is parsed whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import polars as pl

from service.storage import Storage
from transforms import chunks
from transforms.parse import (
    JSON_FIELD,
    RECORD_NUMBER,
    REJECT_COUNTS,
    ParsedFile,
    ParseLimits,
    parse_array_items,
    parse_file,
)
from transforms.schemas import REJECTS, SOURCE_TABLES

HEAD_BYTES = 64 * 1024  # enough to see how a file holds its records
TAIL_BYTES = 4 * 1024
MAX_JOINED = 4  # pieces that do not read alone are joined up to this many times the piece size


class NotStreamable(Exception):
    """The file must be applied the whole-file way (the reason says why)."""


def read_pieces(storage: Storage, key: str, size: int, chunk_bytes: int) -> Iterator[chunks.Piece]:
    """The file's records in pieces of about `chunk_bytes`, one ranged read each."""
    head = storage.read_range(key, 0, min(size, HEAD_BYTES))
    tail = storage.read_range(key, max(0, size - TAIL_BYTES), size)
    layout = chunks.layout(head, tail, size)
    if layout is None:
        raise NotStreamable("neither JSON Lines nor an array of records")
    return chunks.pieces(piece_reader(storage, key), layout, chunk_bytes)


def piece_reader(storage: Storage, key: str) -> chunks.Read:
    return lambda start, end: storage.read_range(key, start, end)


class Problems:
    """The file's rejects: the first `cap` in detail (as parse_file keeps them), all counted."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.details: list[pl.DataFrame] = []
        self.detailed = 0
        self.counts: list[pl.DataFrame] = []
        self.records_rejected = 0

    def add(self, result: ParsedFile, records_before: int, piece: chunks.Piece) -> None:
        if result.rejects.height and self.detailed < self.cap:
            part = _in_file(result.rejects.head(self.cap - self.detailed), records_before, piece)
            self.details.append(part)
            self.detailed += part.height
        if result.reject_counts is not None and result.reject_counts.height:
            self.counts.append(result.reject_counts)
        self.records_rejected += result.records_rejected

    def parsed_file(self, table: str, records: int) -> ParsedFile:
        rejects = (
            pl.concat(self.details, how="vertical_relaxed").select(
                [pl.col(c).cast(t) for c, t in REJECTS.items()]
            )
            if self.details
            else pl.DataFrame(schema=REJECTS)
        )
        counts = (
            pl.concat(self.counts)
            .group_by("field", "reason")
            .agg(pl.col("count").sum())
            .sort(["count", "field", "reason"], descending=[True, False, False])
            if self.counts
            else pl.DataFrame(schema=REJECT_COUNTS)
        )
        return ParsedFile(
            rows=pl.DataFrame(schema={**SOURCE_TABLES[table].columns, RECORD_NUMBER: pl.Int64()}),
            rejects=rejects,
            records_read=records,
            records_rejected=self.records_rejected,
            reject_counts=counts,
        )


def _in_file(rejects: pl.DataFrame, records_before: int, piece: chunks.Piece) -> pl.DataFrame:
    """A piece's rejects with the file's record numbers (and line numbers in the reasons)."""
    reasons = [
        chunks.shift_line_number(reason, piece.lines_before()) if field == JSON_FIELD else reason
        for reason, field in zip(rejects["reason"], rejects["field"], strict=True)
    ]
    return rejects.with_columns(
        pl.col(RECORD_NUMBER) + records_before, pl.Series("reason", reasons, dtype=pl.String())
    )


def parsed_pieces(
    pieces: Iterator[chunks.Piece],
    read: chunks.Read,
    table: str,
    key: str,
    chunk_bytes: int,
    limits: ParseLimits,
) -> Iterator[tuple[chunks.Piece, ParsedFile]]:
    """Each piece parsed on its own; a piece that does not read as records (a cut inside a
    string, say) is joined with the next one and parsed again."""
    pending: chunks.Piece | None = None
    for each in pieces:
        piece = chunks.joined(read, pending, each) if pending is not None else each
        pending = None
        if piece.kind == "array":  # its inside, with no copy into an array first
            result = parse_array_items(piece.body, table, key, limits)
        else:
            result = parse_file(piece.body, table, key, limits)
        if (result.rejects["record_number"] == 0).any():
            if len(piece.body) > MAX_JOINED * chunk_bytes:
                raise NotStreamable("a part of the file does not read as records on its own")
            pending = piece
            continue
        yield piece, result
    if pending is not None:
        raise NotStreamable("the end of the file does not read as records on its own")


def parse_in_pieces(
    storage: Storage, key: str, size: int, table: str, chunk_bytes: int, limits: ParseLimits
) -> ParsedFile:
    """The whole file's ParsedFile, as `parse_file` would give it, from its pieces: rows with
    the file's record numbers, the first rejects in detail and every problem counted.
    NotStreamable if the pieces cannot reproduce it (the caller parses it whole)."""
    problems = Problems(limits.max_reject_details)
    rows: list[pl.DataFrame] = []
    records = 0
    pieces = read_pieces(storage, key, size, chunk_bytes)
    parsed = parsed_pieces(pieces, piece_reader(storage, key), table, key, chunk_bytes, limits)
    for piece, result in parsed:
        problems.add(result, records, piece)
        if result.rows.height:
            rows.append(result.rows.with_columns(pl.col(RECORD_NUMBER) + records))
        records += result.records_read
    if records and not rows and problems.details:
        raise NotStreamable("no record of the file reads")  # the parser says so for the file
    counted = problems.parsed_file(table, records)
    return replace(counted, rows=pl.concat(rows)) if rows else counted
