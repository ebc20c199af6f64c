"""A deterministic generator of a realistic Totesys ingestion tree, for tests and benchmarks.

`iter_ingestion_files` yields `(ingestion key, file content)` one file at a time:

- a baseline at `start` (`baseline/<table>-<ts>.json`) of the seven source tables, plus one
  file of a table the transform ignores (`payment_type`), so its "skipped" path is exercised;
- then `updates` batches, 30 minutes apart (`updated/<table>-<ts>.json`): changed and new sales
  orders in every batch, and across the batches a department rename, an address change, a staff
  change and a new design; one order is changed in every batch, so it has `updates + 1` versions;
- in the last batch, a further full snapshot `baseline/sales_order-<ts>.json` of the live orders
  at their latest versions, minus a few deleted ones (deletion by absence).

Every file uses one of the shapes found in the wild (see the spec's "Ingestion files in the wild"):
`{"<table>": [...]}`, a bare array or JSON Lines; row timestamps as ISO with `T`, `str(datetime)`,
space with milliseconds or epoch milliseconds (without fraction when it is zero); unit_price as a
JSON number or a string; ids as strings in a few small files; file-name timestamps as
`2024-11-14T10:30:00.000000`, `str(datetime)` or `20241114T1030Z`.

The same arguments always give the same bytes. The large sales_order files are built with
vectorised Polars (random numbers come from `random.Random.randbytes`, so the output does not
depend on the Polars version's random generator).
"""

from __future__ import annotations

import array
import io
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

__all__ = [
    "DEFAULT_START",
    "SyntheticManifest",
    "iter_ingestion_files",
    "write_ingestion_tree",
]

DEFAULT_START = datetime(2024, 11, 14, 10, 0)
BATCH_INTERVAL = timedelta(minutes=30)

_EPOCH = datetime(1970, 1, 1)
_MS_PER_DAY = 86_400_000
_BATCH_MS = 30 * 60 * 1000
# When the (fictional) database was seeded, and when its first sales order was taken.
_DIM_CREATED = datetime(2022, 11, 3, 14, 20, 49, 500000)
_PEOPLE_CREATED = datetime(2022, 11, 3, 14, 20, 51, 250000)
_ORDERS_FROM = datetime(2022, 11, 3, 14, 20, 52, 0)
_EARLIEST_START = datetime(2022, 12, 1)

_TS_COLUMNS = frozenset({"created_at", "last_updated"})
_ORDER_COLUMNS = (
    "sales_order_id",
    "created_at",
    "last_updated",
    "design_id",
    "staff_id",
    "counterparty_id",
    "units_sold",
    "unit_price",
    "currency_id",
    "agreed_delivery_date",
    "agreed_payment_date",
    "agreed_delivery_location_id",
)
# Internal frame of sales orders: timestamps as epoch milliseconds, unit_price in pence (cents).
_ORDER_FRAME: dict[str, pl.DataType] = {
    "sales_order_id": pl.Int32(),
    "created_at": pl.Int64(),
    "last_updated": pl.Int64(),
    "design_id": pl.Int32(),
    "staff_id": pl.Int32(),
    "counterparty_id": pl.Int32(),
    "units_sold": pl.Int32(),
    "unit_price": pl.Int32(),
    "currency_id": pl.Int32(),
    "agreed_delivery_date": pl.Date(),
    "agreed_payment_date": pl.Date(),
    "agreed_delivery_location_id": pl.Int32(),
}

Row = dict[str, Any]
Shape = Literal["wrapped", "array", "jsonl"]
# iso: datetime.isoformat(); str: str(datetime); space_ms: `YYYY-MM-DD HH:MM:SS.mmm`;
# epoch_ms: a JSON number (pandas to_json). The first three drop a zero fraction.
TsStyle = Literal["iso", "str", "space_ms", "epoch_ms"]
# iso_us: `2024-11-14T10:30:00.000000`; str: str(datetime); minute: `20241114T1030Z`.
NameForm = Literal["iso_us", "str", "minute"]


@dataclass(frozen=True)
class _Fmt:
    shape: Shape
    ts: TsStyle
    name: NameForm
    price_as_string: bool = False
    ids_as_strings: bool = False


# Baseline (time `start`), in the order written.
_BASELINE_FMTS: dict[str, _Fmt] = {
    "currency": _Fmt("wrapped", "iso", "str", ids_as_strings=True),
    "department": _Fmt("array", "space_ms", "minute"),
    "staff": _Fmt("jsonl", "epoch_ms", "iso_us"),
    "address": _Fmt("wrapped", "space_ms", "str"),
    "counterparty": _Fmt("array", "iso", "minute"),
    "design": _Fmt("wrapped", "epoch_ms", "iso_us"),
    "sales_order": _Fmt("jsonl", "iso", "iso_us"),
    "payment_type": _Fmt("array", "iso", "str"),
}
# updated/sales_order of batch b uses _BATCH_ORDER_FMTS[b % 5].
_BATCH_ORDER_FMTS = (
    _Fmt("array", "space_ms", "minute", price_as_string=True),
    _Fmt("wrapped", "epoch_ms", "str"),
    _Fmt("jsonl", "iso", "iso_us", price_as_string=True),
    _Fmt("wrapped", "str", "minute", price_as_string=True),
    _Fmt("array", "iso", "str"),
)
_UPDATE_DIM_FMTS: dict[str, _Fmt] = {
    "design": _Fmt("array", "str", "minute"),
    "staff": _Fmt("jsonl", "space_ms", "str"),
    "department": _Fmt("wrapped", "iso", "minute", ids_as_strings=True),
    "address": _Fmt("array", "epoch_ms", "iso_us"),
}
# The deletion snapshot: what `json.dumps({"sales_order": rows}, default=str)` writes.
_SNAPSHOT_FMT = _Fmt("wrapped", "str", "minute", price_as_string=True)

# --------------------------------------------------------------------------------------------
# Small word lists for plausible values.

_FIRST_NAMES = (
    "Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Mia", "Jack", "Freya", "Noah",
    "Grace", "Leo", "Ruby", "Oscar", "Ivy", "Arthur", "Poppy", "Theo", "Lily", "Alfie",
    "Evie", "Jacob", "Sophie", "Henry", "Daisy", "Finley", "Imogen", "Rory", "Nadia", "Kwame",
)  # fmt: skip
_LAST_NAMES = (
    "Hartley", "Okafor", "Brennan", "Whitfield", "Nakamura", "Castellano", "Lindqvist",
    "Patel", "Mbeki", "Fairbairn", "Kowalski", "Oduya", "Pemberton", "Achterberg", "Rahman",
    "Delacroix", "Thornbury", "Valdez", "Ishikawa", "MacLeod", "Novak", "Quinlan", "Sorensen",
    "Tremaine", "Underwood", "Vasquez", "Winterbottom", "Yilmaz", "Zielinski", "Abernathy",
)  # fmt: skip
_DEPARTMENTS = (
    ("Sales", "Manchester"),
    ("Purchasing", "Manchester"),
    ("Production", "Leeds"),
    ("Dispatch", "Leeds"),
    ("Finance", "Manchester"),
    ("Facilities", "Manchester"),
    ("Communications", "Leeds"),
    ("HR", "Leeds"),
)
_RENAMES = {
    "Sales": "Sales & Marketing",
    "Purchasing": "Procurement",
    "Production": "Manufacturing",
    "Dispatch": "Logistics",
    "Finance": "Accounts",
    "Facilities": "Estates",
    "Communications": "Marketing",
    "HR": "People",
}
_STREET_NAMES = (
    "Harbour", "Kestrel", "Willow", "Marlowe", "Orchard", "Beacon", "Larch", "Foxglove",
    "Cobalt", "Juniper", "Aldgate", "Bramble", "Cedar", "Ferris", "Granby", "Hollis",
)  # fmt: skip
_STREET_SUFFIXES = ("Road", "Street", "Lane", "Crescent", "Avenue", "Way", "Cliffs", "Fort")
_CITIES = (
    "Port Ellison", "New Marlow", "Aldbridge", "Westhaven", "Lake Corrin", "East Tamsin",
    "Fenwick", "North Oriel", "Kingsmere", "Bramford", "South Avalon", "Glenrothy",
    "Harrowgate", "Millbrook", "Silverton", "Redcliffe", "Ashby Vale", "Dunmore",
)  # fmt: skip
_DISTRICTS = (
    "Avon", "Bedfordshire", "Berkshire", "Buckinghamshire", "Cambridgeshire", "Cheshire",
    "Cumbria", "Derbyshire", "Devon", "Dorset", "Essex", "Kent", "Norfolk", "Surrey",
)  # fmt: skip
_COUNTRIES = (
    "United Kingdom", "Ireland", "France", "Germany", "Netherlands", "Spain", "Portugal",
    "Italy", "Norway", "Sweden", "Poland", "Canada", "United States", "Japan", "Australia",
    "New Zealand", "Kenya", "Brazil", "Chile", "Iceland",
)  # fmt: skip
_COMPANY_FORMS = ("{a} and Sons", "{a} Inc", "{a} Group", "{a} LLC", "{a}, {b} and {c}", "{a}-{b}")
_MATERIALS = (
    "Wooden", "Steel", "Cotton", "Granite", "Bronze", "Soft", "Plastic", "Frozen", "Rubber",
    "Concrete", "Metal", "Fresh", "Leather", "Linen",
)  # fmt: skip
_FILE_LOCATIONS = (
    "/usr", "/usr/share", "/usr/local/bin", "/opt", "/opt/lib", "/var/tmp", "/home/user",
    "/srv", "/private", "/etc/periodic", "/Library", "/System", "/mnt", "/media",
)  # fmt: skip
_CURRENCIES = ("GBP", "USD", "EUR", "CHF", "JPY")
_PAYMENT_TYPES = ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND")

_N_DEPARTMENTS = len(_DEPARTMENTS)
_N_STAFF = 20
_N_ADDRESSES = 30
_N_COUNTERPARTIES = 20


# --------------------------------------------------------------------------------------------
@dataclass
class SyntheticManifest:
    """What `iter_ingestion_files` generated, for tests to cross-check the pipeline.

    Filled in by the generator: complete once the iterator is exhausted (`files` grows as files
    are yielded; the other fields are set before the first file).
    """

    files: list[str] = field(default_factory=list)  # ingestion keys in the order written
    orders_created: int = 0  # distinct sales_order_id ever generated
    # distinct (sales_order_id, last_updated) versions across all files, deletions excluded
    order_versions: int = 0
    # in the first baseline snapshot (or added later), missing from the last one
    deleted_order_ids: list[int] = field(default_factory=list)
    updated_order_ids: list[int] = field(default_factory=list)  # orders with > 1 version
    renamed_department_ids: list[int] = field(default_factory=list)
    changed_address_ids: list[int] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    changed_staff_ids: list[int] = field(default_factory=list)
    new_design_ids: list[int] = field(default_factory=list)  # designs first seen in updated/
    skipped_files: list[str] = field(default_factory=list)  # files of tables the stage ignores

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def iter_ingestion_files(
    orders: int = 2000,
    updates: int = 5,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    manifest: SyntheticManifest | None = None,
) -> Iterator[tuple[str, bytes]]:
    """Yield `(ingestion key, content)` of a synthetic ingestion tree, one file at a time.

    `orders` is the number of distinct sales orders over the whole tree (most in the baseline,
    ≈0.5% per batch created in the update batches). `start` is the baseline's time; batch `b`
    (0-based) is at `start + 30 min * (b + 1)`. An order with 3 versions needs `updates >= 2`.
    """
    if orders < 10:
        raise ValueError("orders must be at least 10")
    if updates < 0:
        raise ValueError("updates must not be negative")
    if start.tzinfo is not None or start < _EARLIEST_START:
        raise ValueError(f"start must be a naive datetime not before {_EARLIEST_START}")
    gen = _Generator(orders, updates, seed, start)
    m = manifest if manifest is not None else SyntheticManifest()
    gen.fill_manifest(m)
    for key, content in gen.files():
        m.files.append(key)
        yield key, content


def write_ingestion_tree(root: str | Path, **kwargs: Any) -> SyntheticManifest:
    """Write the tree under a local folder (`root/<key>`); arguments as `iter_ingestion_files`."""
    manifest = SyntheticManifest()
    for key, content in iter_ingestion_files(manifest=manifest, **kwargs):
        path = Path(root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return manifest


# --------------------------------------------------------------------------------------------
# Formatting


def _ms(dt: datetime) -> int:
    """Epoch milliseconds of a naive datetime (floored to the millisecond)."""
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _format_ts(ms: int, style: TsStyle) -> str | int:
    if style == "epoch_ms":
        return ms
    dt = _dt(ms)
    if style == "iso":
        return dt.isoformat()
    if style == "str":
        return str(dt)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{dt.microsecond // 1000:03d}" if dt.microsecond else text


def _format_price(cents: int, as_string: bool) -> str | float:
    return f"{cents // 100}.{cents % 100:02d}" if as_string else cents / 100


def _key(prefix: str, table: str, at: datetime, form: NameForm) -> str:
    if form == "minute" and at.second == 0 and at.microsecond == 0:
        stamp = at.strftime("%Y%m%dT%H%MZ")
    elif form == "str":
        stamp = str(at)
    else:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{prefix}/{table}-{stamp}.json"


def _render_row(row: Row, fmt: _Fmt) -> Row:
    out: Row = {}
    for name, value in row.items():
        if name in _TS_COLUMNS:
            out[name] = _format_ts(value, fmt.ts)
        elif name == "unit_price":
            out[name] = _format_price(value, fmt.price_as_string)
        elif isinstance(value, date):
            out[name] = value.isoformat()
        elif fmt.ids_as_strings and name.endswith("_id") and isinstance(value, int):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def _encode_rows(table: str, rows: list[Row], fmt: _Fmt) -> bytes:
    rendered = [_render_row(r, fmt) for r in rows]
    if fmt.shape == "wrapped":
        text = json.dumps({table: rendered})
    elif fmt.shape == "array":
        text = json.dumps(rendered)
    else:
        text = "".join(json.dumps(r) + "\n" for r in rendered)
    return text.encode()


def _ts_expr(name: str, style: TsStyle) -> pl.Expr:
    col = pl.col(name)
    if style == "epoch_ms":
        return col
    dt = col.cast(pl.Datetime("ms"))
    sep = "T" if style == "iso" else " "
    frac = "%.3f" if style == "space_ms" else "%.6f"
    whole = f"%Y-%m-%d{sep}%H:%M:%S"
    return (
        pl.when(col % 1000 == 0)
        .then(dt.dt.strftime(whole))
        .otherwise(dt.dt.strftime(whole + frac))
        .alias(name)
    )


def _encode_orders(df: pl.DataFrame, fmt: _Fmt) -> bytes:
    """Render the internal order frame as a sales_order ingestion file (vectorised)."""
    exprs: list[pl.Expr] = []
    for name in _ORDER_COLUMNS:
        if name in _TS_COLUMNS:
            exprs.append(_ts_expr(name, fmt.ts))
        elif name == "unit_price":
            cents = pl.col(name)
            text = pl.format("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))
            # Parsed from text: Polars' `cents / 100` multiplies by 0.01 (3.8000000000000003).
            exprs.append((text if fmt.price_as_string else text.cast(pl.Float64)).alias(name))
        elif name.startswith("agreed_") and name.endswith("_date"):
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        elif fmt.ids_as_strings and name.endswith("_id"):
            exprs.append(pl.col(name).cast(pl.String))
        else:
            exprs.append(pl.col(name))
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
    head, tail = (b"[", b"]") if fmt.shape == "array" else (b'{"sales_order": [', b"]}")
    return b"".join((head, memoryview(joined)[:-1], tail))


# --------------------------------------------------------------------------------------------
# Random helpers


def _rng(seed: int, stream: str) -> random.Random:
    # str seeds hash with SHA-512: stable across runs and Python versions.
    return random.Random(f"totesys-synthetic:{seed}:{stream}")


def _random_int63(rng: random.Random, n: int) -> pl.Series:
    """n uniform non-negative 63-bit integers as an Int64 Series (fast, no numpy needed)."""
    values = array.array("Q")
    if values.itemsize != 8:  # pragma: no cover - every mainstream platform has 8-byte "Q"
        raise RuntimeError("array('Q') is not 64-bit on this platform")
    values.frombytes(rng.randbytes(8 * n))
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return (pl.Series(values, dtype=pl.UInt64) // 2).cast(pl.Int64)


def _between(r: pl.Expr, lo: int, hi: int) -> pl.Expr:
    """Uniform integer in [lo, hi] from a column of 63-bit random integers."""
    return r % (hi - lo + 1) + lo


# --------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    at: datetime
    changed: list[int]  # existing orders changed in this batch
    first_new: int  # id of the first order created in this batch
    new: int  # how many orders created in this batch


class _Generator:
    def __init__(self, orders: int, updates: int, seed: int, start: datetime) -> None:
        self.orders = orders
        self.updates = updates
        self.seed = seed
        self.start = start
        self.start_ms = _ms(start)
        self.n_currencies = 5 if orders >= 5000 else 3
        self.n_designs = min(max(orders // 25, 5), 400)
        self._make_dimensions()
        self._plan()

    # -- the plan: which orders change, are created and deleted in which batch ---------------
    def _plan(self) -> None:
        rng = _rng(self.seed, "plan")
        u = self.updates
        total_new = min(u * max(1, self.orders // 200), self.orders // 2) if u else 0
        self.n_baseline = self.orders - total_new
        changed_per_batch = max(2, self.orders // 500)
        # One baseline order changes in every batch: with 2+ batches it has 3+ versions.
        self.hot_order = rng.randint(1, self.n_baseline)
        self.batches: list[_Batch] = []
        live = self.n_baseline
        for b in range(u):
            new = total_new * (b + 1) // u - total_new * b // u
            k = min(changed_per_batch, live)
            picked = rng.sample(range(1, live + 1), k)
            if self.hot_order in picked:
                picked.remove(self.hot_order)
            else:
                picked.pop()
            changed = [*sorted(picked), self.hot_order]
            self.batches.append(
                _Batch(self.start + BATCH_INTERVAL * (b + 1), changed, live + 1, new)
            )
            live += new
        self.deleted: list[int] = []
        if u:
            last = self.batches[-1]
            protected = set(last.changed) | {self.hot_order}
            protected.update(range(last.first_new, last.first_new + last.new))
            n_del = max(1, round(self.orders * 0.005))
            deleted: set[int] = set()
            # One deleted order that never was in a baseline: created in an earlier batch.
            if u >= 2 and self.batches[0].new and self.batches[0].first_new not in protected:
                deleted.add(self.batches[0].first_new)
            candidates = last.first_new - 1  # orders live before the last batch
            while len(deleted) < min(n_del, candidates - len(protected)):
                oid = rng.randint(1, candidates)
                if oid not in protected:
                    deleted.add(oid)
            self.deleted = sorted(deleted)
        self.version_count = self.n_baseline + sum(len(b.changed) + b.new for b in self.batches)
        self.updated_ids = sorted({oid for b in self.batches for oid in b.changed})
        # Dimension changes, spread over the batches.
        self.design_batch = 0
        self.staff_batch = 0
        self.department_batch = min(1, u - 1)
        self.address_batch = min(2, u - 1)

    def fill_manifest(self, m: SyntheticManifest) -> None:
        u = self.updates
        m.files = []
        m.orders_created = self.orders
        m.order_versions = self.version_count
        m.deleted_order_ids = list(self.deleted)
        m.updated_order_ids = list(self.updated_ids)
        m.renamed_department_ids = [self.renamed_department] if u else []
        m.changed_address_ids = list(self.changed_addresses) if u else []
        m.changed_staff_ids = [self.changed_staff] if u else []
        m.new_design_ids = [self.n_designs + 1] if u else []
        m.currencies = [c["currency_code"] for c in self.currency]
        m.skipped_files = [self._payment_type_key()]

    def _payment_type_key(self) -> str:
        return _key("baseline", "payment_type", self.start, _BASELINE_FMTS["payment_type"].name)

    # -- dimensions ---------------------------------------------------------------------------
    def _make_dimensions(self) -> None:
        rng = _rng(self.seed, "dimensions")
        dim_ms = _ms(_DIM_CREATED)
        people_ms = _ms(_PEOPLE_CREATED)

        self.currency: list[Row] = [
            {
                "currency_id": i + 1,
                "currency_code": code,
                "created_at": dim_ms,
                "last_updated": dim_ms,
            }
            for i, code in enumerate(_CURRENCIES[: self.n_currencies])
        ]

        managers = rng.sample(
            [f"{f} {s}" for f in _FIRST_NAMES for s in _LAST_NAMES], _N_DEPARTMENTS
        )
        self.department: list[Row] = []
        for i, (name, location) in enumerate(_DEPARTMENTS):
            self.department.append(
                {
                    "department_id": i + 1,
                    "department_name": name,
                    # Two departments with nulls, as in the real data.
                    "location": None if i == 6 else location,
                    "manager": None if i == 7 else managers[i],
                    "created_at": dim_ms,
                    "last_updated": dim_ms,
                }
            )

        names = rng.sample([(f, s) for f in _FIRST_NAMES for s in _LAST_NAMES], _N_STAFF)
        self.staff: list[Row] = [
            {
                "staff_id": i + 1,
                "first_name": first,
                "last_name": last,
                "department_id": rng.randint(1, _N_DEPARTMENTS),
                "email_address": f"{first.lower()}.{last.lower()}@terrifictotes.com",
                "created_at": people_ms,
                "last_updated": people_ms,
            }
            for i, (first, last) in enumerate(names)
        ]

        self.address: list[Row] = []
        for i in range(_N_ADDRESSES):
            line_2 = (
                None
                if rng.random() < 0.6
                else f"{rng.choice(('Apt.', 'Suite'))} {rng.randint(1, 900)}"
            )
            district = None if rng.random() < 0.4 else rng.choice(_DISTRICTS)
            if i == 0:  # guarantee both nulls ...
                line_2, district = None, None
            if i == 1:  # ... and both values
                line_2, district = "Suite 12", "Kent"
            self.address.append(
                {
                    "address_id": i + 1,
                    "address_line_1": self._street(rng),
                    "address_line_2": line_2,
                    "district": district,
                    "city": rng.choice(_CITIES),
                    "postal_code": self._postcode(rng),
                    "country": rng.choice(_COUNTRIES),
                    "phone": f"{rng.randint(1000, 9999)} {rng.randint(100000, 999999)}",
                    "created_at": dim_ms,
                    "last_updated": dim_ms,
                }
            )

        self.counterparty: list[Row] = []
        used_names: set[str] = set()
        for i in range(_N_COUNTERPARTIES):
            legal = ""
            while not legal or legal in used_names:
                a, b, c = rng.sample(_LAST_NAMES, 3)
                legal = rng.choice(_COMPANY_FORMS).format(a=a, b=b, c=c)
            used_names.add(legal)
            self.counterparty.append(
                {
                    "counterparty_id": i + 1,
                    "counterparty_legal_name": legal,
                    "legal_address_id": rng.randint(1, _N_ADDRESSES),
                    "commercial_contact": self._person(rng),
                    # One counterparty without a delivery contact (the column is nullable).
                    "delivery_contact": None if i == _N_COUNTERPARTIES - 1 else self._person(rng),
                    "created_at": people_ms,
                    "last_updated": people_ms,
                }
            )

        # Designs: the first few at seeding time, the rest spread until `start` (ids increase
        # with creation time; an order only uses a design created before it).
        n_seeded = min(10, self.n_designs)
        later = sorted(
            rng.randint(_ms(_ORDERS_FROM), self.start_ms - 1000)
            for _ in range(self.n_designs - n_seeded)
        )
        self.design_created_ms = [dim_ms] * n_seeded + later
        self.design: list[Row] = [
            self._design_row(rng, i + 1, ms) for i, ms in enumerate(self.design_created_ms)
        ]

        self.payment_type: list[Row] = [
            {
                "payment_type_id": i + 1,
                "payment_type_name": name,
                "created_at": dim_ms,
                "last_updated": dim_ms,
            }
            for i, name in enumerate(_PAYMENT_TYPES)
        ]

        # Which members change in the update batches (chosen now so the manifest is known).
        first_staff_dept = self.staff[0]["department_id"]
        self.renamed_department = first_staff_dept  # a department with at least one member
        self.changed_staff = rng.randint(1, _N_STAFF)
        legal_1 = self.counterparty[0]["legal_address_id"]  # reaches dim_counterparty
        other = rng.choice([a for a in range(1, _N_ADDRESSES + 1) if a != legal_1])
        self.changed_addresses = sorted({legal_1, other})

    @staticmethod
    def _street(rng: random.Random) -> str:
        return f"{rng.randint(1, 9999)} {rng.choice(_STREET_NAMES)} {rng.choice(_STREET_SUFFIXES)}"

    @staticmethod
    def _postcode(rng: random.Random) -> str:
        if rng.random() < 0.5:
            return f"{rng.randint(10000, 99999)}"
        return f"{rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}"

    @staticmethod
    def _person(rng: random.Random) -> str:
        return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"

    @staticmethod
    def _design_row(rng: random.Random, design_id: int, created_ms: int) -> Row:
        material = rng.choice(_MATERIALS)
        made = _dt(created_ms).date() - timedelta(days=rng.randint(30, 500))
        suffix = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
        return {
            "design_id": design_id,
            "created_at": created_ms,
            "design_name": material,
            "file_location": rng.choice(_FILE_LOCATIONS),
            "file_name": f"{material.lower()}-{made:%Y%m%d}-{suffix}.json",
            "last_updated": created_ms,
        }

    # -- sales orders -------------------------------------------------------------------------
    def _baseline_orders(self) -> pl.DataFrame:
        """The baseline's orders 1..n_baseline, vectorised."""
        n = self.n_baseline
        rng = _rng(self.seed, "baseline-orders")
        t0 = _ms(_ORDERS_FROM)
        span = self.start_ms - 1000 - t0
        r = {f"r{i}": _random_int63(rng, n) for i in range(13)}
        df = pl.DataFrame(r).with_columns(
            sales_order_id=pl.int_range(1, n + 1, dtype=pl.Int32),
            created_at=(pl.col("r0") % (span + 1)).sort() + t0,
        )
        # A few orders created on a whole second (isoformat drops the fraction), always order 1.
        created = pl.col("created_at")
        df = df.with_columns(
            created_at=pl.when((pl.col("r1") % 300 == 0) | (pl.col("sales_order_id") % 250 == 1))
            .then(created - created % 1000)
            .otherwise(created)
        )
        # ≈3% of the baseline's orders were already changed before the extract.
        df = df.with_columns(
            last_updated=pl.when(pl.col("r2") % 100 < 3)
            .then(created + pl.col("r3") % (self.start_ms - created))
            .otherwise(created)
        )
        designs = pl.Series(self.design_created_ms, dtype=pl.Int64)
        available = designs.search_sorted(df["created_at"], side="right").cast(pl.Int64)
        day = created // _MS_PER_DAY
        df = df.with_columns(available=available).select(
            "sales_order_id",
            "created_at",
            "last_updated",
            design_id=(pl.col("r4") % pl.col("available") + 1).cast(pl.Int32),
            staff_id=_between(pl.col("r5"), 1, _N_STAFF).cast(pl.Int32),
            counterparty_id=_between(pl.col("r6"), 1, _N_COUNTERPARTIES).cast(pl.Int32),
            units_sold=_between(pl.col("r7"), 1000, 100_000).cast(pl.Int32),
            unit_price=_between(pl.col("r8"), 200, 400).cast(pl.Int32),
            currency_id=_between(pl.col("r9"), 1, self.n_currencies).cast(pl.Int32),
            agreed_delivery_date=(day + _between(pl.col("r10"), 1, 7)).cast(pl.Int32).cast(pl.Date),
            agreed_payment_date=(day + pl.col("r11") % 8).cast(pl.Int32).cast(pl.Date),
            agreed_delivery_location_id=_between(pl.col("r12"), 1, _N_ADDRESSES).cast(pl.Int32),
        )
        return df

    @staticmethod
    def _window_ms(rng: random.Random, prev: datetime, at: datetime) -> int:
        """A millisecond timestamp strictly after `prev` and not after `at`."""
        return rng.randint(_ms(prev) + 1, _ms(at))

    @staticmethod
    def _agreed(rng: random.Random, ms: int) -> tuple[date, date]:
        day = _dt(ms).date()
        return day + timedelta(days=rng.randint(1, 7)), day + timedelta(days=rng.randint(0, 7))

    def _change_order(self, rng: random.Random, row: Row, ms: int) -> Row:
        new = dict(row)
        kind = rng.randrange(4)  # 0 units, 1 price, 2 agreed dates, 3 all of them
        if kind in (0, 3):
            while new["units_sold"] == row["units_sold"]:
                new["units_sold"] = rng.randint(1000, 100_000)
        if kind in (1, 3):
            while new["unit_price"] == row["unit_price"]:
                new["unit_price"] = rng.randint(200, 400)
        if kind in (2, 3):
            delivery, payment = self._agreed(rng, ms)
            if (delivery, payment) == (row["agreed_delivery_date"], row["agreed_payment_date"]):
                delivery += timedelta(days=1)
            new["agreed_delivery_date"], new["agreed_payment_date"] = delivery, payment
        new["last_updated"] = ms
        return new

    def _new_order(self, rng: random.Random, order_id: int, ms: int, designs: int) -> Row:
        delivery, payment = self._agreed(rng, ms)
        return {
            "sales_order_id": order_id,
            "created_at": ms,
            "last_updated": ms,
            "design_id": rng.randint(1, designs),
            "staff_id": rng.randint(1, _N_STAFF),
            "counterparty_id": rng.randint(1, _N_COUNTERPARTIES),
            "units_sold": rng.randint(1000, 100_000),
            "unit_price": rng.randint(200, 400),
            "currency_id": rng.randint(1, self.n_currencies),
            "agreed_delivery_date": delivery,
            "agreed_payment_date": payment,
            "agreed_delivery_location_id": rng.randint(1, _N_ADDRESSES),
        }

    # -- the files ----------------------------------------------------------------------------
    def files(self) -> Iterator[tuple[str, bytes]]:
        start = self.start
        for table in ("currency", "department", "staff", "address", "counterparty", "design"):
            fmt = _BASELINE_FMTS[table]
            members: list[Row] = getattr(self, table)
            yield _key("baseline", table, start, fmt.name), _encode_rows(table, members, fmt)

        base = self._baseline_orders()
        fmt = _BASELINE_FMTS["sales_order"]
        yield _key("baseline", "sales_order", start, fmt.name), _encode_orders(base, fmt)

        fmt = _BASELINE_FMTS["payment_type"]
        yield self._payment_type_key(), _encode_rows("payment_type", self.payment_type, fmt)

        current: dict[int, Row] = {}  # latest version of every order touched after the baseline
        prev = start
        for b, batch in enumerate(self.batches):
            yield from self._dimension_updates(b, prev, batch.at)
            rng = _rng(self.seed, f"batch-{b}")
            rows: list[Row] = []
            missing = [oid for oid in batch.changed if oid not in current]
            if missing:
                idx = pl.Series([oid - 1 for oid in missing], dtype=pl.Int64)
                for row in base.select(pl.all().gather(idx)).iter_rows(named=True):
                    current[row["sales_order_id"]] = row
            for oid in batch.changed:
                changed = self._change_order(
                    rng, current[oid], self._window_ms(rng, prev, batch.at)
                )
                current[oid] = changed
                rows.append(changed)
            # Designs created in an earlier batch may be used by new orders.
            designs = self.n_designs + (1 if b > self.design_batch else 0)
            stamps = sorted(self._window_ms(rng, prev, batch.at) for _ in range(batch.new))
            for i, ms in enumerate(stamps):
                oid = batch.first_new + i
                order = self._new_order(rng, oid, ms, designs)
                if b == self.design_batch + 1 and i == 0:
                    order["design_id"] = self.n_designs + 1  # the new design is used
                current[oid] = order
                rows.append(order)
            rows.sort(key=lambda r: (r["last_updated"], r["sales_order_id"]))
            fmt = _BATCH_ORDER_FMTS[b % len(_BATCH_ORDER_FMTS)]
            yield (
                _key("updated", "sales_order", batch.at, fmt.name),
                _encode_rows("sales_order", rows, fmt),
            )
            prev = batch.at

        if self.batches:
            yield self._deletion_snapshot(base, current)

    def _dimension_updates(
        self, b: int, prev: datetime, at: datetime
    ) -> Iterator[tuple[str, bytes]]:
        rng = _rng(self.seed, f"dimensions-{b}")
        if b == self.design_batch:
            ms = self._window_ms(rng, prev, at)
            row = self._design_row(rng, self.n_designs + 1, ms)
            fmt = _UPDATE_DIM_FMTS["design"]
            yield _key("updated", "design", at, fmt.name), _encode_rows("design", [row], fmt)
        if b == self.staff_batch:
            row = dict(self.staff[self.changed_staff - 1])
            others = [d for d in range(1, _N_DEPARTMENTS + 1) if d != row["department_id"]]
            row["department_id"] = rng.choice(others)
            row["last_name"] = rng.choice([s for s in _LAST_NAMES if s != row["last_name"]])
            row["email_address"] = (
                f"{row['first_name'].lower()}.{row['last_name'].lower()}@terrifictotes.com"
            )
            row["last_updated"] = self._window_ms(rng, prev, at)
            self.staff[self.changed_staff - 1] = row
            fmt = _UPDATE_DIM_FMTS["staff"]
            yield _key("updated", "staff", at, fmt.name), _encode_rows("staff", [row], fmt)
        if b == self.department_batch:
            row = dict(self.department[self.renamed_department - 1])
            row["department_name"] = _RENAMES[row["department_name"]]
            row["last_updated"] = self._window_ms(rng, prev, at)
            self.department[self.renamed_department - 1] = row
            fmt = _UPDATE_DIM_FMTS["department"]
            yield (
                _key("updated", "department", at, fmt.name),
                _encode_rows("department", [row], fmt),
            )
        if b == self.address_batch:
            rows: list[Row] = []
            for address_id in self.changed_addresses:
                row = dict(self.address[address_id - 1])
                row["address_line_1"] = self._street(rng)
                row["postal_code"] = self._postcode(rng)
                row["phone"] = f"{rng.randint(1000, 9999)} {rng.randint(100000, 999999)}"
                if row["district"] is None:
                    row["district"] = rng.choice(_DISTRICTS)
                row["last_updated"] = self._window_ms(rng, prev, at)
                self.address[address_id - 1] = row
                rows.append(row)
            fmt = _UPDATE_DIM_FMTS["address"]
            yield _key("updated", "address", at, fmt.name), _encode_rows("address", rows, fmt)

    def _deletion_snapshot(self, base: pl.DataFrame, current: dict[int, Row]) -> tuple[str, bytes]:
        """A full baseline of sales_order at the last batch: latest versions, minus deletions."""
        touched = pl.DataFrame(list(current.values()), schema=_ORDER_FRAME)
        gone = pl.Series(list(current) + self.deleted, dtype=pl.Int32)
        kept_touched = touched.filter(~pl.col("sales_order_id").is_in(self.deleted))
        snapshot = pl.concat(
            [base.filter(~pl.col("sales_order_id").is_in(gone.implode())), kept_touched]
        ).sort("sales_order_id")
        at = self.batches[-1].at
        return (
            _key("baseline", "sales_order", at, _SNAPSHOT_FMT.name),
            _encode_orders(snapshot, _SNAPSHOT_FMT),
        )
