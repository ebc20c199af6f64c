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
parses again (`Piece.joined`), and applies the file the whole-file way if the last piece still
does not read. The same holds for any piece the parser reads as something other than records.

Record numbers: the records of a piece are numbered from 1 by `parse_file` (after
`Piece.leading_records`, which the caller drops); the caller adds the records of the pieces before
it, and for JSON Lines the physical lines before the piece to the line numbers rejects name
(`Piece.lines_before`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

_BOM = b"\xef\xbb\xbf"
_NOT_WS = re.compile(rb"[^ \t\r\n]")
_WRAPPED_HEAD = re.compile(rb'\{[ \t\r\n]*"(?:[^"\\]|\\.)*"[ \t\r\n]*:[ \t\r\n]*\[')
_RECORD_SEPARATOR = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
_WS = frozenset(b" \t\r\n")
_LINE_IN_REASON = re.compile(r"\bline (\d+)")

_LEADING_LINE = b"{}\n"

Kind = Literal["lines", "array"]


@dataclass(frozen=True)
class Layout:
    """Where the records of a file are: bytes [start, end) hold JSON Lines or an array's inside
    (the brackets excluded)."""

    kind: Kind
    start: int
    end: int


@dataclass(frozen=True)
class Piece:
    """Consecutive bytes of the file's records: the pieces joined are the records' bytes."""

    body: bytes
    kind: Kind
    lines_before: int  # physical lines of the file before this piece (JSON Lines)

    @property
    def data(self) -> bytes:
        """What to hand to parse_file: array elements as an array; JSON Lines after a first
        line `{}` (LEADING_RECORDS), so the parser reads them as JSON Lines whatever the piece's
        first line holds, as it reads the whole file (a piece may start with a bad line)."""
        if self.kind == "array":
            return b"[" + self.body.rstrip(b", \t\r\n") + b"]"
        return _LEADING_LINE + self.body

    @property
    def leading_records(self) -> int:
        """Records `data` holds before the piece's own (their rows and rejects are dropped)."""
        return 0 if self.kind == "array" else 1

    def joined(self, following: Piece) -> Piece:
        """This piece and the next as one (when a cut fell inside a record)."""
        return Piece(self.body + following.body, self.kind, self.lines_before)


def layout(head: bytes, tail: bytes, size: int) -> Layout | None:
    """How a file of `size` bytes starting with `head` and ending with `tail` holds its records,
    decided as `parse_file` decides it; None for anything else (not streamed)."""
    offset = len(_BOM) if head.startswith(_BOM) else 0
    first = _NOT_WS.search(head, offset)
    if first is None:
        return None
    start = first.start()
    ends = [i for i in range(len(tail) - 1, -1, -1) if tail[i] not in _WS]
    if not ends:
        return None
    tail_base = size - len(tail)
    last = ends[0]
    if head[start] == ord("[") and tail[last] == ord("]"):
        return Layout("array", start + 1, tail_base + last)
    if head[start] != ord("{"):
        return None
    wrapped = _WRAPPED_HEAD.match(head, start)
    if wrapped is not None and tail[last] == ord("}") and len(ends) > 1:
        close = ends[1]
        if tail[close] == ord("]") and tail_base + close >= wrapped.end():
            return Layout("array", wrapped.end(), tail_base + close)
    return Layout("lines", offset, size)


def pieces(blocks: Iterable[bytes], kind: Kind, chunk_bytes: int) -> Iterator[Piece]:
    """Cut the record bytes (the `Layout` range, delivered in blocks of any size) into pieces of
    about `chunk_bytes` (more when a single record is larger)."""
    buffer = b""
    lines_before = 0
    for block in blocks:
        buffer = buffer + block if buffer else block
        while len(buffer) >= chunk_bytes:
            cut = _cut(buffer, kind, chunk_bytes)
            if cut is None:
                break  # one record longer than the rest of the buffer: read on
            piece, rest = cut
            yield Piece(piece, kind, lines_before)
            lines_before += piece.count(b"\n")
            buffer = rest
    if _NOT_WS.search(buffer):
        yield Piece(buffer, kind, lines_before)


def _cut(buffer: bytes, kind: Kind, chunk_bytes: int) -> tuple[bytes, bytes] | None:
    """(piece, rest): the piece ends at the last record boundary before `chunk_bytes` (or the
    first after it)."""
    if kind == "lines":
        at = buffer.rfind(b"\n", 0, chunk_bytes)
        if at == -1:
            at = buffer.find(b"\n", chunk_bytes)
        if at == -1:
            return None
        return buffer[: at + 1], buffer[at + 1 :]
    found = None
    for match in _RECORD_SEPARATOR.finditer(buffer, max(0, chunk_bytes // 2), chunk_bytes):
        found = match  # the last one before the size
    if found is None:
        found = _RECORD_SEPARATOR.search(buffer, chunk_bytes)
        if found is None:
            return None
    # the piece keeps the separator up to the `{` the rest starts with
    return buffer[: found.end() - 1], buffer[found.end() - 1 :]


def shift_line_number(reason: str, lines_before: int) -> str:
    """A `<json>` reject's reason names the line in its piece: make it the line in the file."""
    if not lines_before:
        return reason
    return _LINE_IN_REASON.sub(lambda m: f"line {int(m.group(1)) + lines_before}", reason, count=1)
