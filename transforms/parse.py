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
rejects (field "<json>") while the other lines still parse (the file is split in parts,
recursively, so that only the neighbourhood of a bad line is parsed line by line); an array
element that is not an object is a "<json>" reject too. A document that holds no records at all
(not JSON, a scalar, an object that is neither wrapped nor a record, an array without objects,
JSON Lines of which no line is an object) becomes a single reject: record 0, field "<file>".

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

import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from polars.exceptions import PanicException, PolarsError

from transforms.schemas import REJECTS, SOURCE_TABLES, SourceTable

RECORD_NUMBER = "record_number"
JSON_FIELD = "<json>"
FILE_FIELD = "<file>"
MISSING_REASON = "missing required field"

_BOM = b"\xef\xbb\xbf"
_NOT_WS = re.compile(rb"[^ \t\r\n]")
_WRAPPED_HEAD = re.compile(rb'\{[ \t\r\n]*"(?:[^"\\]|\\.)*"[ \t\r\n]*:[ \t\r\n]*\[')
_RECORD_SEPARATOR = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
_WS_BYTES = frozenset(b" \t\r\n")
_ISO_T = "%Y-%m-%dT%H:%M:%S%.f"
_ISO_SPACE = "%Y-%m-%d %H:%M:%S%.f"
_DATE = "%Y-%m-%d"
_EPOCH_MS_MIN = -62_135_596_800_000  # 0001-01-01T00:00:00
_EPOCH_MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999
_SAMPLE_ROWS = 1_000  # rows looked at for a sample value that chooses a column's parser
_SPLIT_PARTS = 16  # JSON Lines fallback: parts an unreadable part is split into
_MIN_SPLIT_BYTES = 64 * 1024  # JSON Lines fallback: below this, parse line by line
_MAX_QUOTED = 100  # characters of a bad value quoted in a reason
_MAX_RAW_RECORD = 1_000  # characters of a bad line / document kept as raw_value
_READ_ERRORS = (PolarsError, PanicException, ValueError)


@dataclass(frozen=True)
class ParsedFile:
    """The typed good rows of one file, its rejects, and how many records it held."""

    rows: pl.DataFrame  # SOURCE_TABLES[table].columns, in order, then record_number (Int64)
    rejects: pl.DataFrame  # schemas.REJECTS
    records_read: int  # records found in the file, good and bad


def parse_file(data: bytes, table: str, source_file: str) -> ParsedFile:
    """Parse one ingestion file of `table` (a key of SOURCE_TABLES).

    Never raises for bad content: unreadable records and values become rejects. Raises
    ValueError only for a table this module has no schema for.
    """
    spec = SOURCE_TABLES.get(table)
    if spec is None:
        raise ValueError(f"unknown source table {table!r}; known: {sorted(SOURCE_TABLES)}")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    reader = _Reader(spec, source_file)
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
    rows, value_rejects = _type_rows(raw.frame, spec, source_file)
    rejects = raw.rejects
    if value_rejects.height:
        rejects = pl.concat([rejects, value_rejects]) if rejects.height else value_rejects
        rejects = rejects.sort(RECORD_NUMBER, maintain_order=True)
    return ParsedFile(rows=rows, rejects=rejects, records_read=raw.records_read)


# ---------------------------------------------------------------------------------------------
# Reading: bytes -> one all-String frame (the table's columns + record_number) + record rejects


@dataclass(frozen=True)
class _Raw:
    frame: pl.DataFrame  # every table column as String, then record_number
    rejects: pl.DataFrame  # "<json>" / "<file>" rejects
    records_read: int


@dataclass
class _Piece:
    """Part of a JSON Lines file: read by Polars (`frame`) or line by line (the rest)."""

    frame: pl.DataFrame | None = None
    count: int = 0  # records (non-blank lines) in the piece
    good_lines: list[bytes] = field(default_factory=list)
    good_records: list[dict[str, Any]] = field(default_factory=list)
    good_numbers: list[int] = field(default_factory=list)  # 1-based within the piece
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (number in piece, ...)


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
    def __init__(self, spec: SourceTable, source_file: str) -> None:
        self.spec = spec
        self.source_file = source_file
        self.schema: dict[str, pl.DataType] = {c: pl.String() for c in spec.columns}

    # -- shapes --------------------------------------------------------------------------------

    def empty(self) -> _Raw:
        return _Raw(self._numbered(self._no_rows(), 1), self._no_rejects(), 0)

    def array(self, data: bytes, start: int, end: int) -> _Raw:
        """The array data[start:end] (brackets included) of a bare or wrapped file."""
        body = data[start + 1 : end - 1]
        for join_lines in (False, True) if b"\n" in body else (False,):
            try:
                frame = pl.read_ndjson(_array_as_lines(body, join_lines), schema=self.schema)
            except _READ_ERRORS:
                continue
            return _Raw(self._numbered(frame, 1), self._no_rejects(), frame.height)
        return self.document(data)

    def lines(self, data: bytes) -> _Raw:
        try:
            frame = pl.read_ndjson(data, schema=self.schema)
        except _READ_ERRORS:
            return self._lines_slow(data)
        if frame.height == 1 and frame.null_count().sum_horizontal().item() == frame.width:
            # A single object holding none of the table's fields: perhaps a wrapper with other
            # keys (`{"sales_order": [...], "count": 3}`), or not records at all.
            return self.document(data)
        return _Raw(self._numbered(frame, 1), self._no_rejects(), frame.height)

    def document(self, data: bytes, from_lines: bool = False) -> _Raw:
        """Slow path: the whole file through json.loads, then classified."""
        try:
            doc = json.loads(data)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            first = _NOT_WS.search(data)
            if not from_lines and first is not None and data[first.start()] == ord("{"):
                return self._lines_slow(data, from_document=True)
            return self._file_reject(f"not valid JSON: {exc}", data)
        return self._from_document(doc, data)

    # -- slow paths ----------------------------------------------------------------------------

    def _from_document(self, doc: Any, data: bytes) -> _Raw:
        name = self.spec.name
        if isinstance(doc, dict):
            if len(doc) == 1 and isinstance(next(iter(doc.values())), list):
                return self._from_values(next(iter(doc.values())), data)
            if any(c in doc for c in self.spec.columns):
                return self._from_values([doc], data)
            keys = ", ".join(repr(k) for k in list(doc)[:5])
            return self._file_reject(
                f'JSON object is neither {{"{name}": [records]}} nor a {name} record '
                f"(keys: {keys or 'none'})",
                data,
            )
        if isinstance(doc, list):
            return self._from_values(doc, data)
        return self._file_reject(
            f"JSON document is {_json_kind(doc)}, expected records "
            f'(an array, {{"{name}": [...]}} or JSON Lines)',
            data,
        )

    def _from_values(self, values: list[Any], data: bytes) -> _Raw:
        if values and not any(isinstance(v, dict) for v in values):
            return self._file_reject(
                f"JSON array holds no objects (first element is {_json_kind(values[0])})", data
            )
        records: list[dict[str, Any]] = []
        numbers: list[int] = []
        rejects: list[tuple[int, str, str]] = []
        for number, value in enumerate(values, start=1):
            if isinstance(value, dict):
                records.append(value)
                numbers.append(number)
            else:
                text = json.dumps(value)
                rejects.append((number, f"record is not a JSON object: {_json_kind(value)}", text))
        return _Raw(self._from_dicts(records, numbers), self._json_rejects(rejects), len(values))

    def _lines_slow(self, data: bytes, from_document: bool = False) -> _Raw:
        """JSON Lines that Polars could not read as a whole: find the bad lines."""
        if not from_document and self._first_line_is_bad(data):
            # Perhaps not JSON Lines at all but one pretty-printed document.
            whole = self._try_document(data)
            if whole is not None:
                return whole
        pieces: list[_Piece] = []
        self._split_read(data, 0, len(data), pieces, known_bad=True)
        frames: list[pl.DataFrame] = []
        rejects: list[tuple[int, str, str]] = []
        offset = 0
        for piece in pieces:
            if piece.frame is not None:
                frames.append(self._numbered(piece.frame, offset + 1))
            else:
                frames.append(
                    self._lines_or_dicts(
                        piece.good_lines,
                        piece.good_records,
                        [offset + n for n in piece.good_numbers],
                    )
                )
                rejects += [(offset + n, reason, text) for n, reason, text in piece.rejects]
            offset += piece.count
        frame = pl.concat(frames) if frames else self._numbered(self._no_rows(), 1)
        if rejects and not frame.height:
            # Not one line is a JSON object: this is not JSON Lines, but junk (or a truncated
            # document); one "<file>" reject says so better than a reject per line.
            return self.document(data, from_lines=True)
        return _Raw(frame, self._json_rejects(rejects), offset)

    def _first_line_is_bad(self, data: bytes) -> bool:
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            end = len(data) if end == -1 else end
            line = data[start:end]
            if _NOT_WS.search(line):
                try:
                    json.loads(line)
                except ValueError:
                    return True
                return False
            start = end + 1
        return False

    def _split_read(
        self, data: bytes, lo: int, hi: int, out: list[_Piece], known_bad: bool
    ) -> None:
        """Read data[lo:hi] (whole lines) with Polars; split what it cannot read, and recurse.

        A part is split in _SPLIT_PARTS at line ends, so one bad line costs about one more read
        of the file, not one per halving; small parts are parsed line by line.
        """
        if not known_bad:
            try:
                frame = pl.read_ndjson(data[lo:hi], schema=self.schema)
            except _READ_ERRORS:
                pass
            else:
                out.append(_Piece(frame=frame, count=frame.height))
                return
        if hi - lo <= _MIN_SPLIT_BYTES:
            out.append(self._line_by_line(data, lo, hi))
            return
        bounds = [lo]
        for part in range(1, _SPLIT_PARTS):
            line_end = data.find(b"\n", max(bounds[-1], lo + (hi - lo) * part // _SPLIT_PARTS), hi)
            if line_end == -1 or line_end + 1 >= hi:
                break
            bounds.append(line_end + 1)
        bounds.append(hi)
        if len(bounds) == 2:  # one long line
            out.append(self._line_by_line(data, lo, hi))
            return
        for part_lo, part_hi in itertools.pairwise(bounds):
            if part_hi > part_lo:
                self._split_read(data, part_lo, part_hi, out, known_bad=False)

    def _line_by_line(self, data: bytes, lo: int, hi: int) -> _Piece:
        piece = _Piece()
        first_line = data.count(b"\n", 0, lo) + 1
        for index, line in enumerate(data[lo:hi].split(b"\n")):
            if not _NOT_WS.search(line):
                continue
            piece.count += 1
            line_number = first_line + index
            try:
                value = json.loads(line)
            except ValueError as exc:
                reason = f"invalid JSON on line {line_number}: {exc}"
                piece.rejects.append((piece.count, reason, _decode(line).strip()))
                continue
            if not isinstance(value, dict):
                reason = f"line {line_number} is not a JSON object: {_json_kind(value)}"
                piece.rejects.append((piece.count, reason, _decode(line).strip()))
                continue
            piece.good_lines.append(line)
            piece.good_records.append(value)
            piece.good_numbers.append(piece.count)
        return piece

    def _try_document(self, data: bytes) -> _Raw | None:
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        return self._from_document(doc, data)

    def _lines_or_dicts(
        self, lines: list[bytes], records: list[dict[str, Any]], numbers: list[int]
    ) -> pl.DataFrame:
        """Good lines back through Polars (same text forms as the fast path); else json's dicts."""
        if lines:
            try:
                frame = pl.read_ndjson(b"\n".join(lines), schema=self.schema)
            except _READ_ERRORS:
                frame = None
            if frame is not None and frame.height == len(lines):
                return frame.with_columns(pl.Series(RECORD_NUMBER, numbers, dtype=pl.Int64()))
        return self._from_dicts(records, numbers)

    def _from_dicts(self, records: list[dict[str, Any]], numbers: list[int]) -> pl.DataFrame:
        """Records decoded by json, each value rendered as the text Polars would have given."""
        columns = {c: [_as_text(r.get(c)) for r in records] for c in self.spec.columns}
        frame = pl.DataFrame(columns, schema=self.schema)
        return frame.with_columns(pl.Series(RECORD_NUMBER, numbers, dtype=pl.Int64()))

    # -- frames --------------------------------------------------------------------------------

    def _no_rows(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def _numbered(self, frame: pl.DataFrame, first_number: int) -> pl.DataFrame:
        numbers = pl.int_range(
            first_number, first_number + frame.height, dtype=pl.Int64(), eager=True
        )
        return frame.with_columns(numbers.alias(RECORD_NUMBER))

    def _no_rejects(self) -> pl.DataFrame:
        return pl.DataFrame(schema=REJECTS)

    def _json_rejects(self, rejects: list[tuple[int, str, str]]) -> pl.DataFrame:
        if not rejects:
            return self._no_rejects()
        return pl.DataFrame(
            {
                "source_file": [self.source_file] * len(rejects),
                "source_table": [self.spec.name] * len(rejects),
                "record_number": [r[0] for r in rejects],
                "field": [JSON_FIELD] * len(rejects),
                "reason": [r[1] for r in rejects],
                "raw_value": [_clip(r[2], _MAX_RAW_RECORD) for r in rejects],
            },
            schema=REJECTS,
        )

    def _file_reject(self, reason: str, data: bytes) -> _Raw:
        reject = pl.DataFrame(
            {
                "source_file": [self.source_file],
                "source_table": [self.spec.name],
                "record_number": [0],
                "field": [FILE_FIELD],
                "reason": [reason],
                "raw_value": [_clip(_decode(data[: _MAX_RAW_RECORD * 4]), _MAX_RAW_RECORD)],
            },
            schema=REJECTS,
        )
        return _Raw(self._numbered(self._no_rows(), 1), reject, 0)


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
    return json.dumps(value)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({_clip(repr(value), _MAX_QUOTED)})"
    if isinstance(value, str):
        return f"a string ({_clip(json.dumps(value), _MAX_QUOTED)})"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------------------------------------
# Typing: all-String frame -> typed frame; bad values and missing required fields -> rejects

_Parser = Callable[[pl.Expr], pl.Expr]  # String column -> typed column, null where unreadable


@dataclass(frozen=True)
class _Column:
    """How one target type is read from text."""

    # Ways to read a value, in order. The first that reads a column's sample value is run on
    # the whole column; the others only on the values it could not read, each on what is left.
    parsers: Sequence[_Parser]
    describe: Callable[[pl.Expr], pl.Expr]  # raw text of an unreadable value -> reason


def _type_rows(
    raw: pl.DataFrame, spec: SourceTable, source_file: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    readers = {c: _column_reader(dtype) for c, dtype in spec.columns.items()}
    chosen = {c: _choose(readers[c].parsers, raw.get_column(c)) for c in spec.columns}
    casts = [chosen[c](pl.col(c)).alias(c) for c in spec.columns]
    # Lazy: the engine runs the column casts in parallel (markedly faster than an eager select).
    typed = raw.lazy().select(*casts, pl.col(RECORD_NUMBER)).collect()
    problems: list[pl.DataFrame] = []  # row_index, record_number, field, reason, raw_value
    for column, dtype in spec.columns.items():
        source = raw.get_column(column)
        if column not in spec.nullable and source.null_count():
            missing = source.is_null().arg_true()
            problems.append(_problems(raw, missing, column, None, None))
        result = typed.get_column(column)
        if result.null_count() == source.null_count():
            continue  # the chosen parser read every value present
        failed = (result.is_null() & source.is_not_null()).arg_true()
        values = source.gather(failed)
        others = [p for p in readers[column].parsers if p is not chosen[column]]
        recovered = _first_success(values, others, dtype)
        read = recovered.is_not_null()
        if read.any():
            typed = typed.with_columns(result.scatter(failed.filter(read), recovered.filter(read)))
        if not read.all():
            bad = values.filter(~read)
            reasons = _apply(readers[column].describe, bad)
            problems.append(_problems(raw, failed.filter(~read), column, reasons, bad))
    if not problems:
        return typed, pl.DataFrame(schema=REJECTS)
    found = pl.concat(problems).sort("row_index", maintain_order=True)
    bad_rows = found.get_column("row_index").unique()
    keep = pl.repeat(True, raw.height, dtype=pl.Boolean(), eager=True).scatter(bad_rows, False)
    rejects = found.select(
        pl.lit(source_file, dtype=pl.String()).alias("source_file"),
        pl.lit(spec.name, dtype=pl.String()).alias("source_table"),
        pl.col(RECORD_NUMBER),
        pl.col("field"),
        pl.col("reason"),
        pl.col("raw_value"),
    )
    return typed.filter(keep), rejects


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


def _problems(
    raw: pl.DataFrame,
    rows: pl.Series,
    column: str,
    reasons: pl.Series | None,
    raw_values: pl.Series | None,
) -> pl.DataFrame:
    """Rejects of one column; no reasons = missing required field."""
    n = len(rows)
    if reasons is None:
        reasons = pl.Series([MISSING_REASON] * n, dtype=pl.String())
    return pl.DataFrame(
        {
            "row_index": rows.cast(pl.Int64()),
            RECORD_NUMBER: raw.get_column(RECORD_NUMBER).gather(rows),
            "field": pl.Series([column] * n, dtype=pl.String()),
            "reason": reasons,
            "raw_value": raw_values
            if raw_values is not None
            else pl.Series([None] * n, dtype=pl.String()),
        }
    )


def _column_reader(dtype: pl.DataType) -> _Column:
    if dtype == pl.String():
        return _Column((lambda e: e,), lambda e: e)
    if isinstance(dtype, pl.Datetime):
        return _Column(_timestamp_parsers(dtype.time_unit), _quoted("not a timestamp"))
    if dtype == pl.Date():
        return _Column(_date_parsers(), _quoted("not a date"))
    if isinstance(dtype, pl.Decimal):
        return _decimal_reader(dtype)
    if dtype.is_integer():
        return _integer_reader(dtype)
    if dtype.is_float():
        return _Column(
            (
                lambda e: e.cast(dtype, strict=False),
                lambda e: e.str.strip_chars().cast(dtype, strict=False),
            ),
            _quoted("not a number"),
        )
    raise TypeError(f"no reader for source column type {dtype}")


def _quoted(prefix: str) -> Callable[[pl.Expr], pl.Expr]:
    """value -> `prefix: 'value'`, the value clipped to _MAX_QUOTED characters."""

    def reason(e: pl.Expr) -> pl.Expr:
        clipped = (
            pl.when(e.str.len_chars() > _MAX_QUOTED)
            .then(pl.concat_str(e.str.slice(0, _MAX_QUOTED), pl.lit("…")))
            .otherwise(e)
        )
        return pl.concat_str(pl.lit(f"{prefix}: '"), clipped, pl.lit("'"))

    return reason


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

    def describe(e: pl.Expr) -> pl.Expr:
        number = e.str.strip_chars().cast(pl.Float64(), strict=False)
        return (
            pl.when(number.is_finite().fill_null(False))
            .then(_quoted(f"out of range for decimal({precision},{scale})")(e))
            .otherwise(_quoted("not a decimal")(e))
        )

    return _Column((cast, lambda e: cast(e.str.strip_chars())), describe)


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

    def describe(e: pl.Expr) -> pl.Expr:
        return (
            pl.when(whole_number(e).is_not_null())
            .then(_quoted(f"out of range for {str(dtype).lower()}")(e))
            .otherwise(_quoted("not an integer")(e))
        )

    return _Column((lambda e: e.cast(dtype, strict=False), lenient), describe)


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
