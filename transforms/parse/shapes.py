"""Shape detection: how a file holds its records, told from its first and last bytes.

A file is `{"<key>": [records]}` (any single key whose value is a list), a bare JSON array of
records, JSON Lines, or some other document; a UTF-8 BOM is tolerated. The shape is told from
the first non-blank byte and the last ones, never by parsing the document. `parse_file` and the
piece cutter (transforms/chunks.py) both decide it here, with the same patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BOM = b"\xef\xbb\xbf"
NOT_WS = re.compile(rb"[^ \t\r\n]")
WS_BYTES = frozenset(b" \t\r\n")
WRAPPED_HEAD = re.compile(rb'\{[ \t\r\n]*"(?:[^"\\]|\\.)*"[ \t\r\n]*:[ \t\r\n]*\[')
# Between two records of an array: `}, {` at any spacing.
RECORD_SEPARATOR = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
# A JSON escape of a UTF-16 surrogate (`\ud800`): Polars reads a lone one as U+0000, so text that
# holds one goes through json, which keeps it visible (and a valid pair, an emoji, is fine).
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
SURROGATE_ESCAPE_TEXT = r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"


def has_surrogate_escape(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether data[start:end] holds a `\\uD800`-style escape (a memchr for a backslash first:
    most files have none, and that is ~10x cheaper than the pattern)."""
    end = len(data) if end is None else end
    return (
        data.find(b"\\", start, end) != -1 and SURROGATE_ESCAPE.search(data, start, end) is not None
    )


ShapeKind = Literal["array", "lines", "document"]


@dataclass(frozen=True)
class Shape:
    """Where the records of a file are.

    - "array": bytes [start, end) are the inside of the array (brackets excluded), bare or
      wrapped;
    - "lines": bytes [start, end) are JSON Lines (start is after a BOM, end is the file's size);
    - "document": anything else, starting at its first non-blank byte `start`.
    """

    kind: ShapeKind
    start: int
    end: int


def locate(head: bytes, tail: bytes, size: int) -> Shape | None:
    """The shape of a file of `size` bytes starting with `head` and ending with `tail` (for a
    whole file in memory, pass it as both); None when it holds nothing but blanks."""
    offset = len(BOM) if head.startswith(BOM) else 0
    first = NOT_WS.search(head, offset)
    last = last_non_ws(tail, len(tail))
    if first is None or last < 0:
        return None
    start, tail_base = first.start(), size - len(tail)
    if head[start] == ord("[") and tail[last] == ord("]"):
        return Shape("array", start + 1, tail_base + last)
    if head[start] != ord("{"):
        return Shape("document", start, size)
    wrapped = WRAPPED_HEAD.match(head, start)
    if wrapped is not None and tail[last] == ord("}"):
        close = last_non_ws(tail, last)
        if close >= 0 and tail[close] == ord("]") and tail_base + close >= wrapped.end():
            return Shape("array", wrapped.end(), tail_base + close)
    return Shape("lines", offset, size)


def last_non_ws(data: bytes, end: int) -> int:
    """Index of the last non-whitespace byte before `end` (-1 if none)."""
    end -= 1
    while end >= 0 and data[end] in WS_BYTES:
        end -= 1
    return end


def array_as_lines(body: bytes, join_lines: bool) -> bytes:
    """The inside of a JSON array of flat objects, rewritten as JSON Lines.

    The separator between records (taken from its first occurrence, `}, {` say) loses its comma
    and gains a line break (an equal-length replacement, the fastest). A raw newline can only be
    whitespace in valid JSON (inside a string it must be escaped): `join_lines` turns them all
    into spaces first, for records that span several lines. Where the guess is wrong (a separator
    inside a string or a nested value, separators written inconsistently, a record over several
    lines without `join_lines`, an element that is not an object) some line is not valid JSON and
    the read fails.
    """
    if join_lines:
        body = body.replace(b"\n", b" ")
    separator = RECORD_SEPARATOR.search(body)
    if separator is None:
        return body
    found = separator.group()
    return body.replace(found, found.replace(b",", b" " if b"\n" in found else b"\n"))
