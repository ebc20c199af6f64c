"""The pipeline: plan (pending files, in timestamp order) → apply (batch by batch) → record.

A thin coordinator over the stages, each in its own module:
- service/run.py: the lease, the run's record in the run index, wake markers;
- service/planner.py: which files are pending, their order, the batches;
- service/batch.py: one batch of whole files, validated before its first commit, then committed
  in a crash-safe order (mirrors, dimensions, facts, members, calendar, rejects, ledger);
- service/streaming.py: a large fact file applied in pieces;
- service/fact_store.py, service/dimension_store.py, service/references.py: a declared fact's
  versions and index, the dimensions, inferred members and the calendar.

Runs that found the lease busy leave wake markers; before it lets go, the holder lists them and,
if one arrived after its plan, takes the lease again and re-plans, so no file waits for the
schedule. A run whose lease was taken over (it was paused past it) stops at its next commit with
LeaseLost and writes nothing more.

Bad input never stops a run: a file that cannot be read, or whose parsing fails unexpectedly, is
rejected with the reason and the run goes on; a key that cannot be planned is rejected too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from service import pieces, streaming
from service import run as books
from service.batch import apply_batch
from service.catalog import Catalog
from service.context import RunContext
from service.fact_store import FactStore
from service.lake import TABLE_PATHS, Lake
from service.lease import Lease, LeaseBusy
from service.ledger import FileOutcome, Ledger
from service.outcomes import RunSummary, new_run_id
from service.planner import PlannedFile, Planner, is_streamed
from service.run import LeaseWait, list_markers
from service.settings import Settings
from service.storage import ObjectInfo, Storage, check_roots_apart, open_storage
from transforms.facts import FACTS

log = logging.getLogger("totesys.pipeline")

Progress = Callable[[str, int, int], None]  # (message, done, total)
__all__ = ["LeaseWait", "Pipeline", "PlannedFile", "Progress", "RunSummary", "new_run_id"]


class Pipeline:
    def __init__(self, ingestion: Storage, processed: Storage, settings: Settings) -> None:
        check_roots_apart(ingestion, processed)
        lake = Lake(processed)
        self.ctx = RunContext(
            ingestion, processed, settings, settings.parse_limits(), lake, Ledger(lake)
        )
        self.planner = Planner(ingestion, self.ctx.ledger, settings, self.ctx.limits)

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        return cls(
            open_storage(settings.ingestion_uri), open_storage(settings.processed_uri), settings
        )

    @property
    def ingestion(self) -> Storage:
        return self.ctx.ingestion

    @property
    def processed(self) -> Storage:
        return self.ctx.processed

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def lake(self) -> Lake:
        return self.ctx.lake

    @property
    def ledger(self) -> Ledger:
        return self.ctx.ledger

    @property
    def catalog(self) -> Catalog:
        return self.ctx.catalog

    # -- plan ---------------------------------------------------------------------------------
    def list_ingestion(self) -> list[ObjectInfo]:
        return self.planner.list_ingestion()

    def plan(
        self, only_keys: Iterable[str] | None = None, include_pending: bool | None = None
    ) -> tuple[list[PlannedFile], list[FileOutcome]]:
        return self.planner.plan(only_keys, include_pending)

    def batches(self, planned: list[PlannedFile]) -> list[list[PlannedFile]]:
        return self.planner.batches(planned)

    # -- run ----------------------------------------------------------------------------------
    def run(
        self,
        *,
        run_id: str | None = None,
        trigger: str = "cli",
        only_keys: Iterable[str] | None = None,
        progress: Progress | None = None,
        wait_seconds: float | None = None,
        record_busy: bool = False,
        on_wait: LeaseWait | None = None,
    ) -> RunSummary:
        """Apply every pending file (or just `only_keys`) under the lease.

        LeaseBusy if another live run holds the lease past `wait_seconds` (default: the
        setting); a wake marker then asks that run to apply these files before it lets go, and
        with `record_busy` the marker carries this run's record (`busy`) for GET /runs."""
        summary = RunSummary(run_id=run_id or new_run_id(), trigger=trigger)
        keys = sorted(set(only_keys)) if only_keys is not None else None
        lease = books.take_lease(self.ctx, summary, keys, wait_seconds, record_busy, on_wait)
        reprocess = set(keys or [])
        include_pending = keys is None
        while True:
            seen = self._hold_and_apply(lease, summary, include_pending, reprocess, progress)
            fresh = [m for m in list_markers(self.processed) if m.key not in seen]
            if not fresh:
                return summary
            # A run found the lease busy after this run planned: take it again and re-plan.
            lease = Lease(self.processed, summary.run_id, self.settings.lease_seconds)
            lease.try_acquire()
            if not lease.held:
                return summary  # another run holds it now and will see the markers
            log.info("wake markers arrived during run %s: re-planning", summary.run_id)
            reprocess, include_pending = set(), False  # the markers say what is wanted

    def _begin(self, lease: Lease) -> None:
        lease.start_heartbeat()
        self.lake.new_session()
        self.lake.fence = lease.fence

    def _hold_and_apply(
        self,
        lease: Lease,
        summary: RunSummary,
        include_pending: bool,
        reprocess: set[str],
        progress: Progress | None,
    ) -> set[str]:
        """One plan-and-apply pass under a held lease; records the run and releases the lease.
        Returns the wake markers this pass answered."""
        self._begin(lease)
        self.lake.on_commit = lambda name, handle, op: self.catalog.note_commit(name, handle, op)
        self.lake.before_table_commit = lambda name: self.catalog.unsettle(self.processed)
        seen: set[str] = set()
        with books.recorded(self.ctx, lease, summary):
            markers = books.read_markers(self.ctx, lease)
            for key, body in markers:
                seen.add(key)
                if not body:
                    continue  # unreadable: answered, asks for nothing
                if body.get("only_keys") is None:
                    include_pending = True
                else:
                    reprocess.update(str(k) for k in body["only_keys"])
            books.open_record(
                self.ctx, lease, summary, books.carried_records(markers, summary.run_id)
            )
            planned, decided = self.plan(sorted(reprocess), include_pending)
            # what the tables hold: only needed when there is something to apply
            self.ctx.catalog = Catalog.load(self.processed) if planned else Catalog()
            if seen:
                self.processed.delete_many(sorted(seen))  # this plan answers them
            summary.files.extend(decided)
            self.ledger.files.record(decided, summary.run_id)
            batches = self.batches(planned)
            done = 0
            for batch in batches:
                self._apply(batch, summary, done, len(planned), progress)
                done += len(batch)
            if decided and not batches:
                lease.fence()
                self.ledger.files.save()
        return seen

    def _apply(
        self,
        batch: list[PlannedFile],
        summary: RunSummary,
        done: int,
        total: int,
        progress: Progress | None,
    ) -> None:
        item = batch[0]
        if len(batch) == 1 and is_streamed(
            item.key.table, item.info.size, self.settings.chunk_bytes
        ):
            try:
                say = (lambda message: progress(message, done, total)) if progress else None
                streaming.apply_streamed(self.ctx, item, done, summary, say)
                return
            except pieces.NotStreamable as exc:
                log.warning("%s is applied whole: %s", item.key.key, exc)
        say_done = (lambda message, n: progress(message, n, total)) if progress else None
        apply_batch(self.ctx, batch, summary, done, say_done)

    # -- maintenance --------------------------------------------------------------------------
    def maintain(
        self,
        retention_days: int,
        *,
        run_id: str | None = None,
        trigger: str = "maintenance",
        wait_seconds: float | None = None,
        record_busy: bool = False,
        zorder: bool = True,
    ) -> tuple[RunSummary, dict[str, Any]]:
        """Compact, checkpoint and vacuum every table under the lease, recorded as a run."""
        summary = RunSummary(run_id=run_id or new_run_id(), trigger=trigger)
        lease = books.take_lease(self.ctx, summary, None, wait_seconds, record_busy, None)
        self._begin(lease)
        result: dict[str, Any] = {}
        with books.recorded(self.ctx, lease, summary):
            # fold the records wake markers carry; those that ask for files stay for a run
            markers = books.read_markers(self.ctx, lease)
            answered = [
                key
                for key, body in markers
                if body.get("only_keys") == [] or body.get("run_id") == summary.run_id
            ]
            books.open_record(
                self.ctx, lease, summary, books.carried_records(markers, summary.run_id)
            )
            if answered:
                self.processed.delete_many(answered)
            result = self._maintain_tables(lease, retention_days, summary, zorder)
        if list_markers(self.processed):  # files landed while maintenance held the lease
            with contextlib.suppress(LeaseBusy):  # the run that holds it answers the markers
                self.run(trigger="wake", wait_seconds=0)
        return summary, result

    def _maintain_tables(
        self, lease: Lease, retention_days: int, summary: RunSummary, zorder: bool
    ) -> dict[str, Any]:
        from service.maintenance import maintain

        catalog = self.ctx.catalog = Catalog.load(self.processed)
        index_current = {name for name in FACTS if catalog.index_is_current(name)}
        lease.fence()
        catalog.unsettle(self.processed)  # maintenance commits to every table
        result = maintain(
            self.lake, retention_days, run_id=summary.run_id, lease=lease, zorder=zorder
        )
        # maintenance changes versions, never rows: carry the catalog forward
        for name in result["tables"]:
            handle = self.lake.table(name)
            if handle is not None:
                operation = (handle.history(1) or [{}])[0].get("operation")
                catalog.note_commit(name, handle, str(operation or "OPTIMIZE"))
        for name in sorted(index_current & set(result["tables"])):
            # compaction moved every row to new files: re-point the index at them
            lease.fence()
            FactStore(self.ctx, FACTS[name]).rebuild_index(self.lake.table(name))
        lease.fence()
        catalog.account_for(list(TABLE_PATHS), self.lake.info)
        catalog.save(self.processed)
        return result
