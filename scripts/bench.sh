#!/usr/bin/env bash
# scripts/bench.sh <name> [args...] - builds the workspace's binaries with the local-release
# profile (the functions' release codegen, unwinding for the ingest node) and runs the
# benchmark `bench-<name>` with the arguments given. Names:
#   api           per-function cold init + RSS; GET /api/streams/:id vs a direct GetItem
#   realtime      1,000 viewers joining at once, chat, reactions, counts; vs a bare WebSocket broadcast
#   post          CPU per PostToConnection: Rill's signed notifier vs the AWS SDK client
#   availability  segment availability lag (full ladder, passthrough) vs the S3 upload floor
#   latency       glass-to-glass in Chromium (WHIP -> ingest -> S3 -> hls.js)
#   overload      the ingest node under CPU pressure, governor on vs off (the anchor)
#   soak          10 min of mixed REST + WebSocket chat + 2 live streams: errors, RSS growth
# (The ladder's CPU benchmark is `cargo bench -p rill-ingest --bench bench-ladder`.)
#
# RILL_LAMBDA_DIR=<dir> runs the functions from cargo-lambda's output instead
# (<dir>/<function>/bootstrap, e.g. target/lambda after `cargo lambda build --release
# -p rill-api` or `sam build`): the shipped artifacts. A function missing there runs from
# the local-release build; the run says which.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
name="${1:-}"
case "$name" in
    api | realtime | post | availability | latency | overload | soak) shift ;;
    *)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
"$ROOT/scripts/setup.sh"
export RILL_VENV="${RILL_VENV:-$ROOT/.venv}"
# The realtime benchmark opens thousands of sockets (the soak, hundreds for minutes).
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
# The latency benchmark serves the web app.
[ "$name" = latency ] && (cd web && npm run build --silent)
cargo build --profile local-release -p rill-api -p rill-gateway -p rill-ingest -p rill-tests --bins --quiet
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
if [ -n "${RILL_LAMBDA_DIR:-}" ]; then
    lambda_dir="$(cd "$RILL_LAMBDA_DIR" && pwd)"
    RILL_FUNCTIONS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rill-bench-functions.XXXXXX")"
    trap 'rm -rf "$RILL_FUNCTIONS_DIR"' EXIT
    shipped=0 local=()
    for f in functions/api/src/bin/*.rs; do
        f="$(basename "$f" .rs)"
        if [ -x "$lambda_dir/$f/bootstrap" ]; then
            ln -s "$lambda_dir/$f/bootstrap" "$RILL_FUNCTIONS_DIR/$f"
            shipped=$((shipped + 1))
        else
            ln -s "$TARGET_DIR/local-release/$f" "$RILL_FUNCTIONS_DIR/$f"
            local+=("$f")
        fi
    done
    echo "bench: $shipped functions from $lambda_dir; from local-release: ${local[*]:-none}"
    export RILL_FUNCTIONS_DIR
    "$TARGET_DIR/local-release/bench-$name" "$@"
    exit
fi
exec "$TARGET_DIR/local-release/bench-$name" "$@"
