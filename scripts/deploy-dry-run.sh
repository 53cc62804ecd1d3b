#!/usr/bin/env bash
# scripts/deploy-dry-run.sh - the README's `sam build` and `sam deploy --guided`, run as a
# new user would, without AWS: every guided prompt answered with Enter, up to the first
# AWS call (which fails for want of credentials). No Rust is compiled (a stand-in cargo);
# needs no stdin, no credentials and no Docker. What it checks: scripts/deploy_dry_run.py.
#
# Needs the SAM CLI venv from scripts/setup.sh ($RILL_SAM_VENV, default <repo>/.venv-sam).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SAM_VENV="${RILL_SAM_VENV:-$ROOT/.venv-sam}"

[ -x "$SAM_VENV/bin/sam" ] || "$ROOT/scripts/setup.sh"

exec "$SAM_VENV/bin/python" "$ROOT/scripts/deploy_dry_run.py" "$@" </dev/null
