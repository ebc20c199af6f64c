"""Ingestion keys: `baseline/<table>-<timestamp>.json` and `updated/<table>-<timestamp>.json`.

The key is relative to the ingestion root (the caller strips any bucket prefix; a leading "/" is
tolerated). The file-name timestamp comes in several forms, depending on the ingestion lambda that
wrote it (../shared/spec/star-schema.md, "Ingestion files in the wild"):

- `2024-11-14T10:20:30.123456` / `2024-11-14 10:20:30.123456` (str of a datetime), the fraction
  (1 to 6 digits) optional;
- the same with a zone: `...Z`, `...+00:00` (or any `±HH:MM` / `±HHMM` offset): converted to
  naive UTC;
- ISO basic, UTC: `20241114T1020Z`, `20241114T102030Z`.

The timestamp must fall in the plausible window of ParseLimits (by default 1900-01-01 to
2199-12-31, after the zone is applied), like every date in the files themselves.

Keys arriving from S3 event notifications are URL-encoded (`%3A`, `+` for a space): the caller
decodes them (`urllib.parse.unquote_plus`) before parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from transforms.parse import DEFAULT_LIMITS, ParseLimits

EXTENSIONS = (".jsonl", ".json")  # ".jsonl" first: ".json" is its prefix

_TABLE = re.compile(r"[a-z][a-z0-9_]*")
_EXTENDED = re.compile(
    r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})[T ](?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"
    r"(?:\.(?P<f>\d{1,6}))?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?"
)
_BASIC = re.compile(
    r"(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})T(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})?(?P<zone>Z)"
)

_FORMS = (
    "YYYY-MM-DDTHH:MM:SS[.ffffff], YYYY-MM-DD HH:MM:SS[.ffffff] (either optionally followed by "
    "Z or ±HH:MM), YYYYMMDDTHHMMZ or YYYYMMDDTHHMMSSZ"
)


class InvalidIngestionKey(ValueError):
    """An ingestion key that does not follow `<baseline|updated>/<table>-<timestamp>.json`."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"invalid ingestion key {key!r}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class IngestionKey:
    """A parsed ingestion key."""

    key: str  # as given, relative to the ingestion root
    kind: Literal["baseline", "updated"]
    table: str
    timestamp: datetime  # naive (UTC)


def parse_ingestion_key(key: str, limits: ParseLimits = DEFAULT_LIMITS) -> IngestionKey:
    """Parse `baseline/<table>-<timestamp>.json` (or `updated/...`, or `.jsonl`).

    Raises InvalidIngestionKey, naming the key and what is wrong with it (never anything else).
    """
    path = key[1:] if key.startswith("/") else key
    folder, slash, name = path.partition("/")
    if not slash or not name:
        raise InvalidIngestionKey(
            key,
            "expected 'baseline/<table>-<timestamp>.json' or 'updated/<table>-<timestamp>.json'",
        )
    if folder == "baseline":
        kind: Literal["baseline", "updated"] = "baseline"
    elif folder == "updated":
        kind = "updated"
    else:
        raise InvalidIngestionKey(
            key, f"first folder must be 'baseline' or 'updated', not {folder!r}"
        )
    if "/" in name:
        raise InvalidIngestionKey(
            key, f"expected the file directly under {folder}/, found a deeper path {name!r}"
        )
    extension = next((e for e in EXTENSIONS if name.endswith(e)), None)
    if extension is None:
        raise InvalidIngestionKey(key, "file name must end in .json or .jsonl")
    stem = name[: -len(extension)]
    table, dash, stamp = stem.partition("-")
    if not dash or not table or not stamp:
        raise InvalidIngestionKey(
            key, f"file name must be '<table>-<timestamp>{extension}', got {name!r}"
        )
    if not _TABLE.fullmatch(table):
        raise InvalidIngestionKey(
            key,
            f"table name {table!r} must be lowercase letters, digits and underscores, "
            "starting with a letter",
        )
    timestamp = _parse_timestamp(key, stamp)
    if not limits.min_timestamp <= timestamp <= limits.max_timestamp:
        raise InvalidIngestionKey(
            key, f"implausible date: timestamp {stamp!r} is outside {limits.window}"
        )
    return IngestionKey(key=key, kind=kind, table=table, timestamp=timestamp)


def ingestion_order(k: IngestionKey) -> tuple[datetime, int, str]:
    """Sort key: by timestamp, a baseline before an update at the same instant, then by key."""
    return (k.timestamp, 0 if k.kind == "baseline" else 1, k.key)


def _parse_timestamp(key: str, stamp: str) -> datetime:
    match = _EXTENDED.fullmatch(stamp) or _BASIC.fullmatch(stamp)
    if match is None:
        raise InvalidIngestionKey(
            key, f"timestamp {stamp!r} is not in a recognised form ({_FORMS})"
        )
    parts = match.groupdict()
    fraction = parts.get("f") or ""
    try:
        value = datetime(
            int(parts["Y"]),
            int(parts["m"]),
            int(parts["d"]),
            int(parts["H"]),
            int(parts["M"]),
            int(parts["S"] or 0),
            int(fraction.ljust(6, "0")) if fraction else 0,
        )
    except ValueError as exc:
        raise InvalidIngestionKey(
            key, f"timestamp {stamp!r} is not a valid date/time: {exc}"
        ) from exc
    zone = parts["zone"]
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise InvalidIngestionKey(
                key, f"timestamp {stamp!r} has an invalid UTC offset {zone!r}"
            )
        # local = UTC + offset, so UTC = local - offset
        try:
            value -= sign * timedelta(hours=hours, minutes=minutes)
        except OverflowError as exc:  # 9999-12-31T23:59:59-01:00 is in the year 10000
            raise InvalidIngestionKey(
                key, f"implausible date: timestamp {stamp!r} is out of range in UTC"
            ) from exc
    return value
