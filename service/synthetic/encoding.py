"""How synthetic rows become ingestion files: keys, file shapes and value encodings.

Rows are kept internally with timestamps as epoch milliseconds, money in pence (cents) and dates
as `date`s; an `Fmt` says how one file renders them. Small files are rendered row by row
(`encode_rows`); the large ones from a Polars frame, vectorised (`encode_frame`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import polars as pl

EPOCH = datetime(1970, 1, 1)
MS_PER_DAY = 86_400_000

TS_COLUMNS = frozenset({"created_at", "last_updated"})
# Money is held in pence (cents) and written with two decimals.
MONEY_COLUMNS = frozenset({"unit_price", "item_unit_price", "payment_amount"})

Row = dict[str, Any]
Shape = Literal["wrapped", "array", "jsonl"]
# iso: datetime.isoformat(); str: str(datetime); space_ms: `YYYY-MM-DD HH:MM:SS.mmm`;
# epoch_ms: a JSON number (pandas to_json). The first three drop a zero fraction.
TsStyle = Literal["iso", "str", "space_ms", "epoch_ms"]
# iso_us: `2024-11-14T10:30:00.000000`; str: str(datetime); minute: `20241114T1030Z`.
NameForm = Literal["iso_us", "str", "minute"]
# json: true/false; pg_short: PostgreSQL's text form "t"/"f"; pg_word: "true"/"false".
BoolStyle = Literal["json", "pg_short", "pg_word"]


@dataclass(frozen=True)
class Fmt:
    """How one file is written: its shape, timestamps, key stamp and a few value encodings."""

    shape: Shape
    ts: TsStyle
    name: NameForm
    price_as_string: bool = False
    ids_as_strings: bool = False
    bools: BoolStyle = "json"


def ms(dt: datetime) -> int:
    """Epoch milliseconds of a naive datetime (floored to the millisecond)."""
    return (dt - EPOCH) // timedelta(milliseconds=1)


def dt(epoch_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=epoch_ms)


def ingestion_key(prefix: str, table: str, at: datetime, form: NameForm) -> str:
    """`<prefix>/<table>-<stamp>.json`, the stamp written in `form`."""
    if form == "minute" and at.second == 0 and at.microsecond == 0:
        stamp = at.strftime("%Y%m%dT%H%MZ")
    elif form == "str":
        stamp = str(at)
    else:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{prefix}/{table}-{stamp}.json"


# --------------------------------------------------------------------------------------------
# Row by row


def format_ts(epoch_ms: int, style: TsStyle) -> str | int:
    if style == "epoch_ms":
        return epoch_ms
    at = dt(epoch_ms)
    if style == "iso":
        return at.isoformat()
    if style == "str":
        return str(at)
    text = at.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{at.microsecond // 1000:03d}" if at.microsecond else text


def format_price(cents: int, as_string: bool) -> str | float:
    return f"{cents // 100}.{cents % 100:02d}" if as_string else cents / 100


def format_bool(value: bool, style: BoolStyle) -> bool | str:
    if style == "pg_short":
        return "t" if value else "f"
    if style == "pg_word":
        return "true" if value else "false"
    return value


def render_row(row: Row, fmt: Fmt) -> Row:
    out: Row = {}
    for name, value in row.items():
        if name in TS_COLUMNS:
            out[name] = format_ts(value, fmt.ts)
        elif name in MONEY_COLUMNS:
            out[name] = format_price(value, fmt.price_as_string)
        elif isinstance(value, bool):
            out[name] = format_bool(value, fmt.bools)
        elif isinstance(value, date):
            out[name] = value.isoformat()
        elif fmt.ids_as_strings and name.endswith("_id") and isinstance(value, int):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def encode_rows(table: str, rows: list[Row], fmt: Fmt) -> bytes:
    rendered = [render_row(r, fmt) for r in rows]
    if fmt.shape == "wrapped":
        text = json.dumps({table: rendered})
    elif fmt.shape == "array":
        text = json.dumps(rendered)
    else:
        text = "".join(json.dumps(r) + "\n" for r in rendered)
    return text.encode()


# --------------------------------------------------------------------------------------------
# Vectorised, for the large files


def ts_expr(name: str, style: TsStyle) -> pl.Expr:
    col = pl.col(name)
    if style == "epoch_ms":
        return col
    as_dt = col.cast(pl.Datetime("ms"))
    sep = "T" if style == "iso" else " "
    frac = "%.3f" if style == "space_ms" else "%.6f"
    whole = f"%Y-%m-%d{sep}%H:%M:%S"
    return (
        pl.when(col % 1000 == 0)
        .then(as_dt.dt.strftime(whole))
        .otherwise(as_dt.dt.strftime(whole + frac))
        .alias(name)
    )


def _column_expr(name: str, dtype: pl.DataType, fmt: Fmt) -> pl.Expr:
    if name in TS_COLUMNS:
        return ts_expr(name, fmt.ts)
    if name in MONEY_COLUMNS:
        cents = pl.col(name)
        text = pl.format("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))
        # Parsed from text: Polars' `cents / 100` multiplies by 0.01 (3.8000000000000003).
        return (text if fmt.price_as_string else text.cast(pl.Float64)).alias(name)
    if dtype == pl.Date:
        return pl.col(name).dt.strftime("%Y-%m-%d")
    if dtype == pl.Boolean and fmt.bools != "json":
        yes, no = ("t", "f") if fmt.bools == "pg_short" else ("true", "false")
        return pl.when(pl.col(name)).then(pl.lit(yes)).otherwise(pl.lit(no)).alias(name)
    if fmt.ids_as_strings and name.endswith("_id"):
        return pl.col(name).cast(pl.String)
    return pl.col(name)


def encode_frame(table: str, df: pl.DataFrame, fmt: Fmt) -> bytes:
    """Render an internal frame (timestamps in epoch ms, money in cents) as an ingestion file."""
    exprs = [_column_expr(name, dtype, fmt) for name, dtype in df.schema.items()]
    buf = io.BytesIO()
    df.select(exprs).write_ndjson(buf)
    if fmt.shape == "jsonl":
        return buf.getvalue()
    # JSON text never holds a raw newline inside a value, so the lines join into an array
    # (faster than write_json, which is slow on string columns).
    raw = buf.getvalue()
    buf.close()
    joined = raw.replace(b"\n", b",")  # one trailing comma, dropped below
    del raw
    head = b"[" if fmt.shape == "array" else b'{"' + table.encode() + b'": ['
    tail = b"]" if fmt.shape == "array" else b"]}"
    return b"".join((head, memoryview(joined)[:-1], tail))
