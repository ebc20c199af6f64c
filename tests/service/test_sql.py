"""`totesys sql` and the named queries, over a warehouse built from synthetic ingestion files
(service/synthetic.py's sales, tests/star_files.py's purchase orders and payments).

The named queries (service/sql/named/*.sql, also the Athena named queries) run through the real
`totesys sql` process; their rows must equal the answers computed here with plain Polars frame
code and with the definitions behind `totesys current` / `totesys history`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from service import queries
from service.lake import TABLE_PATHS, TABLE_SCHEMAS, Lake
from service.pipeline import Pipeline
from service.settings import Settings
from service.sql import engine
from service.sql.guard import UnsafeQuery, check_plan, check_query, tokens
from service.sql.named import bind, named_queries
from service.sql.views import VIEW_SPECS
from service.storage import LocalStorage, open_storage
from service.synthetic import DEFAULT_START, SyntheticManifest, iter_ingestion_files
from tests.api.conftest import load_demo
from tests.conftest import IngestionTree
from tests.service.test_cli import ROOT, totesys
from tests.star_files import StarManifest, star_files
from transforms.fact_payment import PAYMENT
from transforms.fact_purchase_order import PURCHASE
from transforms.facts import FACTS

# Each run of the same module shares the warehouse: tests only read it.
pytestmark = pytest.mark.xdist_group("sql-warehouse")


@dataclass(frozen=True)
class Warehouse:
    processed: Path
    lake: Lake
    manifest: SyntheticManifest
    stars: StarManifest
    first_run_versions: dict[str, int]  # each table's version after the baseline run


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """A baseline run, then a run of the update batches: two versions of the fact table."""
    root = tmp_path_factory.mktemp("sql")
    ingestion, processed = root / "ingestion", root / "processed"
    storage = LocalStorage(ingestion)
    manifest = SyntheticManifest()
    files = list(iter_ingestion_files(orders=1500, updates=4, seed=11, manifest=manifest))
    pipeline = Pipeline.from_settings(
        Settings(ingestion_uri=str(ingestion), processed_uri=str(processed))
    )
    stars = star_files(start=DEFAULT_START, seed=11)
    first_update = next(i for i, (key, _) in enumerate(files) if key.startswith("updated/"))
    for key, content in [*files[:first_update], *stars.baseline]:
        storage.write(key, content)
    pipeline.run(trigger="test")
    first = {i.name: i.version for i in queries.table_infos(pipeline.lake)}
    for key, content in [*files[first_update:], *stars.updates]:
        storage.write(key, content)
    pipeline.run(trigger="test")
    return Warehouse(processed, Lake(open_storage(str(processed))), manifest, stars, first)


def _fact(w: Warehouse) -> pl.DataFrame:
    frame = w.lake.read("fact_sales_order")
    assert frame is not None
    return frame


def _table(w: Warehouse, name: str) -> pl.DataFrame:
    frame = w.lake.read(name)
    assert frame is not None
    return frame


def _live(
    w: Warehouse, table: str = "fact_sales_order", ident: str = "sales_order_id"
) -> pl.DataFrame:
    """The current state, computed here with frame code (not the project's definition)."""
    fact = _table(w, table)
    latest = fact.group_by(ident).agg(pl.col("last_updated").max())
    return (
        fact.join(latest, on=[ident, "last_updated"])
        .filter(pl.col("change_type") != "delete")
        .sort(ident)
    )


def _busiest(w: Warehouse, table: str, ident: str) -> int:
    counts = _table(w, table).group_by(ident).len()
    return int(counts.sort(["len", ident], descending=[True, False])[0, 0])


def _busiest_order(w: Warehouse) -> int:
    return _busiest(w, "fact_sales_order", "sales_order_id")


def _mid_time() -> datetime:
    """A business time between update batches 2 and 3 (batches are 30 minutes apart)."""
    return DEFAULT_START + timedelta(minutes=75)


def _expected(w: Warehouse, name: str) -> tuple[list[str], pl.DataFrame]:
    """Parameter values and the answer of named query `name`, by Polars frame code."""
    live = _live(w)
    if name == "current_sales":
        return [], live
    if name == "sale_history":
        order_id = _busiest_order(w)
        history = _fact(w).filter(pl.col("sales_order_id") == order_id)
        return [str(order_id)], history.sort(["last_updated", "sales_record_id"])
    if name == "sales_as_of":
        moment = _mid_time()
        before = _fact(w).filter(pl.col("last_updated") <= moment)
        latest = before.group_by("sales_order_id").agg(pl.col("last_updated").max())
        state = before.join(latest, on=["sales_order_id", "last_updated"])
        return [moment.isoformat()], state.filter(pl.col("change_type") != "delete").sort(
            "sales_order_id"
        )
    revenue = (pl.col("units_sold").cast(pl.Int64) * pl.col("unit_price")).sum()
    if name == "revenue_by_month_currency":
        dates = _table(w, "dim_date").select("date_id", "year", "month")
        currencies = _table(w, "dim_currency").select("currency_id", "currency_code")
        answer = (
            live.join(dates, left_on="created_date", right_on="date_id")
            .join(currencies, on="currency_id")
            .group_by(
                pl.col("year").alias("created_year"),
                pl.col("month").alias("created_month"),
                "currency_code",
            )
            .agg(
                pl.len().cast(pl.Int64).alias("sales"),
                pl.col("units_sold").cast(pl.Int64).sum().alias("units_sold"),
                revenue.alias("revenue"),
            )
            .sort("created_year", "created_month", "currency_code")
        )
        return [], answer
    if name == "top_counterparties":
        code = "USD"
        parties = _table(w, "dim_counterparty").select("counterparty_id", "counterparty_legal_name")
        currencies = _table(w, "dim_currency").select("currency_id", "currency_code")
        answer = (
            live.join(currencies, on="currency_id")
            .filter(pl.col("currency_code") == code)
            .join(parties, on="counterparty_id")
            .group_by("counterparty_id", "counterparty_legal_name", "currency_code")
            .agg(pl.len().cast(pl.Int64).alias("sales"), revenue.alias("revenue"))
            .sort(["revenue", "counterparty_id"], descending=[True, False])
            .head(10)
        )
        return [code], answer
    if name == "sales_staff_department_then":
        return [], _department_then(w, live)
    return _expected_of_the_other_stars(w, name)


def _expected_of_the_other_stars(w: Warehouse, name: str) -> tuple[list[str], pl.DataFrame]:
    """The named queries over the Purchases and Payments stars, by Polars frame code."""
    currencies = _table(w, "dim_currency").select("currency_id", "currency_code")
    if name in {"payment_history", "purchase_order_history"}:
        table, ident, record = {
            "payment_history": ("fact_payment", "payment_id", "payment_record_id"),
            "purchase_order_history": (
                "fact_purchase_order",
                "purchase_order_id",
                "purchase_record_id",
            ),
        }[name]
        busiest = _busiest(w, table, ident)
        history = _table(w, table).filter(pl.col(ident) == busiest)
        return [str(busiest)], history.sort(["last_updated", record])
    if name == "unpaid_payments":
        parties = _table(w, "dim_counterparty").select("counterparty_id", "counterparty_legal_name")
        answer = (
            _live(w, "fact_payment", "payment_id")
            .filter(~pl.col("paid"))
            .join(parties, on="counterparty_id")
            .join(currencies, on="currency_id")
            .group_by("counterparty_id", "counterparty_legal_name", "currency_code")
            .agg(
                pl.len().cast(pl.Int64).alias("payments"),
                pl.col("payment_amount").sum().alias("amount_unpaid"),
                pl.col("payment_date").min().alias("earliest_payment_date"),
            )
            .sort("counterparty_id", "currency_code")
        )
        return [], answer
    if name == "purchase_spend_by_month_currency":
        live = _live(w, "fact_purchase_order", "purchase_order_id")
        answer = (
            live.with_columns(
                pl.col("created_date").dt.year().cast(pl.Int32).alias("created_year"),
                pl.col("created_date").dt.month().cast(pl.Int32).alias("created_month"),
            )
            .join(currencies, on="currency_id")
            .group_by("created_year", "created_month", "currency_code")
            .agg(
                pl.len().cast(pl.Int64).alias("purchase_orders"),
                pl.col("item_quantity").cast(pl.Int64).sum().alias("items"),
                (pl.col("item_quantity").cast(pl.Int64) * pl.col("item_unit_price"))
                .sum()
                .alias("spend"),
            )
            .sort("created_year", "created_month", "currency_code")
        )
        return [], answer
    raise AssertionError(f"no expected answer for the named query {name}: add one")


def _department_then(w: Warehouse, live: pl.DataFrame) -> pl.DataFrame:
    """Each live sale's salesperson as of its last_updated, from the raw source versions
    (`_state/source_history`), not from dim_staff_history: the staff row in effect then, joined
    with its department row in effect then; no staff row by then gives nulls."""
    staff = _table(w, "source_history_staff").sort("last_updated")
    departments = _table(w, "source_history_department").sort("last_updated")
    sales = live.select("sales_order_id", "last_updated", "sales_staff_id").sort("last_updated")
    person = sales.join_asof(
        staff.select(
            pl.col("staff_id").alias("sales_staff_id"),
            "first_name",
            "last_name",
            "department_id",
            pl.col("last_updated").alias("staff_from"),
        ),
        left_on="last_updated",
        right_on="staff_from",
        by="sales_staff_id",
        check_sortedness=False,
    )
    then = person.join_asof(
        departments.select(
            "department_id",
            "department_name",
            "location",
            pl.col("last_updated").alias("department_from"),
        ),
        left_on="last_updated",
        right_on="department_from",
        by="department_id",
        check_sortedness=False,
    )
    known = pl.col("first_name").is_not_null()
    return then.select(
        "sales_order_id",
        "last_updated",
        "sales_staff_id",
        "first_name",
        "last_name",
        pl.when(known).then(pl.col("department_name").fill_null("Unknown")),
        "location",
        pl.when(known)
        .then(pl.max_horizontal("staff_from", "department_from"))
        .alias("staff_state_valid_from"),
    ).sort("sales_order_id")


def _read_csv(text: str, like: pl.DataFrame) -> pl.DataFrame:
    return pl.read_csv(io.StringIO(text), schema=like.schema)


def test_the_named_queries_are_the_nine_the_analysts_need() -> None:
    queries_ = named_queries()
    assert set(queries_) == {
        "current_sales",
        "sale_history",
        "sales_as_of",
        "revenue_by_month_currency",
        "top_counterparties",
        "unpaid_payments",
        "purchase_spend_by_month_currency",
        "payment_history",
        "purchase_order_history",
        "sales_staff_department_then",
    }
    for query in queries_.values():
        assert query.title and query.description, query.name
        check_query(
            bind(
                query,
                [
                    "1" if t == "integer" else "2024-11-14T10:00:00" if t == "timestamp" else "GBP"
                    for _, t in query.parameters
                ],
            )
        )


@pytest.mark.parametrize("name", sorted(named_queries()))
def test_named_query_through_the_cli_matches_polars(warehouse: Warehouse, name: str) -> None:
    params, expected = _expected(warehouse, name)
    assert expected.height > 0, "the synthetic data must give the query something to find"
    args = ["sql", "--named", name, "--processed", str(warehouse.processed), "--csv"]
    for value in params:
        args += ["--param", value]
    proc = totesys(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = _read_csv(proc.stdout, expected)
    assert got.columns == expected.columns
    assert_frame_equal(got, expected)


def test_named_queries_agree_with_the_project_definitions(warehouse: Warehouse) -> None:
    named = named_queries()
    current = engine.run(warehouse.lake, bind(named["current_sales"], []))
    assert_frame_equal(current, queries.current_sales(warehouse.lake))
    moment = _mid_time()
    as_of = engine.run(warehouse.lake, bind(named["sales_as_of"], [moment.isoformat()]))
    assert_frame_equal(as_of, queries.current_sales(warehouse.lake, as_of=moment))
    assert as_of.height != current.height or not as_of.equals(current), "as-of must differ"
    for order_id in (_busiest_order(warehouse), warehouse.manifest.deleted_order_ids[0]):
        history = engine.run(warehouse.lake, bind(named["sale_history"], [str(order_id)]))
        assert_frame_equal(history, queries.sale_history(warehouse.lake, order_id))
        assert history.height >= 2
    deleted = warehouse.manifest.deleted_order_ids[0]
    assert deleted not in current["sales_order_id"].to_list()
    # a payment paid later, a deleted payment, an updated purchase order
    stars = warehouse.stars
    for spec, name, ident in (
        (PAYMENT, "payment_history", stars.paid_later[0]),
        (PAYMENT, "payment_history", stars.deleted_payments[0]),
        (PURCHASE, "purchase_order_history", stars.updated_orders[0]),
    ):
        history = engine.run(warehouse.lake, bind(named[name], [str(ident)]))
        assert_frame_equal(history, queries.history(warehouse.lake, spec, ident))
        assert history.height >= 2, (name, ident)
    paid = engine.run(warehouse.lake, bind(named["payment_history"], [str(stars.paid_later[0])]))
    assert paid["paid"].to_list()[-2:] == [False, True]


def test_views_use_the_same_definitions(warehouse: Warehouse) -> None:
    lake = warehouse.lake
    view = engine.run(lake, "SELECT * FROM fact_sales_order_current ORDER BY sales_order_id")
    assert_frame_equal(view, queries.current_sales(lake))
    moment = _mid_time()
    as_of = engine.run(
        lake,
        "SELECT * FROM fact_sales_order_as_of ORDER BY sales_order_id",
        as_of_business=moment,
    )
    assert_frame_equal(as_of, queries.current_sales(lake, as_of=moment))
    with pytest.raises(engine.SqlError, match="--as-of-business"):
        engine.run(lake, "SELECT * FROM fact_sales_order_as_of")


@pytest.mark.parametrize("name", ["fact_purchase_order", "fact_payment"])
def test_the_other_facts_views_use_the_same_definitions(warehouse: Warehouse, name: str) -> None:
    fact = FACTS[name]
    lake, ident = warehouse.lake, fact.id_column
    view = engine.run(lake, f"SELECT * FROM {fact.name}_current ORDER BY {ident}")
    assert_frame_equal(view, queries.current(lake, fact))
    assert_frame_equal(view, _live(warehouse, fact.name, ident))
    moment = _mid_time()
    as_of = engine.run(
        lake, f"SELECT * FROM {fact.name}_as_of ORDER BY {ident}", as_of_business=moment
    )
    assert_frame_equal(as_of, queries.current(lake, fact, as_of=moment))
    assert not as_of.equals(view), "updates after the business time must show"
    with pytest.raises(engine.SqlError, match=f"{fact.name}_as_of needs --as-of-business"):
        engine.run(lake, f"SELECT COUNT(*) AS n FROM {fact.name}_as_of")


def test_a_table_no_run_has_written_reads_as_empty(tmp_path: Path) -> None:
    """A warehouse that has had sales but no payments yet: the payment tables and views answer
    with no rows and their declared columns; a root with no tables at all is an error."""
    tree = IngestionTree(tmp_path / "ingestion")
    load_demo(tree)
    settings = Settings(ingestion_uri=str(tree.root), processed_uri=str(tmp_path / "processed"))
    lake = Pipeline.from_settings(settings).lake
    assert Pipeline.from_settings(settings).run(trigger="test").status == "succeeded"
    assert lake.table("fact_payment") is None
    for name, columns in (
        ("fact_payment", list(PAYMENT.schema)),
        ("fact_payment_current", list(PAYMENT.schema)),
        ("dim_payment_type", list(TABLE_SCHEMAS["dim_payment_type"])),
    ):
        empty = engine.run(lake, f"SELECT * FROM {name}")
        assert empty.height == 0 and empty.columns == columns, name
    joined = engine.run(
        lake,
        "SELECT s.sales_order_id, p.payment_id FROM fact_sales_order AS s "
        "LEFT JOIN dim_transaction AS t ON t.sales_order_id = s.sales_order_id "
        "LEFT JOIN fact_payment AS p ON p.transaction_id = t.transaction_id",
    )
    assert joined.height > 0 and joined["payment_id"].null_count() == joined.height
    nothing = Lake(LocalStorage(tmp_path / "nowhere"))
    with pytest.raises(engine.SqlError, match="has not been written yet"):
        engine.run(nothing, "SELECT * FROM fact_payment")


def test_time_travel_reads_every_table_at_a_version_or_time(warehouse: Warehouse) -> None:
    lake = warehouse.lake
    version = warehouse.first_run_versions["fact_sales_order"]
    at_version = engine.run(
        lake, "SELECT * FROM fact_sales_order", engine.TimeTravel(version=version)
    )
    old = lake.read("fact_sales_order", version=version)
    assert old is not None and 0 < at_version.height == old.height < _fact(warehouse).height
    # as of the first run's last commit: the same state, for the fact table and a dimension
    commit = next(h for h in lake.history("fact_sales_order") if h["version"] == version)[
        "timestamp"
    ]
    moment = datetime.fromtimestamp(commit / 1000, UTC).replace(tzinfo=None)
    sql = "SELECT COUNT(*) AS n FROM fact_sales_order"
    assert engine.run(lake, sql, engine.TimeTravel(as_of=moment))["n"][0] == old.height
    staff_at = lake.read("dim_staff", version=warehouse.first_run_versions["dim_staff"])
    assert staff_at is not None
    travelled = engine.run(
        lake, "SELECT * FROM dim_staff ORDER BY staff_id", engine.TimeTravel(as_of=moment)
    )
    assert_frame_equal(travelled, staff_at.sort("staff_id"))
    # before the first commit every table was empty
    before = engine.TimeTravel(as_of=moment - timedelta(days=1))
    assert engine.run(lake, sql, before)["n"][0] == 0
    with pytest.raises(engine.SqlError, match="has no version 999"):
        engine.run(lake, sql, engine.TimeTravel(version=999))


def test_cli_table_json_version_and_row_cap(warehouse: Warehouse) -> None:
    processed = str(warehouse.processed)
    fact_rows = _fact(warehouse).height
    result = totesys("sql", "SELECT COUNT(*) AS n FROM fact_sales_order", "--processed", processed)
    assert result.returncode == 0 and str(fact_rows) in result.stdout
    version = str(warehouse.first_run_versions["fact_sales_order"])
    old = totesys(
        "sql",
        "SELECT COUNT(*) AS n FROM fact_sales_order",
        "--processed",
        processed,
        "--version",
        version,
        "--json",
    )
    assert old.returncode == 0, old.stderr
    old_rows = json.loads(old.stdout)["rows"][0]["n"]
    assert 0 < old_rows < fact_rows
    capped = totesys(
        "sql", "SELECT * FROM dim_date ORDER BY date_id", "--processed", processed, "--limit", "5"
    )
    assert capped.returncode == 0
    assert "5+ rows" in capped.stdout and "showing the first 5 rows" in capped.stderr
    assert capped.stdout.count("│") // 9 == 5  # five data rows of 8 columns
    everything = totesys("sql", "SELECT * FROM dim_date", "--processed", processed, "--json")
    body = json.loads(everything.stdout)
    assert body["count"] == _table(warehouse, "dim_date").height > 5
    # JSON keeps decimals exact (strings) and timestamps ISO 8601, as the other commands do
    order_id = _busiest_order(warehouse)
    one = totesys(
        "sql",
        f"SELECT * FROM fact_sales_order WHERE sales_order_id = {order_id}",
        "--processed",
        processed,
        "--json",
    )
    rows = json.loads(one.stdout)["rows"]
    stored = queries.sale_history(warehouse.lake, order_id)
    assert len(rows) == stored.height > 1
    by_record = {row["sales_record_id"]: row for row in rows}
    for version in stored.iter_rows(named=True):
        row = by_record[version["sales_record_id"]]
        assert row["unit_price"] == str(version["unit_price"])
        assert datetime.fromisoformat(row["last_updated"]) == version["last_updated"]
        assert row["created_date"] == version["created_date"].isoformat()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SELECT * FROM read_csv('/etc/hostname')"], "refused: 'read_csv' is not allowed"),
        (["DROP TABLE dim_date"], "only SELECT"),
        (["SELECT * FROM nowhere"], "relation 'nowhere' was not found (tables and views:"),
        (["SELECT no_such_column FROM dim_date"], "no_such_column"),
        (["--named", "nope"], "no named query 'nope'"),
        (["--named", "sale_history"], "sale_history takes 1 parameter(s)"),
        (["--named", "sale_history", "--param", "x"], "not a valid integer"),
        (["SELECT 1", "--version", "1", "--as-of", "2024-01-01"], "not both"),
    ],
)
def test_cli_errors_are_one_line_and_exit_1(
    warehouse: Warehouse, args: list[str], message: str
) -> None:
    proc = totesys("sql", *args, "--processed", str(warehouse.processed))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


# -- confinement ------------------------------------------------------------------------------
@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    pl.DataFrame({"secret": ["hunter2"]}).write_csv(path)
    pl.DataFrame({"secret": ["hunter2"]}).write_parquet(tmp_path / "secret.parquet")
    return path


def test_polars_sql_alone_would_read_any_file(secret: Path) -> None:
    """Why the guard exists: Polars' SQL table functions read files and CREATE/DROP change the
    session. If this ever fails, Polars changed and the guard's notes need a look."""
    context = pl.SQLContext()
    assert context.execute(f"SELECT * FROM read_csv('{secret}')", eager=True)["secret"][0] == (
        "hunter2"
    )
    context.execute(f"CREATE TABLE copied AS SELECT * FROM read_csv('{secret}')")
    assert context.tables() == ["copied"]


REFUSED = [
    "SELECT * FROM read_csv('{csv}')",
    "SELECT * FROM READ_CSV('{csv}')",
    "SELECT * FROM \"read_csv\"('{csv}')",
    "SELECT * FROM read_parquet('{parquet}')",
    "SELECT * FROM read_ipc('{parquet}')",
    "SELECT * FROM read_json('{csv}')",
    "SELECT * FROM dim_date, read_csv('{csv}') AS s",
    "SELECT * FROM dim_date WHERE year IN (SELECT 1 FROM read_csv('{csv}'))",
    "SELECT * FROM `read_csv`('{csv}')",
    "SELECT * FROM dim_date /* a /* nested */ ' */ , read_csv('{csv}') --'",
    "SELECT $$x$$ FROM dim_date",
    "SELECT 'a\\' FROM dim_date",
    "CREATE TABLE t AS SELECT * FROM dim_date",
    "DROP TABLE dim_date",
    "TRUNCATE TABLE dim_date",
    "INSERT INTO dim_date SELECT * FROM dim_date",
    "COPY dim_date TO '{csv}'",
    "SELECT * INTO copied FROM dim_date",
    "SELECT 1; DROP TABLE dim_date",
    "SELECT 1; SELECT 2",
    "EXPLAIN SELECT * FROM dim_date",
    "SHOW TABLES",
    "ATTACH '{csv}' AS db",
    "SET x = 1",
    "WITH t AS (SELECT 1) DELETE FROM dim_date",
    "",
    "-- only a comment",
    "SELECT 'unterminated FROM dim_date",
    "SELECT 1 AS a -- comment\r, * FROM read_csv('{csv}')",
    "SELECT 1 AS a\u2028FROM dim_date",
    "SELECT 1 AS a\x0b FROM dim_date",
]


@pytest.mark.parametrize("template", REFUSED)
def test_refused_queries_never_run(warehouse: Warehouse, secret: Path, template: str) -> None:
    sql = template.format(csv=secret, parquet=secret.with_suffix(".parquet"))
    with pytest.raises(engine.SqlError, match="refused"):
        engine.prepare(warehouse.lake, sql)


ACCEPTED = [
    "SELECT change_type FROM fact_sales_order WHERE change_type = 'delete'",  # a word in a string
    "SELECT 1 AS one -- ; DROP TABLE dim_date",  # in a comment
    "SELECT /* CREATE ; read_csv('x') */ 1 AS one",
    'SELECT "year" FROM dim_date',
    "WITH d AS (SELECT * FROM dim_date) SELECT COUNT(*) AS n FROM d;",
    "(SELECT 1 AS one)",
    "SELECT 'it''s' AS s",
    "SELECT 'a -- b /* c' AS s\r\nFROM dim_date\r\n",  # CRLF line ends
    "SELECT 'read_csv(''x'') é' AS s",  # in a string: just text
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_harmless_queries_run(warehouse: Warehouse, sql: str) -> None:
    assert engine.run(warehouse.lake, sql).height >= 0


def test_the_plan_check_catches_a_scan_outside_the_tables(
    warehouse: Warehouse, secret: Path
) -> None:
    """The second line of defence, on its own: a plan reading any other file is refused."""
    lake = warehouse.lake
    prefixes = [lake.uri(name) + "/" for name in TABLE_PATHS]
    tables = pl.SQLContext({"dim_date": lake.scan("dim_date")})
    check_plan(tables.execute("SELECT * FROM dim_date").explain(), prefixes)
    for sql in (
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM dim_date, read_parquet('{secret.with_suffix('.parquet')}') AS s",
    ):
        plan = tables.execute(sql).explain()
        with pytest.raises(UnsafeQuery, match="would read"):
            check_plan(plan, prefixes)


def test_only_the_tables_a_query_names_are_opened(warehouse: Warehouse) -> None:
    names = check_query("SELECT c.currency_code FROM dim_currency AS c")
    assert names & set(TABLE_PATHS) == {"dim_currency"}


def test_csv_into_a_reader_that_stops_early_is_not_an_error(warehouse: Warehouse) -> None:
    """`totesys sql ... --csv | head`: the answer (~400 KB) overflows the pipe, the reader
    leaves after one line, and the command ends quietly."""
    args = ["sql", "SELECT * FROM fact_sales_order", "--processed", str(warehouse.processed)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args, "--csv"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"sales_record_id,")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""


@pytest.mark.parametrize(
    "value",
    ["GBP", "GBP' OR '1'='1", "'; DROP TABLE dim_currency; --", "/*", "--", "?", "é''", ""],
)
def test_a_parameter_is_only_ever_a_value(warehouse: Warehouse, value: str) -> None:
    """Whatever the text, a varchar parameter is one string literal: it cannot change the
    query (no extra rows, no statement), only what the query compares with."""
    query = named_queries()["top_counterparties"]
    rows = engine.run(warehouse.lake, bind(query, [value]))
    assert set(rows["currency_code"]) <= {value}
    assert (rows.height > 0) == (value == "GBP")


def test_a_parameter_with_a_backslash_is_refused(warehouse: Warehouse) -> None:
    query = named_queries()["top_counterparties"]
    with pytest.raises(engine.SqlError, match="backslash"):
        engine.run(warehouse.lake, bind(query, ["GBP\\"]))


def test_list_names_what_can_be_queried(warehouse: Warehouse) -> None:
    proc = totesys("sql", "--list", "--json")
    assert proc.returncode == 0, proc.stderr
    catalog = json.loads(proc.stdout)
    assert set(catalog["views"]) == set(engine.VIEWS)
    assert set(catalog["named_queries"]) == set(named_queries())
    assert catalog["named_queries"]["sale_history"]["parameters"] == ["sales_order_id integer"]
    assert set(catalog["tables"]) == set(TABLE_PATHS) and len(TABLE_PATHS) == 11 + 7
    assert {"fact_purchase_order_current", "fact_payment_as_of"} <= set(catalog["views"])
    for name in [*catalog["tables"], *catalog["views"]]:
        table = VIEW_SPECS[name].fact.name if name in VIEW_SPECS else name
        columns = catalog["tables"][table]
        answer = engine.run(
            warehouse.lake, f"SELECT * FROM {name} LIMIT 1", as_of_business=_mid_time()
        )
        assert answer.columns == list(columns), name
        assert answer.height == 1, name


# -- hostile queries: nothing crashes or hangs the command ---------------------------------------
def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert proc.stdout == ""
    return lines[0]


@pytest.mark.parametrize("terms", [6000, 3000, 252])
def test_a_query_too_large_to_plan_is_refused_before_polars_sees_it(
    warehouse: Warehouse, terms: int
) -> None:
    """6,000 terms overflowed Polars' stack (SIGSEGV, no output); 3,000 took 52 s to plan."""
    sql = f"SELECT {'+'.join(['1'] * terms)} AS x FROM dim_currency"
    started = time.perf_counter()
    proc = totesys("sql", sql, "--processed", str(warehouse.processed))
    seconds = time.perf_counter() - started
    line = _one_error_line(proc)
    assert "too large to plan" in line
    assert (f"{terms - 1:,} operators" if terms < 5000 else "12,004 tokens") in line
    assert seconds < 30  # a process start; Polars never plans it
    print(f"\n{terms}-term sum refused in {seconds:.2f} s (a whole `totesys sql` process)")


def test_a_large_query_within_the_limits_runs(warehouse: Warehouse) -> None:
    sql = f"SELECT {'+'.join(['1'] * 251)} AS x FROM dim_currency"
    assert set(engine.run(warehouse.lake, sql)["x"]) == {251}
    ids = ", ".join(str(i) for i in range(3000))  # a long IN list is no deep expression
    answer = engine.run(
        warehouse.lake, f"SELECT currency_id FROM dim_currency WHERE currency_id IN ({ids})"
    )
    assert answer.height == _table(warehouse, "dim_currency").height


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT " + "(" * 40 + "1" + ")" * 40 + " AS x FROM dim_currency", "32 deep"),
        ("SELECT 1 AS x FROM dim_currency WHERE " + " OR ".join(["1 = 1"] * 130), "operators"),
        ("SELECT '" + "x" * 100_001 + "' AS x", "characters"),
    ],
)
def test_size_and_depth_limits(warehouse: Warehouse, sql: str, message: str) -> None:
    with pytest.raises(engine.SqlError, match=f"refused: .*{message}"):
        engine.prepare(warehouse.lake, sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT [1,2,3][-9223372036854775808] AS x FROM dim_currency",
        "SELECT SPLIT_PART(currency_code, 'B', -9223372036854775808) AS x FROM dim_currency",
    ],
)
def test_a_polars_panic_is_one_line(warehouse: Warehouse, sql: str) -> None:
    """Polars panics (PanicException is no PolarsError) and Rust prints its message and
    backtrace on stderr: the command shows one line instead."""
    proc = totesys("sql", sql, "--processed", str(warehouse.processed), env={"RUST_BACKTRACE": "1"})
    line = _one_error_line(proc)
    assert "Polars failed on this query (an internal error: " in line
    with pytest.raises(engine.SqlError, match="Polars failed on this query"):
        engine.run(warehouse.lake, sql)


def test_with_recursive_is_refused(warehouse: Warehouse) -> None:
    sql = (
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT n FROM r LIMIT 5"
    )
    started = time.perf_counter()
    line = _one_error_line(totesys("sql", sql, "--processed", str(warehouse.processed)))
    assert "WITH RECURSIVE is not allowed" in line
    assert time.perf_counter() - started < 30
    # A column may still be called that, quoted.
    assert engine.run(warehouse.lake, 'SELECT 1 AS "recursive"').columns == ["recursive"]


SLOW = (
    "SELECT COUNT(*) AS n FROM fact_sales_order a "
    "JOIN fact_sales_order b ON a.sales_record_id < b.sales_record_id "
    "JOIN fact_sales_order c ON b.sales_record_id < c.sales_record_id"
)


def test_timeout_stops_a_runaway_query_with_one_line(warehouse: Warehouse) -> None:
    """A query that runs for minutes (a three-way inequality join: billions of row triples)
    ends at --timeout with one line, the process gone at once."""
    started = time.perf_counter()
    proc = totesys("sql", SLOW, "--timeout", "3", "--processed", str(warehouse.processed))
    seconds = time.perf_counter() - started
    line = _one_error_line(proc)
    assert line == "error: the query ran past --timeout 3 s and was stopped"
    assert 3 <= seconds < 40
    print(f"\n--timeout 3: the command ended after {seconds:.2f} s (process start included)")


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_timeout_must_be_positive(warehouse: Warehouse, value: str) -> None:
    proc = totesys("sql", "SELECT 1 AS one", "--timeout", value)
    assert "--timeout must be more than 0 seconds" in _one_error_line(proc)


def test_the_default_timeout_lets_a_query_finish(warehouse: Warehouse) -> None:
    proc = totesys(
        "sql",
        "SELECT COUNT(*) AS n FROM dim_currency",
        "--json",
        "--processed",
        str(warehouse.processed),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"] == [{"n": _table(warehouse, "dim_currency").height}]


# -- the lexer splits as Polars does; the plan check sees every path ------------------------------
def test_hex_literals_split_as_polars_splits_them(warehouse: Warehouse) -> None:
    """Polars reads `0xinto` as the hex literal `0x` and the word INTO (`0x1F` is a binary
    literal, `0X1F` the number 0 named X1F): the lexer must see the INTO too."""
    for sql in ("SELECT 0xinto copied FROM dim_currency", "SELECT 0x1finto copied FROM dim_date"):
        with pytest.raises(engine.SqlError, match="refused: INTO is not allowed"):
            engine.prepare(warehouse.lake, sql)
    # Polars itself: `0xinto copied` is `X'' INTO copied`.
    context = pl.SQLContext({"t": pl.LazyFrame({"a": [1]})})
    with pytest.raises(pl.exceptions.SQLInterfaceError, match="SELECT INTO"):
        context.execute("SELECT 0xinto copied FROM t", eager=True)
    assert [t.text for t in tokens("SELECT 0xinto")] == ["select", "0x", "into"]
    assert [t.text for t in tokens("SELECT 0x1F AS v")] == ["select", "0x1F", "as", "v"]


@pytest.mark.parametrize(
    "literal", ["1e5x", "12abc", "1ee", ".5e", "1.5e3e", "1.a", "5_5x", "1_", "0b101", "0X1F"]
)
def test_the_lexer_names_what_polars_names(literal: str) -> None:
    """Where a number runs into a word, Polars makes the word an alias: the lexer's last token
    must be that alias, or the two would not agree on which words a query holds."""
    context = pl.SQLContext({"t": pl.LazyFrame({"a": [1]})})
    answer = context.execute(f"SELECT {literal} FROM t", eager=True)
    words = [t.text for t in tokens(f"SELECT {literal}") if t.kind == "word"]
    assert words[-1] == answer.columns[0].lower()


def test_the_plan_check_normalises_every_path(warehouse: Warehouse, secret: Path) -> None:
    lake = warehouse.lake
    folder = lake.uri("dim_currency")
    prefixes = [folder + "/"]
    escaping = f"{folder}/../../../{secret.with_suffix('.parquet').name}"
    for line in (
        f"Parquet SCAN [{escaping}]",
        f"Parquet SCAN [{escaping}, ... 4 other sources]",
        f"Parquet SCAN [{folder}/./../currency2/part-0.parquet]",
        f"Parquet SCAN [{folder}2/part-0.parquet]",
    ):
        with pytest.raises(UnsafeQuery, match="would read"):
            check_plan(line, prefixes)
    check_plan(f"Parquet SCAN [{folder}/./part-0.parquet, ... 4 other sources]", prefixes)
    # The plan as written may scan the registered Delta tables only: a file read that the
    # optimiser rewrote out of sight is still refused.
    with pytest.raises(UnsafeQuery, match="would read"):
        check_plan("", prefixes, f"PythonDataset SCAN [PL_PY_DSET]\nCsv SCAN [{secret}]")
    check_plan("", prefixes, "PythonDataset SCAN [PL_PY_DSET]")


def test_a_table_listing_a_file_outside_its_folder_is_refused(
    warehouse: Warehouse, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file of every table is checked, not only the one the plan shows. (delta-rs keeps a
    log's paths under the table today, escaping `..`; the check does not rely on it.)"""
    folder = warehouse.lake.uri("dim_currency")
    escaping = f"{folder}/../../{secret.with_suffix('.parquet').name}"
    real = DeltaTable.file_uris
    monkeypatch.setattr(
        DeltaTable, "file_uris", lambda self, *a, **k: [*real(self, *a, **k), escaping]
    )
    with pytest.raises(engine.SqlError, match="refused: dim_currency lists a file outside"):
        engine.prepare(warehouse.lake, "SELECT * FROM dim_currency")
    monkeypatch.undo()
    assert engine.run(warehouse.lake, "SELECT * FROM dim_currency").height > 0
