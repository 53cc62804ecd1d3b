#!/usr/bin/env bash
# scripts/bench-realtime.sh [bench-realtime flags] - chat delivery latency to 100 and 1,000
# viewers against a bare WebSocket broadcast anchor, and a reaction storm. Release build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
export RILL_VENV="${RILL_VENV:-$ROOT/.venv}"
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
cargo build --profile local-release -p rill-api -p rill-gateway -p rill-tests --bins --quiet
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$TARGET_DIR/local-release/bench-realtime" "$@"
