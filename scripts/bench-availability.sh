#!/usr/bin/env bash
# scripts/bench-availability.sh [--seconds N] - segment availability lag of the ingest node
# (source media complete -> segment and playlist in S3), full ladder and passthrough, against
# the bare upload floor. Release build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
export RILL_VENV="${RILL_VENV:-$ROOT/.venv}"
cargo build --profile local-release -p rill-api -p rill-gateway -p rill-ingest -p rill-tests --bins --quiet
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$TARGET_DIR/local-release/bench-availability" "$@"
