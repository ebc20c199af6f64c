"""The template's Athena section, checked offline on the transformed CloudFormation: Glue
tables that Athena reads as Delta Lake, an enforced workgroup with encrypted expiring results,
the named queries equal to service/sql/named/*.sql, and a least-privilege AnalystPolicy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import athena
from infra.transform import TEMPLATE_PATH, load_template, translate
from service.lake import TABLE_PATHS, TABLE_SCHEMAS
from service.sql.named import NAMED_DIR, named_queries


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate(load_template())


def _of_type(cfn: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == type_}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_generated_block_is_up_to_date() -> None:
    """One source: the template holds exactly what infra/athena.py makes of the SQL files and
    the table schemas (run `make athena` after changing either)."""
    template = load_template()["Resources"]
    for logical_id, resource in athena.generated_resources().items():
        assert template.get(logical_id) == resource, f"{logical_id}: run `make athena`"
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert athena.render() in text, "run `make athena`"


def test_write_rewrites_a_stale_block(tmp_path: Path) -> None:
    stale = tmp_path / "template.yaml"
    stale.write_text(
        TEMPLATE_PATH.read_text(encoding="utf-8").replace("FROM fact_sales_order", "FROM x", 1)
    )
    assert athena.write(stale) is True
    assert stale.read_text(encoding="utf-8") == TEMPLATE_PATH.read_text(encoding="utf-8")
    assert athena.write(stale) is False


def test_one_glue_delta_table_per_star_table(cfn: dict[str, Any]) -> None:
    tables = _of_type(cfn, "AWS::Glue::Table")
    by_name = {t["Properties"]["TableInput"]["Name"]: t["Properties"] for t in tables.values()}
    assert set(by_name) == set(TABLE_PATHS) and len(by_name) == 11 + 7  # stars + histories
    assert {"fact_purchase_order", "fact_payment", "dim_transaction", "dim_payment_type"} <= set(
        by_name
    )
    (database,) = _of_type(cfn, "AWS::Glue::Database")
    for name, props in by_name.items():
        assert props["DatabaseName"] == {"Ref": database}
        table = props["TableInput"]
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["Parameters"]["table_type"] == "DELTA"
        assert table["Parameters"]["spark.sql.sources.provider"] == "delta"
        location = {"Fn::Sub": f"s3://${{ProcessedBucket}}/{TABLE_PATHS[name]}"}
        assert table["StorageDescriptor"]["Location"] == location
        columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
        assert columns == list(TABLE_SCHEMAS[name]), name


def test_glue_types_follow_the_stored_types() -> None:
    fact = {c: athena.glue_type(t) for c, t in TABLE_SCHEMAS["fact_sales_order"].items()}
    assert fact["sales_record_id"] == "bigint" and fact["sales_order_id"] == "int"
    assert fact["unit_price"] == "decimal(10,2)" and fact["last_updated"] == "timestamp"
    assert fact["created_date"] == "date" and fact["change_type"] == "string"
    payment = {c: athena.glue_type(t) for c, t in TABLE_SCHEMAS["fact_payment"].items()}
    assert payment["paid"] == "boolean" and payment["payment_amount"] == "decimal(10,2)"
    assert payment["payment_record_id"] == "bigint" and "company_ac_number" not in payment


def test_named_queries_are_the_sql_files(cfn: dict[str, Any]) -> None:
    resources = _of_type(cfn, "AWS::Athena::NamedQuery")
    files = {p.read_text(encoding="utf-8") for p in NAMED_DIR.glob("*.sql")}
    assert len(files) == len(named_queries()) == len(resources) == 10
    assert {r["Properties"]["QueryString"] for r in resources.values()} == files
    (database,) = _of_type(cfn, "AWS::Glue::Database")
    (workgroup,) = _of_type(cfn, "AWS::Athena::WorkGroup")
    for resource in resources.values():
        props = resource["Properties"]
        assert props["Database"] == {"Ref": database}
        assert props["WorkGroup"] == {"Ref": workgroup}
        assert props["Name"].startswith("totesys: ")
        assert 0 < len(props["Description"]) <= 1024


def test_sql_files_stay_in_the_common_dialect() -> None:
    """Constructs Polars and Athena (Trino) read differently are kept out of the files."""
    for query in named_queries().values():
        for line in query.sql.splitlines():
            assert line == line.rstrip(), f"{query.name}: trailing space breaks the YAML block"
        code = "\n".join(line.split("--")[0] for line in query.sql.splitlines()).upper()
        for construct in ("DATE_TRUNC", "STRFTIME", "::", '"', "ILIKE", "QUALIFY", "$"):
            assert construct not in code, (query.name, construct)


def test_workgroup_enforces_engine_v3_and_encrypted_results(cfn: dict[str, Any]) -> None:
    (workgroup,) = _of_type(cfn, "AWS::Athena::WorkGroup").values()
    config = workgroup["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "QueryBytesScannedCutoff"}
    results = config["ResultConfiguration"]
    assert results["OutputLocation"] == {"Fn::Sub": "s3://${AthenaResultsBucket}/results/"}
    assert results["EncryptionConfiguration"]["EncryptionOption"] in {"SSE_S3", "SSE_KMS"}


def test_results_bucket_expires_what_it_holds(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["AthenaResultsBucket"]["Properties"]
    rules = props["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if r["Status"] == "Enabled" and "ExpirationInDays" in r]
    assert expiring and expiring[0]["ExpirationInDays"] <= 30
    assert "Prefix" not in expiring[0] and "Filter" not in expiring[0], "every object"
    assert expiring[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 7


def _analyst_statements(cfn: dict[str, Any]) -> list[dict[str, Any]]:
    policy = cfn["Resources"]["AnalystPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    return _as_list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_analyst_policy_is_least_privilege(cfn: dict[str, Any]) -> None:
    statements = _analyst_statements(cfn)
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert all(s["Effect"] == "Allow" for s in statements)
    assert not any("*" in a for a in actions)
    assert not any("NotAction" in s or "NotResource" in s for s in statements)
    # read-only on the warehouse: nothing that writes or deletes outside the results prefix
    writes = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    for statement in statements:
        if writes & set(_as_list(statement["Action"])):
            assert statement["Resource"] == {"Fn::Sub": "${AthenaResultsBucket.Arn}/results/*"}
    assert not any(a.startswith("glue:") and not a.startswith("glue:Get") for a in actions)
    assert not any(a.startswith(("glue:Create", "glue:Update", "glue:Delete")) for a in actions)
    # only ListWorkGroups (which has no resource-level permission) is on "*"
    on_everything = [s for s in statements if s["Resource"] == "*"]
    assert [s["Action"] for s in on_everything] == ["athena:ListWorkGroups"]
    # Athena actions are scoped to the analysts' workgroup
    athena_statement = next(s for s in statements if "athena:StartQueryExecution" in s["Action"])
    assert athena_statement["Resource"]["Fn::Sub"].endswith(":workgroup/${AnalystWorkGroup}")


def test_analyst_policy_reads_only_the_star_tables(cfn: dict[str, Any]) -> None:
    statements = _analyst_statements(cfn)
    processed = [s for s in statements if "ProcessedBucket" in json.dumps(s["Resource"])]
    gets = next(s for s in processed if s["Action"] == "s3:GetObject")
    assert sorted(r["Fn::Sub"] for r in gets["Resource"]) == [
        "${ProcessedBucket.Arn}/dimension/*",
        "${ProcessedBucket.Arn}/dimension_history/*",
        "${ProcessedBucket.Arn}/fact/*",
    ]
    prefixes = {p.split("/")[0] for p in TABLE_PATHS.values()}
    assert prefixes == {"fact", "dimension", "dimension_history"}, (
        "a new top folder needs the policy extended"
    )
    listing = next(s for s in processed if s["Action"] == "s3:ListBucket")
    assert sorted(listing["Condition"]["StringLike"]["s3:prefix"]) == [
        "dimension/*",
        "dimension_history/*",
        "fact/*",
    ]
    assert "_state" not in json.dumps(statements)


def test_outputs_name_the_analytics_resources(cfn: dict[str, Any]) -> None:
    assert {
        "AnalyticsDatabaseName",
        "AnalystWorkGroupName",
        "AthenaResultsBucketName",
        "AnalystPolicyArn",
    } <= set(cfn["Outputs"])
