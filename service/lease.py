"""One writer at a time on a processed root: a lease built on create-if-absent, kept alive by a
heartbeat, checked (fenced) before every commit, and judged on the object store's own clock.

S3 delivers events at least once, Lambda runs invocations in parallel, and the API and the
schedule may start runs together. Fact appends never conflict in Delta (blind appends), so two
runs could both store the same new version or both number from the same record id.
Every run (and `maintain`) therefore holds this lease while it writes.

The lease is a log of small JSON objects `_state/lease/<sequence>.json`, each written with a
conditional create (S3 `If-None-Match: *`, a hard link locally), like the Delta log itself. The
newest entry says who holds the lease (`held`) or that nobody does (`released`). Taking the lease,
renewing it and releasing it each write the next sequence number, so every change of hands is
one atomic create: a holder's renewal and a taker's takeover race for the same key, and exactly
one wins.

Expiry never trusts a clock the holder wrote. An entry expires `seconds` after the store stamped
it (its `LastModified`), measured against the store's own time (the `Date` of the listing
response; locally, the machine's clock that stamps the files). So a new process tells a dead
holder from a live one from a single listing, without watching it.

While a run works, a heartbeat thread renews every `seconds / 3`. Before every commit the holder
calls `fence()`: free while its last confirmed renewal is younger than `seconds - margin` on its
own monotonic clock (nobody can have taken over: the entry's store stamp is later than that
confirmation), otherwise a renewal, which is the conditional create of the next entry: if another
run took over meanwhile, that create fails and `LeaseLost` stops the run before it writes. A run
paused (SIGSTOP, a suspended laptop) past its lease therefore never commits after it resumes.

A run that finds a live holder does not wait for minutes: after `wait_seconds` it leaves a wake
marker `_state/lease/wake-<time>-<run id>.json` and reports busy. The holder lists the lease prefix
after releasing; a marker newer than its plan makes it take the lease again and re-plan, and the
busy run re-reads the lease after writing its marker: one of the two always sees the other. A
holder whose newest entry has missed a heartbeat is presumed dead: a waiter then waits for the
entry's expiry (at most `seconds`) instead of leaving.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.storage import ObjectInfo, Storage

log = logging.getLogger("totesys.lease")

PREFIX = "_state/lease/"
MARKER_PREFIX = PREFIX + "wake-"
PRUNE_ABOVE = 100  # entries kept before old ones are deleted (one batched delete)
KEEP_ENTRIES = 20
# Store timestamps have one-second resolution on S3: never count on less than this margin.
MIN_MARGIN_SECONDS = 2.0


class LeaseBusy(RuntimeError):
    """Another run holds the lease and did not release it within the wait."""

    def __init__(self, message: str, holder: str = "?", expires_at: datetime | None = None):
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at


class LeaseLost(RuntimeError):
    """This run's lease expired and another run took it over: it must write nothing more."""


def _sequence(key: str) -> int | None:
    name = key[len(PREFIX) :]
    if not name.endswith(".json") or not name[:-5].isdigit():
        return None
    return int(name[:-5])


@dataclass(frozen=True)
class LeaseEntry:
    sequence: int
    holder: str
    state: str  # held | released
    seconds: float
    written_at: datetime  # the store's stamp (LastModified), aware UTC

    @property
    def expires_at(self) -> datetime:
        return self.written_at + timedelta(seconds=self.seconds)


@dataclass
class LeaseView:
    """One listing of the lease prefix: the newest entry, the store's time, the wake markers."""

    latest: LeaseEntry | None
    now: datetime  # the store's time, aware UTC
    markers: list[ObjectInfo] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)

    @property
    def free(self) -> bool:
        latest = self.latest
        return latest is None or latest.state == "released" or self.now >= latest.expires_at

    @property
    def age_seconds(self) -> float:
        if self.latest is None:
            return 0.0
        return (self.now - self.latest.written_at).total_seconds()

    def expired_holder(self) -> str | None:
        """The holder whose lease ran out without a release (it died or was paused)."""
        latest = self.latest
        if latest is not None and latest.state == "held" and self.now >= latest.expires_at:
            return latest.holder
        return None


def observe(storage: Storage) -> LeaseView:
    """List the lease prefix once (and read the newest entry's small body)."""
    objects, now = storage.list_with_time(PREFIX)
    entries: list[tuple[int, ObjectInfo]] = []
    markers: list[ObjectInfo] = []
    for obj in objects:
        if obj.key.startswith(MARKER_PREFIX):
            markers.append(obj)
            continue
        sequence = _sequence(obj.key)
        if sequence is not None:
            entries.append((sequence, obj))
    if not entries:
        return LeaseView(None, _aware(now), markers, [])
    sequence, newest = max(entries, key=lambda e: e[0])
    body = storage.read_if_exists(newest.key)
    try:
        data: dict[str, Any] = json.loads(body or b"{}")
    except ValueError:
        data = {}
    entry = LeaseEntry(
        sequence=sequence,
        holder=str(data.get("holder", "?")),
        # an unreadable entry (torn by hand, say) frees the lease rather than blocking forever
        state=str(data.get("state", "released")) if data else "released",
        seconds=float(data.get("seconds", 0)),
        written_at=_aware(newest.modified),
    )
    return LeaseView(entry, _aware(now), markers, sorted(s for s, _ in entries))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def leave_marker(storage: Storage, run_id: str, body: dict[str, Any]) -> str:
    """A wake marker: asks the current holder to re-plan before it releases."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{MARKER_PREFIX}{stamp}-{run_id}.json"
    storage.write(key, json.dumps({"run_id": run_id, **body}, default=str).encode())
    return key


class Lease:
    """This run's hold on the processed root. `clock` (monotonic seconds) and `sleep` are
    injectable so tests can drive time without sleeping."""

    def __init__(
        self,
        storage: Storage,
        holder: str,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.storage = storage
        self.holder = holder
        self.seconds = float(seconds)
        self.clock = clock
        self.sleep = sleep
        self.sequence: int | None = None
        self.confirmed: float = 0.0  # monotonic time just before our newest entry was written
        self.lost = False
        self.took_over_from: str | None = None
        self.acquired_view: LeaseView | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def margin(self) -> float:
        return max(self.seconds / 3, MIN_MARGIN_SECONDS)

    @property
    def renew_every(self) -> float:
        return max(self.seconds / 3, 0.05)

    # -- taking ---------------------------------------------------------------------------------
    def _write(self, sequence: int, state: str) -> bool:
        body = {"holder": self.holder, "state": state, "seconds": self.seconds}
        return self.storage.put_if_absent(
            f"{PREFIX}{sequence:020d}.json", json.dumps(body).encode()
        )

    def try_acquire(self) -> LeaseView:
        """One attempt: take the lease if it is free. The view says what was seen."""
        view = observe(self.storage)
        if view.free:
            sequence = (view.latest.sequence if view.latest else 0) + 1
            before = self.clock()
            if self._write(sequence, "held"):
                with self._lock:
                    self.sequence = sequence
                    self.confirmed = before
                    self.lost = False
                self.took_over_from = view.expired_holder()
                self.acquired_view = view
                self._prune(view)
        return view

    @property
    def held(self) -> bool:
        return self.sequence is not None and not self.lost

    def acquire(
        self, wait_seconds: float, on_wait: Callable[[LeaseView], None] | None = None
    ) -> LeaseView:
        """Take the lease, waiting up to `wait_seconds` for a live holder, or for as long as a
        presumed-dead holder's lease has left (it missed a heartbeat). LeaseBusy otherwise."""
        start = self.clock()
        while True:
            view = self.try_acquire()
            if self.held:
                return view
            latest = view.latest
            if view.free or latest is None:
                continue  # another run created that entry first: look again
            remaining = (latest.expires_at - view.now).total_seconds()
            presumed_dead = view.age_seconds > 1.5 * max(latest.seconds / 3, 0.05)
            waited = self.clock() - start
            if waited >= wait_seconds and not presumed_dead:
                raise LeaseBusy(
                    f"run {latest.holder} holds the lease on {self.storage.uri} "
                    f"(expires {latest.expires_at.isoformat(timespec='seconds')} unless renewed)",
                    latest.holder,
                    latest.expires_at,
                )
            if on_wait is not None:
                on_wait(view)
            pause = 0.05 + random.random() * 0.25
            if presumed_dead:
                pause = max(pause, min(remaining, 1.0))
            self.sleep(pause)

    # -- keeping --------------------------------------------------------------------------------
    def renew(self) -> None:
        """Write the next entry: extends the lease, or LeaseLost if another run took it over."""
        with self._lock:
            if self.sequence is None or self.lost:
                raise LeaseLost(f"run {self.holder} does not hold the lease on {self.storage.uri}")
            before = self.clock()
            if not self._write(self.sequence + 1, "held"):
                self.lost = True
                raise LeaseLost(
                    f"run {self.holder} lost the lease on {self.storage.uri}: another run took "
                    "it over"
                )
            self.sequence += 1
            self.confirmed = before

    def fence(self) -> None:
        """Call before every commit: returns only if no other run can hold the lease now."""
        with self._lock:
            if self.lost or self.sequence is None:
                raise LeaseLost(f"run {self.holder} lost the lease on {self.storage.uri}")
            if self.clock() - self.confirmed < self.seconds - self.margin:
                return  # confirmed recently enough: nobody can have taken it over
        self.renew()  # paused or slow: the conditional create decides

    def start_heartbeat(self) -> None:
        if self._heartbeat is not None:
            return
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"lease-heartbeat-{self.holder}", daemon=True
        )
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                self.renew()
            except LeaseLost:
                # reported once, by the run itself, when its next commit is refused
                log.info("run %s lost its lease; it will stop before its next commit", self.holder)
                return
            except Exception:  # storage trouble: the next beat (or the fence) tries again
                log.warning("lease renewal for run %s failed", self.holder, exc_info=True)

    def stop_heartbeat(self) -> None:
        self._stop.set()
        thread, self._heartbeat = self._heartbeat, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def release(self) -> None:
        self.stop_heartbeat()
        with self._lock:
            if self.sequence is None:
                return
            if not self.lost:
                # If this fails another run already took an expired lease over: nothing to do.
                self._write(self.sequence + 1, "released")
            self.sequence = None

    def _prune(self, view: LeaseView) -> None:
        """Delete old entries now and then (one batched request), never the newest ones."""
        if len(view.entries) <= PRUNE_ABOVE:
            return
        old = view.entries[:-KEEP_ENTRIES]
        try:
            self.storage.delete_many([f"{PREFIX}{s:020d}.json" for s in old])
        except Exception:
            log.warning("could not prune old lease entries", exc_info=True)
