"""The Delta tables under the processed root: names ↔ paths, read, append, merge, history.

Every write carries the run id in its commit metadata, so a table's history says which run made
each version. Writers are serialised by the run lease (service/lease.py), and every write first
calls `fence` (the lease's check that this run still holds it); readers never block.

On S3 every table open is several round trips (`_last_checkpoint`, a log listing, the checkpoint,
the commits after it), so a Lake keeps one handle per table and writes through it: delta-rs brings
the handle up to date with its own commit, and a run opens each table it touches once. Handles
outlive a run (the API's Lake serves every request; a Pipeline object may run again): each
`new_session()` (a run's pass, an API request) makes the first use of a kept handle bring it up
to date incrementally (`update_incremental`: a listing after its version and the new commits)
instead of reopening it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from service.data_files import (
    CHECKPOINT_INTERVAL,
    NEW_TABLE_CONFIGURATION,
    DataFile,
    file_statistics,
    new_table_actions,
)
from service.storage import Storage
from transforms import schemas
from transforms.dimension_history import HISTORIES, history_path, history_schema
from transforms.dimensions import DIMENSIONS
from transforms.facts import FACTS, FACTS_BY_SOURCE

# Public tables (API and CLI names) and the internal state tables, with their paths: from the
# declarations of the facts (transforms/facts.py) and the dimensions (transforms/dimensions.py).
TABLE_PATHS: dict[str, str] = {
    **{name: spec.path for name, spec in FACTS.items()},
    "dim_date": "dimension/date",
    **{name: spec.path for name, spec in DIMENSIONS.items()},
    # type-2 history of every member dimension (transforms/dimension_history.py)
    **{name: history_path(spec) for name, spec in HISTORIES.items()},
}
STATE_PATHS: dict[str, str] = {
    "ledger": "_state/ledger",
    "rejects": "_state/rejects",
    "runs": "_state/runs",
    # the latest row of every member of the source tables dimensions are built from
    **{
        f"source_{t}": f"_state/source/{t}"
        for t in schemas.SOURCE_TABLES
        if t not in FACTS_BY_SOURCE
    },
    # every version of those rows, (key, last_updated) once: what the dimension history is from
    **{
        f"source_history_{t}": f"_state/source_history/{t}"
        for t in schemas.SOURCE_TABLES
        if t not in FACTS_BY_SOURCE
    },
}
ALL_PATHS = {**TABLE_PATHS, **STATE_PATHS}

TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    **{name: spec.schema for name, spec in FACTS.items()},
    "dim_date": schemas.DIM_DATE,
    **{name: spec.schema for name, spec in DIMENSIONS.items()},
    **{name: history_schema(spec) for name, spec in HISTORIES.items()},
}


# An append of at least this many rows writes its Parquet file with Polars and commits it
# itself (Lake._own_write); a smaller one goes through delta-rs, whose kept handle needs no
# reopening afterwards (a small run's S3 requests).
OWN_WRITE_ROWS = 50_000
# Test-only fault injection (tests/service/test_crash_safety.py): the process stops itself with
# SIGSTOP right before its first commit to the named table (after the data file is written), so
# a test can pause a real run at the worst moment, let another run take over, and resume it.
FAULT_STOP_BEFORE_COMMIT = "TOTESYS_FAULT_STOP_BEFORE_COMMIT"
_faults_done: set[str] = set()


def _fault_injection(name: str) -> None:
    wanted = os.environ.get(FAULT_STOP_BEFORE_COMMIT)
    if wanted and name == wanted and name not in _faults_done:
        _faults_done.add(name)
        os.kill(os.getpid(), signal.SIGSTOP)


class UnknownTable(KeyError):
    pass


@dataclass(frozen=True)
class TableInfo:
    name: str
    path: str
    version: int
    rows: int
    last_commit: datetime | None
    last_operation: str | None


def _commit(run_id: str | None, operation: str) -> CommitProperties:
    metadata = {"totesys.operation": operation}
    if run_id:
        metadata["totesys.run_id"] = run_id
    return CommitProperties(custom_metadata=metadata)


class Lake:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.options = storage.delta_storage_options()
        self._handles: dict[str, DeltaTable] = {}
        self._session = 0
        self._fresh_in: dict[str, int] = {}  # session in which each handle was last refreshed
        self._lock = threading.RLock()
        self._callbacks = threading.Lock()  # the catalog's bookkeeping, one commit at a time
        # Called before every commit: the run lease's fence (LeaseLost stops the write).
        self.fence: Callable[[], None] | None = None
        # Called after every commit with (table, handle, operation): the catalog's bookkeeping.
        self.on_commit: Callable[[str, DeltaTable, str], None] | None = None
        # Called before a commit to a public table, after the fence: the catalog's `unsettle`.
        self.before_table_commit: Callable[[str], None] | None = None

    def new_session(self) -> None:
        """Kept handles may be stale now (another run may have written): refresh on next use."""
        with self._lock:
            self._session += 1

    # -- names --------------------------------------------------------------------------------
    def uri(self, name: str) -> str:
        try:
            return self.storage.child_uri(ALL_PATHS[name])
        except KeyError:
            raise UnknownTable(name) from None

    def table(self, name: str, version: int | None = None) -> DeltaTable | None:
        """The table's handle (kept: opened once), or a new one at `version`; None if the
        table does not exist."""
        if version is not None:
            try:
                return DeltaTable(self.uri(name), version=version, storage_options=self.options)
            except TableNotFoundError:
                return None
        with self._lock:
            handle = self._handles.get(name)
            if handle is not None and self._fresh_in.get(name) != self._session:
                try:
                    handle.update_incremental()
                except Exception:  # the log moved under it (vacuum, log cleanup): reopen
                    handle = None
            if handle is None:
                try:
                    handle = DeltaTable(self.uri(name), storage_options=self.options)
                except TableNotFoundError:
                    self._handles.pop(name, None)
                    return None
                self._handles[name] = handle
            self._fresh_in[name] = self._session
            return handle

    def forget(self) -> None:
        """Drop every kept handle (another writer may have moved the tables)."""
        self._handles.clear()

    def exists(self, name: str) -> bool:
        return self.table(name) is not None

    # -- reads --------------------------------------------------------------------------------
    def scan(self, name: str, version: int | datetime | None = None) -> pl.LazyFrame | None:
        """A lazy frame of the table (at a version or commit time), or None if it doesn't exist."""
        handle = self.table(name)
        if handle is None:
            return None
        if version is None:
            # the kept handle: no second log replay for the scan
            return pl.scan_delta(handle, storage_options=self.options)
        return pl.scan_delta(self.uri(name), version=version, storage_options=self.options)

    def read(
        self,
        name: str,
        columns: list[str] | None = None,
        version: int | datetime | None = None,
        where: pl.Expr | None = None,
    ) -> pl.DataFrame | None:
        lf = self.scan(name, version)
        if lf is None:
            return None
        if where is not None:
            lf = lf.filter(where)
        if columns is not None:
            lf = lf.select(columns)
        return lf.collect()

    def _column_stat(self, name: str, column: str, stat: str) -> Any:
        dt = self.table(name)
        if dt is None:
            return None
        actions = pl.DataFrame(dt.get_add_actions(flatten=True))
        field = f"{stat}.{column}"
        if actions.is_empty() or field not in actions.columns:
            return None
        values = actions[field]
        return values.max() if stat == "max" else values.min()

    def column_max(self, name: str, column: str) -> Any:
        """Max of a column from the Delta file statistics: cost grows with files, not rows."""
        return self._column_stat(name, column, "max")

    def column_min(self, name: str, column: str) -> Any:
        return self._column_stat(name, column, "min")

    # -- writes -------------------------------------------------------------------------------
    def before_commit(self, name: str = "") -> None:
        _fault_injection(name)
        if self.fence is not None:
            self.fence()
        if name in TABLE_PATHS and self.before_table_commit is not None:
            with self._callbacks:  # commits to several tables may run at once (`in_parallel`)
                self.before_table_commit(name)

    def _after_commit(self, name: str, operation: str) -> None:
        handle = self.table(name)
        if handle is not None and self.on_commit is not None:
            with self._callbacks:
                self.on_commit(name, handle, operation)

    def append(self, name: str, frame: pl.DataFrame, run_id: str | None) -> int:
        if frame.is_empty():
            return 0
        handle = self.table(name)
        if frame.height >= OWN_WRITE_ROWS and self._own_write(name, frame, handle, run_id):
            return frame.height
        self.before_commit(name)
        write_deltalake(
            handle if handle is not None else self.uri(name),
            frame,
            mode="append",
            # Set when the table is created: frequent small runs replay every commit since the
            # last checkpoint on each table open, so checkpoint often (delta-rs default: 100).
            configuration=None if handle is not None else NEW_TABLE_CONFIGURATION,
            storage_options=self.options,
            commit_properties=_commit(run_id, "append"),
        )
        self._after_commit(name, "WRITE")
        return frame.height

    def _own_write(
        self, name: str, frame: pl.DataFrame, handle: DeltaTable | None, run_id: str | None
    ) -> bool:
        """A large append as one Parquet file written by Polars and our own commit: Polars'
        writer takes a third to a half of delta-rs's time for the same rows (a baseline's big
        dimension sources are written four times: mirror, dimension, source history, dimension
        history). Only when the frame has the table's schema exactly (a new table takes the
        frame's, as delta-rs would); else, or if the table moved on, False: delta-rs writes."""
        if handle is not None and frame.schema != (
            pl.scan_delta(handle, storage_options=self.options).collect_schema()
        ):
            return False
        version = handle.version() if handle is not None else None
        data_file = self.write_data_file(name, frame)
        if not self.commit_data_files(name, [data_file], run_id, version, dict(frame.schema)):
            return False
        self._after_commit(name, "WRITE")
        return True

    def replace_where(
        self, name: str, frame: pl.DataFrame, predicate: str, run_id: str | None
    ) -> None:
        """Replace the rows matching a SQL predicate with `frame` in one commit."""
        handle = self.table(name)
        if handle is None:
            self.append(name, frame, run_id)
            return
        self.before_commit(name)
        write_deltalake(
            handle,
            frame,
            mode="overwrite",
            predicate=predicate,
            storage_options=self.options,
            commit_properties=_commit(run_id, "replace_where"),
        )
        self._after_commit(name, "WRITE")

    def upsert(
        self,
        name: str,
        frame: pl.DataFrame,
        keys: list[str],
        run_id: str | None,
        update_when: str | None = None,
        insert_only: bool = False,
    ) -> dict[str, int]:
        """MERGE `frame` into the table on `keys`: update matched rows (when `update_when`, a SQL
        predicate over s.* and t.*, holds), insert the rest. Creates the table if needed."""
        if frame.is_empty():
            return {"inserted": 0, "updated": 0}
        dt = self.table(name)
        if dt is None:
            self.append(name, frame, run_id)
            return {"inserted": frame.height, "updated": 0}
        self.before_commit(name)
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        merger = dt.merge(
            frame,
            predicate=on,
            source_alias="s",
            target_alias="t",
            commit_properties=_commit(run_id, "merge"),
        )
        if not insert_only:
            merger = merger.when_matched_update_all(predicate=update_when)
        metrics = merger.when_not_matched_insert_all().execute()
        self._after_commit(name, "MERGE")
        return {
            "inserted": int(metrics.get("num_target_rows_inserted", 0)),
            "updated": int(metrics.get("num_target_rows_updated", 0)),
        }

    def append_commit(
        self, name: str, frame: pl.DataFrame, run_id: str | None, version: int
    ) -> str | None:
        """Append `frame` as version `version + 1` without opening the table: one Parquet data
        file (PUT), then the commit (a conditional PUT of the next log entry), fenced between
        the two. Returns the data file's path, or None if `version + 1` exists already (the
        caller's idea of the table's version is stale: use `append`).

        A run that holds the lease knows the fact table's version from the catalog, so a small
        run's append costs two requests instead of a table open (a log listing, the checkpoint,
        each JSON commit since) plus delta-rs's write and post-commit reads (~30 on S3). And
        the fence sits right before the commit, after the slow part: a run paused while writing
        its data file cannot commit it once another run holds the lease."""
        data_file = self.write_data_file(name, frame)
        if not self.commit_data_files(name, [data_file], run_id, version):
            return None
        return data_file.path

    def write_data_file(self, name: str, frame: pl.DataFrame) -> DataFile:
        """Write `frame` as one Parquet data file of the table (not committed: until a commit
        adds it, it is an orphan that readers never see and vacuum removes)."""
        path = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="snappy", statistics=True)
        data = buffer.getbuffer()  # no copy: a baseline's dimension files are tens of MB
        try:
            self.storage.write(f"{ALL_PATHS[name]}/{path}", data)
            return DataFile(path, len(data), frame.height, file_statistics(frame))
        finally:
            data.release()

    def commit_data_files(
        self,
        name: str,
        files: list[DataFile],
        run_id: str | None,
        version: int | None,
        schema: dict[str, pl.DataType] | None = None,
    ) -> bool:
        """Commit data files written by `write_data_file` as version `version + 1` in one
        commit (a conditional PUT of the log entry), fenced first; `version` None creates the
        table (version 0, with `schema`). False, with the files deleted, if that version exists
        already."""
        table_path = ALL_PATHS[name]
        now = int(time.time() * 1000)
        rows = sum(f.rows for f in files)
        commit_info: dict[str, Any] = {
            "timestamp": now,
            "operation": "WRITE",
            "operationParameters": {"mode": "Append"},
            "operationMetrics": {"num_added_files": len(files), "num_added_rows": rows},
            "engineInfo": "totesys-transform",
            "totesys.operation": "append",
        }
        if run_id:
            commit_info["totesys.run_id"] = run_id
        actions: list[dict[str, Any]] = [{"commitInfo": commit_info}]
        if version is None:
            actions += new_table_actions(schema or TABLE_SCHEMAS[name])
        actions += [
            {
                "add": {
                    "path": f.path,
                    "partitionValues": {},
                    "size": f.size,
                    "modificationTime": now,
                    "dataChange": True,
                    "stats": json.dumps(f.stats),
                }
            }
            for f in files
        ]
        body = "\n".join(json.dumps(a) for a in actions)
        self.before_commit(name)
        new_version = 0 if version is None else version + 1
        committed = self.storage.put_if_absent(
            f"{table_path}/_delta_log/{new_version:020d}.json", (body + "\n").encode()
        )
        if not committed:
            self.storage.delete_many([f"{table_path}/{f.path}" for f in files])
            return False
        self._handles.pop(name, None)  # a kept handle is behind now
        if new_version and new_version % CHECKPOINT_INTERVAL == 0:
            # what delta-rs's post-commit hook would do: readers replay at most 9 commits
            handle = self.table(name)
            if handle is not None:
                handle.create_checkpoint()
        return True

    def next_version_exists(self, name: str, version: int) -> bool:
        """Whether the table has moved past `version` (one HEAD of the next log entry)."""
        return self.storage.exists(f"{ALL_PATHS[name]}/_delta_log/{version + 1:020d}.json")

    # -- inspection ---------------------------------------------------------------------------
    def info(self, name: str, version: int | None = None) -> TableInfo | None:
        dt = self.table(name, version)
        if dt is None:
            return None
        # the commit that made the loaded version (history lists newest first)
        entries = dt.history(1) if version is None else dt.history()
        last = next((h for h in entries if h.get("version") == dt.version()), {})
        ts = last.get("timestamp")
        actions = pl.DataFrame(dt.get_add_actions(flatten=True))
        rows = int(actions["num_records"].sum()) if not actions.is_empty() else 0
        return TableInfo(
            name=name,
            path=ALL_PATHS[name],
            version=dt.version(),
            rows=rows,
            last_commit=datetime.fromtimestamp(ts / 1000, UTC) if ts else None,
            last_operation=last.get("operation"),
        )

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        dt = self.table(name)
        if dt is None:
            raise UnknownTable(name)
        return list(dt.history(limit))
