"""Column readers: how each source type is read from text, and which reader a column gets.

Polars reads every column as text (a JSON number arrives as its text, so numbers and numeric
strings are the same thing from there on); each column is then cast once, vectorised, to its
target type. Only the values the column's cast could not read go through slower fallbacks (other
timestamp forms, epoch milliseconds, "42.0", surrounding spaces). The parser run on a whole
column is chosen from its first value, so a file written entirely in another form stays fast.

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
- booleans: a JSON boolean or PostgreSQL's text forms (true/false, t/f).
- strings: taken as they are (a JSON number or boolean in a string column arrives as its text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

Parser = Callable[[pl.Expr], pl.Expr]  # String column -> typed column, null where unreadable

ISO_T = "%Y-%m-%dT%H:%M:%S%.f"
ISO_SPACE = "%Y-%m-%d %H:%M:%S%.f"
DATE = "%Y-%m-%d"
_EPOCH_MS_MIN = -62_135_596_800_000  # 0001-01-01T00:00:00
_EPOCH_MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999
_SAMPLE_ROWS = 1_000  # rows looked at for a sample value that chooses a column's parser


@dataclass(frozen=True)
class Column:
    """How one target type is read from text."""

    # Ways to read a value, in order. The first that reads a column's sample value is run on
    # the whole column; the others only on the values it could not read, each on what is left.
    parsers: Sequence[Parser]
    kind: Callable[[pl.Expr], pl.Expr]  # raw text of an unreadable value -> kind of problem


def apply(parser: Parser, values: pl.Series) -> pl.Series:
    return values.to_frame("v").select(parser(pl.col("v"))).to_series()


def choose(parsers: Sequence[Parser], values: pl.Series) -> Parser:
    """The first parser that reads a sample value from the start of the column."""
    sample = values.head(_SAMPLE_ROWS).drop_nulls().head(1)
    if len(sample):
        for parser in parsers:
            if not apply(parser, sample).null_count():
                return parser
    return parsers[0]


def first_success(values: pl.Series, parsers: Iterable[Parser], dtype: pl.DataType) -> pl.Series:
    """Each value read by the first parser that can read it (null if none can)."""
    out = pl.repeat(None, len(values), dtype=dtype, eager=True)
    pending = pl.int_range(0, len(values), dtype=pl.UInt32(), eager=True)
    for parser in parsers:
        if not len(pending):
            break
        parsed = apply(parser, values.gather(pending))
        ok = parsed.is_not_null()
        if ok.any():
            out = out.scatter(pending.filter(ok), parsed.filter(ok).cast(dtype))
            pending = pending.filter(~ok)
    return out


def column_reader(dtype: pl.DataType) -> Column:
    if dtype == pl.String():
        return Column((lambda e: e,), lambda e: pl.lit("unreadable string"))
    if isinstance(dtype, pl.Datetime):
        return Column(_timestamp_parsers(dtype.time_unit), _constant("not a timestamp"))
    if dtype == pl.Date():
        return Column(_date_parsers(), _constant("not a date"))
    if isinstance(dtype, pl.Decimal):
        return _decimal_reader(dtype)
    if dtype.is_integer():
        return _integer_reader(dtype)
    if dtype == pl.Boolean():
        return Column((_boolean,), _constant("not a boolean (true/false, t/f)"))
    if dtype.is_float():
        return Column(
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


def _timestamp_parsers(time_unit: Any) -> tuple[Parser, ...]:
    # cache=False: timestamps are nearly all distinct, the cache only costs time.
    def naive(fmt: str, strip: bool = False) -> Parser:
        return lambda e: (e.str.strip_chars() if strip else e).str.to_datetime(
            fmt, time_unit=time_unit, strict=False, cache=False
        )

    def zoned(fmt: str) -> Parser:
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
        naive(ISO_T),
        naive(ISO_SPACE),
        epoch_ms,
        zoned(ISO_T),
        zoned(ISO_SPACE),
        naive(ISO_T, strip=True),
        naive(ISO_SPACE, strip=True),
    )


def _date_parsers() -> tuple[Parser, ...]:
    def date_of(parser: Parser) -> Parser:
        return lambda e: parser(e).dt.date()

    return (
        lambda e: e.str.to_date(DATE, strict=False),
        lambda e: e.str.strip_chars().str.to_date(DATE, strict=False),
        *(date_of(parser) for parser in _timestamp_parsers("us")),
    )


# -- numbers ------------------------------------------------------------------------------------


def _decimal_reader(dtype: pl.Decimal) -> Column:
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

    return Column((cast, lambda e: cast(e.str.strip_chars())), kind)


def _integer_reader(dtype: pl.DataType) -> Column:
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

    return Column((lambda e: e.cast(dtype, strict=False), lenient), kind)


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
