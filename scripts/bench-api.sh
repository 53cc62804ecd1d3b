#!/usr/bin/env bash
# scripts/bench-api.sh [bench-api flags] - per-function cold init and RSS, and warm
# GET /api/streams/:id latency through the gateway against a direct DynamoDB anchor.
# Release build, like the binaries deployed to Lambda.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
export RILL_VENV="${RILL_VENV:-$ROOT/.venv}"
cargo build --profile local-release -p rill-api -p rill-gateway -p rill-tests --bins --quiet
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$TARGET_DIR/local-release/bench-api" "$@"
