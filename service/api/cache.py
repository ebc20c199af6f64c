"""What the API reads often from the Delta tables, kept per table and keyed by the table's
Delta version: table summaries and histories (the table list and the run list come from the
writer's small state objects instead: service/catalog.py, service/ledger.py).

Opening a Delta table replays its log (tens of ms locally, several requests on S3), and a table
summary also sums the file statistics: under a few hundred concurrent reads that was seconds per
request. Here each table has one `DeltaTable` handle, brought up to date with
`update_incremental()` (lists only the log entries after the version it has: ~3 ms locally, one
LIST on S3); a summary, history or run list computed at a version is served until the version
moves. A cached value can never be stale by more than one version check: a value is served only
if the table is still at the version it was computed at.

Version checks are coalesced: a request waits for the table's lock, then reuses the last check
if that check *started after the request arrived* (so it saw every commit made before the
request: a caller always reads its own writes), else checks again. The routes pass the moment
the request began (`deps.request_started`, on the event loop), not the moment a worker thread
reaches the lock, so 200 simultaneous requests cost about two checks per table, not 200.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deltalake import DeltaTable

from service.lake import Lake, TableInfo

T = TypeVar("T")


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    handle: DeltaTable | None = None
    version: int | None = None  # None: the table does not exist (yet)
    checked_at: float = float("-inf")  # monotonic time the last version check started
    values: dict[str, tuple[int, Any]] = field(default_factory=dict)  # kind → (version, value)


class TableCache:
    """Per-table Delta handles and values computed at their version (thread-safe)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._entries: dict[str, _Entry] = {}
        self._entries_lock = threading.Lock()

    def _entry(self, name: str) -> _Entry:
        with self._entries_lock:
            return self._entries.setdefault(name, _Entry())

    def _refresh(self, entry: _Entry, name: str, arrived: float) -> None:
        """Bring `entry` to the table's latest version unless a check that started after
        `arrived` already did (caller holds `entry.lock`)."""
        if entry.checked_at >= arrived:
            return
        started = time.monotonic()
        try:
            if entry.handle is not None:
                try:
                    entry.handle.update_incremental()
                except Exception:
                    # e.g. maintenance removed log entries after the handle's version while the
                    # server sat idle: open the table afresh instead
                    entry.handle = None
            if entry.handle is None:
                entry.handle = self.lake.table(name)
        except BaseException:
            entry.handle = None  # reopen next time rather than trust a half-updated handle
            entry.checked_at = float("-inf")
            raise
        entry.version = None if entry.handle is None else entry.handle.version()
        entry.checked_at = started

    def _at_latest(
        self, name: str, kind: str, compute: Callable[[DeltaTable], T], arrived: float | None
    ) -> tuple[int, T] | None:
        """`compute(handle)` at the table's latest version, cached by (kind, version); None if the
        table does not exist. `arrived`: when the request began (monotonic; default now): a
        check that started after it is reused, else the table is checked again."""
        entry = self._entry(name)
        arrived = time.monotonic() if arrived is None else arrived
        if entry.checked_at >= arrived:  # fast path, no lock: fresh enough and computed
            version, cached = entry.version, entry.values.get(kind)
            if version is not None and cached is not None and cached[0] == version:
                return version, cached[1]
        with entry.lock:
            self._refresh(entry, name, arrived)
            if entry.handle is None or entry.version is None:
                return None
            cached = entry.values.get(kind)
            if cached is not None and cached[0] == entry.version:
                return entry.version, cached[1]
            value = compute(entry.handle)
            entry.values[kind] = (entry.version, value)
            return entry.version, value

    # -- rendered answers over several tables -----------------------------------------------
    # -- what the routes read ------------------------------------------------------------------
    def info(self, name: str, arrived: float | None = None) -> TableInfo | None:
        """The table's summary at its latest version (None if it does not exist)."""
        found = self._at_latest(
            name, "info", lambda dt: self.lake.info(name, dt.version()), arrived
        )
        return None if found is None else found[1]

    def history(self, name: str, arrived: float | None = None) -> list[dict[str, Any]] | None:
        """The table's Delta history at its latest version, newest first (None if absent)."""
        found = self._at_latest(name, "history", lambda dt: list(dt.history()), arrived)
        return None if found is None else found[1]
