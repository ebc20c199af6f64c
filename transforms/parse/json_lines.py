"""JSON Lines that Polars could not read as a whole: classify every line, keep the good ones.

Every line is classified in one vectorised pass (Polars' JSON parser says which lines are JSON
objects, a Python pass which are not UTF-8), the good lines are read by Polars in one go, and
json.loads only describes the first bad lines, so a file with many bad lines costs a few reads,
not a parse per line. Lines holding a surrogate escape go through json one by one (Polars reads
a lone one as U+0000). Invalid UTF-8 in one line rejects that record only.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from transforms.parse.records import READ_ERRORS, Raw, Records
from transforms.parse.shapes import NOT_WS, SURROGATE_ESCAPE_TEXT
from transforms.parse.tally import JSON_FIELD, RECORD_NUMBER, Found
from transforms.parse.values import decode, json_kind

_READABLE = pl.col("utf8") & pl.col("json") & pl.col("object")
# Every line that is not a record is a reject, its kind told by Polars' verdict.
_KIND = (
    pl.when(~pl.col("utf8"))
    .then(pl.lit("invalid UTF-8"))
    .when(~pl.col("json"))
    .then(pl.lit("invalid JSON"))
    .otherwise(pl.lit("not a JSON object"))
)


def read_lines_slow(records: Records, data: bytes) -> Raw | None:
    """The records of JSON Lines with bad lines; None when not one line is a JSON object (this
    is not JSON Lines but junk, or a truncated document: the caller says so for the file)."""
    lines = data.split(b"\n")
    bad_utf8 = _mark_bad_utf8(data, lines)
    present = _classify(lines, bad_utf8)
    records_read = present.height
    frames: list[pl.DataFrame] = []
    # Lines json reads one by one: those with a surrogate escape (Polars reads a lone one
    # as U+0000), or every readable line if Polars cannot read the lines it called good.
    by_json = pl.col("utf8") & pl.col("escape")  # Polars cannot judge these lines
    good = _read_good(records, present, lines)
    if good is not None:
        frames.append(good)
    elif present.filter(_READABLE & ~pl.col("escape")).height:
        by_json = pl.col("utf8") & (pl.col("escape") | _READABLE)
    del lines
    others = present.filter(~_READABLE | by_json).with_columns(
        by_json.alias("by_json"), _KIND.alias("kind")
    )
    del present
    found = Found(records.cap)
    decoded, numbers = _visit_others(others, bad_utf8, found)
    if decoded:
        frames.append(records.from_dicts(decoded, numbers, found))
    if found.tally and not frames:
        return None
    rows = pl.concat(frames).sort(RECORD_NUMBER) if frames else records.numbered(records.no_rows())
    found.detail.sort(key=lambda d: d[0])
    return Raw(rows, found, records_read)


def first_line_is_bad(data: bytes) -> bool:
    """The first non-blank line is not JSON (perhaps not JSON Lines but one pretty document)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end == -1 else end
        line = data[start:end]
        if NOT_WS.search(line):
            try:
                json.loads(line)
            except (ValueError, RecursionError):
                return True
            return False
        start = end + 1
    return False


def _mark_bad_utf8(data: bytes, lines: list[bytes]) -> dict[int, tuple[str, bytes]]:
    """Lines that are not UTF-8: line index -> (problem, the line); each is replaced in `lines`
    by a stand-in that is neither blank nor JSON."""
    bad_utf8: dict[int, tuple[str, bytes]] = {}
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        for index, line in enumerate(lines):
            if not line.isascii():
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad_utf8[index] = (str(exc), line)
                    lines[index] = b"\x00"
    return bad_utf8


def _classify(lines: list[bytes], bad_utf8: dict[int, tuple[str, bytes]]) -> pl.DataFrame:
    """The non-blank lines, each with its record and line numbers and what Polars makes of it."""
    utf8 = pl.Series("utf8", [True] * len(lines), dtype=pl.Boolean())
    if bad_utf8:
        utf8 = utf8.scatter(list(bad_utf8), False)
    text = pl.Series("line", lines, dtype=pl.Binary()).cast(pl.String())
    column = pl.col("line")
    frame = pl.DataFrame([text, utf8]).with_columns(
        column.str.contains(r"[^ \t\r\n]").alias("present"),
        column.str.json_path_match("$").is_not_null().alias("json"),
        column.str.contains(r"^[ \t\r\n]*\{").alias("object"),
        column.str.contains(SURROGATE_ESCAPE_TEXT).alias("escape"),
    )
    del text
    frame = frame.with_columns(
        pl.col("present").cum_sum().cast(pl.Int64()).alias(RECORD_NUMBER),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64()).alias("line_number"),
    )
    return frame.filter(pl.col("present"))


def _read_good(records: Records, present: pl.DataFrame, lines: list[bytes]) -> pl.DataFrame | None:
    """The lines Polars called good, read by Polars in one go (None: none, or it cannot)."""
    good = present.filter(_READABLE & ~pl.col("escape"))
    if not good.height:
        return None
    # the original bytes, joined (cheaper than joining the text and encoding it)
    body = b"\n".join([lines[i - 1] for i in good["line_number"].to_list()])
    try:
        read = records.read_lines(body)
    except READ_ERRORS:
        return None
    if read.height != good.height:
        return None
    return read.with_columns(good[RECORD_NUMBER])


def _visit_others(
    others: pl.DataFrame, bad_utf8: dict[int, tuple[str, bytes]], found: Found
) -> tuple[list[dict[str, Any]], list[int]]:
    """Count every line that is not a good record and describe the first ones; lines json
    reads one by one give their records (returned with their numbers)."""
    rejected = others.filter(~pl.col("by_json"))
    for kind_name, count in rejected.group_by("kind").len().iter_rows():
        found.tally[(JSON_FIELD, kind_name)] += count
    found.records += rejected.height
    visit = others.filter(pl.col("by_json") | ((~pl.col("by_json")).cum_sum() <= found.cap)).select(
        "line", RECORD_NUMBER, "line_number", "by_json", "kind"
    )
    decoded: list[dict[str, Any]] = []
    numbers: list[int] = []
    for line, number, line_number, json_reads, kind_name in visit.iter_rows():
        if not json_reads:
            problem = _line_problem(kind_name, line, line_number, bad_utf8.get(line_number - 1))
            found.describe(number, JSON_FIELD, *problem)
            continue
        value = _json_record(line, number, line_number, found)
        if value is not None:
            decoded.append(value)
            numbers.append(number)
    return decoded, numbers


def _json_record(line: str, number: int, line_number: int, found: Found) -> dict[str, Any] | None:
    """A line read by json: its record, or None after counting its problem."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:  # Polars and json disagree: json wins
        message = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        found.records += 1
        reason = f"invalid JSON on line {line_number}: {message}"
        found.add(number, JSON_FIELD, "invalid JSON", reason, line.strip())
        return None
    if not isinstance(value, dict):
        found.records += 1
        reason = f"line {line_number} is not a JSON object: {json_kind(value)}"
        found.add(number, JSON_FIELD, "not a JSON object", reason, line.strip())
        return None
    return value


def _line_problem(
    kind: str, line: str, line_number: int, utf8_problem: tuple[str, bytes] | None
) -> tuple[str, str]:
    """(reason, raw value) of a line Polars could not take as a record."""
    if utf8_problem is not None:
        problem, original = utf8_problem
        return f"invalid UTF-8 on line {line_number}: {problem}", decode(original.strip())
    raw = line.strip()
    try:
        value = json.loads(line)
    except RecursionError:
        return f"invalid JSON on line {line_number}: nested too deep", raw
    except ValueError as exc:
        return f"invalid JSON on line {line_number}: {exc}", raw
    if kind == "invalid JSON":  # json reads it, Polars does not (NaN, 1e400, ...)
        return f"invalid JSON on line {line_number}: not strict JSON", raw
    return f"line {line_number} is not a JSON object: {json_kind(value)}", raw
