"""What every `totesys` command shares: the Typer app, the consoles, options, one-line errors
(the commands are in the modules beside this one; service/cli/__init__.py lists them)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, NoReturn

import polars as pl
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from service.lake import Lake
from service.settings import Settings
from service.storage import StorageError, check_root, open_storage

HELP = """The `totesys` command: generate data, run the pipeline, query history and tables.

Results go to stdout (a table, or JSON with --json); progress and logs go to stderr. Errors are
one clear line; the detail is in the log (`--verbose` shows it).
"""

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=HELP, pretty_exceptions_enable=False
)
# Piped output keeps whole values (rich would wrap to 80 columns without a terminal).
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long
log = logging.getLogger("totesys.cli")

EXIT_BUSY = 75  # EX_TEMPFAIL: another run holds the lease and will apply the files
EXIT_INTERRUPTED = 130

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


def fail(message: str) -> NoReturn:
    """One error line on stderr, exit status 1."""
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def settings_from(ingestion: str | None = None, processed: str | None = None) -> Settings:
    """The settings (TOTESYS_* variables) with the command's roots; a bad variable is one line
    naming it."""
    overrides: dict[str, Any] = {}
    if ingestion:
        overrides["ingestion_uri"] = ingestion
    if processed:
        overrides["processed_uri"] = processed
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"TOTESYS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid setting: {problems}")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=_json_default, indent=2) + "\n")


def print_frame(frame: pl.DataFrame, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column)
    for row in frame.iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


def open_lake(processed: str | None) -> Lake:
    """The Lake of an existing processed root; one error line if there is none to read."""
    storage = open_storage(settings_from(processed=processed).processed_uri)
    try:
        check_root(storage, "processed", must_exist_with_content=True)
    except StorageError as exc:
        fail(f"{exc} (run `totesys run` first, or check --processed)")
    return Lake(storage)


def parse_as_of(value: str | None) -> datetime | None:
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


def entrypoint() -> None:
    """The `totesys` script: anything a command did not handle is one error line (the
    traceback goes to the log, shown with --verbose) and exit status 1."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        log.debug("command failed", exc_info=True)
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        sys.exit(1)
