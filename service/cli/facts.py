"""`totesys history` and `totesys current`: one id's versions, and every id's current state, of
any declared fact (`--fact`; sales orders by default) through service/queries.py; and
`totesys tables`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from service import queries
from service.cli.common import (
    JsonOpt,
    ProcessedOpt,
    VersionOpt,
    app,
    fail,
    open_lake,
    out,
    parse_as_of,
    print_frame,
    print_json,
)
from service.fact_columns import current_columns, fact_option, history_columns, plural
from transforms.fact_spec import FactSpec

FactOpt = Annotated[
    str,
    typer.Option(
        "--fact",
        help="The fact: sales_order, purchase_order or payment (or its table name, e.g. "
        "fact_payment)",
    ),
]


def _fact(value: str) -> FactSpec:
    try:
        return fact_option(value)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="--fact") from None


@app.command()
def history(
    ident: Annotated[int, typer.Argument(metavar="ID", help="The id (e.g. a sales_order_id)")],
    fact: FactOpt = "sales_order",
    processed: ProcessedOpt = None,
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every version of one sale (or purchase order, payment: --fact), deletion included."""
    spec = _fact(fact)
    lake = open_lake(processed)
    try:
        rows = queries.history(lake, spec, ident, version)
    except queries.NoSuchVersion as exc:
        fail(str(exc))
    if as_json:
        print_json({spec.id_column: ident, "versions": rows.to_dicts()})
        return
    if rows.is_empty():
        fail(f"no {spec.label} {ident}")
    print_frame(rows.select(history_columns(spec)), f"{spec.label} {ident}")


@app.command()
def current(
    fact: FactOpt = "sales_order",
    processed: ProcessedOpt = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Business time, ISO 8601; naive = UTC, a zone (Z, +01:00) is converted"
        ),
    ] = None,
    version: VersionOpt = None,
    limit: Annotated[int, typer.Option(help="Rows to print (the table view)")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The current state of every sale (or purchase order, payment: --fact): its latest version
    unless deleted, or as of a time."""
    spec = _fact(fact)
    moment = parse_as_of(as_of)
    lake = open_lake(processed)
    try:
        rows = queries.current(lake, spec, as_of=moment, version=version)
    except queries.NoSuchVersion as exc:
        fail(str(exc))
    noun = plural(spec)
    if as_json:
        print_json({"as_of": moment, "count": rows.height, noun: rows.to_dicts()})
        return
    title = f"{rows.height:,} live {noun.replace('_', ' ')}"
    print_frame(rows.head(limit).select(current_columns(spec)), title)


@app.command()
def tables(
    processed: ProcessedOpt = None,
    version: Annotated[
        int | None,
        typer.Option("--version", min=0, help="Show each table as of this Delta version"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Each table: Delta version, rows, last commit."""
    lake = open_lake(processed)
    try:
        infos = queries.table_infos(lake, version)
    except queries.NoSuchVersion as exc:
        fail(str(exc))
    if as_json:
        print_json([info.__dict__ for info in infos])
        return
    table = Table(title=f"tables under {lake.storage.uri}")
    for column in ("table", "path", "version", "rows", "last commit", "operation"):
        table.add_column(column)
    for info in infos:
        table.add_row(
            info.name,
            info.path,
            str(info.version),
            f"{info.rows:,}",
            info.last_commit.isoformat(timespec="seconds") if info.last_commit else "",
            info.last_operation or "",
        )
    out.print(table)
