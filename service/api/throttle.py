"""Token guessing is throttled: too many wrong tokens from one client address and it must wait.

After `LIMIT` failed attempts (a wrong bearer token, a wrong console login, a forged console
session) from one client address within `WINDOW_SECONDS`, *every* attempt from that address that
presents a credential — right or wrong, bearer or console — is answered 429 with `Retry-After`
until `WINDOW_SECONDS` after the throttle began. Answering a right token with 429 too matters:
otherwise a 429 would only mean "wrong" and the guessing could go on at full speed.

The address is the TCP peer (uvicorn) or the source IP API Gateway saw (Mangum); proxy headers are
not trusted. The state is per process (a Lambda container, a `totesys serve`), kept in memory and
bounded: expired entries are dropped, and past `MAX_ADDRESSES` the oldest go first.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, status

LIMIT = 10
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000

log = logging.getLogger("totesys.api.throttle")


@dataclass
class _Address:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float | None = None


class Throttle:
    """Failed credential attempts per client address (thread-safe: sync routes run in threads)."""

    def __init__(
        self,
        limit: int = LIMIT,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self._addresses: dict[str, _Address] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many addresses are tracked."""
        return len(self._addresses)

    def retry_after(self, address: str) -> int | None:
        """Seconds this address must still wait (at least 1), or None if it may try."""
        now = self.clock()
        with self._lock:
            entry = self._addresses.get(address)
            if entry is None or entry.blocked_until is None:
                return None
            if now >= entry.blocked_until:
                del self._addresses[address]  # the minute has passed: a clean slate
                return None
            return max(1, math.ceil(entry.blocked_until - now))

    def failed(self, address: str) -> None:
        """Record a failed attempt; the `limit`-th within the window starts the throttle."""
        now = self.clock()
        with self._lock:
            entry = self._addresses.pop(address, None) or _Address()
            self._addresses[address] = entry  # most recently failed last (see _prune)
            while entry.failures and entry.failures[0] <= now - self.window:
                entry.failures.popleft()
            entry.failures.append(now)
            if entry.blocked_until is None and len(entry.failures) >= self.limit:
                entry.blocked_until = now + self.window
                log.warning(
                    "throttling %s: %d failed authentication attempts within %.0f s; every "
                    "attempt from it is refused (429) for %.0f s",
                    address,
                    len(entry.failures),
                    self.window,
                    self.window,
                )
            if len(self._addresses) > MAX_ADDRESSES:
                self._prune(now)

    def _prune(self, now: float) -> None:
        for address in list(self._addresses):
            entry = self._addresses[address]
            expired = entry.blocked_until is not None and now >= entry.blocked_until
            stale = entry.blocked_until is None and (
                not entry.failures or entry.failures[-1] <= now - self.window
            )
            if expired or stale:
                del self._addresses[address]
        while len(self._addresses) > MAX_ADDRESSES:  # still too many: the oldest go
            del self._addresses[next(iter(self._addresses))]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def throttle_of(request: Request) -> Throttle:
    """The app's throttle (made on first use)."""
    state = request.app.state
    throttle: Throttle | None = getattr(state, "throttle", None)
    if throttle is None:
        throttle = state.throttle = Throttle()
    return throttle


def refuse_if_throttled(request: Request) -> None:
    """429 with Retry-After if this client address is throttled."""
    wait = throttle_of(request).retry_after(client_address(request))
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed authentication attempts from this address: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def record_failure(request: Request) -> None:
    throttle_of(request).failed(client_address(request))
