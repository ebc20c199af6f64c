"""Source mirrors and the member dimensions built from them.

Every source table a dimension is built from is mirrored at `_state/source/<table>`: the latest
row of each member. A batch's rows are merged into the mirrors, and every dimension declared over
a changed source table (transforms/dimensions.py DIMENSIONS) is rebuilt whole from the mirrors as
they will be after the merge, then merged into its table (a member whose values did not change is
not rewritten). Everything is computed before the first commit.
"""

from __future__ import annotations

import logging
from functools import partial

import polars as pl

from service.context import RunContext
from service.outcomes import RunSummary
from service.parallel import in_parallel
from transforms import dimensions
from transforms.dimensions import DIMENSIONS
from transforms.facts import FACTS_BY_SOURCE
from transforms.schemas import SOURCE_TABLES

log = logging.getLogger("totesys.pipeline")

Incoming = dict[str, tuple[pl.DataFrame, str]]  # source table -> (its latest incoming rows, key)


def incoming_mirror_rows(frames: dict[str, pl.DataFrame]) -> Incoming:
    """Per mirrored source table in the batch: its latest incoming rows (to MERGE into the
    mirror). A fact's source table is not mirrored: the fact keeps its every version."""
    out = {}
    for table, rows in frames.items():
        if table in FACTS_BY_SOURCE:
            continue
        source = SOURCE_TABLES[table]
        latest = dimensions.latest_source_rows(rows, source.key).select(
            [*source.columns, "source_file"]
        )
        out[table] = (latest, source.key)
    return out


class DimensionStore:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._mirrors: dict[str, pl.DataFrame] = {}  # address feeds two dimensions: read once

    def mirror_after_merge(self, table: str, incoming: Incoming) -> pl.DataFrame:
        """The mirror as it will be after this batch's MERGE (stored rows, replaced by incoming
        rows that are strictly newer), computed before anything is written."""
        if table in self._mirrors:
            return self._mirrors[table]
        source = SOURCE_TABLES[table]
        stored = self.ctx.lake.read(f"source_{table}")
        if stored is None:
            stored = pl.DataFrame(schema={**source.columns, "source_file": pl.String()})
        if table not in incoming:
            self._mirrors[table] = stored
            return stored
        latest, key = incoming[table]
        if stored.is_empty():  # a first baseline: the incoming rows are the mirror
            self._mirrors[table] = latest
            return latest
        both = pl.concat(
            [
                stored.with_columns(pl.lit(1, dtype=pl.Int8).alias("_stored")),
                latest.with_columns(pl.lit(0, dtype=pl.Int8).alias("_stored")),
            ],
            how="vertical_relaxed",
        )
        # per key: the newest row; on a tie the stored row stays (the MERGE updates on `>`)
        merged = (
            both.sort([key, "last_updated", "_stored"])
            .unique(subset=key, keep="last", maintain_order=True)
            .drop("_stored")
        )
        self._mirrors[table] = merged
        return merged

    def rebuild(self, incoming: Incoming, summary: RunSummary) -> dict[str, pl.DataFrame]:
        """Every dimension over a source table of the batch, whole, from the merged mirrors."""
        names = {name for table in incoming for name in dimensions.dimensions_from_source(table)}
        out: dict[str, pl.DataFrame] = {}
        for name in sorted(names):
            spec = DIMENSIONS[name]
            mirrors = [self.mirror_after_merge(t, incoming) for t in spec.sources]
            dim, warnings = spec.build(*mirrors)
            for w in warnings:
                log.warning(w)
                summary.warnings.append(w)
            out[name] = dim
        return out

    def commit(
        self, incoming: Incoming, dims: dict[str, pl.DataFrame], summary: RunSummary
    ) -> None:
        """1. source mirrors, 2. the dimensions built from them."""
        lake, run_id = self.ctx.lake, summary.run_id
        mirrors = sorted(incoming.items())
        merged = in_parallel(
            [
                partial(
                    lake.upsert,
                    f"source_{table}",
                    latest,
                    [key],
                    run_id,
                    update_when="s.last_updated > t.last_updated",
                )
                for table, (latest, key) in mirrors
            ]
        )
        for (table, _), counts in zip(mirrors, merged, strict=True):
            summary.add_rows(f"_state/source/{table}", counts["inserted"] + counts["updated"])
        built = sorted(dims.items())
        merged = in_parallel(
            [
                partial(
                    lake.upsert,
                    name,
                    dim,
                    [DIMENSIONS[name].key],
                    run_id,
                    update_when=_changed(dim, DIMENSIONS[name].key),
                )
                for name, dim in built
            ]
        )
        for (name, dim), counts in zip(built, merged, strict=True):
            summary.add_rows(name, counts["inserted"] + counts["updated"])
            self.ctx.catalog.add_members(name, dim[DIMENSIONS[name].key])


def _changed(dim: pl.DataFrame, key: str) -> str:
    """A member is rewritten only if a value changed."""
    return " OR ".join(f"(t.{c} IS DISTINCT FROM s.{c})" for c in dim.columns if c != key)
