"""One measurement, run in a fresh interpreter by bench.run: `python -m bench.worker TASK JSON`.

Prints one JSON line on stdout (its own timings and peak RSS); progress goes to stderr.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

T_START = time.perf_counter()


def _peak_rss_mb() -> float:
    """This interpreter's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so
    a worker started (vfork + exec) by a bench process that holds a large frame would report the
    parent's RSS as its own peak; VmHWM belongs to the new process's memory alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _pipeline(ingestion: str, processed: str) -> Any:
    from service.pipeline import Pipeline
    from service.settings import Settings

    return Pipeline.from_settings(Settings(ingestion_uri=ingestion, processed_uri=processed))


def task_pipeline(args: dict[str, Any]) -> dict[str, Any]:
    """Pipeline.run over every pending file."""
    pipeline = _pipeline(args["ingestion"], args["processed"])
    t0 = time.perf_counter()
    summary = pipeline.run(trigger="bench")
    run_s = time.perf_counter() - t0
    assert summary.status == "succeeded", summary.error
    return {
        "run_s": run_s,
        "rows": sum(v for k, v in summary.rows_written.items() if k.startswith("fact_")),
        "rows_rejected": summary.rows_rejected,
    }


def task_floor(args: dict[str, Any]) -> dict[str, Any]:
    """The floor: Polars reads every baseline file with its table's explicit schema (timestamps,
    dates, decimals and booleans as strings, as the spec measured), one Delta write per table, no
    transformation. With the Purchases and Payments stars present their files are part of it,
    so the pipeline and the floor do the same reading and writing."""
    import polars as pl
    from deltalake import write_deltalake

    from transforms.schemas import SOURCE_TABLES

    text = pl.Datetime | pl.Date | pl.Decimal | pl.Boolean
    t0 = time.perf_counter()
    by_table: dict[str, list[Path]] = {}
    for path in sorted(Path(args["ingestion"]).glob("baseline/*.json")):
        by_table.setdefault(path.name.split("-", 1)[0], []).append(path)
    rows = 0
    for table, files in sorted(by_table.items()):
        schema = {
            c: (pl.String() if isinstance(t, text) else t)
            for c, t in SOURCE_TABLES[table].columns.items()
        }
        try:
            frame = pl.concat([pl.read_ndjson(f, schema=schema) for f in files])
        except pl.exceptions.PolarsError:  # a small dimension file in another shape
            frame = pl.concat([_records(f, schema) for f in files])
        write_deltalake(f"{args['out']}/{table}", frame, mode="append")
        rows += frame.height if table in {"sales_order", "purchase_order", "payment"} else 0
    return {"run_s": time.perf_counter() - t0, "rows": rows}


def _records(path: Path, schema: dict[str, Any]) -> Any:
    """A wrapped or bare JSON array's records (the small dimension files of the baseline)."""
    import json

    import polars as pl

    doc = json.loads(path.read_bytes())
    records = doc if isinstance(doc, list) else next(iter(doc.values()))
    return pl.from_dicts(records, schema=schema, strict=False)


def task_incremental(args: dict[str, Any]) -> dict[str, Any]:
    """One run applying one pending update file to an existing root."""
    return task_pipeline(args)


def task_small_runs(args: dict[str, Any]) -> dict[str, Any]:
    """`runs` consecutive runs of one small update file each, then maintenance; current-state
    read times after the first run, after the last and after maintenance."""
    from service import queries
    from service.maintenance import maintain

    pipeline = _pipeline(args["ingestion"], args["processed"])
    lake = pipeline.lake
    staging = Path(args["staging"])
    ingestion = Path(args["ingestion"])
    files = sorted(staging.iterdir())
    before_files = files[: args.get("runs", len(files))]
    after_files = files[len(before_files) :]

    def one_run(staged: Path) -> float:
        (ingestion / "updated" / staged.name).write_bytes(staged.read_bytes())
        t0 = time.perf_counter()
        summary = pipeline.run(trigger="bench")
        assert summary.status == "succeeded", summary.error
        assert summary.rows_written.get("fact_sales_order", 0) > 0
        return time.perf_counter() - t0

    def read_interleaved(lakes: list[Any]) -> list[tuple[float, int]]:
        """Median time to read the current state of all sales from each lake, the lakes read in
        turn so that a change in the (shared) machine's load hits them all alike."""
        times: list[list[float]] = [[] for _ in lakes]
        rows = [0] * len(lakes)
        for _ in range(args.get("read_repeats", 3)):
            for i, each in enumerate(lakes):
                t0 = time.perf_counter()
                rows[i] = queries.current_sales(each).height
                times[i].append(time.perf_counter() - t0)
        return [(median(t), r) for t, r in zip(times, rows, strict=True)]

    def snapshot(label: str) -> Any:
        """A copy of the processed root as it is now, to read later."""
        from service.lake import Lake
        from service.storage import LocalStorage

        copy = Path(args["processed"] + "-" + label)
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(args["processed"], copy)
        return Lake(LocalStorage(copy))

    def table_stats() -> dict[str, Any]:
        from service.lake import ALL_PATHS

        fact = lake.table("fact_sales_order")
        assert fact is not None
        data_files = 0
        commits = 0
        for name in ALL_PATHS:
            dt = lake.table(name)
            if dt is None:
                continue
            data_files += len(dt.file_uris())
            commits += dt.version() + 1
        return {
            "fact_files": len(fact.file_uris()),
            "fact_version": fact.version(),
            "all_files": data_files,
            "all_commits": commits,
            "fact_parquet_on_disk": len(list(Path(lake.uri("fact_sales_order")).glob("*.parquet"))),
        }

    run_times: list[float] = []
    after_1_lake = None
    for number, staged in enumerate(before_files):
        run_times.append(one_run(staged))
        if number == 0:
            after_1_lake = snapshot("after-1-run")
            stats_after_1 = table_stats()
        if number % 20 == 19:
            print(f"  small runs: {number + 1}/{len(before_files)}", file=sys.stderr, flush=True)
    assert after_1_lake is not None
    before_lake = snapshot("before-maintenance")
    stats_before = table_stats()
    t0 = time.perf_counter()
    result = maintain(lake, args["retention_days"], zorder=args.get("zorder", True))
    maintain_s = time.perf_counter() - t0
    read_after_1, read_before, read_after = read_interleaved([after_1_lake, before_lake, lake])
    stats_after = table_stats()
    after_times = [one_run(staged) for staged in after_files]
    return {
        "run_times": run_times,
        "run_times_after_maintenance": after_times,
        "read_after_1_run_s": read_after_1[0],
        "read_before_maintenance_s": read_before[0],
        "read_after_maintenance_s": read_after[0],
        "current_rows": read_after[1],
        "stats_after_1_run": stats_after_1,
        "stats_before_maintenance": stats_before,
        "stats_after_maintenance": stats_after,
        "maintain_s": maintain_s,
        "maintenance": {
            k: v for k, v in result["tables"]["fact_sales_order"].items() if k != "tables"
        },
    }


def task_parse(args: dict[str, Any]) -> dict[str, Any]:
    """parse_file over one ingestion file (bad-input measurements)."""
    from transforms.parse import parse_file

    data = Path(args["path"]).read_bytes()
    t0 = time.perf_counter()
    parsed = parse_file(data, args["table"], Path(args["path"]).name)
    return {
        "run_s": time.perf_counter() - t0,
        "rows": parsed.rows.height,
        "records_rejected": parsed.records_rejected,
        "rejects_kept": parsed.rejects.height,
        "problems": parsed.problems,
    }


def task_import(args: dict[str, Any]) -> dict[str, Any]:
    import importlib

    t0 = time.perf_counter()
    importlib.import_module(args["module"])
    return {"import_s": time.perf_counter() - t0}


TASKS = {
    "pipeline": task_pipeline,
    "floor": task_floor,
    "incremental": task_incremental,
    "small_runs": task_small_runs,
    "import": task_import,
    "parse": task_parse,
}


def main() -> None:
    task, raw = sys.argv[1], sys.argv[2]
    result = TASKS[task](json.loads(raw))
    result["peak_rss_mb"] = _peak_rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # the shared machine's load aside
    result["process_s"] = time.perf_counter() - T_START
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
