"""Typing: the all-String frame of a file's records -> typed rows; values that cannot be read, are
missing, or are implausible reject their row (one reject per problem, in record order)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.parse.columns import Column, Parser, apply, choose, column_reader, first_success
from transforms.parse.plausibility import (
    ParseLimits,
    implausible,
    length_reason,
    too_long,
    too_long_kind,
    window_reason,
)
from transforms.parse.tally import (
    DETAIL,
    IMPLAUSIBLE_DATE,
    MISSING_REASON,
    RECORD_NUMBER,
    REJECT_COUNTS,
    Reason,
    clip_raw_expr,
    missing_reason,
    quoted_reason,
)
from transforms.schemas import SourceTable


@dataclass(frozen=True)
class Typed:
    rows: pl.DataFrame  # the good rows, typed
    details: pl.DataFrame  # DETAIL: the first problems (at most the cap), in record order
    counts: pl.DataFrame  # REJECT_COUNTS: every problem
    bad_records: int  # rows with at least one problem


class _Problems:
    """Problems found while typing: all counted, the first `cap` of each column described."""

    def __init__(self, raw: pl.DataFrame, cap: int) -> None:
        self.raw = raw
        self.cap = cap
        self.bad = pl.repeat(False, raw.height, dtype=pl.Boolean(), eager=True)
        self.details: list[pl.DataFrame] = []
        self.counts: list[pl.DataFrame] = []

    def add(self, column: str, rows: pl.Series, kinds: pl.Series | str, reason: Reason) -> None:
        """Rows (indices) with a problem in `column`. `kinds`: the kind of each problem, or one
        kind for all."""
        if not len(rows):
            return
        cap = self.cap
        self.bad = self.bad.scatter(rows, True)
        if isinstance(kinds, str):
            self.counts.append(
                pl.DataFrame([(column, kinds, len(rows))], schema=REJECT_COUNTS, orient="row")
            )
            kinds = pl.repeat(kinds, min(cap, len(rows)), dtype=pl.String(), eager=True)
        else:
            self.counts.append(
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
                RECORD_NUMBER: self.raw.get_column(RECORD_NUMBER).gather(first),
                "kind": kinds.head(cap),
                "value": self.raw.get_column(column).gather(first).cast(pl.String()),
            }
        )
        self.details.append(
            frame.select(
                pl.col(RECORD_NUMBER),
                pl.lit(column, dtype=pl.String()).alias("field"),
                reason(pl.col("kind"), pl.col("value")).alias("reason"),
                clip_raw_expr(pl.col("value")).alias("raw_value"),
                pl.lit(len(self.details), dtype=pl.Int64()).alias("order"),
            )
        )

    def result(self, typed: pl.DataFrame) -> Typed:
        if not self.details:
            return Typed(typed, pl.DataFrame(schema=DETAIL), pl.DataFrame(schema=REJECT_COUNTS), 0)
        found = (
            pl.concat(self.details)
            .sort([RECORD_NUMBER, "order"], maintain_order=True)
            .head(self.cap)
            .drop("order")
        )
        return Typed(
            rows=typed.filter(~self.bad),
            details=found,
            counts=pl.concat(self.counts),
            bad_records=int(self.bad.sum()),
        )


def type_rows(raw: pl.DataFrame, spec: SourceTable, limits: ParseLimits) -> Typed:
    """Cast every column; values that cannot be read, are missing, or are implausible reject
    their row. Problems are counted exactly, but only the first `max_reject_details` of each
    column are described (a file of a million empty records costs counts, not 12M rows)."""
    readers = {c: column_reader(dtype) for c, dtype in spec.columns.items()}
    text = [c for c in spec.columns if raw.schema[c] != spec.columns[c]]  # the rest: read typed
    chosen = {c: choose(readers[c].parsers, raw.get_column(c)) for c in text}
    shared = _same_text(raw, spec, {c: readers[c].parsers.index(chosen[c]) for c in text})
    casts = [
        chosen[c](pl.col(c)).alias(c) if c in chosen else pl.col(c)
        for c in spec.columns
        if c not in shared
    ]
    # Lazy: the engine runs the column casts in parallel (markedly faster than an eager select).
    typed = raw.lazy().select(*casts, pl.col(RECORD_NUMBER)).collect()
    if shared:
        for column, (earlier, same) in shared.items():
            typed = typed.with_columns(_from_earlier(raw, typed, column, earlier, same, chosen))
        typed = typed.select(*spec.columns, RECORD_NUMBER)
    problems = _Problems(raw, limits.max_reject_details)
    for column, dtype in spec.columns.items():
        source = raw.get_column(column)
        if column not in spec.nullable and source.null_count():
            problems.add(column, source.is_null().arg_true(), MISSING_REASON, missing_reason)
        result = typed.get_column(column)
        if column in chosen and result.null_count() != source.null_count():
            result = _recover(source, result, readers[column], chosen[column], dtype, problems)
            typed = typed.with_columns(result)
        outside = implausible(result, dtype, limits)
        if outside is not None:
            problems.add(column, outside.arg_true(), IMPLAUSIBLE_DATE, window_reason(limits))
        if dtype == pl.String():
            over = too_long(source, limits)
            if over is not None:
                problems.add(column, over.arg_true(), too_long_kind(limits), length_reason)
    return problems.result(typed)


def _same_text(
    raw: pl.DataFrame, spec: SourceTable, parser_of: dict[str, int]
) -> dict[str, tuple[str, pl.Series]]:
    """Timestamp columns read as text whose values are mostly the very text of an earlier one
    (a new order's created_at and last_updated), with that column and where they are equal:
    those values are parsed once. Only timestamps, their parse being the dearest (comparing
    costs a tenth of it), and only for columns parsed the same way."""
    stamps = [c for c in parser_of if isinstance(spec.columns[c], pl.Datetime)]
    shared: dict[str, tuple[str, pl.Series]] = {}
    for index, column in enumerate(stamps):
        for earlier in stamps[:index]:
            if earlier in shared or spec.columns[earlier] != spec.columns[column]:
                continue
            if parser_of[earlier] != parser_of[column]:
                continue
            same = (raw[column] == raw[earlier]).fill_null(False)
            if 2 * same.sum() >= len(same):
                shared[column] = (earlier, same)
                break
    return shared


def _from_earlier(
    raw: pl.DataFrame,
    typed: pl.DataFrame,
    column: str,
    earlier: str,
    same: pl.Series,
    chosen: dict[str, Parser],
) -> pl.Series:
    """`column` typed: the earlier column's value where the text is the same, else its own."""
    dtype = typed.schema[earlier]
    differ = (~same).arg_true()
    parsed = apply(chosen[column], raw[column].gather(differ)).cast(dtype)
    own = pl.repeat(None, raw.height, dtype=dtype, eager=True).scatter(differ, parsed)
    return typed.select(pl.when(same).then(pl.col(earlier)).otherwise(own).alias(column))[column]


def _recover(
    source: pl.Series,
    result: pl.Series,
    reader: Column,
    chosen: Parser,
    dtype: pl.DataType,
    problems: _Problems,
) -> pl.Series:
    """The column with the values its chosen parser could not read read by the other parsers;
    what none reads is a problem."""
    column = source.name
    failed = (result.is_null() & source.is_not_null()).arg_true()
    values = source.gather(failed)
    others = [p for p in reader.parsers if p is not chosen]
    recovered = first_success(values, others, dtype)
    read = recovered.is_not_null()
    if read.any():
        result = result.scatter(failed.filter(read), recovered.filter(read))
    if not read.all():
        unread = values.filter(~read)
        kinds = unread.to_frame("v").with_columns(reader.kind(pl.col("v")).alias("k"))["k"]
        problems.add(column, failed.filter(~read), kinds, quoted_reason)
    return result
