"""The small Totesys tables: currency, department, staff, address, counterparty, design and
payment_type, as seeded, and the few changes the update batches make to them (a new design, a
staff change, a department rename, two address changes)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from service.synthetic import vocabulary as words
from service.synthetic.encoding import Fmt, Row, dt, encode_rows, ingestion_key, ms
from service.synthetic.randomness import rng, window_ms

# When the (fictional) database was seeded, and when its first sales order was taken.
DIM_CREATED = datetime(2022, 11, 3, 14, 20, 49, 500000)
PEOPLE_CREATED = datetime(2022, 11, 3, 14, 20, 51, 250000)
ORDERS_FROM = datetime(2022, 11, 3, 14, 20, 52, 0)

# The baseline's dimension files, in the order written.
BASELINE_FMTS: dict[str, Fmt] = {
    "currency": Fmt("wrapped", "iso", "str", ids_as_strings=True),
    "department": Fmt("array", "space_ms", "minute"),
    "staff": Fmt("jsonl", "epoch_ms", "iso_us"),
    "address": Fmt("wrapped", "space_ms", "str"),
    "counterparty": Fmt("array", "iso", "minute"),
    "design": Fmt("wrapped", "epoch_ms", "iso_us"),
}
PAYMENT_TYPE_FMT = Fmt("array", "iso", "str")
UPDATE_FMTS: dict[str, Fmt] = {
    "design": Fmt("array", "str", "minute"),
    "staff": Fmt("jsonl", "space_ms", "str"),
    "department": Fmt("wrapped", "iso", "minute", ids_as_strings=True),
    "address": Fmt("array", "epoch_ms", "iso_us"),
}


def street(source: random.Random) -> str:
    number = source.randint(1, 9999)
    return f"{number} {source.choice(words.STREET_NAMES)} {source.choice(words.STREET_SUFFIXES)}"


def postcode(source: random.Random) -> str:
    if source.random() < 0.5:
        return f"{source.randint(10000, 99999)}"
    return f"{source.randint(10000, 99999)}-{source.randint(1000, 9999)}"


def person(source: random.Random) -> str:
    return f"{source.choice(words.FIRST_NAMES)} {source.choice(words.LAST_NAMES)}"


def phone(source: random.Random) -> str:
    return f"{source.randint(1000, 9999)} {source.randint(100000, 999999)}"


def design_row(source: random.Random, design_id: int, created_ms: int) -> Row:
    material = source.choice(words.MATERIALS)
    made = dt(created_ms).date() - timedelta(days=source.randint(30, 500))
    suffix = "".join(source.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
    return {
        "design_id": design_id,
        "created_at": created_ms,
        "design_name": material,
        "file_location": source.choice(words.FILE_LOCATIONS),
        "file_name": f"{material.lower()}-{made:%Y%m%d}-{suffix}.json",
        "last_updated": created_ms,
    }


class Dimensions:
    """Every member of the small tables, seeded from the `dimensions` stream.

    `updates` batches follow the baseline; the changes are chosen now so the manifest is known:
    a new design and a staff change in batch 0, a department rename in batch 1 and two address
    changes in batch 2 (or in the last batch when there are fewer).
    """

    def __init__(
        self, seed: int, updates: int, n_currencies: int, n_designs: int, start: datetime
    ) -> None:
        self.seed = seed
        self.n_designs = n_designs
        self.design_batch = 0
        self.staff_batch = 0
        self.department_batch = min(1, updates - 1)
        self.address_batch = min(2, updates - 1)
        source = rng(seed, "dimensions")
        self.dim_ms = ms(DIM_CREATED)
        self.currency = self._currencies(n_currencies)
        self.department = self._departments(source)
        self.staff = self._staff(source)
        self.address = [self._address(source, i) for i in range(words.N_ADDRESSES)]
        self.counterparty = self._counterparties(source)
        self.design_created_ms = self._design_times(source, ms(start))
        self.design = [design_row(source, i + 1, t) for i, t in enumerate(self.design_created_ms)]
        self.payment_type = [
            {
                "payment_type_id": i + 1,
                "payment_type_name": name,
                "created_at": self.dim_ms,
                "last_updated": self.dim_ms,
            }
            for i, name in enumerate(words.PAYMENT_TYPES)
        ]
        # Which members change in the update batches.
        self.renamed_department = self.staff[0]["department_id"]  # someone works there
        self.changed_staff = source.randint(1, words.N_STAFF)
        legal_1 = self.counterparty[0]["legal_address_id"]  # reaches dim_counterparty
        other = source.choice([a for a in range(1, words.N_ADDRESSES + 1) if a != legal_1])
        self.changed_addresses = sorted({legal_1, other})
        self.new_design_id = n_designs + 1

    # -- the seeded members -------------------------------------------------------------------
    def _currencies(self, n: int) -> list[Row]:
        return [
            {
                "currency_id": i + 1,
                "currency_code": code,
                "created_at": self.dim_ms,
                "last_updated": self.dim_ms,
            }
            for i, code in enumerate(words.CURRENCIES[:n])
        ]

    def _departments(self, source: random.Random) -> list[Row]:
        everyone = [f"{f} {s}" for f in words.FIRST_NAMES for s in words.LAST_NAMES]
        managers = source.sample(everyone, words.N_DEPARTMENTS)
        return [
            {
                "department_id": i + 1,
                "department_name": name,
                # Two departments with nulls, as in the real data.
                "location": None if i == 6 else location,
                "manager": None if i == 7 else managers[i],
                "created_at": self.dim_ms,
                "last_updated": self.dim_ms,
            }
            for i, (name, location) in enumerate(words.DEPARTMENTS)
        ]

    def _staff(self, source: random.Random) -> list[Row]:
        pairs = [(f, s) for f in words.FIRST_NAMES for s in words.LAST_NAMES]
        names = source.sample(pairs, words.N_STAFF)
        people_ms = ms(PEOPLE_CREATED)
        return [
            {
                "staff_id": i + 1,
                "first_name": first,
                "last_name": last,
                "department_id": source.randint(1, words.N_DEPARTMENTS),
                "email_address": f"{first.lower()}.{last.lower()}@terrifictotes.com",
                "created_at": people_ms,
                "last_updated": people_ms,
            }
            for i, (first, last) in enumerate(names)
        ]

    def _address(self, source: random.Random, i: int) -> Row:
        line_2 = (
            None
            if source.random() < 0.6
            else f"{source.choice(('Apt.', 'Suite'))} {source.randint(1, 900)}"
        )
        district = None if source.random() < 0.4 else source.choice(words.DISTRICTS)
        if i == 0:  # guarantee both nulls ...
            line_2, district = None, None
        if i == 1:  # ... and both values
            line_2, district = "Suite 12", "Kent"
        return {
            "address_id": i + 1,
            "address_line_1": street(source),
            "address_line_2": line_2,
            "district": district,
            "city": source.choice(words.CITIES),
            "postal_code": postcode(source),
            "country": source.choice(words.COUNTRIES),
            "phone": phone(source),
            "created_at": self.dim_ms,
            "last_updated": self.dim_ms,
        }

    def _counterparties(self, source: random.Random) -> list[Row]:
        people_ms = ms(PEOPLE_CREATED)
        out: list[Row] = []
        used_names: set[str] = set()
        for i in range(words.N_COUNTERPARTIES):
            legal = ""
            while not legal or legal in used_names:
                a, b, c = source.sample(words.LAST_NAMES, 3)
                legal = source.choice(words.COMPANY_FORMS).format(a=a, b=b, c=c)
            used_names.add(legal)
            last = i == words.N_COUNTERPARTIES - 1
            out.append(
                {
                    "counterparty_id": i + 1,
                    "counterparty_legal_name": legal,
                    "legal_address_id": source.randint(1, words.N_ADDRESSES),
                    "commercial_contact": person(source),
                    # One counterparty without a delivery contact (the column is nullable).
                    "delivery_contact": None if last else person(source),
                    "created_at": people_ms,
                    "last_updated": people_ms,
                }
            )
        return out

    def _design_times(self, source: random.Random, start_ms: int) -> list[int]:
        """Designs: the first few at seeding time, the rest spread until `start` (ids increase
        with creation time; an order only uses a design created before it)."""
        n_seeded = min(10, self.n_designs)
        later = sorted(
            source.randint(ms(ORDERS_FROM), start_ms - 1000)
            for _ in range(self.n_designs - n_seeded)
        )
        return [self.dim_ms] * n_seeded + later

    # -- the files ----------------------------------------------------------------------------
    def baseline_files(self, start: datetime) -> Iterator[tuple[str, bytes]]:
        """The baseline files of the six tables the Sales star is built from."""
        for table, fmt in BASELINE_FMTS.items():
            members: list[Row] = getattr(self, table)
            yield (
                ingestion_key("baseline", table, start, fmt.name),
                encode_rows(table, members, fmt),
            )

    def payment_type_key(self, start: datetime) -> str:
        return ingestion_key("baseline", "payment_type", start, PAYMENT_TYPE_FMT.name)

    def payment_type_file(self, start: datetime) -> tuple[str, bytes]:
        rows = encode_rows("payment_type", self.payment_type, PAYMENT_TYPE_FMT)
        return self.payment_type_key(start), rows

    def update_files(self, b: int, prev: datetime, at: datetime) -> Iterator[tuple[str, bytes]]:
        """Batch `b`'s dimension changes, each row's last_updated inside (prev, at]."""
        source = rng(self.seed, f"dimensions-{b}")
        changes = (
            ("design", self.design_batch, self._new_design),
            ("staff", self.staff_batch, self._staff_change),
            ("department", self.department_batch, self._department_rename),
            ("address", self.address_batch, self._address_changes),
        )
        for table, batch, change in changes:
            if b == batch:
                rows = change(source, prev, at)
                fmt = UPDATE_FMTS[table]
                yield ingestion_key("updated", table, at, fmt.name), encode_rows(table, rows, fmt)

    def _new_design(self, source: random.Random, prev: datetime, at: datetime) -> list[Row]:
        return [design_row(source, self.new_design_id, window_ms(source, prev, at))]

    def _staff_change(self, source: random.Random, prev: datetime, at: datetime) -> list[Row]:
        row = dict(self.staff[self.changed_staff - 1])
        others = [d for d in range(1, words.N_DEPARTMENTS + 1) if d != row["department_id"]]
        row["department_id"] = source.choice(others)
        row["last_name"] = source.choice([s for s in words.LAST_NAMES if s != row["last_name"]])
        row["email_address"] = (
            f"{row['first_name'].lower()}.{row['last_name'].lower()}@terrifictotes.com"
        )
        row["last_updated"] = window_ms(source, prev, at)
        self.staff[self.changed_staff - 1] = row
        return [row]

    def _department_rename(self, source: random.Random, prev: datetime, at: datetime) -> list[Row]:
        row = dict(self.department[self.renamed_department - 1])
        row["department_name"] = words.RENAMES[row["department_name"]]
        row["last_updated"] = window_ms(source, prev, at)
        self.department[self.renamed_department - 1] = row
        return [row]

    def _address_changes(self, source: random.Random, prev: datetime, at: datetime) -> list[Row]:
        rows: list[Row] = []
        for address_id in self.changed_addresses:
            row = dict(self.address[address_id - 1])
            row["address_line_1"] = street(source)
            row["postal_code"] = postcode(source)
            row["phone"] = phone(source)
            if row["district"] is None:
                row["district"] = source.choice(words.DISTRICTS)
            row["last_updated"] = window_ms(source, prev, at)
            self.address[address_id - 1] = row
            rows.append(row)
        return rows
