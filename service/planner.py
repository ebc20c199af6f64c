"""Planning: which ingestion files a run applies, in what order and in which batches.

Pending files are those without a ledger row (or the keys a run was asked to reprocess); they are
applied in order of their file-name timestamps. A key that cannot be planned is rejected; a file
of a table no declaration models is skipped. Batches are cut by size, and a large file of a fact's
source table is a batch of its own (read and applied in pieces, service/streaming.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from service.ledger import FileOutcome, Ledger
from service.outcomes import internal_error
from service.settings import Settings
from service.storage import ObjectInfo, Storage, check_root
from transforms.facts import FACTS_BY_SOURCE
from transforms.ingestion_key import (
    IngestionKey,
    InvalidIngestionKey,
    ingestion_order,
    parse_ingestion_key,
)
from transforms.parse import ParseLimits
from transforms.schemas import IGNORED_SOURCE_TABLES, SOURCE_TABLES

log = logging.getLogger("totesys.pipeline")

INGESTION_PREFIXES = ("baseline/", "updated/")


@dataclass
class PlannedFile:
    info: ObjectInfo
    key: IngestionKey


def application_order(item: PlannedFile) -> tuple[object, ...]:
    """By file-name timestamp, a baseline before an update at the same instant; and at the same
    instant the dimensions' source files before the facts', so a fact finds the members that
    arrived with it instead of making placeholders for them (a baseline of every table at once:
    no 400k inferred transactions to replace a moment later)."""
    at, kind, key = ingestion_order(item.key)
    return (at, kind, item.key.table in FACTS_BY_SOURCE, key)


def is_streamed(table: str, size: int, chunk_bytes: int) -> bool:
    """A fact's source file larger than a piece is read and applied in pieces."""
    return table in FACTS_BY_SOURCE and size > chunk_bytes


def is_modelled(table: str) -> bool:
    return table in SOURCE_TABLES and table not in IGNORED_SOURCE_TABLES


class Planner:
    def __init__(
        self, ingestion: Storage, ledger: Ledger, settings: Settings, limits: ParseLimits
    ) -> None:
        self.ingestion = ingestion
        self.ledger = ledger
        self.settings = settings
        self.limits = limits

    def list_ingestion(self) -> list[ObjectInfo]:
        check_root(self.ingestion, "ingestion")  # missing or unreadable: an error, not "no files"
        return [obj for prefix in INGESTION_PREFIXES for obj in self.ingestion.list(prefix)]

    def plan(
        self, only_keys: Iterable[str] | None = None, include_pending: bool | None = None
    ) -> tuple[list[PlannedFile], list[FileOutcome]]:
        """Files to apply (in application order) and outcomes decided without reading them:
        every pending file (unless only `only_keys` were asked for) and the `only_keys`."""
        wanted = set(only_keys or [])
        if include_pending is None:
            include_pending = only_keys is None
        # files a release that did not model their table skipped are pending again (backfill)
        modelled = [t for t in SOURCE_TABLES if is_modelled(t)]
        recorded = self.ledger.recorded_files(modelled) if include_pending else set()
        objects = [
            o
            for o in self.list_ingestion()
            if o.key in wanted or (include_pending and o.key not in recorded)
        ]
        planned: list[PlannedFile] = []
        decided: list[FileOutcome] = []
        for obj in objects:
            outcome = self._plan_one(obj, planned)
            if outcome is not None:
                decided.append(outcome)
        planned.sort(key=application_order)
        return planned, decided

    def _plan_one(self, obj: ObjectInfo, planned: list[PlannedFile]) -> FileOutcome | None:
        try:
            key = parse_ingestion_key(obj.key, self.limits)
        except InvalidIngestionKey as exc:
            return FileOutcome(obj.key, "rejected", reason=str(exc), size_bytes=obj.size)
        except Exception as exc:  # no key may stop planning, whatever it holds
            reason = internal_error(exc)
            log.error("file %s rejected: %s", obj.key, reason, exc_info=True)
            return FileOutcome(obj.key, "rejected", reason=reason, size_bytes=obj.size)
        if is_modelled(key.table):
            planned.append(PlannedFile(obj, key))
            return None
        reason = (
            f"table {key.table!r} is not part of the warehouse's star schemas"
            if key.table in IGNORED_SOURCE_TABLES
            else f"unknown Totesys table {key.table!r}"
        )
        return FileOutcome(
            obj.key,
            "skipped",
            source_table=key.table,
            kind=key.kind,
            file_timestamp=key.timestamp,
            reason=reason,
            size_bytes=obj.size,
        )

    def batches(self, planned: list[PlannedFile]) -> list[list[PlannedFile]]:
        out: list[list[PlannedFile]] = []
        current: list[PlannedFile] = []
        size = 0
        for item in planned:
            alone = is_streamed(item.key.table, item.info.size, self.settings.chunk_bytes)
            if current and (alone or size + item.info.size > self.settings.batch_max_bytes):
                out.append(current)
                current, size = [], 0
            current.append(item)
            size += item.info.size
            if alone:  # read and applied in pieces (service/streaming.py): a batch of its own
                out.append(current)
                current, size = [], 0
        if current:
            out.append(current)
        return out
