"""What the facts of a batch reference: placeholder members for keys no dimension holds yet, and
the calendar days dim_date lacks. Each fact's declaration says which of its columns reference
which dimension and which are dates (transforms/fact_spec.py)."""

from __future__ import annotations

from datetime import date

import polars as pl

from service.context import RunContext
from transforms import dim_date, dimensions
from transforms.dimensions import DIMENSIONS
from transforms.fact_spec import FactSpec

Referenced = list[tuple[FactSpec, pl.DataFrame]]  # per fact: every version the batch holds


def _referenced_keys(referenced: Referenced) -> dict[str, pl.Series]:
    wanted: dict[str, list[pl.Series]] = {}
    for spec, frame in referenced:
        for column, name in spec.references.items():
            dim = DIMENSIONS[name]
            keys = frame[column].drop_nulls().unique().cast(dim.schema[dim.key]).alias(dim.key)
            wanted.setdefault(name, []).append(keys)
    return {name: pl.concat(parts).unique() for name, parts in wanted.items()}


def inferred_members(
    ctx: RunContext, referenced: Referenced, dims: dict[str, pl.DataFrame]
) -> dict[str, pl.DataFrame]:
    """Placeholder members for keys the facts reference that no dimension holds. The catalog
    says which keys each dimension holds; a key it lacks is checked against the table."""
    catalog, lake = ctx.catalog, ctx.lake
    out = {}
    for name, keys in _referenced_keys(referenced).items():
        key = DIMENSIONS[name].key
        if name in dims:
            keys = keys.filter(~keys.is_in(dims[name][key].implode()))
        missing = catalog.missing_members(name, keys)
        if missing.is_empty():
            continue
        # only the keys in question: a large dimension is never read whole
        wanted = pl.col(key).is_in(missing.implode())
        existing = lake.read(name, columns=[key], where=wanted)
        if existing is not None:
            catalog.add_members(name, existing[key])
            missing = missing.filter(~missing.is_in(existing[key].implode()))
        else:
            catalog.add_members(name, [])
        if missing.len():
            out[name] = dimensions.inferred_members(name, missing)
    return out


def referenced_dates(referenced: Referenced) -> tuple[date, date] | None:
    spans = [dim_date.referenced_date_range(frame, spec.dates) for spec, frame in referenced]
    found = [s for s in spans if s is not None]
    if not found:
        return None
    return min(s[0] for s in found), max(s[1] for s in found)


def calendar_extension(ctx: RunContext, referenced: Referenced) -> pl.DataFrame:
    needed = referenced_dates(referenced)
    if needed is None:
        return pl.DataFrame()
    catalog, lake = ctx.catalog, ctx.lake
    extension = dim_date.calendar_extension(catalog.calendar_range(), needed)
    if extension.is_empty():
        return extension
    # the catalog may lag the table (or not know it yet): ask the table's statistics
    existing = None
    if lake.exists("dim_date"):
        lo = lake.column_min("dim_date", "date_id")
        hi = lake.column_max("dim_date", "date_id")
        existing = (lo, hi) if lo is not None and hi is not None else None
        if existing is not None:
            catalog.set_calendar(*existing)
    return dim_date.calendar_extension(existing, needed)


def note_calendar(ctx: RunContext, extension: pl.DataFrame, referenced: Referenced) -> None:
    catalog = ctx.catalog
    spans = [r for r in (catalog.calendar_range(), referenced_dates(referenced)) if r]
    if not extension.is_empty():
        spans.append((extension["date_id"].min(), extension["date_id"].max()))  # type: ignore[arg-type]
    if spans:
        catalog.set_calendar(min(s[0] for s in spans), max(s[1] for s in spans))
