#!/usr/bin/env bash
# scripts/lint-template.sh [template] - lint the SAM template two ways:
#
#   1. cfn-lint on the template as written. cfn-lint >= 1.5x validates SAM
#      resources against SAM schemas and merges Globals, but it no longer runs
#      the SAM transform: a misspelt event Type or policy template passes.
#   2. The real SAM transform (aws-sam-translator, the library CloudFormation's
#      AWS::Serverless transform is built from), then cfn-lint on the expanded,
#      plain CloudFormation template (roles, permissions, HTTP API body, stage).
#
# Exits non-zero on any error or warning. Needs the venv from scripts/setup.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RILL_VENV:-$ROOT/.venv}"
TEMPLATE="${1:-$ROOT/infra/template.yaml}"

[ -x "$VENV/bin/cfn-lint" ] || "$ROOT/scripts/setup.sh"

"$VENV/bin/cfn-lint" -- "$TEMPLATE"

expanded="$(mktemp "${TMPDIR:-/tmp}/rill-template-expanded.XXXXXX.json")"
trap 'rm -f "$expanded"' EXIT

AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
    "$VENV/bin/python" - "$TEMPLATE" >"$expanded" <<'PY'
import json
import sys

from cfnlint.decode import decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

template, errors = decode(sys.argv[1])
if errors:
    for e in errors:
        print(e, file=sys.stderr)
    sys.exit(1)

# `sam build` / `sam package` replace local CodeUri paths with S3 locations
# before the transform runs; do the same with a placeholder so the translator
# accepts the template.
for name, res in template.get("Resources", {}).items():
    props = res.get("Properties") or {}
    if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
        props["CodeUri"] = f"s3://sam-artifacts-placeholder/{name}.zip"

managed = {
    "AWSLambdaBasicExecutionRole":
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
}
try:
    out = Translator(managed, Parser()).translate(template, parameter_values={})
except InvalidDocumentException as exc:
    for cause in exc.causes:
        print(f"SAM transform: {cause.message}", file=sys.stderr)
    sys.exit(1)
json.dump(out, sys.stdout, indent=1, default=str)
PY

"$VENV/bin/cfn-lint" -- "$expanded"
