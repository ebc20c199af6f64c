"""`totesys sql`: read-only SQL over the star tables (service/sql/), with a deadline.

The query is checked before Polars sees it and its plan before it runs (service/sql/guard.py),
then planned and run in a worker thread with `--timeout` seconds (service/sql/bounded.py): past
it, or on Ctrl-C, the process ends at once with one line (a running Polars query cannot be
cancelled). Every failure is one error line and exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import datetime
from typing import Annotated, NoReturn

import polars as pl
import typer
from rich.table import Table

from service.cli.common import (
    EXIT_INTERRUPTED,
    JsonOpt,
    ProcessedOpt,
    app,
    err,
    fail,
    out,
    print_frame,
    print_json,
    settings_from,
)
from service.lake import Lake
from service.storage import open_storage

DEFAULT_TIMEOUT = 600.0


@app.command()
def sql(
    query: Annotated[
        str | None, typer.Argument(help="One SELECT (or WITH … SELECT) statement")
    ] = None,
    named: Annotated[
        str | None,
        typer.Option("--named", help="Run a named query (service/sql/named/NAME.sql) instead"),
    ] = None,
    params: Annotated[
        list[str] | None,
        typer.Option("--param", help="A named query's parameter value, in order (repeat)"),
    ] = None,
    processed: ProcessedOpt = None,
    version: Annotated[
        int | None, typer.Option("--version", help="Read every table at this Delta version")
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", help="Read every table as committed at this time (naive UTC)"),
    ] = None,
    as_of_business: Annotated[
        datetime | None,
        typer.Option(
            "--as-of-business",
            help="Business time (naive UTC) of the views fact_*_as_of (fact_payment_as_of, …)",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to print (the table view)")] = 100,
    as_json: JsonOpt = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Every row as CSV on stdout, streamed")
    ] = False,
    list_catalog: Annotated[
        bool, typer.Option("--list", help="List the tables, views and named queries")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Stop the query after this many seconds (one error line)"),
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Read-only SQL over the star tables (fact_*, dim_*), the views fact_*_current and
    fact_*_as_of (e.g. fact_payment_current), at a Delta version or time."""
    from service.sql import engine
    from service.sql.bounded import QueryTimeout, run_bounded

    if as_json and as_csv:
        fail("give --json or --csv, not both")
    if not timeout > 0:
        fail(f"--timeout must be more than 0 seconds, not {timeout:g}")
    if list_catalog:
        print_sql_catalog(as_json)
        return
    text = _query_text(query, named, params)
    lake = Lake(open_storage(settings_from(processed=processed).processed_uri))

    def work() -> pl.DataFrame | None:
        travel = engine.TimeTravel(version=version, as_of=as_of)
        frame = engine.prepare(lake, text, travel, as_of_business)
        if as_csv:
            _stream_csv(frame)
            return None
        return engine.collect(frame, None if as_json else limit + 1)

    try:
        rows = run_bounded(work, timeout)
    except QueryTimeout as exc:
        _end_now(str(exc), 1)
    except KeyboardInterrupt:
        _end_now("interrupted", EXIT_INTERRUPTED)
    except engine.SqlError as exc:
        fail(str(exc))
    if rows is not None:
        _print_rows(rows, as_json, limit)


def _query_text(query: str | None, named: str | None, params: list[str] | None) -> str:
    """The SQL to run: the argument, or a named query with its parameters bound."""
    from service.sql.named import bind, named_queries

    if named is not None:
        if query is not None:
            fail("give a query or --named NAME, not both")
        available = named_queries()
        if named not in available:
            fail(f"no named query {named!r} (named queries: {', '.join(available)})")
        try:
            return bind(available[named], params or [])
        except ValueError as exc:
            fail(str(exc))
    if params:
        fail("--param is for --named queries")
    if query is None:
        fail('give a query, e.g. totesys sql "SELECT * FROM dim_currency"')
    return query


def _stream_csv(frame: pl.LazyFrame) -> None:
    """Every row as CSV on stdout, in batches: the whole answer never sits in memory as text."""
    from service.sql import engine

    try:
        engine.sink_csv(frame, sys.stdout.buffer)
    except OSError as exc:
        if "broken pipe" not in str(exc).lower():
            raise
        # The reader stopped early (`| head`): not an error. Point stdout at devnull so the
        # interpreter's final flush does not fail either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _end_now(message: str, code: int) -> NoReturn:
    """One error line, then end the process at once: the query's thread cannot be stopped, and
    a normal exit would wait for it."""
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    err.print(f"[red]error:[/red] {message}")
    sys.stderr.flush()
    os._exit(code)


def _print_rows(rows: pl.DataFrame, as_json: bool, limit: int) -> None:
    if as_json:
        # Serialised by Polars (a Python dict per row is ~20x slower for a large answer), with
        # timestamps as ISO 8601 like the other commands' JSON; decimals stay exact strings.
        iso = pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.6f")
        head = json.dumps({"columns": rows.columns, "count": rows.height})
        sys.stdout.write(f'{head[:-1]}, "rows": {rows.with_columns(iso).write_json()}}}\n')
        return
    more = rows.height > limit
    rows = rows.head(limit)
    noun = "row" if rows.height == 1 and not more else "rows"
    print_frame(rows, f"{rows.height:,}{'+' if more else ''} {noun}")
    if more:
        err.print(f"showing the first {limit:,} rows: --csv or --json for every row")


def print_sql_catalog(as_json: bool) -> None:
    """What `totesys sql` can query: tables with their columns, views, named queries."""
    from service.lake import TABLE_SCHEMAS
    from service.sql.named import named_queries
    from service.sql.views import VIEWS

    tables = {n: {c: str(t) for c, t in cols.items()} for n, cols in TABLE_SCHEMAS.items()}
    named = {
        q.name: {"title": q.title, "parameters": [f"{n} {t}" for n, t in q.parameters]}
        for q in named_queries().values()
    }
    if as_json:
        print_json({"tables": tables, "views": VIEWS, "named_queries": named})
        return
    listing = Table(title="tables and views")
    for column in ("name", "columns"):
        listing.add_column(column)
    for name, columns in tables.items():
        listing.add_row(name, ", ".join(columns))
    for name, meaning in VIEWS.items():
        listing.add_row(name, f"(view) {meaning}")
    out.print(listing)
    queries_table = Table(title="named queries (--named NAME --param VALUE ...)")
    for column in ("name", "question", "parameters"):
        queries_table.add_column(column)
    for name, query in named.items():
        queries_table.add_row(name, str(query["title"]), ", ".join(query["parameters"]))
    out.print(queries_table)
