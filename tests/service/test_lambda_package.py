"""The Lambda image's contents without Docker: requirements-lambda.txt installed into a fresh
folder with service/ and transforms/ beside it, imported by a Python that sees nothing else
(`-I -S`: no site-packages, no PYTHONPATH), and invoked with a scheduled event against moto.

Slow (a pip install, from the pip cache when warm): marked `lambda_package`, so
`pytest -m "not lambda_package"` leaves it out locally; CI runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.storage import open_storage
from service.synthetic import iter_ingestion_files
from tests.s3.conftest import make_env, moto_endpoint  # noqa: F401 - the session fixture

ROOT = Path(__file__).resolve().parents[2]
EVENTS = Path(__file__).resolve().parent / "events"
LIMIT_BYTES = 1024**3  # generous: the image limit is 10 GB; the size is printed to follow it

pytestmark = [pytest.mark.lambda_package, pytest.mark.xdist_group("moto")]

INVOKE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import service.handler as h
assert h.__file__.startswith(sys.argv[1]), h.__file__
class Context:
    function_name = "totesys-transform"
    function_version = "$LATEST"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:eu-west-2:123456789012:function:totesys-transform"
    aws_request_id = "package-test-request"
    def get_remaining_time_in_millis(self):
        return 900000
result = h.lambda_handler(json.load(open(sys.argv[2])), Context())
print(json.dumps({"handler_result": result}))
import boto3, polars, deltalake, fastapi, mangum
for m in (boto3, polars, deltalake, fastapi, mangum):
    assert m.__file__.startswith(sys.argv[1]), m.__file__
"""


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def test_lambda_package_installs_imports_and_runs(
    moto_endpoint: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "task"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--target",
            str(target),
            "-r",
            str(ROOT / "requirements-lambda.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    for package in ("service", "transforms"):
        shutil.copytree(
            ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    size = folder_size(target)
    print(f"\nLambda package (dependencies + code): {size / 1e6:.0f} MB uncompressed")
    assert size < LIMIT_BYTES

    env = make_env("moto", moto_endpoint, monkeypatch)
    storage = open_storage(env.ingestion_uri)
    for key, data in iter_ingestion_files(orders=40, updates=1, seed=1):
        storage.write(key, data)
    child_env = {
        k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PATH", "HOME", "LANG"))
    }
    child_env.update(
        TOTESYS_INGESTION_URI=env.ingestion_uri,
        TOTESYS_PROCESSED_URI=env.processed_uri,
        POWERTOOLS_SERVICE_NAME="totesys-transform",
        POWERTOOLS_METRICS_NAMESPACE="TotesysTransform",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            INVOKE,
            str(target),
            str(EVENTS / "scheduled_event.json"),
        ],
        capture_output=True,
        text=True,
        env=child_env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    result = next(line["handler_result"] for line in lines if "handler_result" in line)
    assert result["status"] == "succeeded" and result["files_applied"] > 0
    blob = next(line for line in lines if "RunFailed" in line and "_aws" in line)
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TotesysTransform"
    finished = next(line for line in lines if line.get("message") == "run finished")
    assert finished["function_request_id"] == "package-test-request"
    assert finished["run_id"] == result["run_id"]
