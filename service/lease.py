"""One writer at a time on a processed root: a lease built on create-if-absent.

S3 delivers events at least once, Lambda runs invocations in parallel, and the API and the
schedule may start runs together. Fact appends never conflict in Delta (blind appends), so two
runs could both store the same new version or both number from the same `sales_record_id`.
Every run therefore holds this lease while it writes.

The lease is a log of small JSON objects `_state/lease/<sequence>.json`, each written with a
conditional create (S3 `If-None-Match: *`, a hard link locally), like the Delta log itself. The
newest entry says who holds the lease and until when. To take it, a run writes the next entry; if
another run wrote that sequence number first, the create fails and it waits. Renewal and release
are further entries, written the same way, so every change of hands is a single atomic create. A
crashed holder's lease expires after `lease_seconds` and the next run takes it over.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from service.storage import Storage

PREFIX = "_state/lease/"
KEEP_ENTRIES = 50


class LeaseBusy(RuntimeError):
    """Another run holds the lease and did not release it within the wait."""


class LeaseLost(RuntimeError):
    """This run's lease expired and another run took it over."""


@dataclass(frozen=True)
class LeaseEntry:
    sequence: int
    holder: str
    state: str  # held | released
    expires_at: float

    def is_free(self, now: float) -> bool:
        return self.state == "released" or self.expires_at <= now


class Lease:
    def __init__(self, storage: Storage, holder: str, seconds: int) -> None:
        self.storage = storage
        self.holder = holder
        self.seconds = seconds
        self.sequence: int | None = None

    def _latest(self) -> LeaseEntry | None:
        keys = [o.key for o in self.storage.list(PREFIX) if o.key.endswith(".json")]
        if not keys:
            return None
        key = max(keys)
        try:
            body = json.loads(self.storage.read(key))
        except (ValueError, OSError):
            body = {"holder": "?", "state": "released", "expires_at": 0}
        return LeaseEntry(
            int(key[len(PREFIX) : -5]), body["holder"], body["state"], float(body["expires_at"])
        )

    def _write(self, sequence: int, state: str) -> bool:
        body = {"holder": self.holder, "state": state, "expires_at": time.time() + self.seconds}
        return self.storage.put_if_absent(
            f"{PREFIX}{sequence:020d}.json", json.dumps(body).encode()
        )

    def acquire(self, wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds
        holder = "?"
        while True:
            latest = self._latest()
            if latest is None or latest.is_free(time.time()):
                sequence = (latest.sequence if latest else 0) + 1
                if self._write(sequence, "held"):
                    self.sequence = sequence
                    self._prune(sequence)
                    return
            else:
                holder = latest.holder
            if time.monotonic() >= deadline:
                raise LeaseBusy(f"run {holder} holds the lease on {self.storage.uri}")
            time.sleep(0.05 + random.random() * 0.25)

    def renew(self) -> None:
        """Extend the lease (between batches of a long run); LeaseLost if it was taken over."""
        latest = self._latest()
        if self.sequence is None or latest is None or latest.sequence != self.sequence:
            raise LeaseLost(f"run {self.holder} lost the lease on {self.storage.uri}")
        if not self._write(self.sequence + 1, "held"):
            raise LeaseLost(f"run {self.holder} lost the lease on {self.storage.uri}")
        self.sequence += 1

    def release(self) -> None:
        if self.sequence is None:
            return
        # If this fails another run already took an expired lease over: nothing to release.
        self._write(self.sequence + 1, "released")
        self.sequence = None

    def _prune(self, sequence: int) -> None:
        for obj in self.storage.list(PREFIX):
            try:
                number = int(obj.key[len(PREFIX) : -5])
            except ValueError:
                continue
            if number < sequence - KEEP_ENTRIES:
                self.storage.delete(obj.key)
