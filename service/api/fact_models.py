"""The response bodies of a fact's routes, made from its declaration (transforms/fact_spec.py):
one version (a row of the fact table), an id's history, an id's state.

A version's fields are the table's columns with their stored types: the record id and the id
are always there, a lineage `change_type` is insert/update/delete, `last_updated` is served with
its zone (UTC), and every other column may be null (a deletion version repeats the last values,
an inferred member may lack them). Sales keeps the names it was published with (SaleVersion,
`sale`); a newer fact is named after its source table (PaymentVersion, `payment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, Field, create_model

from service.api.models import UtcDatetime
from transforms.fact_sales_order import SALES
from transforms.fact_spec import FactSpec
from transforms.facts import FACTS


@dataclass(frozen=True)
class FactApi:
    """How one fact shows in the API."""

    spec: FactSpec
    noun: str  # in summaries: "a sale", "a payment"
    key: str  # the state body's field, and the routes' name prefix: sale, payment
    model: str  # the models' name prefix: Sale, Payment

    @property
    def id_column(self) -> str:
        return self.spec.id_column


def fact_api(spec: FactSpec) -> FactApi:
    if spec.name == SALES.name:  # as first published
        return FactApi(spec, "sale", "sale", "Sale")
    camel = "".join(part.capitalize() for part in spec.source.split("_"))
    return FactApi(spec, spec.label, spec.source, camel)


FACT_APIS: list[FactApi] = [fact_api(spec) for spec in FACTS.values()]


def _python_type(dtype: pl.DataType) -> Any:
    if dtype.is_integer():
        return int
    if isinstance(dtype, pl.Decimal):
        return Decimal
    if isinstance(dtype, pl.Datetime):
        return UtcDatetime
    if isinstance(dtype, pl.Date):
        return date
    if isinstance(dtype, pl.Boolean):
        return bool
    if isinstance(dtype, pl.String):
        return str
    raise TypeError(f"no API type for {dtype}")


def _field(api: FactApi, column: str, dtype: pl.DataType) -> tuple[Any, Any]:
    if column in {api.spec.record_id, api.id_column}:
        return int, ...
    if column == "last_updated":
        return UtcDatetime, ...
    if column == "change_type":
        return Literal["insert", "update", "delete"], ...
    return _python_type(dtype) | None, ...


@dataclass(frozen=True)
class FactModels:
    version: type[BaseModel]
    history: type[BaseModel]
    state: type[BaseModel]


def _make_models(api: FactApi) -> FactModels:
    spec = api.spec
    version: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{api.model}Version",
        __doc__=f"One version of a {api.noun} in {spec.name} (a row; `delete` marks the deletion).",
        **{c: _field(api, c, t) for c, t in spec.schema.items()},
    )
    history: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{api.model}History",
        **{
            api.id_column: (int, ...),
            "versions": (list[version], Field(description="Oldest first, deletion included")),
        },
    )
    state: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{api.model}State",
        **{
            api.id_column: (int, ...),
            "as_of": (UtcDatetime | None, ...),
            "state": (Literal["current"], "current"),
            api.key: (version, ...),
        },
    )
    return FactModels(version, history, state)


# Made once per fact: OpenAPI names each model once.
_MODELS: dict[str, FactModels] = {api.spec.name: _make_models(api) for api in FACT_APIS}


def fact_models(api: FactApi) -> FactModels:
    return _MODELS[api.spec.name]
