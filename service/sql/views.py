"""The views of `totesys sql`: two per declared fact (transforms/facts.py), with the same
definitions as `totesys current` (transforms/fact_versions.py):

- `<fact>_current` (fact_sales_order_current, fact_purchase_order_current,
  fact_payment_current): each id's latest version, unless it is a deletion;
- `<fact>_as_of` (fact_sales_order_as_of, …): each id as it stood at a business time
  (`--as-of-business`), i.e. its latest version with `last_updated` at or before it, unless
  that is a deletion.

A view has its fact's columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from transforms import fact_versions
from transforms.fact_spec import FactSpec
from transforms.facts import FACTS


@dataclass(frozen=True)
class View:
    name: str
    fact: FactSpec
    as_of: bool  # needs a business time
    meaning: str


def _views(spec: FactSpec) -> list[View]:
    label = "sale" if spec.source == "sales_order" else spec.label
    return [
        View(
            f"{spec.name}_current",
            spec,
            False,
            f"each {label}'s latest version, unless it is a deletion",
        ),
        View(
            f"{spec.name}_as_of",
            spec,
            True,
            f"each {label} as of the business time given by --as-of-business",
        ),
    ]


VIEW_SPECS: dict[str, View] = {v.name: v for spec in FACTS.values() for v in _views(spec)}
# name -> what it holds, and whose columns (`totesys sql --list`)
VIEWS: dict[str, str] = {
    name: f"{view.meaning}; columns of {view.fact.name}" for name, view in VIEW_SPECS.items()
}


def facts_behind(names: Iterable[str]) -> set[str]:
    """The fact tables the named views are read from."""
    return {VIEW_SPECS[n].fact.name for n in names if n in VIEW_SPECS}


def lacking_business_time(names: Iterable[str], as_of_business: datetime | None) -> str | None:
    """The message when a named `_as_of` view has no business time to be read at."""
    if as_of_business is not None:
        return None
    wanting = sorted(n for n in names if n in VIEW_SPECS and VIEW_SPECS[n].as_of)
    if not wanting:
        return None
    return f"{', '.join(wanting)} needs --as-of-business TIMESTAMP (business time)"


def view_frames(
    names: Iterable[str], tables: Mapping[str, pl.LazyFrame], as_of_business: datetime | None
) -> dict[str, pl.LazyFrame]:
    """The named views as lazy frames over their facts' frames in `tables`; an `_as_of` view
    only with a business time (naive UTC)."""
    frames: dict[str, pl.LazyFrame] = {}
    for name in names:
        view = VIEW_SPECS.get(name)
        if view is None:
            continue
        rows = tables[view.fact.name]
        if not view.as_of:
            frames[name] = fact_versions.current_state(view.fact, rows)
        elif as_of_business is not None:
            frames[name] = fact_versions.state_as_of(view.fact, rows, as_of_business)
    return frames
