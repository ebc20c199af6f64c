"""Parse one ingestion file into typed rows of its source table, and rejects.

Shapes accepted (../shared/spec/star-schema.md, "Ingestion files in the wild"):
`{"<table>": [records]}` (any single key whose value is a list), a bare JSON array of records, or
JSON Lines (one object per line, blank lines ignored); a UTF-8 BOM is tolerated. The shape is
told from the first bytes (and the last ones), never by parsing the document in Python.

Fast path: Polars reads the records with every column declared `pl.String` (a JSON number arrives
as its text, so numbers and numeric strings are the same thing from there on), then each column is
cast once, vectorised, to its target type. An array (bare or wrapped) is turned into JSON Lines
first, by rewriting the separators between records: `pl.read_json` is ~10x slower than
`pl.read_ndjson` on large arrays. The rewrite is safe: a separator matched inside a string or a
nested value leaves a line that is not valid JSON, so Polars fails and the slow path takes over.

Only the values the column's cast could not read go through slower fallbacks (other timestamp
forms, epoch milliseconds, "42.0", surrounding spaces). The parser run on a whole column is
chosen from its first value, so a file written entirely in another form stays fast.

If Polars cannot read the file, a per-record path takes over: bad JSON Lines lines become
rejects (field "<json>") while the other lines still parse. Every line is classified in one
vectorised pass (Polars' JSON parser says which lines are JSON objects, a Python pass which are
not UTF-8), the good lines are read by Polars in one go, and json.loads only describes the first
bad lines, so a file with many bad lines costs a few reads, not a parse per line. Invalid UTF-8
in one line rejects that record only (in an array, the whole file). An array element that is not
an object is a "<json>" reject too. A document that holds no records at all (not JSON, nested
too deep, a scalar, an object that is neither wrapped nor a record, an array without objects,
JSON Lines of which no line is an object) becomes a single reject: record 0, field "<file>".
Text holding a JSON surrogate escape goes through json (Polars would read a lone `\ud800` as
U+0000): a string with a lone surrogate rejects its record ("lone surrogate").

Plausibility (ParseLimits, passed in by the caller): a date or timestamp outside the window
(default 1900-01-01..2199-12-31) is "implausible date"; a string longer than the cap (default
1,000 characters) is rejected; raw_value keeps at most 1,000 characters.

Bounded cost: every problem is counted exactly per field and kind (ParsedFile.reject_counts),
but only the first `max_reject_details` (default 1,000) are kept as reject rows, so a file of a
million empty records costs counts, not twelve million rows.

Values:
- timestamps: ISO 8601 with "T" or a space, fraction optional (up to 9 digits, truncated to
  microseconds), or epoch milliseconds (a number or an all-digit string); all naive UTC, never
  shifted to a local zone. A value carrying a zone ("Z", "+01:00") is converted to UTC, then made
  naive.
- dates: "YYYY-MM-DD"; a timestamp in any form above (or epoch ms) gives its date.
- decimals: from a JSON number or a numeric string; digits beyond the column's scale are rounded
  half away from zero (3.945 -> 3.95, -3.945 -> -3.95), as PostgreSQL does when it casts to
  numeric(p, s). A value out of range for the precision is rejected.
- integers: 42 or "42"; an integral "42.0" (or 4.2e1) reads as 42; "42.5", "abc" and values out
  of the column type's range are rejected.
- strings: taken as they are (a JSON number or boolean in a string column arrives as its text).
- a required column missing or null: "missing required field" (raw_value null).

Record numbers are 1-based positions of the records in the file (for JSON Lines: among the
non-blank lines; the reason of a "<json>" reject names the physical line number too). A record
with several problems has one reject per problem; rejects are ordered by record number.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import polars as pl
from polars.exceptions import PanicException, PolarsError

from transforms.schemas import REJECTS, SOURCE_TABLES, SourceTable

RECORD_NUMBER = "record_number"
JSON_FIELD = "<json>"
FILE_FIELD = "<file>"
MISSING_REASON = "missing required field"
IMPLAUSIBLE_DATE = "implausible date"
LONE_SURROGATE = "lone surrogate"
# Every problem of a file, counted: (field, kind of problem) -> number of problems.
REJECT_COUNTS: dict[str, pl.DataType] = {
    "field": pl.String(),
    "reason": pl.String(),  # the kind of problem: the reason without the value it quotes
    "count": pl.Int64(),
}

_BOM = b"\xef\xbb\xbf"
_NOT_WS = re.compile(rb"[^ \t\r\n]")
_WRAPPED_HEAD = re.compile(rb'\{[ \t\r\n]*"(?:[^"\\]|\\.)*"[ \t\r\n]*:[ \t\r\n]*\[')
_RECORD_SEPARATOR = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
# A JSON escape of a UTF-16 surrogate (`\ud800`): Polars reads a lone one as U+0000, so text that
# holds one goes through json, which keeps it visible (and a valid pair, an emoji, is fine).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_ESCAPE_TEXT = r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")
_WS_BYTES = frozenset(b" \t\r\n")
_ISO_T = "%Y-%m-%dT%H:%M:%S%.f"
_ISO_SPACE = "%Y-%m-%d %H:%M:%S%.f"
_DATE = "%Y-%m-%d"
_EPOCH_MS_MIN = -62_135_596_800_000  # 0001-01-01T00:00:00
_EPOCH_MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999
_SAMPLE_ROWS = 1_000  # rows looked at for a sample value that chooses a column's parser
_MAX_QUOTED = 100  # characters of a bad value quoted in a reason
_MAX_RAW_VALUE = 1_000  # characters of a bad value / line / document kept as raw_value
_READ_ERRORS = (PolarsError, PanicException, ValueError)


@dataclass(frozen=True)
class ParseLimits:
    """What a plausible value is, and how many problems of one file are kept in detail.

    Passed in by the caller (service/settings.py holds the configured values), so this module
    stays free of configuration.
    """

    min_date: date = date(1900, 1, 1)  # dates and timestamps before this day are rejected
    max_date: date = date(2199, 12, 31)  # ... and after this day
    max_string_chars: int = 1_000  # longer strings are rejected (Totesys columns are varchars)
    max_reject_details: int = 1_000  # problems kept in detail per file; all are counted

    @property
    def min_timestamp(self) -> datetime:
        return datetime.combine(self.min_date, time.min)

    @property
    def max_timestamp(self) -> datetime:
        return datetime.combine(self.max_date, time.max)

    @property
    def window(self) -> str:
        return f"{self.min_date.isoformat()}..{self.max_date.isoformat()}"


DEFAULT_LIMITS = ParseLimits()


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
    spec = SOURCE_TABLES.get(table)
    if spec is None:
        raise ValueError(f"unknown source table {table!r}; known: {sorted(SOURCE_TABLES)}")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    reader = _Reader(spec, source_file, limits.max_reject_details)
    first = _NOT_WS.search(data)
    if first is None:
        raw = reader.empty()
    else:
        start = first.start()
        end = _last_non_ws(data, len(data))  # data[end] is the last non-blank byte
        if data[start] == ord("[") and data[end] == ord("]"):
            raw = reader.array(data, start, end + 1)
        elif data[start] == ord("{"):
            inner = _wrapped_array(data, start, end)
            raw = reader.array(data, *inner) if inner is not None else reader.lines(data)
        else:
            raw = reader.document(data)
    typed = _type_rows(raw.frame, spec, limits)
    cap = limits.max_reject_details
    details = [d for d in (raw.found.frame(), typed.details) if d.height]
    found = (
        pl.concat(details).sort(RECORD_NUMBER, maintain_order=True).head(cap) if details else None
    )
    rejects = (
        pl.DataFrame(schema=REJECTS)
        if found is None
        else found.select(
            pl.lit(source_file, dtype=pl.String()).alias("source_file"),
            pl.lit(spec.name, dtype=pl.String()).alias("source_table"),
            pl.col(RECORD_NUMBER),
            pl.col("field"),
            pl.col("reason"),
            pl.col("raw_value"),
        )
    )
    counts = pl.concat([raw.found.counts(), typed.counts])
    counts = (
        counts.group_by("field", "reason")
        .agg(pl.col("count").sum())
        .sort(["count", "field", "reason"], descending=[True, False, False])
        if counts.height
        else counts
    )
    return ParsedFile(
        rows=typed.rows,
        rejects=rejects,
        records_read=raw.records_read,
        records_rejected=raw.found.records + typed.bad_records,
        reject_counts=counts,
    )


def rejected_file(table: str, source_file: str, reason: str) -> ParsedFile:
    """A file that could not be read or parsed at all: no rows, one "<file>" reject."""
    spec = SOURCE_TABLES.get(table)
    if spec is None:
        raise ValueError(f"unknown source table {table!r}; known: {sorted(SOURCE_TABLES)}")
    reject = pl.DataFrame(
        [(source_file, table, 0, FILE_FIELD, _clip_raw(reason), None)], schema=REJECTS, orient="row"
    )
    counts = pl.DataFrame(
        [(FILE_FIELD, reason.partition(":")[0], 1)], schema=REJECT_COUNTS, orient="row"
    )
    rows = pl.DataFrame(schema={**spec.columns, RECORD_NUMBER: pl.Int64()})
    return ParsedFile(rows=rows, rejects=reject, records_read=0, reject_counts=counts)


# ---------------------------------------------------------------------------------------------
# Reading: bytes -> one all-String frame (the table's columns + record_number) + record rejects


class _Found:
    """Problems found while reading: the first `cap` in detail (in record order), all counted."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.detail: list[tuple[int, str, str, str | None]] = []  # number, field, reason, raw
        self.tally: Counter[tuple[str, str]] = Counter()  # (field, kind) -> problems
        self.records = 0  # records rejected

        self.added = 0  # problems described through `add`

    @property
    def wants_detail(self) -> bool:
        return self.added < self.cap

    def add(self, number: int, field: str, kind: str, reason: str, raw: str | None) -> None:
        """One problem (callers may skip describing it when `wants_detail` is false)."""
        self.tally[(field, kind)] += 1
        if self.wants_detail:
            self.added += 1
            self.describe(number, field, reason, raw)

    def describe(self, number: int, field: str, reason: str, raw: str | None) -> None:
        """Detail of a problem counted elsewhere (the caller keeps to the cap; the first `cap`
        in record order are kept in the end)."""
        self.detail.append((number, field, reason, None if raw is None else _clip_raw(raw)))

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                RECORD_NUMBER: [d[0] for d in self.detail],
                "field": [d[1] for d in self.detail],
                "reason": [d[2] for d in self.detail],
                "raw_value": [d[3] for d in self.detail],
            },
            schema=_DETAIL,
        )

    def counts(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "field": [f for f, _ in self.tally],
                "reason": [k for _, k in self.tally],
                "count": list(self.tally.values()),
            },
            schema=REJECT_COUNTS,
        )


_DETAIL: dict[str, pl.DataType] = {
    RECORD_NUMBER: pl.Int64(),
    "field": pl.String(),
    "reason": pl.String(),
    "raw_value": pl.String(),
}


@dataclass(frozen=True)
class _Raw:
    frame: pl.DataFrame  # every table column as String, then record_number
    found: _Found  # "<json>" / "<file>" rejects, and lone surrogates found by json
    records_read: int


def _last_non_ws(data: bytes, end: int) -> int:
    """Index of the last non-whitespace byte before `end` (-1 if none)."""
    end -= 1
    while end >= 0 and data[end] in _WS_BYTES:
        end -= 1
    return end


def _wrapped_array(data: bytes, start: int, last: int) -> tuple[int, int] | None:
    """(start, end) of the inner array of `{"<key>": [ ... ]}`; None if not shaped like that."""
    head = _WRAPPED_HEAD.match(data, start)
    if head is None or data[last] != ord("}"):
        return None
    close = _last_non_ws(data, last)
    if close < head.end() or data[close] != ord("]"):
        return None
    return head.end() - 1, close + 1


class _Reader:
    def __init__(self, spec: SourceTable, source_file: str, cap: int) -> None:
        self.spec = spec
        self.source_file = source_file
        self.cap = cap
        self.schema: dict[str, pl.DataType] = {c: pl.String() for c in spec.columns}

    # -- shapes --------------------------------------------------------------------------------

    def empty(self) -> _Raw:
        return _Raw(self._numbered(self._no_rows(), 1), _Found(self.cap), 0)

    def array(self, data: bytes, start: int, end: int) -> _Raw:
        """The array data[start:end] (brackets included) of a bare or wrapped file."""
        body = data[start + 1 : end - 1]
        if _SURROGATE_ESCAPE.search(body):
            return self.document(data)
        for join_lines in (False, True) if b"\n" in body else (False,):
            try:
                frame = pl.read_ndjson(_array_as_lines(body, join_lines), schema=self.schema)
            except _READ_ERRORS:
                continue
            return _Raw(self._numbered(frame, 1), _Found(self.cap), frame.height)
        return self.document(data)

    def lines(self, data: bytes) -> _Raw:
        if _SURROGATE_ESCAPE.search(data):
            return self._lines_slow(data)
        try:
            frame = pl.read_ndjson(data, schema=self.schema)
        except _READ_ERRORS:
            return self._lines_slow(data)
        if frame.height == 1 and frame.null_count().sum_horizontal().item() == frame.width:
            # A single object holding none of the table's fields: perhaps a wrapper with other
            # keys (`{"sales_order": [...], "count": 3}`), or not records at all.
            return self.document(data)
        return _Raw(self._numbered(frame, 1), _Found(self.cap), frame.height)

    def document(self, data: bytes, from_lines: bool = False) -> _Raw:
        """Slow path: the whole file through json.loads, then classified."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            first = _NOT_WS.search(data)
            if not from_lines and first is not None:
                several_lines = b"\n" in data[first.start() : _last_non_ws(data, len(data))]
                if data[first.start()] == ord("{") or several_lines:
                    # JSON Lines with a bad line (even the first one): keep the good ones
                    return self._lines_slow(data, from_document=True)
            if isinstance(exc, RecursionError):
                return self._file_reject("too deep", "JSON nested too deep to read", data)
            if isinstance(exc, UnicodeDecodeError):
                return self._file_reject("not UTF-8", f"not valid UTF-8: {exc}", data)
            return self._file_reject("not valid JSON", f"not valid JSON: {exc}", data)
        return self._from_document(doc, data)

    # -- slow paths ----------------------------------------------------------------------------

    def _from_document(self, doc: Any, data: bytes) -> _Raw:
        name = self.spec.name
        if isinstance(doc, dict):
            if len(doc) == 1 and isinstance(next(iter(doc.values())), list):
                return self._from_values(next(iter(doc.values())), data)
            if any(c in doc for c in self.spec.columns):
                return self._from_values([doc], data)
            keys = ", ".join(_clip(repr(k), _MAX_QUOTED) for k in list(doc)[:5])
            return self._file_reject(
                "not records",
                f'JSON object is neither {{"{name}": [records]}} nor a {name} record '
                f"(keys: {keys or 'none'})",
                data,
            )
        if isinstance(doc, list):
            return self._from_values(doc, data)
        return self._file_reject(
            "not records",
            f"JSON document is {_json_kind(doc)}, expected records "
            f'(an array, {{"{name}": [...]}} or JSON Lines)',
            data,
        )

    def _from_values(self, values: list[Any], data: bytes) -> _Raw:
        if values and not any(isinstance(v, dict) for v in values):
            return self._file_reject(
                "not records",
                f"JSON array holds no objects (first element is {_json_kind(values[0])})",
                data,
            )
        found = _Found(self.cap)
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
                    f"record is not a JSON object: {_json_kind(value)}" if detail else "",
                    _dumps(value) if detail else None,
                )
        frame = self._from_dicts(records, numbers, found)
        return _Raw(frame, found, len(values))

    def _lines_slow(self, data: bytes, from_document: bool = False) -> _Raw:
        """JSON Lines that Polars could not read as a whole: find the bad lines, vectorised.

        Every line is classified at once (Polars' JSON parser says which lines are JSON, a
        Python pass which are not UTF-8), the good ones are read by Polars in one go, and only
        lines holding a surrogate escape go through json one by one. Cost: a few reads of the
        file, however many lines are bad.
        """
        if not from_document and self._first_line_is_bad(data):
            # Perhaps not JSON Lines at all but one pretty-printed document.
            whole = self._try_document(data)
            if whole is not None:
                return whole
        lines = data.split(b"\n")
        bad_utf8: dict[int, tuple[str, bytes]] = {}  # line index -> (problem, the line)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            for index, line in enumerate(lines):
                if not line.isascii():
                    try:
                        line.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        bad_utf8[index] = (str(exc), line)
                        lines[index] = b"\x00"  # a stand-in that is neither blank nor JSON
        utf8 = pl.Series("utf8", [True] * len(lines), dtype=pl.Boolean())
        if bad_utf8:
            utf8 = utf8.scatter(list(bad_utf8), False)
        text = pl.Series("line", lines, dtype=pl.Binary()).cast(pl.String())
        column = pl.col("line")
        frame = pl.DataFrame([text, utf8]).with_columns(
            column.str.contains(r"[^ \t\r\n]").alias("present"),
            column.str.json_path_match("$").is_not_null().alias("json"),
            column.str.contains(r"^[ \t\r\n]*\{").alias("object"),
            column.str.contains(_SURROGATE_ESCAPE_TEXT).alias("escape"),
        )
        del text
        frame = frame.with_columns(
            pl.col("present").cum_sum().cast(pl.Int64()).alias(RECORD_NUMBER),
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64()).alias("line_number"),
        )
        present = frame.filter(pl.col("present"))
        del frame
        records_read = present.height
        readable = pl.col("utf8") & pl.col("json") & pl.col("object")
        frames: list[pl.DataFrame] = []
        # Lines json reads one by one: those with a surrogate escape (Polars reads a lone one
        # as U+0000), or every readable line if Polars cannot read the lines it called good.
        by_json = pl.col("utf8") & pl.col("escape")  # Polars cannot judge these lines
        good = present.filter(readable & ~pl.col("escape"))
        if good.height:
            # the original bytes, joined (cheaper than joining the text and encoding it)
            body = b"\n".join([lines[i - 1] for i in good["line_number"].to_list()])
            try:
                read = pl.read_ndjson(body, schema=self.schema)
            except _READ_ERRORS:
                read = None
            if read is not None and read.height == good.height:
                frames.append(read.with_columns(good[RECORD_NUMBER]))
            else:
                by_json = pl.col("utf8") & (pl.col("escape") | readable)
        del good, lines
        # Every other line is a reject, its kind told by Polars' verdict: counted at once, and
        # only the first ones described (json.loads gives the message).
        kind = (
            pl.when(~pl.col("utf8"))
            .then(pl.lit("invalid UTF-8"))
            .when(~pl.col("json"))
            .then(pl.lit("invalid JSON"))
            .otherwise(pl.lit("not a JSON object"))
        )
        others = present.filter(~readable | by_json).with_columns(
            by_json.alias("by_json"), kind.alias("kind")
        )
        del present
        rejected = others.filter(~pl.col("by_json"))
        found = _Found(self.cap)
        for kind_name, count in rejected.group_by("kind").len().iter_rows():
            found.tally[(JSON_FIELD, kind_name)] += count
        found.records += rejected.height
        visit = others.filter(
            pl.col("by_json") | ((~pl.col("by_json")).cum_sum() <= self.cap)
        ).select("line", RECORD_NUMBER, "line_number", "by_json", "kind")
        records: list[dict[str, Any]] = []
        record_numbers: list[int] = []
        for line, number, line_number, json_reads, kind_name in visit.iter_rows():
            if not json_reads:
                found.describe(
                    number,
                    JSON_FIELD,
                    *self._line_problem(
                        kind_name, line, line_number, bad_utf8.get(line_number - 1)
                    ),
                )
                continue
            try:
                value = json.loads(line)
            except (ValueError, RecursionError) as exc:  # Polars and json disagree: json wins
                message = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
                found.records += 1
                found.add(
                    number,
                    JSON_FIELD,
                    "invalid JSON",
                    f"invalid JSON on line {line_number}: {message}",
                    line.strip(),
                )
                continue
            if not isinstance(value, dict):
                found.records += 1
                found.add(
                    number,
                    JSON_FIELD,
                    "not a JSON object",
                    f"line {line_number} is not a JSON object: {_json_kind(value)}",
                    line.strip(),
                )
                continue
            records.append(value)
            record_numbers.append(number)
        if records:
            frames.append(self._from_dicts(records, record_numbers, found))
        if found.tally and not frames:
            # Not one line is a JSON object: this is not JSON Lines, but junk (or a truncated
            # document); one "<file>" reject says so better than a reject per line.
            return self.document(data, from_lines=True)
        rows = (
            pl.concat(frames).sort(RECORD_NUMBER) if frames else self._numbered(self._no_rows(), 1)
        )
        found.detail.sort(key=lambda d: d[0])
        return _Raw(rows, found, records_read)

    @staticmethod
    def _line_problem(
        kind: str, line: str, line_number: int, utf8_problem: tuple[str, bytes] | None
    ) -> tuple[str, str]:
        """(reason, raw value) of a line Polars could not take as a record."""
        if utf8_problem is not None:
            problem, original = utf8_problem
            return f"invalid UTF-8 on line {line_number}: {problem}", _decode(original.strip())
        raw = line.strip()
        try:
            value = json.loads(line)
        except RecursionError:
            return f"invalid JSON on line {line_number}: nested too deep", raw
        except ValueError as exc:
            return f"invalid JSON on line {line_number}: {exc}", raw
        if kind == "invalid JSON":  # json reads it, Polars does not (NaN, 1e400, ...)
            return f"invalid JSON on line {line_number}: not strict JSON", raw
        return f"line {line_number} is not a JSON object: {_json_kind(value)}", raw

    def _first_line_is_bad(self, data: bytes) -> bool:
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            end = len(data) if end == -1 else end
            line = data[start:end]
            if _NOT_WS.search(line):
                try:
                    json.loads(line)
                except (ValueError, RecursionError):
                    return True
                return False
            start = end + 1
        return False

    def _try_document(self, data: bytes) -> _Raw | None:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return None
        return self._from_document(doc, data)

    def _from_dicts(
        self, records: list[dict[str, Any]], numbers: list[int], found: _Found
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
                text = _as_text(value)
                if text is not None and _SURROGATE_CHAR.search(text):
                    bad = True
                    found.add(
                        number,
                        column,
                        LONE_SURROGATE,
                        f"{LONE_SURROGATE}: {_clip(_dumps(value), _MAX_QUOTED)}",
                        _dumps(value),
                    )
            if bad:
                found.records += 1
            else:
                kept.append(record)
                kept_numbers.append(number)
        columns = {c: [_as_text(r.get(c)) for r in kept] for c in self.spec.columns}
        frame = pl.DataFrame(columns, schema=self.schema)
        return frame.with_columns(pl.Series(RECORD_NUMBER, kept_numbers, dtype=pl.Int64()))

    # -- frames --------------------------------------------------------------------------------

    def _no_rows(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def _numbered(self, frame: pl.DataFrame, first_number: int) -> pl.DataFrame:
        numbers = pl.int_range(
            first_number, first_number + frame.height, dtype=pl.Int64(), eager=True
        )
        return frame.with_columns(numbers.alias(RECORD_NUMBER))

    def _file_reject(self, kind: str, reason: str, data: bytes) -> _Raw:
        found = _Found(self.cap)
        found.add(0, FILE_FIELD, kind, reason, _decode(data[: _MAX_RAW_VALUE * 4]))
        return _Raw(self._numbered(self._no_rows(), 1), found, 0)


def _array_as_lines(body: bytes, join_lines: bool) -> bytes:
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
    separator = _RECORD_SEPARATOR.search(body)
    if separator is None:
        return body
    found = separator.group()
    return body.replace(found, found.replace(b",", b" " if b"\n" in found else b"\n"))


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _dumps(value)


def _dumps(value: Any) -> str:
    """A decoded JSON value as JSON text (ASCII: a lone surrogate stays an escape)."""
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):  # nested deeper than the encoder goes
        return "<value nested too deep to show>"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({_clip(repr(value), _MAX_QUOTED)})"
    if isinstance(value, str):
        return f"a string ({_clip(_dumps(value), _MAX_QUOTED)})"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _clip_raw(text: str) -> str:
    """A raw_value: at most _MAX_RAW_VALUE characters, the last one "…" if it was cut."""
    return text if len(text) <= _MAX_RAW_VALUE else text[: _MAX_RAW_VALUE - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Typing: all-String frame -> typed frame; bad values and missing required fields -> rejects

_Parser = Callable[[pl.Expr], pl.Expr]  # String column -> typed column, null where unreadable


@dataclass(frozen=True)
class _Column:
    """How one target type is read from text."""

    # Ways to read a value, in order. The first that reads a column's sample value is run on
    # the whole column; the others only on the values it could not read, each on what is left.
    parsers: Sequence[_Parser]
    kind: Callable[[pl.Expr], pl.Expr]  # raw text of an unreadable value -> kind of problem


@dataclass(frozen=True)
class _Typed:
    rows: pl.DataFrame  # the good rows, typed
    details: pl.DataFrame  # _DETAIL: the first problems (at most the cap), in record order
    counts: pl.DataFrame  # REJECT_COUNTS: every problem
    bad_records: int  # rows with at least one problem


def _type_rows(raw: pl.DataFrame, spec: SourceTable, limits: ParseLimits) -> _Typed:
    """Cast every column; values that cannot be read, are missing, or are implausible reject
    their row. Problems are counted exactly, but only the first `max_reject_details` of each
    column are described (a file of a million empty records costs counts, not 12M rows)."""
    cap = limits.max_reject_details
    readers = {c: _column_reader(dtype) for c, dtype in spec.columns.items()}
    chosen = {c: _choose(readers[c].parsers, raw.get_column(c)) for c in spec.columns}
    casts = [chosen[c](pl.col(c)).alias(c) for c in spec.columns]
    # Lazy: the engine runs the column casts in parallel (markedly faster than an eager select).
    typed = raw.lazy().select(*casts, pl.col(RECORD_NUMBER)).collect()
    bad = pl.repeat(False, raw.height, dtype=pl.Boolean(), eager=True)
    details: list[pl.DataFrame] = []
    counts: list[pl.DataFrame] = []

    def problems(column: str, rows: pl.Series, kinds: pl.Series | str, reason: _Reason) -> None:
        """Rows (indices) with a problem in `column`: all counted, the first `cap` described.
        `kinds`: the kind of each problem, or one kind for all."""
        nonlocal bad
        if not len(rows):
            return
        bad = bad.scatter(rows, True)
        if isinstance(kinds, str):
            counts.append(
                pl.DataFrame([(column, kinds, len(rows))], schema=REJECT_COUNTS, orient="row")
            )
            kinds = pl.repeat(kinds, min(cap, len(rows)), dtype=pl.String(), eager=True)
        else:
            counts.append(
                kinds.to_frame("reason")
                .group_by("reason")
                .len("count")
                .select(
                    pl.lit(column, dtype=pl.String()).alias("field"),
                    pl.col("reason"),
                    pl.col("count").cast(pl.Int64()),
                )
            )
        first = rows.head(cap)
        frame = pl.DataFrame(
            {
                RECORD_NUMBER: raw.get_column(RECORD_NUMBER).gather(first),
                "kind": kinds.head(cap),
                "value": raw.get_column(column).gather(first),
            }
        )
        details.append(
            frame.select(
                pl.col(RECORD_NUMBER),
                pl.lit(column, dtype=pl.String()).alias("field"),
                reason(pl.col("kind"), pl.col("value")).alias("reason"),
                _clip_raw_expr(pl.col("value")).alias("raw_value"),
                pl.lit(len(details), dtype=pl.Int64()).alias("order"),
            )
        )

    for column, dtype in spec.columns.items():
        source = raw.get_column(column)
        if column not in spec.nullable and source.null_count():
            problems(column, source.is_null().arg_true(), MISSING_REASON, _missing_reason)
        result = typed.get_column(column)
        if result.null_count() != source.null_count():
            failed = (result.is_null() & source.is_not_null()).arg_true()
            values = source.gather(failed)
            others = [p for p in readers[column].parsers if p is not chosen[column]]
            recovered = _first_success(values, others, dtype)
            read = recovered.is_not_null()
            if read.any():
                result = result.scatter(failed.filter(read), recovered.filter(read))
                typed = typed.with_columns(result)
            if not read.all():
                unread = values.filter(~read)
                kinds = unread.to_frame("v").with_columns(
                    readers[column].kind(pl.col("v")).alias("k")
                )["k"]
                problems(column, failed.filter(~read), kinds, _quoted_reason)
        implausible = _implausible(result, dtype, limits)
        if implausible is not None:
            problems(column, implausible.arg_true(), IMPLAUSIBLE_DATE, _window_reason(limits))
        if dtype == pl.String():
            too_long = (source.str.len_chars() > limits.max_string_chars).fill_null(False)
            if too_long.any():
                kind = f"string longer than {limits.max_string_chars} characters"
                problems(column, too_long.arg_true(), kind, _length_reason)
    no_counts = pl.DataFrame(schema=REJECT_COUNTS)
    if not details:
        return _Typed(typed, pl.DataFrame(schema=_DETAIL), no_counts, 0)
    found = (
        pl.concat(details)
        .sort([RECORD_NUMBER, "order"], maintain_order=True)
        .head(cap)
        .drop("order")
    )
    return _Typed(
        rows=typed.filter(~bad),
        details=found,
        counts=pl.concat(counts),
        bad_records=int(bad.sum()),
    )


_Reason = Callable[[pl.Expr, pl.Expr], pl.Expr]  # (kind, raw value) -> reason


def _clipped(e: pl.Expr) -> pl.Expr:
    return (
        pl.when(e.str.len_chars() > _MAX_QUOTED)
        .then(pl.concat_str(e.str.slice(0, _MAX_QUOTED), pl.lit("…")))
        .otherwise(e)
    )


def _clip_raw_expr(e: pl.Expr) -> pl.Expr:
    return (
        pl.when(e.str.len_chars() > _MAX_RAW_VALUE)
        .then(pl.concat_str(e.str.slice(0, _MAX_RAW_VALUE - 1), pl.lit("…")))
        .otherwise(e)
    )


def _missing_reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
    return kind


def _quoted_reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
    """`kind: 'value'`, the value clipped to _MAX_QUOTED characters."""
    return pl.concat_str(kind, pl.lit(": '"), _clipped(value), pl.lit("'"))


def _window_reason(limits: ParseLimits) -> _Reason:
    def reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
        return pl.concat_str(
            kind, pl.lit(": '"), _clipped(value), pl.lit(f"' is outside {limits.window}")
        )

    return reason


def _length_reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        kind,
        pl.lit(" ("),
        value.str.len_chars().cast(pl.String()),
        pl.lit("): '"),
        _clipped(value),
        pl.lit("'"),
    )


def _implausible(values: pl.Series, dtype: pl.DataType, limits: ParseLimits) -> pl.Series | None:
    """Where a read date or timestamp falls outside the plausible window (None: no such)."""
    if isinstance(dtype, pl.Datetime):
        low: date | datetime = limits.min_timestamp
        high: date | datetime = limits.max_timestamp
    elif dtype == pl.Date():
        low, high = limits.min_date, limits.max_date
    else:
        return None
    outside = (~values.is_between(low, high)).fill_null(False)
    return outside if outside.any() else None


def _apply(parser: _Parser, values: pl.Series) -> pl.Series:
    return values.to_frame("v").select(parser(pl.col("v"))).to_series()


def _choose(parsers: Sequence[_Parser], values: pl.Series) -> _Parser:
    """The first parser that reads a sample value from the start of the column."""
    sample = values.head(_SAMPLE_ROWS).drop_nulls().head(1)
    if len(sample):
        for parser in parsers:
            if not _apply(parser, sample).null_count():
                return parser
    return parsers[0]


def _first_success(values: pl.Series, parsers: Iterable[_Parser], dtype: pl.DataType) -> pl.Series:
    """Each value read by the first parser that can read it (null if none can)."""
    out = pl.repeat(None, len(values), dtype=dtype, eager=True)
    pending = pl.int_range(0, len(values), dtype=pl.UInt32(), eager=True)
    for parser in parsers:
        if not len(pending):
            break
        parsed = _apply(parser, values.gather(pending))
        ok = parsed.is_not_null()
        if ok.any():
            out = out.scatter(pending.filter(ok), parsed.filter(ok).cast(dtype))
            pending = pending.filter(~ok)
    return out


def _column_reader(dtype: pl.DataType) -> _Column:
    if dtype == pl.String():
        return _Column((lambda e: e,), lambda e: pl.lit("unreadable string"))
    if isinstance(dtype, pl.Datetime):
        return _Column(_timestamp_parsers(dtype.time_unit), _constant("not a timestamp"))
    if dtype == pl.Date():
        return _Column(_date_parsers(), _constant("not a date"))
    if isinstance(dtype, pl.Decimal):
        return _decimal_reader(dtype)
    if dtype.is_integer():
        return _integer_reader(dtype)
    if dtype == pl.Boolean():
        return _Column((_boolean,), _constant("not a boolean (true/false, t/f)"))
    if dtype.is_float():
        return _Column(
            (
                lambda e: e.cast(dtype, strict=False),
                lambda e: e.str.strip_chars().cast(dtype, strict=False),
            ),
            _constant("not a number"),
        )
    raise TypeError(f"no reader for source column type {dtype}")


def _boolean(e: pl.Expr) -> pl.Expr:
    """A JSON boolean (its text) or PostgreSQL's text forms: true/false, t/f."""
    text = e.str.strip_chars().str.to_lowercase()
    return (
        pl.when(text.is_in(["true", "t"]))
        .then(pl.lit(True))
        .when(text.is_in(["false", "f"]))
        .then(pl.lit(False))
        .otherwise(pl.lit(None, dtype=pl.Boolean()))
    )


def _constant(kind: str) -> Callable[[pl.Expr], pl.Expr]:
    return lambda e: pl.lit(kind, dtype=pl.String())


# -- timestamps and dates -----------------------------------------------------------------------


def _timestamp_parsers(time_unit: Any) -> tuple[_Parser, ...]:
    # cache=False: timestamps are nearly all distinct, the cache only costs time.
    def naive(fmt: str, strip: bool = False) -> _Parser:
        return lambda e: (e.str.strip_chars() if strip else e).str.to_datetime(
            fmt, time_unit=time_unit, strict=False, cache=False
        )

    def zoned(fmt: str) -> _Parser:
        return lambda e: (
            e.str.to_datetime(fmt + "%#z", time_unit=time_unit, strict=False, cache=False)
            .dt.convert_time_zone("UTC")
            .dt.replace_time_zone(None)
        )

    def epoch_ms(e: pl.Expr) -> pl.Expr:
        millis = e.str.strip_chars().cast(pl.Int64(), strict=False)
        in_range = millis.is_between(_EPOCH_MS_MIN, _EPOCH_MS_MAX)  # years 1 to 9999
        return pl.from_epoch(pl.when(in_range).then(millis), time_unit="ms").cast(
            pl.Datetime(time_unit)
        )

    return (
        naive(_ISO_T),
        naive(_ISO_SPACE),
        epoch_ms,
        zoned(_ISO_T),
        zoned(_ISO_SPACE),
        naive(_ISO_T, strip=True),
        naive(_ISO_SPACE, strip=True),
    )


def _date_parsers() -> tuple[_Parser, ...]:
    def date_of(parser: _Parser) -> _Parser:
        return lambda e: parser(e).dt.date()

    return (
        lambda e: e.str.to_date(_DATE, strict=False),
        lambda e: e.str.strip_chars().str.to_date(_DATE, strict=False),
        *(date_of(parser) for parser in _timestamp_parsers("us")),
    )


# -- numbers ------------------------------------------------------------------------------------


def _decimal_reader(dtype: pl.Decimal) -> _Column:
    scale = dtype.scale
    precision = dtype.precision or 38
    # Read at a wider scale, round half away from zero, then narrow (out of range -> null).
    wide = pl.Decimal(38, min(38 - (precision - scale), scale + 16))

    def cast(e: pl.Expr) -> pl.Expr:
        return (
            e.cast(wide, strict=False)
            .round(scale, mode="half_away_from_zero")
            .cast(dtype, strict=False)
        )

    def kind(e: pl.Expr) -> pl.Expr:
        number = e.str.strip_chars().cast(pl.Float64(), strict=False)
        return (
            pl.when(number.is_finite().fill_null(False))
            .then(pl.lit(f"out of range for decimal({precision},{scale})"))
            .otherwise(pl.lit("not a decimal"))
        )

    return _Column((cast, lambda e: cast(e.str.strip_chars())), kind)


def _integer_reader(dtype: pl.DataType) -> _Column:
    low, high = _INT_RANGES[dtype]

    def whole_number(e: pl.Expr) -> pl.Expr:
        """The value as a float if it is a whole number ("42.0", "4.2e1"), else null."""
        number = e.str.strip_chars().cast(pl.Float64(), strict=False)
        return pl.when(number.is_finite() & (number == number.floor())).then(number)

    def lenient(e: pl.Expr) -> pl.Expr:
        exact = e.str.strip_chars().cast(pl.Int64(), strict=False)  # exact beyond 2**53 too
        whole = whole_number(e)
        value = pl.coalesce(exact.cast(pl.Float64()), whole)
        as_int = pl.coalesce(exact, whole.cast(pl.Int64(), strict=False))
        return pl.when(value.is_between(low, high)).then(as_int).cast(dtype, strict=False)

    def kind(e: pl.Expr) -> pl.Expr:
        return (
            pl.when(whole_number(e).is_not_null())
            .then(pl.lit(f"out of range for {str(dtype).lower()}"))
            .otherwise(pl.lit("not an integer"))
        )

    return _Column((lambda e: e.cast(dtype, strict=False), lenient), kind)


_INT_RANGES: dict[pl.DataType, tuple[int, int]] = {
    pl.Int8(): (-(2**7), 2**7 - 1),
    pl.Int16(): (-(2**15), 2**15 - 1),
    pl.Int32(): (-(2**31), 2**31 - 1),
    pl.Int64(): (-(2**63), 2**63 - 1),
    pl.UInt8(): (0, 2**8 - 1),
    pl.UInt16(): (0, 2**16 - 1),
    pl.UInt32(): (0, 2**32 - 1),
    pl.UInt64(): (0, 2**64 - 1),
}
