"""`make demo`: generate a synthetic ingestion tree, run the pipeline twice, show what it did.

Runs on local folders under `data/demo/` (wiped first), the same code path as `totesys run`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import polars as pl
from rich.console import Console

from service import queries
from service.pipeline import Pipeline
from service.settings import Settings
from service.synthetic import SyntheticManifest, write_ingestion_tree

console = Console(width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="data/demo")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    root = Path(args.root)
    shutil.rmtree(root, ignore_errors=True)
    ingestion, processed = root / "ingestion", root / "processed"

    console.rule("1. generate")
    manifest: SyntheticManifest = write_ingestion_tree(
        ingestion, orders=args.orders, updates=args.updates, seed=args.seed
    )
    console.print(
        f"{len(manifest.files)} ingestion files in {ingestion}: {manifest.summary()}; "
        f"department {manifest.renamed_department_ids} renamed"
    )

    pipeline = Pipeline.from_settings(
        Settings(ingestion_uri=str(ingestion), processed_uri=str(processed))
    )
    console.rule("2. totesys run")
    first = pipeline.run(trigger="demo")
    console.print(
        f"run {first.run_id}: {first.count('applied')} files applied, "
        f"{first.count('skipped')} skipped, {first.count('rejected')} rejected"
    )
    for table, rows in sorted(first.rows_written.items()):
        console.print(f"  {table:<36} {rows:>8,} rows written")

    console.rule("3. totesys run again (nothing pending: nothing committed)")
    before = {i.name: i.version for i in queries.table_infos(pipeline.lake)}
    second = pipeline.run(trigger="demo")
    after = {i.name: i.version for i in queries.table_infos(pipeline.lake)}
    console.print(
        f"run {second.run_id}: {len(second.files)} files, "
        f"table versions unchanged: {before == after}"
    )

    console.rule("4. tables")
    for info in queries.table_infos(pipeline.lake):
        console.print(f"  {info.name:<20} version {info.version:<3} {info.rows:>8,} rows")

    fact = pipeline.lake.read("fact_sales_order")
    assert fact is not None
    busiest = (
        fact.group_by("sales_order_id")
        .len()
        .sort(["len", "sales_order_id"], descending=[True, False])
    )["sales_order_id"][0]
    console.rule(f"5. totesys history {busiest} (the most-changed order)")
    _show(queries.sale_history(pipeline.lake, busiest))
    deleted = manifest.deleted_order_ids[0]
    console.rule(f"6. totesys history {deleted} (deleted: missing from a later baseline)")
    _show(queries.sale_history(pipeline.lake, deleted))

    current = queries.current_sales(pipeline.lake)
    console.rule("7. totesys current")
    console.print(
        f"{current.height:,} live sales (of {manifest.orders_created:,} created); "
        f"fact_sales_order holds {fact.height:,} versions"
    )
    staff = pipeline.lake.read("dim_staff")
    assert staff is not None
    console.print("dim_staff, first rows:")
    with pl.Config(tbl_width_chars=160, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
        print(staff.head(3))
    console.print(
        f"\nTry: .venv/bin/totesys history {busiest} --processed {processed}\n"
        f"     .venv/bin/totesys current --processed {processed} --as-of 2024-11-14T10:00:00\n"
        f"     .venv/bin/totesys sql --named revenue_by_month_currency --processed {processed}"
    )
    return 0


def _show(history: pl.DataFrame) -> None:
    with pl.Config(
        tbl_rows=20,
        tbl_width_chars=160,
        fmt_str_lengths=60,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        print(history.select(queries.HISTORY_VIEW_COLUMNS))


if __name__ == "__main__":
    sys.exit(main())
