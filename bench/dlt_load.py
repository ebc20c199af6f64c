"""The dlt reference: `<dlt venv>/bin/python bench/dlt_load.py INGESTION OUT`.

Runs in its own virtual environment (bench.reference makes it), never imports the project: dlt's
filesystem source reads the sales_order JSON Lines file(s) (`read_jsonl`) and its filesystem
destination appends them to a Delta table, as a team would load these files with dlt. Prints one
JSON line: rows, the in-process run time and this process's peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ingestion, out = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ["DLT_DATA_DIR"] = str(out / "_dlt_data")
    os.environ["DLT_PIPELINE_DIR"] = str(out / "_dlt_pipelines")
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    t0 = time.perf_counter()
    import dlt
    from dlt.destinations import filesystem as filesystem_destination
    from dlt.sources.filesystem import filesystem, read_jsonl

    files = filesystem(bucket_url=(ingestion / "baseline").as_uri(), file_glob="sales_order-*")
    orders = (files | read_jsonl()).with_name("sales_order")
    orders.apply_hints(table_format="delta", write_disposition="append")
    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt",
        destination=filesystem_destination(bucket_url=(out / "lake").as_uri()),
        dataset_name="totesys",
        pipelines_dir=str(out / "_dlt_pipelines"),
    )
    info = pipeline.run(orders)
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("sales_order", 0)
    result = {"run_s": time.perf_counter() - t0, "rows": rows, "loads": len(info.loads_ids)}
    result["peak_rss_mb"] = _peak_rss_mb()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
