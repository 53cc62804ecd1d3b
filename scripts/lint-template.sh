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

# The transform itself lives in scripts/sam_transform.py (shared with the deploy test).
AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
    "$VENV/bin/python" "$ROOT/scripts/sam_transform.py" "$TEMPLATE" >"$expanded"

"$VENV/bin/cfn-lint" -- "$expanded"
