"""Run the AWS::Serverless transform on infra/template.yaml, offline.

Uses aws-sam-translator, the library CloudFormation's AWS::Serverless transform is built
from (pinned in scripts/python-requirements.txt), so the output is the plain CloudFormation
template a `sam deploy` would create. Used by scripts/lint-template.sh (cfn-lint on the
expanded template) and tests/deploy/test_template_deploy.py (moto's CloudFormation).

    python scripts/sam_transform.py [template] > expanded.json

As a module: `expand(path) -> dict`. Needs the venv from scripts/setup.sh and a region
(AWS_DEFAULT_REGION; us-east-1 when unset).
"""

import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

# Managed policies the template's functions name, as the translator would look them up.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole":
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
}

# Where `sam package` would have put each function's code (see expand()).
PLACEHOLDER_BUCKET = "sam-artifacts-placeholder"


class TransformError(Exception):
    """The template does not decode or the SAM transform refuses it."""


def expand(path, parameter_values=None):
    """The SAM-expanded template at `path` as a dict.

    `sam build` / `sam package` replace local CodeUri paths with S3 locations before the
    transform runs; this does the same with s3://sam-artifacts-placeholder/<LogicalId>.zip
    so the translator accepts the template.
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template, errors = decode(path)
    if errors:
        raise TransformError("\n".join(str(e) for e in errors))
    for name, res in template.get("Resources", {}).items():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://{PLACEHOLDER_BUCKET}/{name}.zip"
    try:
        out = Translator(MANAGED_POLICIES, Parser()).translate(
            template, parameter_values=parameter_values or {})
    except InvalidDocumentException as exc:
        raise TransformError("\n".join(f"SAM transform: {c.message}" for c in exc.causes)) from exc
    # Round-trip through JSON: plain types only (the decoder's str/dict subclasses carry
    # line marks), as CloudFormation would receive it.
    return json.loads(json.dumps(out, default=str))


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = argv[1] if len(argv) > 1 else os.path.join(root, "infra", "template.yaml")
    try:
        out = expand(path)
    except TransformError as exc:
        print(exc, file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
