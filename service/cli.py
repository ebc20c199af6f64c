"""The `totesys` command: generate data, run the pipeline, query history and tables.

Results go to stdout (a table, or JSON with --json); progress and logs go to stderr. Errors are
one clear line; the detail is in the log (`--verbose` shows it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import polars as pl
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service import jobs, queries
from service.fact_columns import current_columns, fact_option, history_columns, plural
from service.lake import Lake
from service.lease import LeaseView
from service.pipeline import Pipeline
from service.settings import RETENTION_DAYS_MAX, RETENTION_DAYS_MIN, Settings
from service.storage import StorageError, check_root, open_storage
from transforms.fact_spec import FactSpec

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False
)
# Piped output keeps whole values (rich would wrap to 80 columns without a terminal).
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long
log = logging.getLogger("totesys.cli")

IngestionOpt = Annotated[
    str | None,
    typer.Option("--ingestion", help="Ingestion root (folder or s3://); env TOTESYS_INGESTION_URI"),
]
ProcessedOpt = Annotated[
    str | None,
    typer.Option("--processed", help="Processed root (folder or s3://); env TOTESYS_PROCESSED_URI"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout")]
VersionOpt = Annotated[
    int | None,
    typer.Option("--version", min=0, help="Read the fact table at this Delta version (0 or more)"),
]


def _settings(ingestion: str | None = None, processed: str | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if ingestion:
        overrides["ingestion_uri"] = ingestion
    if processed:
        overrides["processed_uri"] = processed
    try:
        return Settings(**overrides)
    except ValidationError as exc:  # a bad TOTESYS_* variable: one line naming it
        problems = "; ".join(
            f"TOTESYS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid setting: {problems}")
        raise  # not reached: _fail exits


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=_json_default, indent=2) + "\n")


def _print_frame(frame: pl.DataFrame, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column)
    for row in frame.iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _open_lake(processed: str | None) -> Lake:
    """The Lake of an existing processed root; one error line if there is none to read."""
    storage = open_storage(_settings(processed=processed).processed_uri)
    try:
        check_root(storage, "processed", must_exist_with_content=True)
    except StorageError as exc:
        _fail(f"{exc} (run `totesys run` first, or check --processed)")
    return Lake(storage)


def _as_of(value: str | None) -> datetime | None:
    """ISO 8601, with or without a zone (as the API accepts it): naive UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time (2024-11-14T10:00:00, ...Z, ...+01:00)",
            param_hint="--as-of",
        ) from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def generate(
    out_dir: Annotated[
        str, typer.Option("--out", help="Ingestion root to write (folder or s3://)")
    ],
    orders: Annotated[int, typer.Option(help="Sales orders in the baseline")] = 2000,
    updates: Annotated[int, typer.Option(help="Update batches after the baseline")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files)")] = 42,
) -> None:
    """Write a synthetic Totesys ingestion tree: a baseline, then update batches."""
    from service.synthetic import SyntheticManifest, iter_ingestion_files

    storage = open_storage(out_dir)
    manifest = SyntheticManifest(files=[])
    written = 0
    with err.status("generating…"):
        for key, content in iter_ingestion_files(
            orders=orders, updates=updates, seed=seed, manifest=manifest
        ):
            storage.write(key, content)
            written += len(content)
    err.print(
        f"wrote {len(manifest.files)} files ({written / 1e6:.1f} MB) to {storage.uri}: "
        f"{manifest.orders_created} orders, {manifest.order_versions} versions, "
        f"{len(manifest.deleted_order_ids)} deleted"
    )


WAIT_HELP = (
    "Seconds to wait for a live run's lease before leaving a wake marker (that run then applies "
    "these files too) and exiting with code 75. A holder that missed a heartbeat is presumed dead "
    "and waited out (at most its lease) whatever this says."
)
EXIT_BUSY = 75  # EX_TEMPFAIL: another run holds the lease and will apply the files
EXIT_INTERRUPTED = 130


@app.command()
def run(
    ingestion: IngestionOpt = None,
    processed: ProcessedOpt = None,
    as_json: JsonOpt = False,
    wait: Annotated[float, typer.Option("--wait", help=WAIT_HELP)] = 45.0,
) -> None:
    """Apply every pending ingestion file to the Delta tables."""
    settings = _settings(ingestion, processed)
    try:
        pipeline = Pipeline.from_settings(settings)
        check_root(pipeline.ingestion, "ingestion")  # before the processed root is touched
    except (ValueError, StorageError) as exc:
        _fail(str(exc))
        return

    def interrupt_once(signum: int, frame: Any) -> None:
        # Later Ctrl-Cs are ignored, so the run can record itself as interrupted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt_once)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} files"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("planning", total=None)

        def progress(message: str, done: int, total: int) -> None:
            bar.update(task, description=message, completed=done, total=total)

        def waiting(view: LeaseView) -> None:
            holder = view.latest.holder if view.latest else "?"
            bar.update(task, description=f"waiting for run {holder}'s lease")

        outcome = jobs.execute(
            jobs.Job("run", trigger="cli"),
            settings,
            pipeline=pipeline,
            progress=progress,
            on_wait=waiting,
            wait_seconds=wait,
        )
    if outcome.status == "busy":
        err.print(
            f"[yellow]busy:[/yellow] {outcome.error}; a wake marker asks it to apply the pending "
            "files before it releases"
        )
        raise typer.Exit(EXIT_BUSY)
    if outcome.status == "interrupted":
        err.print(
            f"[red]interrupted:[/red] run {outcome.run_id} recorded as interrupted; "
            "files it had not finished stay pending for the next run"
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.summary is None or outcome.status != "succeeded":
        log.debug("run failed", exc_info=outcome.exception)  # the traceback, with --verbose
        _fail(f"run failed: {outcome.error} (-v for the traceback)")
        return
    summary = outcome.summary
    result = summary.to_dict()
    if as_json:
        _print_json(result)
        return
    out.print(
        f"run [bold]{summary.run_id}[/bold]: {result['files_applied']} files applied, "
        f"{result['files_rejected']} rejected, {result['files_skipped']} skipped"
    )
    if not summary.files:
        out.print("nothing to do: no pending files")
    for table, rows in sorted(summary.rows_written.items()):
        out.print(f"  {table:<32} {rows:>10,} rows written")
    for item in result["rejected_content"]:
        out.print(f"[yellow]rejected content[/yellow] {item['key']}: {item['reason']}")
        for problem in item["problems"][:5]:
            out.print(
                f"    record {problem['record_number']} field {problem['field']}: "
                f"{problem['reason']}"
            )
    for warning in summary.warnings:
        out.print(f"[yellow]warning[/yellow] {warning}")


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
    lake = _open_lake(processed)
    try:
        rows = queries.history(lake, spec, ident, version)
    except queries.NoSuchVersion as exc:
        _fail(str(exc))
        return
    if as_json:
        _print_json({spec.id_column: ident, "versions": rows.to_dicts()})
        return
    if rows.is_empty():
        _fail(f"no {spec.label} {ident}")
    _print_frame(rows.select(history_columns(spec)), f"{spec.label} {ident}")


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
    moment = _as_of(as_of)
    lake = _open_lake(processed)
    try:
        rows = queries.current(lake, spec, as_of=moment, version=version)
    except queries.NoSuchVersion as exc:
        _fail(str(exc))
        return
    noun = plural(spec)
    if as_json:
        _print_json({"as_of": moment, "count": rows.height, noun: rows.to_dicts()})
        return
    title = f"{rows.height:,} live {noun.replace('_', ' ')}"
    _print_frame(rows.head(limit).select(current_columns(spec)), title)


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
    lake = _open_lake(processed)
    try:
        infos = queries.table_infos(lake, version)
    except queries.NoSuchVersion as exc:
        _fail(str(exc))
        return
    if as_json:
        _print_json([info.__dict__ for info in infos])
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


@app.command()
def maintain(
    processed: ProcessedOpt = None,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            help="Time-travel window kept (days, 1 to 3650); env TOTESYS_RETENTION_DAYS, "
            "default 30",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compact small files, checkpoint, and vacuum what no version inside the window needs."""
    settings = _settings(processed=processed)
    days = settings.retention_days if retention_days is None else retention_days
    if not RETENTION_DAYS_MIN <= days <= RETENTION_DAYS_MAX:
        _fail(
            f"--retention-days must be between {RETENTION_DAYS_MIN} and {RETENTION_DAYS_MAX} "
            f"days (got {days}): 0 would remove every older version at once"
        )
    with err.status("maintaining tables…"):
        job = jobs.execute(jobs.Job("maintain", trigger="cli", retention_days=days), settings)
    if job.status == "busy":
        err.print(f"[yellow]busy:[/yellow] {job.error}; try again when it has finished")
        raise typer.Exit(EXIT_BUSY)
    if job.status == "interrupted":
        err.print(f"[yellow]interrupted:[/yellow] maintenance {job.run_id} recorded as interrupted")
        raise typer.Exit(EXIT_INTERRUPTED)
    if job.maintenance is None or job.status != "succeeded":
        log.debug("maintenance failed", exc_info=job.exception)  # the traceback, with --verbose
        _fail(f"maintenance failed: {job.error} (-v for the traceback)")
        return
    result = job.maintenance
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"maintenance {result['run_id']} (window {days} days)")
    for column in ("table", "version", "files before", "files after", "vacuumed", "bytes", "log"):
        table.add_column(column)
    for name, stats in result["tables"].items():
        table.add_row(
            name,
            f"{stats['version_before']}→{stats['version_after']}",
            str(stats["files_before"]),
            str(stats["files_after"]),
            str(stats["files_vacuumed"]),
            f"{stats['bytes_vacuumed']:,}",
            str(stats["log_entries_removed"]),
        )
    out.print(table)
    out.print(f"done in {result['seconds']:.1f} s")


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
) -> None:
    """Read-only SQL over the star tables (fact_*, dim_*), the views fact_*_current and
    fact_*_as_of (e.g. fact_payment_current), at a Delta version or time."""
    from service.sql import engine
    from service.sql.guard import UnsafeQuery
    from service.sql.named import bind, named_queries

    if as_json and as_csv:
        _fail("give --json or --csv, not both")
    if list_catalog:
        _print_sql_catalog(as_json)
        return
    lake = Lake(open_storage(_settings(processed=processed).processed_uri))
    try:
        if named is not None:
            if query is not None:
                _fail("give a query or --named NAME, not both")
            available = named_queries()
            if named not in available:
                _fail(f"no named query {named!r} (named queries: {', '.join(available)})")
            query = bind(available[named], params or [])
        elif params:
            _fail("--param is for --named queries")
        if query is None:
            _fail('give a query, e.g. totesys sql "SELECT * FROM dim_currency"')
            return
        travel = engine.TimeTravel(version=version, as_of=as_of)
        frame = engine.prepare(lake, query, travel, as_of_business)
        if as_csv:
            # Streamed to stdout in batches: the whole answer never sits in memory as text.
            try:
                frame.sink_csv(sys.stdout.buffer)
            except OSError as exc:
                if "broken pipe" not in str(exc).lower():
                    raise
                # The reader stopped early (`| head`): not an error. Point stdout at devnull
                # so the interpreter's final flush does not fail either.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
        rows = engine.collect(frame, None if as_json else limit + 1)
    except (engine.SqlError, UnsafeQuery) as exc:
        _fail(str(exc))
        return
    except pl.exceptions.PolarsError as exc:  # raised while streaming --csv
        _fail(str(exc).strip().splitlines()[0])
        return
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
    _print_frame(rows, f"{rows.height:,}{'+' if more else ''} {noun}")
    if more:
        err.print(f"showing the first {limit:,} rows: --csv or --json for every row")


def _print_sql_catalog(as_json: bool) -> None:
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
        _print_json({"tables": tables, "views": VIEWS, "named_queries": named})
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


def is_loopback_host(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    ingestion: IngestionOpt = None,
    processed: ProcessedOpt = None,
) -> None:
    """Serve the HTTP API (uvicorn). Without TOTESYS_API_TOKEN only loopback addresses."""
    import uvicorn

    from service.api.app import create_app

    settings = _settings(ingestion, processed)
    if not settings.api_token and not is_loopback_host(host):
        _fail(
            f"refusing to serve on {host} without a token: set TOTESYS_API_TOKEN, "
            "or bind a loopback address (127.0.0.1, ::1)"
        )
        return
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def entrypoint() -> None:
    """The `totesys` script: anything a command did not handle is one error line (the
    traceback goes to the log, shown with --verbose) and exit status 1."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        sys.exit(130)
    except Exception as exc:
        log.debug("command failed", exc_info=True)
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
