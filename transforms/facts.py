"""The facts of the warehouse, by table name and by source table. Adding a fact is adding its
declaration (a FactSpec, transforms/fact_spec.py) here."""

from __future__ import annotations

from transforms.fact_payment import PAYMENT
from transforms.fact_purchase_order import PURCHASE
from transforms.fact_sales_order import SALES
from transforms.fact_spec import FactSpec

FACTS: dict[str, FactSpec] = {spec.name: spec for spec in (SALES, PURCHASE, PAYMENT)}
FACTS_BY_SOURCE: dict[str, FactSpec] = {spec.source: spec for spec in FACTS.values()}


def fact_named(name: str) -> FactSpec:
    """A fact by its table name (fact_sales_order) or its short name (sales_order)."""
    spec = FACTS.get(name) or FACTS.get(f"fact_{name}")
    if spec is None:
        raise KeyError(f"unknown fact {name!r}; known: {', '.join(FACTS)}")
    return spec
