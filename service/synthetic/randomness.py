"""Named random streams: each part of the tree draws from its own, so adding a part (or a table)
changes nothing in the others. The same seed and stream name always give the same numbers."""

from __future__ import annotations

import array
import random
import sys
from datetime import datetime

import polars as pl

from service.synthetic.encoding import ms


def rng(seed: int, stream: str) -> random.Random:
    # str seeds hash with SHA-512: stable across runs and Python versions.
    return random.Random(f"totesys-synthetic:{seed}:{stream}")


def random_int63(source: random.Random, n: int) -> pl.Series:
    """n uniform non-negative 63-bit integers as an Int64 Series (fast, no numpy needed)."""
    values = array.array("Q")
    if values.itemsize != 8:  # pragma: no cover - every mainstream platform has 8-byte "Q"
        raise RuntimeError("array('Q') is not 64-bit on this platform")
    values.frombytes(source.randbytes(8 * n))
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return (pl.Series(values, dtype=pl.UInt64) // 2).cast(pl.Int64)


def between(r: pl.Expr, lo: int, hi: int) -> pl.Expr:
    """Uniform integer in [lo, hi] from a column of 63-bit random integers."""
    return r % (hi - lo + 1) + lo


def window_ms(source: random.Random, prev: datetime, at: datetime) -> int:
    """A millisecond timestamp strictly after `prev` and not after `at`."""
    return source.randint(ms(prev) + 1, ms(at))
