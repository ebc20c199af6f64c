"""The reject tally: what a problem of a file is called, and how problems are kept.

Every problem is counted exactly per field and kind (REJECT_COUNTS), but only the first
`max_reject_details` are kept as reject rows, so a file of a million empty records costs counts,
not twelve million rows. A raw_value keeps at most 1,000 characters; a reason quotes at most 100.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import polars as pl

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
# A problem in detail, before the file's name and table are added (schemas.REJECTS).
DETAIL: dict[str, pl.DataType] = {
    RECORD_NUMBER: pl.Int64(),
    "field": pl.String(),
    "reason": pl.String(),
    "raw_value": pl.String(),
}
MAX_QUOTED = 100  # characters of a bad value quoted in a reason
MAX_RAW_VALUE = 1_000  # characters of a bad value / line / document kept as raw_value

Reason = Callable[[pl.Expr, pl.Expr], pl.Expr]  # (kind, raw value) -> reason


class Found:
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
        self.detail.append((number, field, reason, None if raw is None else clip_raw(raw)))

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                RECORD_NUMBER: [d[0] for d in self.detail],
                "field": [d[1] for d in self.detail],
                "reason": [d[2] for d in self.detail],
                "raw_value": [d[3] for d in self.detail],
            },
            schema=DETAIL,
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


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def clip_raw(text: str) -> str:
    """A raw_value: at most MAX_RAW_VALUE characters, the last one "…" if it was cut."""
    return text if len(text) <= MAX_RAW_VALUE else text[: MAX_RAW_VALUE - 1] + "…"


def clipped_expr(e: pl.Expr) -> pl.Expr:
    """A value quoted in a reason: at most MAX_QUOTED characters, then "…"."""
    return (
        pl.when(e.str.len_chars() > MAX_QUOTED)
        .then(pl.concat_str(e.str.slice(0, MAX_QUOTED), pl.lit("…")))
        .otherwise(e)
    )


def clip_raw_expr(e: pl.Expr) -> pl.Expr:
    return (
        pl.when(e.str.len_chars() > MAX_RAW_VALUE)
        .then(pl.concat_str(e.str.slice(0, MAX_RAW_VALUE - 1), pl.lit("…")))
        .otherwise(e)
    )


def missing_reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
    return kind


def quoted_reason(kind: pl.Expr, value: pl.Expr) -> pl.Expr:
    """`kind: 'value'`, the value clipped to MAX_QUOTED characters."""
    return pl.concat_str(kind, pl.lit(": '"), clipped_expr(value), pl.lit("'"))
