"""What the lease holder knows of the tables it writes, kept so a small run opens only the tables
it changes (on S3 every table open is several round trips).

`_state/catalog.json`: per table the Delta version, rows and last commit the holder left; the
keys of every dimension's members; dim_date's range; and per fact the next record id, which fact
version its index (service/fact_index.py) reflects, the index buckets that exist and where the
index lives.

It is derived state, written after the batch's commits. It may therefore lag the tables (a run
that died between a commit and this write) but never lead them, and every use that could go wrong
on a lag checks (or knows it need not: `settled`, below): a fact index is used only when its fact
version is the fact table's version (else it is rebuilt from the table); a member or calendar day
that looks missing is verified against the table before anything is written; table summaries are
checked against the next Delta log entry by readers.

`settled`: saved after the last commit of a batch (or of a maintenance), once every public table
is accounted for (its state, or listed `absent`), and the writer saves it again with `settled:
false` before its next commit to a public table. So a settled catalog is exact for every public
table and readers of the table summaries need no check; an unsettled one (or one written before
the flag) is checked as above.

A catalog written before facts were declared (one fact, its entries at the top level and its
index at `_state/fact_index/`) is read as it is: those entries are fact_sales_order's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from deltalake import DeltaTable

from service.fact_index import INDEX_ROOT, index_prefix
from service.storage import Storage
from transforms.fact_sales_order import SALES

log = logging.getLogger("totesys.catalog")

CATALOG_KEY = "_state/catalog.json"
# A dimension with more members than this is not listed (dim_transaction grows with the orders):
# its members are asked of the table, for the keys a batch references only.
MEMBERS_LISTED_MAX = 20_000
LEGACY_FACT = SALES.name  # the one fact of a catalog written before declarations


@dataclass
class TableState:
    version: int
    rows: int
    last_commit: str | None  # ISO, UTC
    last_operation: str | None


@dataclass
class FactState:
    """What the catalog keeps per fact."""

    index_prefix: str
    next_record_id: int | None = None
    index_version: int | None = None  # fact version the index reflects
    index_buckets: list[int] = field(default_factory=list)


def _legacy_fact(raw: dict[str, Any]) -> dict[str, FactState]:
    if raw.get("fact_index_version") is None and not raw.get("index_buckets"):
        return {}
    return {
        LEGACY_FACT: FactState(
            index_prefix=INDEX_ROOT,
            next_record_id=raw.get("next_record_id"),
            index_version=raw.get("fact_index_version"),
            index_buckets=list(raw.get("index_buckets", [])),
        )
    }


@dataclass
class Catalog:
    tables: dict[str, TableState] = field(default_factory=dict)
    members: dict[str, list[int] | None] = field(default_factory=dict)  # None: too many to list
    calendar: tuple[str, str] | None = None  # ISO dates
    facts: dict[str, FactState] = field(default_factory=dict)
    settled: bool = False  # no public table committed since it was saved
    absent: set[str] = field(default_factory=set)  # public tables known not to exist
    # in memory: loaded settled (and every commit since noted), so nothing it says lags
    exact: bool = field(default=False, repr=False)

    # -- (de)serialisation --------------------------------------------------------------------
    @classmethod
    def load(cls, storage: Storage) -> Catalog:
        data = storage.read_if_exists(CATALOG_KEY)
        if data is None:
            return cls()
        try:
            raw: dict[str, Any] = json.loads(data)
            facts = (
                {k: FactState(**v) for k, v in raw["facts"].items()}
                if "facts" in raw
                else _legacy_fact(raw)
            )
            return cls(
                tables={k: TableState(**v) for k, v in raw.get("tables", {}).items()},
                members={
                    k: None if v is None else list(v) for k, v in raw.get("members", {}).items()
                },
                calendar=tuple(raw["calendar"]) if raw.get("calendar") else None,
                facts=facts,
                settled=raw.get("settled") is True,
                absent=set(raw.get("absent", [])),
                exact=raw.get("settled") is True,
            )
        except (ValueError, TypeError, KeyError):
            log.warning("unreadable %s: starting from an empty catalog", CATALOG_KEY)
            return cls()

    def save(self, storage: Storage, settled: bool = True) -> None:
        """After the commits it reflects (settled, if `account_for` made it exact), or before
        more (`unsettle`)."""
        settled = settled and self.exact  # never claims more than it knows
        self.settled = settled
        body = {
            "tables": {k: asdict(v) for k, v in self.tables.items()},
            "members": self.members,
            "calendar": list(self.calendar) if self.calendar else None,
            "facts": {k: asdict(v) for k, v in self.facts.items()},
            "settled": settled,
            "absent": sorted(self.absent),
        }
        storage.write(CATALOG_KEY, json.dumps(body).encode())

    def account_for(self, names: list[str], info: Callable[[str], Any]) -> None:
        """Every table of `names` the catalog neither lists nor knows absent, or all of them when
        it may lag (it was not loaded settled: a writer may have died after a commit): asked
        (`info`: the table's TableInfo, or None when it does not exist). Then it is exact."""
        for name in names:
            if self.exact and (name in self.tables or name in self.absent):
                continue
            self.absent.discard(name)
            found = info(name)
            if found is None:
                self.absent.add(name)
            else:
                last = (
                    found.last_commit.isoformat(timespec="milliseconds")
                    if found.last_commit
                    else None
                )
                self.tables[name] = TableState(
                    found.version, found.rows, last, found.last_operation
                )
        self.exact = True

    def unsettle(self, storage: Storage) -> None:
        """Before a commit to a public table: a settled catalog says it is not exact any more
        (one small write, once per batch)."""
        if self.settled:
            self.save(storage, settled=False)

    def fact(self, name: str) -> FactState:
        """The fact's entry (a new one, with its index under `_state/fact_index/<fact>/`)."""
        if name not in self.facts:
            self.facts[name] = FactState(index_prefix=index_prefix(name))
        return self.facts[name]

    def index_is_current(self, name: str) -> bool:
        """Whether the catalog says the fact's index reflects the fact version it knows."""
        state, fact = self.tables.get(name), self.facts.get(name)
        return state is not None and fact is not None and fact.index_version == state.version

    # -- members and calendar -----------------------------------------------------------------
    def missing_members(self, dimension: str, keys: pl.Series) -> pl.Series:
        known = self.members.get(dimension)
        if known is None:
            return keys.unique()
        return keys.unique().filter(
            ~keys.unique().is_in(pl.Series(known, dtype=keys.dtype).implode())
        )

    def add_members(self, dimension: str, keys: pl.Series | list[int]) -> None:
        if dimension in self.members and self.members[dimension] is None:
            return  # not listed: the table is asked
        if len(keys) > MEMBERS_LISTED_MAX:  # before any list: a transaction dimension is 1M+
            self.members[dimension] = None
            return
        values = keys.to_list() if isinstance(keys, pl.Series) else keys
        merged = set(self.members.get(dimension) or []) | {int(k) for k in values if k is not None}
        self.members[dimension] = sorted(merged) if len(merged) <= MEMBERS_LISTED_MAX else None

    def calendar_range(self) -> tuple[date, date] | None:
        if self.calendar is None:
            return None
        return date.fromisoformat(self.calendar[0]), date.fromisoformat(self.calendar[1])

    def set_calendar(self, lo: date, hi: date) -> None:
        self.calendar = (lo.isoformat(), hi.isoformat())

    def set_table(self, name: str, version: int, rows: int, operation: str | None) -> None:
        self.tables[name] = TableState(
            version, rows, datetime.now(UTC).isoformat(timespec="milliseconds"), operation
        )

    def note_commit(self, name: str, handle: DeltaTable, operation: str) -> None:
        """A commit through the lake: the table's version and rows as the log now says."""
        actions = pl.DataFrame(handle.get_add_actions(flatten=True))
        rows = int(actions["num_records"].sum()) if not actions.is_empty() else 0
        self.set_table(name, handle.version(), rows, operation)
        self.absent.discard(name)
