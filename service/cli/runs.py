"""`totesys generate`, `totesys run` and `totesys maintain`: write data, apply it, keep tables
small."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service import jobs
from service.cli.common import (
    EXIT_BUSY,
    EXIT_INTERRUPTED,
    IngestionOpt,
    JsonOpt,
    ProcessedOpt,
    app,
    err,
    fail,
    log,
    out,
    print_json,
    settings_from,
)
from service.lease import LeaseView
from service.pipeline import Pipeline, RunSummary
from service.settings import RETENTION_DAYS_MAX, RETENTION_DAYS_MIN, Settings
from service.storage import StorageError, check_root, open_storage


@app.command()
def generate(
    out_dir: Annotated[
        str, typer.Option("--out", help="Ingestion root to write (folder or s3://)")
    ],
    orders: Annotated[int, typer.Option(help="Sales orders (most in the baseline)")] = 2000,
    updates: Annotated[int, typer.Option(help="Update batches after the baseline")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files)")] = 42,
    purchase_orders: Annotated[
        int | None,
        typer.Option(help="Purchase orders (default: the real data's 4,649 per 11,187 sales)"),
    ] = None,
) -> None:
    """Write a synthetic ingestion tree of all eleven Totesys tables: a baseline, then updates."""
    from service.synthetic import SyntheticManifest, iter_ingestion_files

    storage = open_storage(out_dir)
    manifest = SyntheticManifest(files=[])
    written = 0
    with err.status("generating…"):
        for key, content in iter_ingestion_files(
            orders, updates, seed, manifest=manifest, purchase_orders=purchase_orders
        ):
            storage.write(key, content)
            written += len(content)
    err.print(
        f"wrote {len(manifest.files)} files ({written / 1e6:.1f} MB) to {storage.uri}: "
        f"{manifest.summary()}"
    )


WAIT_HELP = (
    "Seconds to wait for a live run's lease before leaving a wake marker (that run then applies "
    "these files too) and exiting with code 75. A holder that missed a heartbeat is presumed dead "
    "and waited out (at most its lease) whatever this says."
)


@app.command()
def run(
    ingestion: IngestionOpt = None,
    processed: ProcessedOpt = None,
    as_json: JsonOpt = False,
    wait: Annotated[float, typer.Option("--wait", help=WAIT_HELP)] = 45.0,
) -> None:
    """Apply every pending ingestion file to the Delta tables."""
    settings = settings_from(ingestion, processed)
    try:
        pipeline = Pipeline.from_settings(settings)
        check_root(pipeline.ingestion, "ingestion")  # before the processed root is touched
    except (ValueError, StorageError) as exc:
        fail(str(exc))

    def interrupt_once(signum: int, frame: Any) -> None:
        # Later Ctrl-Cs are ignored, so the run can record itself as interrupted.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt_once)
    outcome = _execute_with_progress(settings, pipeline, wait)
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
        fail(f"run failed: {outcome.error} (-v for the traceback)")
    if as_json:
        print_json(outcome.summary.to_dict())
        return
    _print_run(outcome.summary)


def _execute_with_progress(settings: Settings, pipeline: Pipeline, wait: float) -> jobs.JobResult:
    """Run the job with a progress bar on a terminal's stderr."""
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

        return jobs.execute(
            jobs.Job("run", trigger="cli"),
            settings,
            pipeline=pipeline,
            progress=progress,
            on_wait=waiting,
            wait_seconds=wait,
        )


def _print_run(summary: RunSummary) -> None:
    result = summary.to_dict()
    out.print(
        f"run [bold]{summary.run_id}[/bold]: {result['files_applied']} files applied, "
        f"{result['files_rejected']} rejected, {result['files_skipped']} skipped"
    )
    if not summary.files:
        out.print("nothing to do: no pending files")
    for table, rows in sorted(summary.rows_written.items()):
        out.print(f"  {table:<36} {rows:>10,} rows written")
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
    settings = settings_from(processed=processed)
    days = settings.retention_days if retention_days is None else retention_days
    if not RETENTION_DAYS_MIN <= days <= RETENTION_DAYS_MAX:
        fail(
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
        fail(f"maintenance failed: {job.error} (-v for the traceback)")
    result = job.maintenance
    if as_json:
        print_json(result)
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
