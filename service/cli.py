"""The `totesys` command: generate data, run the pipeline, query history and tables.

Results go to stdout (a table, or JSON with --json); progress and logs go to stderr. Errors are
one clear line; the detail is in the log (`--verbose` shows it).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service import queries
from service.lake import Lake
from service.lease import LeaseBusy
from service.pipeline import Pipeline, new_run_id
from service.settings import Settings
from service.storage import StorageError, check_root, open_storage

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
    return Settings(**overrides)


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


@app.command()
def run(
    ingestion: IngestionOpt = None,
    processed: ProcessedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply every pending ingestion file to the Delta tables."""
    settings = _settings(ingestion, processed)
    try:
        pipeline = Pipeline.from_settings(settings)
        check_root(pipeline.ingestion, "ingestion")  # before the processed root is touched
    except (ValueError, StorageError) as exc:
        _fail(str(exc))
        return
    run_id = new_run_id()

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
    try:
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("planning", total=None)

            def progress(message: str, done: int, total: int) -> None:
                bar.update(task, description=message, completed=done, total=total)

            summary = pipeline.run(run_id=run_id, trigger="cli", progress=progress)
    except KeyboardInterrupt:
        err.print(
            f"[red]interrupted:[/red] run {run_id} recorded as interrupted; "
            "files it had not finished stay pending for the next run"
        )
        raise typer.Exit(130) from None
    except LeaseBusy as exc:
        _fail(f"{exc}; its files will be applied by that run or the next one")
        return
    except Exception as exc:
        log.debug("run failed", exc_info=True)  # the traceback, with --verbose
        _fail(f"run failed: {type(exc).__name__}: {exc} (-v for the traceback)")
        return
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


@app.command()
def history(
    sales_order_id: int,
    processed: ProcessedOpt = None,
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every version of one sale, deletion included."""
    lake = _open_lake(processed)
    try:
        rows = queries.sale_history(lake, sales_order_id, version)
    except queries.NoSuchVersion as exc:
        _fail(str(exc))
        return
    if as_json:
        _print_json({"sales_order_id": sales_order_id, "versions": rows.to_dicts()})
        return
    if rows.is_empty():
        _fail(f"no sales order {sales_order_id}")
    _print_frame(
        rows.select(queries.HISTORY_VIEW_COLUMNS),
        f"sales order {sales_order_id}",
    )


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
    moment = _as_of(as_of)
    lake = _open_lake(processed)
    try:
        rows = queries.current_sales(lake, as_of=moment, version=version)
    except queries.NoSuchVersion as exc:
        _fail(str(exc))
        return
    if as_json:
        _print_json({"as_of": moment, "count": rows.height, "sales": rows.to_dicts()})
        return
    _print_frame(rows.head(limit).select(rows.columns[:12]), f"{rows.height:,} live sales")


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
            help="Time-travel window kept (days); env TOTESYS_RETENTION_DAYS, default 30",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compact small files, checkpoint, and vacuum what no version inside the window needs."""
    from service.maintenance import maintain as run_maintenance

    settings = _settings(processed=processed)
    days = settings.retention_days if retention_days is None else retention_days
    lake = Lake(open_storage(settings.processed_uri))
    try:
        with err.status("maintaining tables…"):
            result = run_maintenance(
                lake,
                days,
                lease_seconds=settings.lease_seconds,
                lease_wait_seconds=settings.lease_wait_seconds,
            )
    except LeaseBusy as exc:
        _fail(f"{exc}; try again when it has finished")
        return
    except Exception as exc:
        log.debug("maintenance failed", exc_info=True)  # the traceback, with --verbose
        _fail(f"maintenance failed: {type(exc).__name__}: {exc} (-v for the traceback)")
        return
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
