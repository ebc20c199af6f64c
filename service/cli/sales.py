"""`totesys history` and `totesys current`: a sale's versions, and every sale's current state
(the fact-table reads of service/queries.py); and `totesys tables`."""

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


@app.command()
def history(
    sales_order_id: int,
    processed: ProcessedOpt = None,
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every version of one sale, deletion included."""
    lake = open_lake(processed)
    try:
        rows = queries.sale_history(lake, sales_order_id, version)
    except queries.NoSuchVersion as exc:
        fail(str(exc))
    if as_json:
        print_json({"sales_order_id": sales_order_id, "versions": rows.to_dicts()})
        return
    if rows.is_empty():
        fail(f"no sales order {sales_order_id}")
    print_frame(rows.select(queries.HISTORY_VIEW_COLUMNS), f"sales order {sales_order_id}")


# The columns a person reads in the current-state table (--json carries all of them).
CURRENT_VIEW_COLUMNS = [
    "sales_record_id",
    "sales_order_id",
    "created_date",
    "created_time",
    "last_updated_date",
    "last_updated_time",
    "sales_staff_id",
    "counterparty_id",
    "units_sold",
    "unit_price",
    "currency_id",
    "design_id",
]


@app.command()
def current(
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
    """The current state of every sale (latest version unless deleted), or as of a time."""
    moment = parse_as_of(as_of)
    lake = open_lake(processed)
    try:
        rows = queries.current_sales(lake, as_of=moment, version=version)
    except queries.NoSuchVersion as exc:
        fail(str(exc))
    if as_json:
        print_json({"as_of": moment, "count": rows.height, "sales": rows.to_dicts()})
        return
    print_frame(rows.head(limit).select(CURRENT_VIEW_COLUMNS), f"{rows.height:,} live sales")


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
