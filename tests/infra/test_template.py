"""Offline checks of the deployment: infra/template.yaml and the Dockerfile.

The SAM template is transformed locally (infra/transform.py, no AWS call), cfn-lint
runs on the resulting CloudFormation, and the policy tests below read that
CloudFormation: what is deployed, not what SAM was asked for.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.transform import (
    IGNORED_RULES,
    TEMPLATE_PATH,
    lint_cloudformation,
    load_template,
    main,
    translate,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"

# Settings fields the template deliberately leaves unset, and why.
UNSET_IN_TEMPLATE = {"TOTESYS_API_TOKEN": "the HTTP API is protected by IAM instead"}
POWERTOOLS_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
FUNCTION = "TransformFunction"
ROLE = "TransformFunctionRole"
DLQ = "DeadLetterQueue"
TOPIC = "AlarmTopic"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    return translate(sam)


def _of_type(cfn: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == type_}


def _props(cfn: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props: dict[str, Any] = cfn["Resources"][logical_id].get("Properties", {})
    return props


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resolve(cfn: dict[str, Any], value: Any) -> Any:
    """Literal value of a string or an Fn::FindInMap (the only intrinsic resolved)."""
    if isinstance(value, dict) and set(value) == {"Fn::FindInMap"}:
        mapping, key, attribute = value["Fn::FindInMap"]
        return cfn["Mappings"][mapping][key][attribute]
    return value


def _function_env(cfn: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = _props(cfn, FUNCTION)["Environment"]["Variables"]
    return variables


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + stripped
        else:
            lines.append(stripped)
    result = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return result


def _dockerfile_cmd() -> str:
    cmds = [args for instruction, args in _dockerfile_instructions() if instruction == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    command = json.loads(cmds[-1])  # exec form, as the Lambda base image expects
    assert isinstance(command, list) and len(command) == 1, command
    handler: str = command[0]
    return handler


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in _dockerfile_instructions():
        if instruction == "ENV":
            for pair in shlex.split(args):
                key, sep, value = pair.partition("=")
                assert sep, f"use ENV KEY=value in the Dockerfile, not {pair!r}"
                env[key] = value
    return env


def _statements(cfn: dict[str, Any], role: str) -> Iterator[dict[str, Any]]:
    for policy in _props(cfn, role).get("Policies", []):
        yield from _as_list(policy["PolicyDocument"]["Statement"])


# --------------------------------------------------- transform and cfn-lint


def test_sam_transform_then_cfn_lint_reports_nothing(cfn: dict[str, Any]) -> None:
    assert "Transform" not in cfn
    assert not any(r["Type"].startswith("AWS::Serverless::") for r in cfn["Resources"].values())
    matches = lint_cloudformation(cfn)
    assert not matches, "\n".join(f"{m.rule.id} {m.path_string}: {m.message}" for m in matches)


def test_command_line_writes_the_cloudformation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "template.json"
    assert main([str(out)]) == 0, capsys.readouterr().out
    assert json.loads(out.read_text(encoding="utf-8"))["Resources"]


def test_every_silenced_cfn_lint_rule_says_why_and_still_fires(
    cfn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each silenced rule has a reason, and would really fire on this template without its
    silence (no stale silences). With none silenced, the template must lint clean unsilenced."""
    from infra import transform

    for rule, reason in IGNORED_RULES.items():
        assert re.fullmatch(r"[EWI]\d{4}", rule), rule
        assert len(reason.strip()) > 20, f"{rule}: explain why it is silenced"
    monkeypatch.setattr(transform, "IGNORED_RULES", {})
    unsilenced = {m.rule.id for m in lint_cloudformation(cfn)}
    assert unsilenced == set(IGNORED_RULES), (
        f"findings without silences: {sorted(unsilenced)}; silenced: {sorted(IGNORED_RULES)}"
    )


def test_cfn_lint_really_runs(cfn: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(cfn))
    _props(broken, FUNCTION)["Timeout"] = 1200
    assert any(m.rule.id.startswith("E") for m in lint_cloudformation(broken))


def test_every_checkov_skip_is_justified(sam: dict[str, Any]) -> None:
    for logical_id, resource in sam["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
            assert len(skip.get("comment", "").strip()) > 40, (logical_id, skip["id"])


# ------------------------------------------------------------------ buckets


def test_buckets_are_private_encrypted_versioned_and_retained(cfn: dict[str, Any]) -> None:
    buckets = _of_type(cfn, "AWS::S3::Bucket")
    assert {"ProcessedBucket", "IngestionBucket"} <= set(buckets)
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        block = props["PublicAccessBlockConfiguration"]
        for setting in (
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ):
            assert block.get(setting) is True, (logical_id, setting)
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        algorithms = {r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules}
        assert algorithms and algorithms <= {"AES256", "aws:kms", "aws:kms:dsse"}, logical_id
        assert props["VersioningConfiguration"]["Status"] == "Enabled", logical_id
        assert bucket.get("DeletionPolicy") == "Retain", logical_id
        assert bucket.get("UpdateReplacePolicy") == "Retain", logical_id


def test_every_bucket_policy_denies_plain_http(cfn: dict[str, Any]) -> None:
    buckets = set(_of_type(cfn, "AWS::S3::Bucket"))
    covered = set()
    for policy in _of_type(cfn, "AWS::S3::BucketPolicy").values():
        props = policy["Properties"]
        bucket = props["Bucket"]["Ref"]
        for statement in _as_list(props["PolicyDocument"]["Statement"]):
            condition = statement.get("Condition", {}).get("Bool", {})
            if (
                statement["Effect"] == "Deny"
                and statement["Principal"] == "*"
                and condition.get("aws:SecureTransport") == "false"
            ):
                resources = json.dumps(statement["Resource"])
                assert bucket in resources and "/*" in resources, bucket
                covered.add(bucket)
    assert covered == buckets


def test_ingestion_bucket_is_optional_and_sends_events_to_eventbridge(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    assert sam["Parameters"]["IngestionBucketName"]["Default"] == ""
    for logical_id in ("IngestionBucket", "IngestionBucketPolicy"):
        assert cfn["Resources"][logical_id]["Condition"] == "CreateIngestionBucket"
    notification = _props(cfn, "IngestionBucket")["NotificationConfiguration"]
    assert notification == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


# ----------------------------------------------------------------- function


def test_function_is_the_container_image_sized_for_the_benchmark(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    props = _props(cfn, FUNCTION)
    assert props["PackageType"] == "Image"
    assert "ImageConfig" not in props, "the Dockerfile's CMD names the handler"
    assert props["MemorySize"] >= 2048  # peak RSS <= 1.5 GB for a 1M-order baseline
    assert props["Timeout"] <= 900
    assert props["EphemeralStorage"]["Size"] >= 2048
    # The heartbeat keeps a live run's lease (service/lease.py); a killed run's lease must run
    # out within a minute or so, and a busy invocation must return within seconds.
    env = _function_env(cfn)
    assert 30 <= int(env["TOTESYS_LEASE_SECONDS"]) <= 90
    assert float(env["TOTESYS_LEASE_WAIT_SECONDS"]) <= 10

    metadata = sam["Resources"][FUNCTION]["Metadata"]
    context = (TEMPLATE_PATH.parent / metadata["DockerContext"]).resolve()
    assert context == REPO_ROOT
    assert (context / metadata["Dockerfile"]).resolve() == DOCKERFILE
    assert metadata["DockerTag"]


def test_environment_names_match_the_settings(cfn: dict[str, Any]) -> None:
    from service.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    assert prefix == "TOTESYS_"
    read_by_app = {prefix + name.upper() for name in Settings.model_fields}
    env = _function_env(cfn)
    in_template = {key for key in env if key.startswith(prefix)}
    assert set(UNSET_IN_TEMPLATE) <= read_by_app
    assert not in_template & set(UNSET_IN_TEMPLATE)
    assert in_template == read_by_app - set(UNSET_IN_TEMPLATE), {
        "set but not read by service/settings.py": sorted(in_template - read_by_app),
        "read but not set": sorted(read_by_app - in_template - set(UNSET_IN_TEMPLATE)),
    }
    assert set(env) >= POWERTOOLS_VARIABLES
    assert set(env) == in_template | POWERTOOLS_VARIABLES, "unexpected variables"


def test_environment_values_parse_as_settings(
    cfn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.settings import Settings

    samples = {"Ref": "30", "Fn::Sub": "s3://example-bucket"}  # stand-ins for intrinsics
    for key, value in _function_env(cfn).items():
        resolved = _resolve(cfn, value)
        literal = resolved if isinstance(resolved, str) else samples[next(iter(resolved))]
        monkeypatch.setenv(key, literal)
    settings = Settings()
    assert settings.ingestion_uri.startswith("s3://")
    assert settings.processed_uri.startswith("s3://")
    assert settings.api_token is None


def test_dockerfile_cmd_names_an_existing_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, _, attribute = _dockerfile_cmd().rpartition(".")
    assert (module_name, attribute) == ("service.handler", "lambda_handler")
    # Import it as Lambda would: with a region and the image's environment.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    for key, value in _dockerfile_env().items():
        monkeypatch.setenv(key, value)
    handler = getattr(importlib.import_module(module_name), attribute)
    assert callable(handler)
    inspect.signature(handler).bind({}, object())  # lambda_handler(event, context)


def test_dockerfile_builds_from_the_lambda_base_image_with_the_app() -> None:
    instructions = _dockerfile_instructions()
    base = next(args for instruction, args in instructions if instruction == "FROM")
    assert re.fullmatch(r"public\.ecr\.aws/lambda/python:3\.1[1-9]", base), base
    copies = " ".join(args for instruction, args in instructions if instruction == "COPY")
    for path in ("requirements-lambda.txt", "service/", "transforms/"):
        assert path in copies, path
    top_package = _dockerfile_cmd().split(".")[0]
    assert f"{top_package}/" in copies


def test_dockerfile_and_template_agree_on_powertools(cfn: dict[str, Any]) -> None:
    image_env = _dockerfile_env()
    template_env = _function_env(cfn)
    for key in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        assert image_env[key] == _resolve(cfn, template_env[key]), key
    assert _resolve(cfn, template_env["POWERTOOLS_SERVICE_NAME"]) == "totesys-transform"
    assert _resolve(cfn, template_env["POWERTOOLS_METRICS_NAMESPACE"]) == "TotesysTransform"


# ------------------------------------------------------------------ triggers


def _rule(cfn: dict[str, Any], logical_id: str) -> dict[str, Any]:
    props = _props(cfn, logical_id)
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [FUNCTION, "Arn"]}
    return props


def test_object_created_rule_watches_both_ingestion_prefixes(cfn: dict[str, Any]) -> None:
    pattern = _rule(cfn, "TransformFunctionObjectCreated")["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    keys = pattern["detail"]["object"]["key"]
    assert sorted(k["prefix"] for k in keys) == ["baseline/", "updated/"]
    assert pattern["detail"]["bucket"]["name"] == [
        {
            "Fn::If": [
                "CreateIngestionBucket",
                {"Ref": "IngestionBucket"},
                {"Ref": "IngestionBucketName"},
            ]
        }
    ]


def test_schedules_run_and_maintain(cfn: dict[str, Any]) -> None:
    run = _rule(cfn, "TransformFunctionScheduledRun")
    assert run["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert "Input" not in run["Targets"][0]  # the handler sees a plain scheduled event
    maintain = _rule(cfn, "TransformFunctionMaintenance")
    assert maintain["ScheduleExpression"] == {"Ref": "MaintenanceScheduleExpression"}
    assert json.loads(maintain["Targets"][0]["Input"]) == {"action": "maintain"}


# ----------------------------------------------------------- failure handling


def test_async_failures_go_to_the_dead_letter_queue(cfn: dict[str, Any]) -> None:
    dlq_arn = {"Fn::GetAtt": [DLQ, "Arn"]}
    assert cfn["Resources"][DLQ]["Type"] == "AWS::SQS::Queue"
    (config,) = _of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    assert props["FunctionName"] == {"Ref": FUNCTION}
    assert 0 <= props["MaximumRetryAttempts"] <= 2
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == dlq_arn
    # Lambda sends to the destination with the function's role.
    assert any(
        s["Effect"] == "Allow"
        and "sqs:SendMessage" in _as_list(s["Action"])
        and s["Resource"] == dlq_arn
        for s in _statements(cfn, ROLE)
    )


def test_every_rule_dead_letters_to_the_queue_and_may(cfn: dict[str, Any]) -> None:
    """Events a rule cannot deliver land in the queue, whose policy admits exactly our rules."""
    rules = _of_type(cfn, "AWS::Events::Rule")
    assert len(rules) == 3
    (queue_policy,) = _of_type(cfn, "AWS::SQS::QueuePolicy").values()
    allowed = next(
        s
        for s in queue_policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "events.amazonaws.com"}
    )
    source_arns = {arn["Fn::Sub"] for arn in allowed["Condition"]["ArnEquals"]["aws:SourceArn"]}
    for logical_id, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [DLQ, "Arn"]}, logical_id
        name = rule["Properties"]["Name"]["Fn::Sub"]
        arn = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/" + name
        assert arn in source_arns, logical_id


# ------------------------------------------------------------------- alarms


def test_every_alarm_notifies_the_topic(cfn: dict[str, Any]) -> None:
    alarms = _of_type(cfn, "AWS::CloudWatch::Alarm")
    assert alarms
    for logical_id, alarm in alarms.items():
        assert {"Ref": TOPIC} in alarm["Properties"].get("AlarmActions", []), logical_id
    (subscription,) = _of_type(cfn, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["TopicArn"] == {"Ref": TOPIC}
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlertEmail"}


def _alarm_on(cfn: dict[str, Any], namespace: str, metric: str) -> dict[str, Any]:
    found = [
        a["Properties"]
        for a in _of_type(cfn, "AWS::CloudWatch::Alarm").values()
        if _resolve(cfn, a["Properties"]["Namespace"]) == namespace
        and a["Properties"]["MetricName"] == metric
    ]
    assert len(found) == 1, f"one alarm on {namespace}/{metric}"
    alarm = found[0]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"
    return alarm


@pytest.mark.parametrize("metric", ["RunFailed", "FilesRejected"])
def test_app_metric_alarms_watch_what_powertools_emits(cfn: dict[str, Any], metric: str) -> None:
    env = _function_env(cfn)
    namespace = _resolve(cfn, env["POWERTOOLS_METRICS_NAMESPACE"])
    alarm = _alarm_on(cfn, namespace, metric)
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
    dimensions = {d["Name"]: _resolve(cfn, d["Value"]) for d in alarm["Dimensions"]}
    # Powertools adds exactly one default dimension: service=<POWERTOOLS_SERVICE_NAME>.
    assert dimensions == {"service": _resolve(cfn, env["POWERTOOLS_SERVICE_NAME"])}


def test_alarmed_namespace_and_service_are_the_apps(cfn: dict[str, Any]) -> None:
    """service/observability.py names its Metrics explicitly (that wins over the env)."""
    from service import observability

    env = _function_env(cfn)
    assert _resolve(cfn, env["POWERTOOLS_METRICS_NAMESPACE"]) == observability.NAMESPACE
    assert _resolve(cfn, env["POWERTOOLS_SERVICE_NAME"]) == observability.SERVICE


@pytest.mark.parametrize("metric", ["Errors", "Throttles", "DestinationDeliveryFailures"])
def test_function_alarms(cfn: dict[str, Any], metric: str) -> None:
    alarm = _alarm_on(cfn, "AWS/Lambda", metric)
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": FUNCTION}}]


def test_dead_letter_queue_alarm(cfn: dict[str, Any]) -> None:
    alarm = _alarm_on(cfn, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [DLQ, "QueueName"]}}
    ]


def test_function_log_group_has_retention(cfn: dict[str, Any]) -> None:
    logging = _props(cfn, FUNCTION)["LoggingConfig"]
    log_group = _props(cfn, logging["LogGroup"]["Ref"])
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for logical_id, group in _of_type(cfn, "AWS::Logs::LogGroup").items():
        assert "RetentionInDays" in group["Properties"], logical_id


# ---------------------------------------------------------------------- IAM


def _walk_policy_documents(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "Statement" in node and "Version" in node:
            yield node
        for value in node.values():
            yield from _walk_policy_documents(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_policy_documents(value)


def test_roles_have_no_wildcard_action_or_resource_and_no_managed_policy(
    cfn: dict[str, Any],
) -> None:
    roles = _of_type(cfn, "AWS::IAM::Role")
    assert set(roles) == {ROLE}, "only the function's own role"
    assert "ManagedPolicyArns" not in roles[ROLE]["Properties"]
    for policy in _props(cfn, ROLE)["Policies"]:
        for statement in _as_list(policy["PolicyDocument"]["Statement"]):
            assert statement["Effect"] == "Allow", policy["PolicyName"]
            for action in _as_list(statement["Action"]):
                assert "*" not in action, (policy["PolicyName"], action)
            for resource in _as_list(statement["Resource"]):
                assert resource != "*", policy["PolicyName"]
            assert "NotAction" not in statement and "NotResource" not in statement


def test_allow_statements_elsewhere_have_no_wildcard_action(cfn: dict[str, Any]) -> None:
    for document in _walk_policy_documents(cfn["Resources"]):
        for statement in _as_list(document["Statement"]):
            if statement["Effect"] == "Allow":
                for action in _as_list(statement["Action"]):
                    assert "*" not in action, statement


def test_role_reads_only_the_ingestion_prefixes(cfn: dict[str, Any]) -> None:
    statements = [s for s in _statements(cfn, ROLE) if "IngestionBucket" in json.dumps(s)]
    get = next(s for s in statements if s["Action"] == "s3:GetObject")
    paths = sorted(r["Fn::Sub"][0].rsplit(":::", 1)[1] for r in get["Resource"])
    assert paths == ["${Bucket}/baseline/*", "${Bucket}/updated/*"]
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert sorted(listing["Condition"]["StringLike"]["s3:prefix"]) == ["baseline/*", "updated/*"]
    assert {a for s in statements for a in _as_list(s["Action"])} == {
        "s3:GetObject",
        "s3:ListBucket",
    }, "read-only"


def test_role_reads_and_writes_the_processed_bucket(cfn: dict[str, Any]) -> None:
    statements = [s for s in _statements(cfn, ROLE) if "ProcessedBucket" in json.dumps(s)]
    objects = next(
        s for s in statements if s["Resource"] == {"Fn::Sub": "${ProcessedBucket.Arn}/*"}
    )
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= set(objects["Action"])
    bucket = next(
        s for s in statements if s["Resource"] == {"Fn::GetAtt": ["ProcessedBucket", "Arn"]}
    )
    assert bucket["Action"] == "s3:ListBucket"


def test_role_may_invoke_only_its_own_function(cfn: dict[str, Any]) -> None:
    invoke = [s for s in _statements(cfn, ROLE) if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert len(invoke) == 1
    assert invoke[0]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}"
        ":function:${FunctionName}"
    }
    assert _props(cfn, FUNCTION)["FunctionName"] == {"Ref": "FunctionName"}


# ---------------------------------------------------------------------- API


def test_every_api_route_requires_iam(cfn: dict[str, Any]) -> None:
    apis = _of_type(cfn, "AWS::ApiGatewayV2::Api")
    assert len(apis) == 1
    (api,) = apis.values()
    body = api["Properties"]["Body"]
    schemes = body["components"]["securitySchemes"]
    sigv4 = {n for n, s in schemes.items() if s.get("x-amazon-apigateway-authtype") == "awsSigv4"}
    assert sigv4
    operations = [op for path in body["paths"].values() for op in path.values()]
    assert operations
    for operation in operations:
        assert operation["security"], operation
        assert all(set(requirement) <= sigv4 for requirement in operation["security"])
    for route in _of_type(cfn, "AWS::ApiGatewayV2::Route").values():
        assert route["Properties"].get("AuthorizationType") == "AWS_IAM"


def test_api_stage_logs_and_throttles(cfn: dict[str, Any]) -> None:
    (stage,) = _of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["AccessLogSettings"]["DestinationArn"]
    json.loads(props["AccessLogSettings"]["Format"])  # one JSON object per request
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


# ------------------------------------------------------------------ outputs


def test_outputs(cfn: dict[str, Any]) -> None:
    assert {
        "ApiUrl",
        "IngestionBucketName",
        "ProcessedBucketName",
        "AlarmTopicArn",
        "FunctionName",
    } <= set(cfn["Outputs"])


# ------------------------------------------------------------------ dashboard
DASHBOARD = "OperatorDashboard"
Metric = tuple[str, str, frozenset[tuple[str, str]]]  # namespace, name, dimensions


def _dashboard(cfn: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as JSON, its Fn::Sub resolved: variables of the Sub's map, pseudo
    parameters and resources become markers (`<Ref TransformFunction>`); a reference to
    anything that is not a resource of the template fails."""
    (logical_id,) = _of_type(cfn, "AWS::CloudWatch::Dashboard")
    assert logical_id == DASHBOARD
    text, variables = _props(cfn, DASHBOARD)["DashboardBody"]["Fn::Sub"]
    values = {k: _resolve(cfn, v) for k, v in variables.items()}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return str(values[name])
        if name.startswith("AWS::"):
            return f"<{name}>"
        resource = name.split(".", 1)[0]
        assert resource in cfn["Resources"], f"dashboard refers to unknown {name}"
        return f"<Ref {name}>"

    body: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", substitute, text))
    return body


def _dashboard_metrics(body: dict[str, Any]) -> set[Metric]:
    """(namespace, metric, dimensions) of every metric line of every widget."""
    found: set[Metric] = set()
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            fields = [f for f in line if isinstance(f, str)]
            namespace, metric, *pairs = fields
            dimensions = frozenset(zip(pairs[::2], pairs[1::2], strict=True))
            found.add((namespace, metric, dimensions))
    return found


def _emitted_app_metrics(capsys: pytest.CaptureFixture[str]) -> set[Metric]:
    """What service/observability.py really emits (EMF on stdout) for a run that wrote rows
    to every public table and rejected a file and some rows."""
    from service import observability
    from service.lake import TABLE_PATHS
    from service.ledger import FileOutcome
    from service.pipeline import RunSummary

    summary = RunSummary(run_id="r", trigger="test", status="succeeded")
    summary.files = [
        FileOutcome("updated/a.json", "applied", rows_rejected=2),
        FileOutcome("updated/b.json", "rejected", reason="not valid JSON"),
    ]
    for table in [*TABLE_PATHS, "source_staff"]:
        summary.add_rows(table, 3)
    capsys.readouterr()
    observability.emit_run_metrics(summary, 1234.0, failed=False)
    emitted: set[Metric] = set()
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((d, str(blob[d])) for d in dimension_set)
                for metric in directive["Metrics"]:
                    emitted.add((directive["Namespace"], metric["Name"], dimensions))
    return emitted


def test_dashboard_shows_the_app_metrics_the_app_emits(
    cfn: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from service import observability
    from service.lake import TABLE_PATHS

    shown = {m for m in _dashboard_metrics(_dashboard(cfn)) if m[0] == observability.NAMESPACE}
    service = frozenset({("service", observability.SERVICE)})
    expected = {
        (observability.NAMESPACE, name, service)
        for name in ("RunFailed", "FilesRejected", "RowsRejected", "RunDuration")
    } | {
        (observability.NAMESPACE, "RowsWritten", service | {("Table", table)})
        for table in TABLE_PATHS
    }
    assert shown == expected
    emitted = _emitted_app_metrics(capsys)
    assert shown <= emitted, f"on the dashboard but never emitted: {shown - emitted}"


def test_dashboard_shows_the_function_and_the_dead_letter_queue(cfn: dict[str, Any]) -> None:
    shown = _dashboard_metrics(_dashboard(cfn))
    function = frozenset({("FunctionName", f"<Ref {FUNCTION}>")})
    for metric in ("Errors", "Throttles", "Duration"):
        assert ("AWS/Lambda", metric, function) in shown, metric
    queue = frozenset({("QueueName", f"<Ref {DLQ}.QueueName>")})
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue) in shown
    for widget in _dashboard(cfn)["widgets"]:
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "<AWS::Region>"


def test_dashboard_name_is_an_output(cfn: dict[str, Any]) -> None:
    assert cfn["Outputs"]["DashboardName"]["Value"] == {"Ref": DASHBOARD}
