"""A run's books: the lease it holds, its record in the run index, and the wake markers.

A run takes the lease on the processed root (service/lease.py; a heartbeat keeps it, every commit
is fenced by it) and records itself `running`; when it ends, however it ends, it writes its final
record and lets the lease go. Runs that found the lease busy leave wake markers; the holder reads
them (they say which files are wanted and carry the records of runs that never held the lease).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from service.context import RunContext
from service.lease import MARKER_PREFIX, Lease, LeaseBusy, LeaseLost, LeaseView, leave_marker
from service.ledger import RunRecord, read_marker, utcnow
from service.outcomes import RunSummary
from service.storage import ObjectInfo, Storage

log = logging.getLogger("totesys.pipeline")

LeaseWait = Callable[[LeaseView], None]  # called while waiting for another run's lease
Markers = list[tuple[str, dict[str, Any]]]  # (key, body)


def list_markers(storage: Storage) -> list[ObjectInfo]:
    return list(storage.list(MARKER_PREFIX))


def read_markers(ctx: RunContext, lease: Lease) -> Markers:
    """The wake markers seen when the lease was taken, oldest first, with their bodies (empty
    for one that cannot be read)."""
    view = lease.acquired_view
    markers = sorted(view.markers if view else [], key=lambda m: m.key)
    return [(m.key, read_marker(ctx.processed, m.key) or {}) for m in markers]


def carried_records(markers: Markers, run_id: str) -> list[RunRecord]:
    """The records other runs' wake markers carry (busy, pending, or ended without the lease)."""
    return [
        RunRecord.from_json(body["record"])
        for _, body in markers
        if body.get("record") and body.get("run_id") != run_id
    ]


def take_lease(
    ctx: RunContext,
    summary: RunSummary,
    only_keys: list[str] | None,
    wait_seconds: float | None,
    record_busy: bool,
    on_wait: LeaseWait | None,
) -> Lease:
    """The lease, or LeaseBusy after leaving a wake marker (which, with `record_busy`, carries
    this run's `busy` record for GET /runs)."""
    lease = Lease(ctx.processed, summary.run_id, ctx.settings.lease_seconds)
    wait = ctx.settings.lease_wait_seconds if wait_seconds is None else wait_seconds
    try:
        lease.acquire(wait, on_wait)
    except LeaseBusy as busy:
        record = None
        if record_busy:
            now = utcnow()
            record = RunRecord(
                summary.run_id,
                "busy",
                summary.trigger,
                started_at=now,
                finished_at=now,
                error=f"{busy}; that run applies the pending files before it releases",
            ).to_json()
        leave_marker(
            ctx.processed,
            summary.run_id,
            {"trigger": summary.trigger, "only_keys": only_keys, "record": record},
        )
        lease.try_acquire()  # the holder may have let go while the marker was written
        if not lease.held:
            raise
    return lease


def open_record(
    ctx: RunContext, lease: Lease, summary: RunSummary, others: list[RunRecord]
) -> None:
    """Record this run `running` in the run index (with the records wake markers carried),
    and mark runs that died holding the lease `abandoned`."""
    book = ctx.ledger.runs_book
    book.load()
    for record in others:
        book.fold(record)
    for run_id in book.mark_abandoned(summary.run_id, None):
        message = f"run {run_id} was abandoned (its lease expired without a release)"
        log.warning(message)
        summary.warnings.append(message)
    summary.status = "running"
    book.put(summary.record())
    lease.fence()
    book.save()


@contextlib.contextmanager
def recorded(ctx: RunContext, lease: Lease, summary: RunSummary) -> Iterator[None]:
    """The work of a run (or maintenance) under a held lease: its outcome goes into the
    summary, its final record is written and the lease let go, however it ends."""
    try:
        yield
        summary.status = "succeeded"
    except KeyboardInterrupt:
        summary.status = "interrupted"
        summary.error = "interrupted (SIGINT or SIGTERM)"
        raise
    except BaseException as exc:
        summary.status = "failed"
        summary.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if summary.status == "running":  # a second Ctrl-C cut the except clause short
            summary.status, summary.error = "interrupted", "KeyboardInterrupt"
        summary.finished_at = utcnow()
        close_record(ctx, lease, summary)


def close_record(ctx: RunContext, lease: Lease, summary: RunSummary) -> None:
    """Write the run's final record, then let the lease go. A run that lost the lease may
    not touch the index: its record travels in a wake marker instead."""
    book = ctx.ledger.runs_book
    try:
        try:
            lease.fence()
            ctx.ledger.files.save_run(summary.run_id, summary.files)
            book.put(summary.record())
            book.save()
        except LeaseLost:
            leave_marker(
                ctx.processed,
                summary.run_id,
                {"trigger": summary.trigger, "only_keys": [], "record": summary.record().to_json()},
            )
    except Exception:
        log.exception("could not record the end of run %s", summary.run_id)
    finally:
        ctx.lake.fence = None
        lease.release()
