"""One batch of whole files: read and parse them, compute everything that can fail on data, then
commit in an order that makes a crash harmless.

Everything in a batch that can fail on data (parsing, typing, versions, ids, inferred members,
the calendar extension, the dimension history) is computed before its first commit; then it is one
commit per changed table: (a root's first source history, seeded from its mirrors) → source
mirrors → dimensions → dimension history → new source versions → facts (each with its index) →
inferred members → calendar → rejects → file ledger → catalog. A file is pending until its ledger
row is written, so a crashed run's files are applied again by the next run, and every step is
idempotent (versions already stored are dropped, merges compare, rejects are replaced per file,
history states are recomputed from the same versions).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from service import references
from service.context import RunContext
from service.dimension_store import DimensionStore, incoming_mirror_rows
from service.fact_store import Baseline, FactPlan, FactStore
from service.history_store import HistoryStore
from service.lake import TABLE_PATHS
from service.ledger import FileOutcome
from service.outcomes import RunSummary, file_outcome, internal_error
from service.pieces import NotStreamable, parse_in_pieces
from service.planner import PlannedFile
from service.storage import StorageError, UnreadableObject
from transforms.dimensions import DIMENSIONS
from transforms.facts import FACTS
from transforms.parse import ParsedFile, parse_file, rejected_file
from transforms.schemas import REJECTS

log = logging.getLogger("totesys.pipeline")

Parsed = list[tuple[int, PlannedFile, ParsedFile]]  # (place in the run's order, file, result)
Say = Callable[[str, int], None]  # (message, files done)


@dataclass
class BatchTail:
    """What a batch commits after its facts (the whole-file and the streamed path alike)."""

    keys: list[str]  # the batch's files
    rejects: pl.DataFrame  # REJECTS rows of those files
    counted: dict[str, list[dict[str, Any]]]  # key -> exact problem counts
    outcomes: list[FileOutcome]
    inferred: dict[str, pl.DataFrame]  # dimension -> placeholder members
    extension: pl.DataFrame  # calendar days to add
    referenced: references.Referenced


def read_and_parse(ctx: RunContext, item: PlannedFile) -> ParsedFile:
    """One file, isolated: whatever goes wrong with it rejects it, never the run. A file
    larger than a piece is parsed in pieces (service/pieces.py): the batch holds its typed rows,
    not its text.

    A storage error that is not about this object (the store unreachable after retries)
    still fails the run: the file is fine and stays pending for the next one.
    """
    key = item.key.key
    try:
        if item.info.size > ctx.settings.chunk_bytes:
            with contextlib.suppress(NotStreamable):  # then it is parsed whole
                return parse_in_pieces(
                    ctx.ingestion,
                    item.info.key,
                    item.info.size,
                    item.key.table,
                    ctx.settings.chunk_bytes,
                    ctx.limits,
                )
        data = ctx.ingestion.read(item.info.key)
        return parse_file(data, item.key.table, key, ctx.limits)
    except UnreadableObject as exc:
        log.warning("file %s rejected: unreadable: %s", key, exc, extra={"file_key": key})
        return rejected_file(item.key.table, key, f"unreadable: {exc}")
    except StorageError:
        raise  # the store, not the file: the run fails, the file stays pending
    except Exception as exc:
        reason = internal_error(exc)
        # ERROR: a parser bug, not bad data; the alarm on error logs fires.
        log.error("file %s rejected: %s", key, reason, exc_info=True, extra={"file_key": key})
        return rejected_file(item.key.table, key, reason)


def frames_by_table(parsed: Parsed) -> dict[str, pl.DataFrame]:
    grouped: dict[str, list[pl.DataFrame]] = {}
    for seq, item, result in parsed:
        if result.rows.is_empty():
            continue
        grouped.setdefault(item.key.table, []).append(
            result.rows.with_columns(
                pl.lit(item.key.key).alias("source_file"),
                pl.lit(seq, dtype=pl.Int64).alias("file_seq"),
            )
        )
    return {table: pl.concat(frames) for table, frames in grouped.items()}


def _plan_facts(
    ctx: RunContext, frames: dict[str, pl.DataFrame], parsed: Parsed, summary: RunSummary
) -> list[tuple[FactStore, FactPlan]]:
    plans = []
    for spec in FACTS.values():
        baselines = [
            Baseline(seq, item.key, result.rows[spec.id_column], result.problems)
            for seq, item, result in parsed
            if item.key.table == spec.source and item.key.kind == "baseline"
        ]
        if spec.source in frames or baselines:
            store = FactStore(ctx, spec)
            plans.append((store, store.plan(frames.get(spec.source), baselines, summary)))
    return plans


def apply_batch(
    ctx: RunContext, batch: list[PlannedFile], summary: RunSummary, done: int, say: Say | None
) -> None:
    parsed: Parsed = []
    outcomes: list[FileOutcome] = []
    for offset, item in enumerate(batch):
        if say:
            say(f"parsing {item.key.key}", done + offset)
        result = read_and_parse(ctx, item)
        parsed.append((done + offset, item, result))
        outcomes.append(file_outcome(item.key, item.info.size, result))
    if say:
        say(f"writing batch of {len(batch)} files", done + len(batch))

    # Everything that can fail on data is computed first: the batch commits consistently
    # or not at all.
    frames = frames_by_table(parsed)
    incoming = incoming_mirror_rows(frames)
    dimension_store = DimensionStore(ctx)
    dims = dimension_store.rebuild(incoming, summary)
    history_store = HistoryStore(ctx)
    history = history_store.plan(frames)
    facts = _plan_facts(ctx, frames, parsed, summary)
    # from every version in the batch, stored before or not, so a re-run after a crash
    # between commits completes them
    referenced = [(store.spec, plan.referenced) for store, plan in facts]
    rejects = pl.concat([r.rejects for _, _, r in parsed], how="vertical_relaxed")
    tail = BatchTail(
        keys=[item.key.key for _, item, _ in parsed],
        rejects=rejects.select([pl.col(c).cast(t) for c, t in REJECTS.items()]),
        counted={
            item.key.key: result.reject_counts.to_dicts()
            for _, item, result in parsed
            if result.reject_counts is not None and result.reject_counts.height
        },
        outcomes=outcomes,
        inferred=references.inferred_members(ctx, referenced, dims),
        extension=references.calendar_extension(ctx, referenced),
        referenced=referenced,
    )
    history_store.seed(history, summary)  # 0. a root's first source history
    dimension_store.commit(incoming, dims, summary)  # 1. mirrors, 2. dimensions
    history_store.commit(history, summary)  # 3. dimension history, 4. source versions
    for store, plan in facts:  # 5. facts
        store.store(plan, summary)
    finish_batch(ctx, tail, summary)


def finish_batch(ctx: RunContext, tail: BatchTail, summary: RunSummary) -> None:
    """A batch's commits after the facts: inferred members, calendar, rejects, ledger,
    catalog."""
    lake, catalog, run_id = ctx.lake, ctx.catalog, summary.run_id
    for name, rows in tail.inferred.items():  # 6. inferred members
        key = DIMENSIONS[name].key
        counts = lake.upsert(name, rows, [key], run_id, insert_only=True)
        summary.add_rows(name, counts["inserted"])
        catalog.add_members(name, rows[key])
    if not tail.extension.is_empty():  # 7. calendar
        summary.add_rows("dim_date", lake.append("dim_date", tail.extension, run_id))
    if any(frame.height for _, frame in tail.referenced):
        references.note_calendar(ctx, tail.extension, tail.referenced)

    # 8. rejects (replaced per file, so reprocessing a file never duplicates them); a batch
    # whose files never had rejects has nothing to replace
    if not tail.rejects.is_empty() or _files_with_rejects(ctx, tail.keys):
        listed = ", ".join(_sql_str(key) for key in tail.keys)
        lake.replace_where("rejects", tail.rejects, f"source_file IN ({listed})", run_id)
    summary.rejects.extend(tail.rejects.head(1000).to_dicts())
    summary.reject_counts.update(tail.counted)

    # 9. ledger: the batch's files stop being pending only now; then the derived state
    lake.before_commit("_state")
    ctx.ledger.files.record(tail.outcomes, run_id)
    ctx.ledger.files.save()
    lake.before_commit("_state")
    catalog.account_for(list(TABLE_PATHS), lake.info)  # so it can say it is exact: settled
    catalog.save(ctx.processed)
    summary.files.extend(tail.outcomes)
    for o in tail.outcomes:
        if o.outcome == "rejected" or o.rows_rejected:
            log.warning(
                "file %s %s: %s",
                o.source_file,
                o.outcome,
                o.reason,
                extra={"file_key": o.source_file, "outcome": o.outcome},
            )


def _files_with_rejects(ctx: RunContext, keys: list[str]) -> bool:
    files = ctx.ledger.files.frame
    prior = files.filter(
        pl.col("source_file").is_in(keys)
        & ((pl.col("outcome") == "rejected") | (pl.col("rows_rejected") > 0))
    )
    return not prior.is_empty()


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
