#!/usr/bin/env bash
# scripts/bench-latency.sh - glass-to-glass latency (broadcaster page -> WHIP -> ingest -> S3 ->
# hls.js viewer) in headless Chromium: p50/p90 and stalls over 40 s after a warm-up.
# DURATION_SECONDS and WARMUP_SECONDS override the defaults. Release build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
export RILL_VENV="${RILL_VENV:-$ROOT/.venv}"
(cd web && npm run build --silent)
cargo build --profile local-release -p rill-api -p rill-gateway -p rill-ingest -p rill-tests --bins --quiet
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$TARGET_DIR/local-release/bench-latency" "$@"
