"""Table maintenance: compact small files, checkpoint, expire old log entries, vacuum.

Every run appends a few small files to each table and a commit to its log, so after a year of
30-minute runs a table is thousands of files and a long log: reads slow down. `maintain` rewrites
the small files into large ones (one commit), writes a checkpoint, and removes what no version
inside the time-travel window (`retention_days`) needs:

- data files: `vacuum(retention_hours=retention_days * 24)` removes a file only when the commit
  that removed it from the table is older than the window. A version inside the window was
  committed after the window's start, so every file it reads was still live at its commit time:
  removed (if at all) later, hence inside the window too, hence kept.
- log entries: `cleanup_metadata` with `delta.logRetentionDuration` set to the window cuts the log
  at the newest checkpoint older than the window's start, so every version inside the window
  still has a checkpoint plus the commits to replay after it.

The tables' `delta.deletedFileRetentionDuration` and `delta.logRetentionDuration` are set to the
window, so checkpoints keep the tombstones vacuum needs and delta-rs's automatic log cleanup
(after commits that write a checkpoint) keeps the same window. `delta.checkpointInterval` is
lowered to 10 commits so opening a table between maintenances replays few JSON commits.

Maintenance holds the run lease, so it never races a pipeline run.
"""

from __future__ import annotations

import re
import time
from typing import Any

from deltalake import CommitProperties, DeltaTable, WriterProperties

from service.data_files import CHECKPOINT_INTERVAL
from service.lake import ALL_PATHS, Lake
from service.lease import Lease
from service.settings import RETENTION_DAYS_MAX
from transforms.facts import FACTS

# Tables whose compacted files are sorted by a key (z-order on one column = a sort): lookups
# by that key (the pipeline's stored-version lookup, a sale's history) then skip most files.
ZORDER: dict[str, list[str]] = {name: spec.zorder for name, spec in FACTS.items()}
# The pipeline's writes (write_deltalake) use Snappy; optimize would default to ZSTD, which made
# the compacted fact table measurably slower to read on this machine (decompression).
_WRITER = WriterProperties(compression="SNAPPY")
_LOG_FILE = re.compile(r"^(\d{20})\.(json|crc|checkpoint\.parquet|checkpoint\.\d+\.\d+\.parquet)$")


def new_maintenance_id() -> str:
    return "maintain-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def maintain(
    lake: Lake,
    retention_days: int,
    run_id: str | None = None,
    *,
    lease_seconds: int = 900,
    lease_wait_seconds: float = 120.0,
    zorder: bool = True,
    lease: Lease | None = None,
) -> dict[str, Any]:
    """Compact, checkpoint, expire log entries and vacuum every existing table.

    Holds the run lease (its own, or `lease` when a job runner holds it already) and checks it
    before each table.
    Returns `{"run_id", "retention_days", "tables": {name: stats}, "seconds"}`; each table's stats:
    version before/after, active files before/after, files and bytes vacuumed, log entries removed.
    """
    if retention_days < 0:
        raise ValueError("retention_days must not be negative")
    if retention_days > RETENTION_DAYS_MAX:  # delta-rs's duration arithmetic overflows beyond
        raise ValueError(f"retention_days must be at most {RETENTION_DAYS_MAX}")
    holder = run_id or new_maintenance_id()
    started = time.monotonic()
    own_lease = lease is None
    if lease is None:
        lease = Lease(lake.storage, holder, lease_seconds)
        lease.acquire(lease_wait_seconds)
        lease.start_heartbeat()
    tables: dict[str, dict[str, Any]] = {}
    lake.new_session()  # tables may have moved since this Lake last looked
    try:
        for name in ALL_PATHS:
            dt = lake.table(name)
            if dt is None:
                continue
            lease.fence()  # a paused maintenance must not rewrite a table another run now owns
            tables[name] = _maintain_table(lake, name, dt, retention_days, holder, zorder)
    finally:
        if own_lease:
            lease.release()
    return {
        "run_id": holder,
        "retention_days": retention_days,
        "tables": tables,
        "seconds": round(time.monotonic() - started, 3),
    }


def _commit(run_id: str, operation: str) -> CommitProperties:
    return CommitProperties(
        custom_metadata={"totesys.operation": operation, "totesys.run_id": run_id}
    )


def _maintain_table(
    lake: Lake, name: str, dt: DeltaTable, retention_days: int, run_id: str, zorder: bool
) -> dict[str, Any]:
    version_before = dt.version()
    files_before = len(dt.file_uris())
    _set_properties(dt, retention_days, run_id)

    columns = ZORDER.get(name) if zorder else None
    if columns and files_before > 1:
        metrics = dt.optimize.z_order(
            columns, writer_properties=_WRITER, commit_properties=_commit(run_id, "z_order")
        )
    else:
        metrics = dt.optimize.compact(
            writer_properties=_WRITER, commit_properties=_commit(run_id, "compact")
        )
    dt.update_incremental()
    dt.create_checkpoint()

    table_prefix = ALL_PATHS[name] + "/"
    sizes = {o.key[len(table_prefix) :]: o.size for o in lake.storage.list(table_prefix)}
    vacuumed = dt.vacuum(
        retention_hours=retention_days * 24,
        dry_run=False,
        enforce_retention_duration=False,
        commit_properties=_commit(run_id, "vacuum"),
    )
    dt.update_incremental()
    removed_logs = _expire_log(lake, name, dt)
    return {
        "version_before": version_before,
        "version_after": dt.version(),
        "files_before": files_before,
        "files_after": len(dt.file_uris()),
        "files_compacted": int(metrics.get("numFilesRemoved", 0)),
        "files_vacuumed": len(vacuumed),
        "bytes_vacuumed": sum(sizes.get(path.lstrip("/"), 0) for path in vacuumed),
        "log_entries_removed": removed_logs,
    }


def _set_properties(dt: DeltaTable, retention_days: int, run_id: str) -> None:
    wanted = f"interval {retention_days} days"
    properties = {
        "delta.deletedFileRetentionDuration": wanted,
        "delta.logRetentionDuration": wanted,
        # Every open replays the JSON commits since the last checkpoint: with delta-rs's default
        # of 100, a 30-minute run got ~3x slower before each checkpoint (bench, many small runs).
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
    }
    config = dt.metadata().configuration
    if any(config.get(k) != v for k, v in properties.items()):
        dt.alter.set_table_properties(
            properties, raise_if_not_exists=False, commit_properties=_commit(run_id, "retention")
        )
        dt.update_incremental()


def _expire_log(lake: Lake, name: str, dt: DeltaTable) -> int:
    """`cleanup_metadata` with `delta.logRetentionDuration` = the window; returns how many log
    files it removed. delta-rs 1.6 cuts the log at the newest checkpoint older than the window's
    start, so every version inside the window keeps a checkpoint and the commits after it
    (tests/service/test_maintenance.py checks this)."""
    log_prefix = ALL_PATHS[name] + "/_delta_log/"

    def log_files() -> set[str]:
        return {
            o.key
            for o in lake.storage.list(log_prefix)
            if _LOG_FILE.match(o.key[len(log_prefix) :])
        }

    before = log_files()
    dt.cleanup_metadata()
    return len(before - log_files())
