"""Split a large ingestion file into pieces of whole records, without parsing it (no I/O here).

A file is read in blocks (service/streaming.py) and cut into pieces of about `chunk_bytes` at
record boundaries, so each piece can be typed and validated by `parse_file` on its own and a file
of any size is applied in memory set by the piece size, not the file:

- JSON Lines: a piece ends at a line break; it is parsed as JSON Lines.
- an array (`[...]` or `{"<table>": [...]}`): the piece is cut after a record separator
  (`}, {` at any spacing: the same separator the parser's array fast path rewrites) and parsed
  as a bare array `[<piece>]`.

A separator can also occur inside a string value. A cut there leaves a piece that ends inside an
unterminated string (a `"` inside a string is always escaped), so the piece is not valid JSON and
its parse yields a whole-file (`<file>`) reject: the caller then joins it with the next piece and
parses again (`joined`), and applies the file the whole-file way if the last piece still
does not read. The same holds for any piece the parser reads as something other than records.

Record numbers: the records of a piece are numbered from 1 by `parse_file`; the caller adds the
records of the pieces before it, and for JSON Lines the physical lines before the piece to the
line numbers rejects name (`Piece.lines_before`, counted only for a piece with such rejects).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from transforms.parse.shapes import NOT_WS, RECORD_SEPARATOR, locate

_LINE_IN_REASON = re.compile(r"\bline (\d+)")

PROBE_BYTES = 64 * 1024

Kind = Literal["lines", "array"]


@dataclass(frozen=True)
class Layout:
    """Where the records of a file are: bytes [start, end) hold JSON Lines or an array's inside
    (the brackets excluded)."""

    kind: Kind
    start: int
    end: int


COUNT_BLOCK = 8 * 1024 * 1024  # bytes read at a time to count lines


class LineCount:
    """Physical lines of a JSON Lines file between its records' start and an offset, counted
    only when asked: a reject's line number needs it, a clean file never does (counting every
    piece's line breaks cost ~0.13 s per 1M orders). Pieces are asked in file order, so the
    count goes on from the last offset asked."""

    def __init__(self, read: Read, layout: Layout) -> None:
        self.read, self.layout = read, layout
        self.at, self.lines = layout.start, 0

    def before(self, offset: int) -> int:
        if self.layout.kind != "lines":
            return 0  # an array's records carry no line numbers of their own
        if offset < self.at:  # asked out of order: count again from the start
            self.at, self.lines = self.layout.start, 0
        while self.at < offset:
            end = min(offset, self.at + COUNT_BLOCK)
            self.lines += self.read(self.at, end).count(b"\n")
            self.at = end
        return self.lines


@dataclass(frozen=True)
class Piece:
    """Bytes [start, end) of the file, whole records."""

    body: bytes
    kind: Kind
    start: int
    end: int
    line_count: LineCount

    def lines_before(self) -> int:
        """Physical lines of the file before this piece (JSON Lines; counted when asked)."""
        return self.line_count.before(self.start)

    @property
    def data(self) -> bytes:
        """What to hand to parse_file: array elements as an array, JSON Lines as they are."""
        if self.kind == "array":
            return b"[" + self.body + b"]"
        return self.body


Read = Callable[[int, int], bytes]  # (start, end) -> the file's bytes [start, end)


def layout(head: bytes, tail: bytes, size: int) -> Layout | None:
    """How a file of `size` bytes starting with `head` and ending with `tail` holds its records,
    decided as `parse_file` decides it (transforms/parse/shapes.py); None for anything else (not
    streamed)."""
    shape = locate(head, tail, size)
    if shape is None or shape.kind == "document":
        return None
    return Layout(shape.kind, shape.start, shape.end)


def pieces(read: Read, layout: Layout, chunk_bytes: int) -> Iterator[Piece]:
    """The records of the file in pieces of about `chunk_bytes` (more when a single record is
    larger). The boundary is looked for in the last PROBE_BYTES before the size first, so a
    piece is then read exactly, with no copy of it cut from a larger block."""
    at, size, line_count = layout.start, chunk_bytes, LineCount(read, layout)
    while at < layout.end:
        end = min(at + size, layout.end)
        if end == layout.end:
            body, next_at = read(at, end), end
        else:
            probe_at = max(at, end - PROBE_BYTES)
            cut = _boundary(read(probe_at, end), layout.kind)
            if cut is not None:
                body, next_at = read(at, probe_at + cut[0]), probe_at + cut[1]
            else:  # a record longer than the probe: look in the whole block
                block = read(at, end)
                cut = _boundary(block, layout.kind)
                if cut is None:  # one record longer than the block: read more
                    size *= 2
                    continue
                body, next_at = block[: cut[0]], at + cut[1]
        if not body:
            return
        if NOT_WS.search(body):
            yield Piece(body, layout.kind, at, at + len(body), line_count)
        at, size = next_at, chunk_bytes


def joined(read: Read, first: Piece, following: Piece) -> Piece:
    """Two consecutive pieces as one (when a cut fell inside a record)."""
    return Piece(
        read(first.start, following.end), first.kind, first.start, following.end, first.line_count
    )


def _boundary(block: bytes, kind: Kind) -> tuple[int, int] | None:
    """(end of the piece, start of the next) at the last record boundary in `block`."""
    if kind == "lines":
        # before a line that starts with `{`: the parser, which tells JSON Lines by the first
        # byte, then reads the next piece as JSON Lines as it reads the whole file
        at = block.rfind(b"\n{")
        if at == -1:
            at = block.rfind(b"\n")
        return None if at == -1 else (at + 1, at + 1)
    at = len(block)
    while True:
        at = block.rfind(b"}", 0, at)
        if at == -1:
            return None
        separator = RECORD_SEPARATOR.match(block, at)
        if separator is not None and separator.end() <= len(block):
            # the piece ends with the `}`, the next starts at the `{`
            return at + 1, separator.end() - 1


def shift_line_number(reason: str, lines_before: int) -> str:
    """A `<json>` reject's reason names the line in its piece: make it the line in the file."""
    if not lines_before:
        return reason
    return _LINE_IN_REASON.sub(lambda m: f"line {int(m.group(1)) + lines_before}", reason, count=1)
