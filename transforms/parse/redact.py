"""Sensitive fields never leave parse: their values are scrubbed from every reject it describes.

A table's `sensitive` fields (payment's bank account numbers) are not columns, so no row carries
them; but a bad line, a bad array element or the head of a file rejected whole is kept as a
reject's raw_value, and a reason may quote a value. Before a reject leaves parse, the value that
follows any sensitive key in its text is replaced by "<redacted>".

The text is often not valid JSON (that is why it was rejected), so this is a tolerant scan, not
a parse, and it errs towards redacting more. A key is a JSON string (escapes decoded, so
`"company\\u005fac_number"` is found), a single-quoted string or a bare word, compared without
case, the colon after it optional (a damaged line may have lost it). Its value runs to the end
of a string, to the matching bracket of an object or array, or to the next `,` `}` `]` or line
break for anything else; to the end of the text when the value is cut off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import polars as pl

REDACTED = '"<redacted>"'
_KEY = re.compile(
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|\b([A-Za-z_][A-Za-z0-9_]*))"""
    r"[ \t\r\n]*:?[ \t\r\n]*",
    re.DOTALL,
)
_SCALAR_END = re.compile(r"[,}\]\n]")


def redact(text: str | None, names: frozenset[str]) -> str | None:
    """`text` with the value of every key in `names` replaced by REDACTED."""
    if text is None or not names:
        return text
    wanted = {n.lower() for n in names}
    folded = text.lower()
    if "\\" not in text and not any(name in folded for name in wanted):
        return text  # no key of theirs, not even an escaped one
    out: list[str] = []
    at = look = 0
    while (key := _KEY.search(text, look)) is not None:
        if _key_name(key).lower() not in wanted:
            look = key.start() + 1  # a key may hide inside what looked like another one
            continue
        out.append(text[at : key.end()])
        out.append(REDACTED)
        at = look = _value_end(text, key.end())
    out.append(text[at:])
    return "".join(out)


def redact_series(
    values: pl.Series, names: frozenset[str], clip: Callable[[str], str] | None = None
) -> pl.Series:
    """A String column of (a few) reject texts, redacted (then clipped by `clip`: a redaction
    may make a text longer)."""
    if not names:
        return values
    texts = [redact(v, names) for v in values.to_list()]
    if clip is not None:
        texts = [None if t is None else clip(t) for t in texts]
    return pl.Series(values.name, texts, dtype=pl.String())


def _key_name(key: re.Match[str]) -> str:
    quoted, single, bare = key.groups()
    if quoted is not None:
        try:
            return str(json.loads(f'"{quoted}"'))
        except ValueError:
            return quoted
    return single if single is not None else bare


def _value_end(text: str, start: int) -> int:
    """Where the value starting at `start` ends (the end of the text if it is cut off)."""
    if start >= len(text):
        return len(text)
    first = text[start]
    if first in "\"'":
        return _string_end(text, start, first)
    if first in "{[":
        return _bracket_end(text, start)
    end = _SCALAR_END.search(text, start)
    return len(text) if end is None else end.start()


def _string_end(text: str, start: int, quote: str) -> int:
    at = start + 1
    while at < len(text):
        char = text[at]
        if char == "\\":
            at += 2
            continue
        if char == quote:
            return at + 1
        at += 1
    return len(text)


def _bracket_end(text: str, start: int) -> int:
    depth = 0
    at = start
    while at < len(text):
        char = text[at]
        if char in "\"'":
            at = _string_end(text, at, char)
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return at + 1
        at += 1
    return len(text)
