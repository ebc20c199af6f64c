"""Offline SAM transform and cfn-lint of `infra/template.yaml`.

`translate()` runs the AWS SAM translator locally and returns the CloudFormation
template as a dict. Nothing here calls AWS:

* managed policies: the translator only asks its loader for the name -> ARN map when
  a function's `Policies` names an AWS managed policy; this template gives the
  function its own role, so an empty map from `OfflinePolicyLoader` is enough (an
  unknown name would fail the transform instead of reaching IAM);
* region and partition: the translator only reads `region_name` from the boto3
  session it is given; `OfflineSession` carries just that, so no AWS profile, config
  file or credential is read (a stray `AWS_PROFILE` cannot break the transform);
* the image: `sam build` puts the built image's `ImageUri` into the template; offline
  a placeholder URI stands in for it (`PLACEHOLDER_IMAGE_URI`).

`python -m infra.transform [OUT.json]` writes the CloudFormation to OUT.json
(default `build/infra/template.json`) and runs cfn-lint on it; the exit status is 1
if cfn-lint reports anything (rules in `IGNORED_RULES` are skipped, with their reason).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from cfnlint.api import lint
from cfnlint.config import ManualArgs
from cfnlint.rules import Match
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import (
    to_py27_compatible_template,
    undo_mark_unicode_str_in_template,
)
from samtranslator.yaml_helper import intrinsics_multi_constructor

INFRA_DIR = Path(__file__).resolve().parent
TEMPLATE_PATH = INFRA_DIR / "template.yaml"
DEFAULT_OUTPUT = INFRA_DIR.parent / "build" / "infra" / "template.json"
DEFAULT_REGION = "eu-west-2"
PLACEHOLDER_IMAGE_URI = (
    "123456789012.dkr.ecr.eu-west-2.amazonaws.com/totesys-transform:offline-placeholder"
)
# Values for the parameters that have no default (the translator resolves only the
# few it needs; cfn-lint does not evaluate them).
EXAMPLE_PARAMETERS: dict[str, Any] = {"AlertEmail": "alerts@example.com"}

# cfn-lint rules deliberately not enforced, each with the reason. Every other finding
# (error, warning or informational) fails `make test`.
IGNORED_RULES: dict[str, str] = {}


class OfflinePolicyLoader:
    """Stands in for `samtranslator`'s `ManagedPolicyLoader` without an IAM client."""

    def __init__(self, policy_map: Mapping[str, str] | None = None) -> None:
        self._policy_map = dict(policy_map or {})

    def load(self) -> dict[str, str]:
        return dict(self._policy_map)


@dataclass(frozen=True)
class OfflineSession:
    """The one attribute of a boto3 `Session` that the SAM translator reads."""

    region_name: str


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form tags (!Ref, !Sub, ...) as
    their long form ({"Ref": ...}, {"Fn::Sub": ...}) without touching yaml.SafeLoader."""


_TemplateLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The SAM template as a dict, intrinsic functions in their long form."""
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return loaded


def _with_placeholder_images(template: dict[str, Any], image_uri: str) -> dict[str, Any]:
    """What `sam build` does for image functions: set `ImageUri` where it is missing."""
    result = copy.deepcopy(template)
    for resource in result.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.setdefault("Properties", {})
        if properties.get("PackageType") == "Image" and "ImageUri" not in properties:
            properties["ImageUri"] = image_uri
    return result


def translate(
    template: dict[str, Any] | None = None,
    parameter_values: Mapping[str, Any] | None = None,
    region: str = DEFAULT_REGION,
    image_uri: str = PLACEHOLDER_IMAGE_URI,
) -> dict[str, Any]:
    """Run the SAM transform offline; return the CloudFormation template.

    This is `samtranslator.translator.transform.transform` with two differences: the
    region comes from `OfflineSession` instead of boto3's environment and config
    files, and the managed-policy loader is `OfflinePolicyLoader`.
    """
    sam_template = _with_placeholder_images(
        template if template is not None else load_template(), image_uri
    )
    parameters = {**EXAMPLE_PARAMETERS, **(parameter_values or {})}
    loader = OfflinePolicyLoader()

    def get_managed_policy_map() -> dict[str, str]:
        return loader.load()

    to_py27_compatible_template(sam_template, parameters)
    session = cast(Any, OfflineSession(region_name=region))  # duck-types boto3.Session
    translator = Translator(None, Parser(), boto_session=session)
    cloudformation = translator.translate(
        sam_template,
        parameter_values=parameters,
        get_managed_policy_map=get_managed_policy_map,
    )
    result: dict[str, Any] = undo_mark_unicode_str_in_template(cloudformation)
    # Round-trip through JSON: plain dicts, lists and strings only.
    return json.loads(json.dumps(result))


def lint_cloudformation(
    cloudformation: Mapping[str, Any], regions: list[str] | None = None
) -> list[Match]:
    """cfn-lint findings (errors, warnings, informational) for a CloudFormation template."""
    config = ManualArgs(
        regions=regions or [DEFAULT_REGION],
        include_checks=["I"],
        ignore_checks=sorted(IGNORED_RULES),
    )
    return lint(json.dumps(cloudformation, indent=2), config=config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--template", type=Path, default=TEMPLATE_PATH)
    parser.add_argument("--region", default=DEFAULT_REGION)
    args = parser.parse_args(argv)

    cloudformation = translate(load_template(args.template), region=args.region)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(cloudformation, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({len(cloudformation['Resources'])} resources)")

    matches = lint_cloudformation(cloudformation, regions=[args.region])
    for match in matches:
        print(f"cfn-lint {match.rule.id}: {match.message} ({match.path_string})")
    print(f"cfn-lint: {len(matches)} finding(s)")
    return 1 if matches else 0


if __name__ == "__main__":
    sys.exit(main())
