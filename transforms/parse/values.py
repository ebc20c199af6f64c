"""Decoded JSON values as text: as Polars would have read them, and as a reason describes them."""

from __future__ import annotations

import json
from typing import Any

from transforms.parse.tally import MAX_QUOTED, clip


def as_text(value: Any) -> str | None:
    """A decoded JSON value as the text Polars gives it in a String column."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return dumps(value)


def dumps(value: Any) -> str:
    """A decoded JSON value as JSON text (ASCII: a lone surrogate stays an escape)."""
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):  # nested deeper than the encoder goes
        return "<value nested too deep to show>"


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({clip(repr(value), MAX_QUOTED)})"
    if isinstance(value, str):
        return f"a string ({clip(dumps(value), MAX_QUOTED)})"
    if isinstance(value, list):
        return "an array"
    return "an object"


def loads(data: bytes | str) -> Any:
    """Strict JSON: NaN and Infinity, which json accepts and JSON does not have, raise
    ValueError like any other text that is not JSON."""
    return json.loads(data, parse_constant=_not_json)


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON value")


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
