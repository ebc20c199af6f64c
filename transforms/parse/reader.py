"""Reading each shape: bytes -> one all-String frame (the table's columns + record_number) and
the record rejects found on the way.

Fast path: Polars reads the records with every column declared `pl.String`. An array (bare or
wrapped) is turned into JSON Lines first, by rewriting the separators between records:
`pl.read_json` is ~10x slower than `pl.read_ndjson` on large arrays. The rewrite is safe: a
separator matched inside a string or a nested value leaves a line that is not valid JSON, so
Polars fails and the slow path takes over.

Slow paths: bad JSON Lines lines become rejects (field "<json>") while the other lines still
parse (transforms/parse/json_lines.py); a document Polars cannot read goes through json.loads.
Invalid UTF-8 in an array rejects the whole file. An array element that is not an object is a
"<json>" reject. A document that holds no records at all (not JSON, nested too deep, a scalar,
an object that is neither wrapped nor a record, an array without objects, JSON Lines of which no
line is an object) becomes a single reject: record 0, field "<file>". Text holding a JSON
surrogate escape goes through json: a string with a lone surrogate rejects its record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from transforms.parse.json_lines import first_line_is_bad, read_lines_slow
from transforms.parse.records import READ_ERRORS, Raw, Records
from transforms.parse.shapes import NOT_WS, array_as_lines, has_surrogate_escape, last_non_ws
from transforms.parse.tally import JSON_FIELD, MAX_QUOTED, Found, clip
from transforms.parse.values import dumps, json_kind, loads


def _non_json_numbers(data: bytes, start: int, end: int) -> bool:
    """Polars reads NaN and Infinity, which JSON does not have, as numbers (perhaps the file
    only holds them as text). Looking for a capital N or I first is ~50x faster."""
    if data.find(b"N", start, end) == -1 and data.find(b"I", start, end) == -1:
        return False
    return data.find(b"NaN", start, end) != -1 or data.find(b"Infinity", start, end) != -1


def _strict(data: bytes) -> bool:
    try:
        loads(data)
    except (ValueError, RecursionError):
        return False
    return True


class Reader(Records):
    """Reads one file of a table, whatever its shape."""

    def empty(self) -> Raw:
        return Raw(self.numbered(self.no_rows()), Found(self.cap), 0)

    def array(
        self, data: bytes, start: int, end: int, whole: Callable[[], bytes] | None = None
    ) -> Raw:
        """The array whose inside is data[start:end], of a bare or wrapped file (`whole` gives
        the file's bytes when `data` holds only the inside: the slow paths read the file)."""
        whole = whole or (lambda: data)
        # Looked at in place: the one copy of the inside is the rewrite Polars reads.
        if has_surrogate_escape(data, start, end) or (
            _non_json_numbers(data, start, end) and not _strict(whole())
        ):
            return self.document(whole())
        attempts = (False, True) if data.find(b"\n", start, end) != -1 else (False,)
        for join_lines in attempts:
            try:
                frame = self.read_lines_typed(array_as_lines(data[start:end], join_lines))
            except READ_ERRORS:
                continue
            return Raw(self.numbered(frame), Found(self.cap), frame.height)
        return self.document(whole())

    def lines(self, data: bytes) -> Raw:
        if has_surrogate_escape(data):
            return self.lines_slow(data)
        try:
            frame = self.read_lines_typed(data)
        except READ_ERRORS:
            return self.lines_slow(data)
        if frame.height == 1 and frame.null_count().sum_horizontal().item() == frame.width:
            # A single object holding none of the table's fields: perhaps a wrapper with other
            # keys (`{"sales_order": [...], "count": 3}`), or not records at all.
            return self.document(data)
        return Raw(self.numbered(frame), Found(self.cap), frame.height)

    def document(self, data: bytes, from_lines: bool = False) -> Raw:
        """Slow path: the whole file through json.loads, then classified."""
        try:
            doc = loads(data)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            first = NOT_WS.search(data)
            if not from_lines and first is not None:
                several_lines = b"\n" in data[first.start() : last_non_ws(data, len(data))]
                if data[first.start()] == ord("{") or several_lines:
                    # JSON Lines with a bad line (even the first one): keep the good ones
                    return self.lines_slow(data, from_document=True)
            if isinstance(exc, RecursionError):
                return self.file_reject("too deep", "JSON nested too deep to read", data)
            if isinstance(exc, UnicodeDecodeError):
                return self.file_reject("not UTF-8", f"not valid UTF-8: {exc}", data)
            return self.file_reject("not valid JSON", f"not valid JSON: {exc}", data)
        return self._from_document(doc, data)

    def lines_slow(self, data: bytes, from_document: bool = False) -> Raw:
        """JSON Lines that Polars could not read as a whole (json_lines.read_lines_slow)."""
        if not from_document and first_line_is_bad(data):
            # Perhaps not JSON Lines at all but one pretty-printed document.
            whole = self._try_document(data)
            if whole is not None:
                return whole
        raw = read_lines_slow(self, data)
        if raw is None:
            # Not one line is a JSON object: this is not JSON Lines, but junk (or a truncated
            # document); one "<file>" reject says so better than a reject per line.
            return self.document(data, from_lines=True)
        return raw

    def _try_document(self, data: bytes) -> Raw | None:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return None
        return self._from_document(doc, data)

    def _from_document(self, doc: Any, data: bytes) -> Raw:
        name = self.spec.name
        if isinstance(doc, dict):
            if len(doc) == 1 and isinstance(next(iter(doc.values())), list):
                return self._from_values(next(iter(doc.values())), data)
            if any(c in doc for c in self.spec.columns):
                return self._from_values([doc], data)
            keys = ", ".join(clip(repr(k), MAX_QUOTED) for k in list(doc)[:5])
            return self.file_reject(
                "not records",
                f'JSON object is neither {{"{name}": [records]}} nor a {name} record '
                f"(keys: {keys or 'none'})",
                data,
            )
        if isinstance(doc, list):
            return self._from_values(doc, data)
        return self.file_reject(
            "not records",
            f"JSON document is {json_kind(doc)}, expected records "
            f'(an array, {{"{name}": [...]}} or JSON Lines)',
            data,
        )

    def _from_values(self, values: list[Any], data: bytes) -> Raw:
        if values and not any(isinstance(v, dict) for v in values):
            return self.file_reject(
                "not records",
                f"JSON array holds no objects (first element is {json_kind(values[0])})",
                data,
            )
        found = Found(self.cap)
        records: list[dict[str, Any]] = []
        numbers: list[int] = []
        for number, value in enumerate(values, start=1):
            if isinstance(value, dict):
                records.append(value)
                numbers.append(number)
            else:
                found.records += 1
                detail = found.wants_detail  # describing a value costs: only the first ones
                found.add(
                    number,
                    JSON_FIELD,
                    "not a JSON object",
                    f"record is not a JSON object: {json_kind(value)}" if detail else "",
                    dumps(value) if detail else None,
                )
        frame = self.from_dicts(records, numbers, found)
        return Raw(frame, found, len(values))
