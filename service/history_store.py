"""Source history and the dimension history tables built from it (transforms/dimension_history.py).

`_state/source_history/<table>`: every distinct version (key, last_updated) of the rows of the
source tables dimensions are built from, appended as they first arrive (a redelivered version is
stored once). `dimension_history/<name>` (dim_<name>_history): the type-2 states of every member.

A batch's plan, before anything is written: the batch's versions the source history lacks; for
every dimension over a table with such versions, the members they touch, their states before and
after (from the stored versions, without reading the history table) and the members whose states
differ. Nothing new, nothing opened: a run that brings no new dimension versions (or only ones
that change nothing a dimension shows) neither reads nor writes a history table.

Commit order (service/batch.py): a root written before the source history existed is seeded
first, from its mirrors (each member's history starts from the state the mirror holds; seeded
before the mirrors take this batch's rows); then mirrors, dimensions, the history tables, and
only then the new source versions. A crash before that last commit leaves the versions "new" for
the re-run, which recomputes the same states and replaces the same members' rows again; the
history is therefore written before the facts, so a batch's facts never land without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import polars as pl

from service.context import RunContext
from service.outcomes import RunSummary
from service.parallel import in_parallel
from transforms import dimension_history as history
from transforms.dimensions import DIMENSIONS, dimensions_from_source
from transforms.facts import FACTS_BY_SOURCE
from transforms.schemas import SOURCE_TABLES


def _state_name(table: str) -> str:
    return f"source_history_{table}"


@dataclass
class HistoryPlan:
    seeds: dict[str, pl.DataFrame] = field(default_factory=dict)  # table -> mirror rows
    new: dict[str, pl.DataFrame] = field(default_factory=dict)  # table -> versions to append
    updates: dict[str, history.HistoryUpdate] = field(default_factory=dict)  # dimension ->


def batch_versions(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Per source table of a dimension in the batch: its distinct versions, as stored."""
    out = {}
    for table, rows in frames.items():
        if table in FACTS_BY_SOURCE or not dimensions_from_source(table):
            continue
        columns = [*history.source_columns(table), "source_file"]
        versions = history.source_versions(rows, table).select(columns)
        out[table] = versions.with_columns(pl.lit(False).alias(history.SEEDED))
    return out


class HistoryStore:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._stored: dict[str, pl.DataFrame] = {}
        self._seeds: dict[str, pl.DataFrame] = {}

    def stored(self, table: str) -> pl.DataFrame:
        """Every stored version of a source table; a root without source history yet reads
        its mirror instead (and is seeded with it)."""
        if table in self._stored:
            return self._stored[table]
        lake = self.ctx.lake
        columns = [*history.source_columns(table), "source_file", history.SEEDED]
        rows = lake.read(_state_name(table))
        if rows is None:
            mirror = lake.read(f"source_{table}")
            schema = {**SOURCE_TABLES[table].columns, "source_file": pl.String()}
            rows = pl.DataFrame(schema=schema) if mirror is None else mirror.select(list(schema))
            rows = rows.with_columns(pl.lit(True).alias(history.SEEDED))
            if not rows.is_empty():
                self._seeds[table] = rows
        self._stored[table] = rows.select(columns)
        return self._stored[table]

    def _exists(self, name: str) -> bool:
        """From the catalog when it knows (it never leads the tables; an exact one knows which
        do not exist either), else asked."""
        catalog = self.ctx.catalog
        if name in catalog.tables:
            return True
        if catalog.exact and name in catalog.absent:
            return False
        return self.ctx.lake.exists(name)

    def plan(self, frames: dict[str, pl.DataFrame]) -> HistoryPlan:
        plan = HistoryPlan()
        for table, versions in batch_versions(frames).items():
            fresh = history.new_versions(versions, self.stored(table), table)
            if not fresh.is_empty():
                plan.new[table] = fresh
        names = sorted({d for t in plan.new for d in dimensions_from_source(t)})
        for name in names:
            spec = DIMENSIONS[name]
            old = {t: self.stored(t).drop("source_file") for t in spec.sources}
            new = {t: plan.new[t].drop("source_file") for t in spec.sources if t in plan.new}
            exists = self._exists(history.history_name(name))
            update = history.apply_versions(spec, old, new, exists)
            if not update.empty:
                plan.updates[name] = update
        if plan.new:  # a root written before the history: every dimension starts it now
            self._upgrade(plan)
        plan.seeds = dict(self._seeds)
        return plan

    def _upgrade(self, plan: HistoryPlan) -> None:
        """A root written before the history, at its first batch with new dimension versions:
        every dimension gets its history now, from the state its mirrors hold (once: the next
        batch finds the source history)."""
        for name, spec in DIMENSIONS.items():
            table = history.history_name(name)
            if name in plan.updates or self._exists(table):
                continue
            if self.stored(spec.sources[0]).is_empty():
                continue
            old = {t: self.stored(t).drop("source_file") for t in spec.sources}
            plan.updates[name] = history.HistoryUpdate(None, history.member_states(spec, old))

    def seed(self, plan: HistoryPlan, summary: RunSummary) -> None:
        """0. A root written before the source history: its mirrors, as they were."""
        for table, rows in sorted(plan.seeds.items()):
            if not self.ctx.lake.exists(_state_name(table)):
                summary.add_rows(
                    f"_state/source_history/{table}",
                    self.ctx.lake.append(_state_name(table), rows, summary.run_id),
                )

    def commit(self, plan: HistoryPlan, summary: RunSummary) -> None:
        """3. the history tables, 4. the new source versions."""
        lake, run_id = self.ctx.lake, summary.run_id
        updates = sorted(plan.updates.items())
        in_parallel([partial(self._write_history, name, u, run_id) for name, u in updates])
        for name, update in updates:
            summary.add_rows(history.history_name(name), update.rows.height)
        versions = sorted(plan.new.items())
        appended = in_parallel(
            [partial(lake.append, _state_name(t), rows, run_id) for t, rows in versions]
        )
        for (table, _), rows_added in zip(versions, appended, strict=True):
            summary.add_rows(f"_state/source_history/{table}", rows_added)

    def _write_history(self, name: str, update: history.HistoryUpdate, run_id: str) -> None:
        """One history table: created whole, or the changed members' rows replaced."""
        lake, table = self.ctx.lake, history.history_name(name)
        if update.members is None:
            lake.append(table, update.rows, run_id)
        else:
            key = DIMENSIONS[name].key
            listed = ", ".join(str(int(k)) for k in update.members.to_list())
            lake.replace_where(table, update.rows, f"{key} IN ({listed})", run_id)
