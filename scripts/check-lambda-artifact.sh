#!/usr/bin/env bash
# scripts/check-lambda-artifact.sh - proves the artifact `sam build` ships, not a local build.
#
#   1. Builds streams-create and streams-get exactly as SAM's rust-cargolambda workflow does
#      (aws-lambda-builders 1.67): `cargo lambda build --release --bin <name>`, one function
#      per invocation, from the workspace root, with CARGO_TARGET_DIR = the workspace's
#      target directory (SAM sets it from `cargo metadata` when it is unset). cargo-lambda
#      builds through zig for x86_64-unknown-linux-gnu (zig's default glibc) with
#      -C target-cpu=haswell.
#   2. Checks each bootstrap: an x86-64 ELF whose highest GLIBC_x.y symbol version is
#      <= 2.34 (provided.al2023's glibc), and that links no FFmpeg library.
#   3. Runs both bootstraps under the local gateway (rill-gateway, Lambda Runtime API)
#      against a moto server: POST /api/streams/create with an HS256 development token
#      answers 201, and GET /api/streams/{id} answers 200 with that stream.
#
# The gateway refuses to start unless every function of the template has a binary, so its
# functions directory holds the two shipped bootstraps (copied, under their function names)
# and symlinks to the debug builds of the other functions (`cargo build -p rill-api
# --bins`, built here if missing); only the two checked functions are called.
#
# Needs: cargo-lambda (+ zig) from the SAM CLI venv ($RILL_SAM_VENV, default <repo>/.venv-sam,
# made by scripts/setup.sh), moto in $RILL_VENV (default <repo>/.venv), objdump, curl.
# Cold (empty target directory) it compiles the functions' dependency tree once with zig:
# minutes on 2 cores; warm (nothing changed) it takes seconds plus the gateway run.
#
# Environment: CARGO_TARGET_DIR (default: the workspace's target/), RILL_VENV, RILL_SAM_VENV,
# RILL_GLIBC_MAX (default 2.34), RILL_DEBUG_BIN_DIR (where the debug rill-gateway and
# functions are; default $CARGO_TARGET_DIR/debug, built there if missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${RILL_VENV:-$ROOT/.venv}"
SAM_VENV="${RILL_SAM_VENV:-$ROOT/.venv-sam}"
GLIBC_MAX="${RILL_GLIBC_MAX:-2.34}"
FUNCTIONS=(streams-create streams-get)

fail() { printf 'check-lambda-artifact: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok   %s\n' "$*"; }

[ -x "$SAM_VENV/bin/cargo-lambda" ] || "$ROOT/scripts/setup.sh"
[ -x "$SAM_VENV/bin/cargo-lambda" ] || fail "no cargo-lambda in $SAM_VENV (scripts/setup.sh installs it)"
[ -x "$VENV/bin/python" ] || fail "no venv at $VENV (run scripts/setup.sh)"
# cargo-lambda finds zig through the ziglang wheel of its own venv (python3 -m ziglang).
export PATH="$SAM_VENV/bin:$PATH"

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
export CARGO_TARGET_DIR="$TARGET_DIR"

# ---------------------------------------------------------------------------------------
# 1. the build SAM runs
# ---------------------------------------------------------------------------------------
BUILD_LOG="$(mktemp "${TMPDIR:-/tmp}/rill-lambda-build.XXXXXX")"
for f in "${FUNCTIONS[@]}"; do
    started=$(date +%s)
    # Exactly SAM's command line (no --quiet either); its output goes to a log.
    if ! cargo lambda build --release --bin "$f" >"$BUILD_LOG" 2>&1; then
        tail -n 40 "$BUILD_LOG" >&2
        fail "cargo lambda build --release --bin $f"
    fi
    ok "cargo lambda build --release --bin $f ($(($(date +%s) - started)) s, CARGO_TARGET_DIR=$TARGET_DIR)"
done
rm -f "$BUILD_LOG"
# The functions' build never compiles FFmpeg (rill-ingest is not a dependency of rill-api).
if ls "$TARGET_DIR"/x86_64-unknown-linux-gnu/release/build 2>/dev/null | grep -q '^ffmpeg-sys'; then
    fail "ffmpeg-sys was built into $TARGET_DIR/x86_64-unknown-linux-gnu/release: the functions' build must not compile the ingest node"
fi

# ---------------------------------------------------------------------------------------
# 2. the artifacts
# ---------------------------------------------------------------------------------------
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }
for f in "${FUNCTIONS[@]}"; do
    boot="$TARGET_DIR/lambda/$f/bootstrap"
    [ -x "$boot" ] || fail "no $boot"
    file -b "$boot" | grep -q 'ELF 64-bit LSB .*x86-64' || fail "$boot is not an x86-64 ELF: $(file -b "$boot")"
    glibc="$(objdump -T "$boot" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)"
    [ -n "$glibc" ] || fail "$boot requires no GLIBC symbol version (not a glibc binary?)"
    version_le "$glibc" "$GLIBC_MAX" || fail "$boot requires GLIBC_$glibc > $GLIBC_MAX (provided.al2023)"
    needed="$(objdump -p "$boot" | awk '/NEEDED/ {print $2}' | tr '\n' ' ')"
    case "$needed" in *libav* | *libsw*) fail "$boot links FFmpeg: $needed" ;; esac
    ok "$f bootstrap: $(stat -c %s "$boot") bytes, highest GLIBC_$glibc (<= $GLIBC_MAX), needs ${needed% }"
done

# ---------------------------------------------------------------------------------------
# 3. the bootstraps under the local gateway, against moto
# ---------------------------------------------------------------------------------------
DEBUG_DIR="${RILL_DEBUG_BIN_DIR:-$TARGET_DIR/debug}"
if [ ! -x "$DEBUG_DIR/rill-gateway" ] || [ ! -x "$DEBUG_DIR/streams-list" ]; then
    [ -z "${RILL_DEBUG_BIN_DIR:-}" ] || fail "no rill-gateway or function binaries in $DEBUG_DIR"
    cargo build -p rill-gateway -p rill-api --bins --quiet
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rill-lambda-check.XXXXXX")"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

FN_DIR="$WORK/functions"
mkdir -p "$FN_DIR"
for name in $(grep -E '^\s+Binary:\s' infra/template.yaml | awk '{print $2}' | sort -u); do
    ln -s "$DEBUG_DIR/$name" "$FN_DIR/$name"
done
for f in "${FUNCTIONS[@]}"; do
    rm -f "$FN_DIR/$f"
    cp "$TARGET_DIR/lambda/$f/bootstrap" "$FN_DIR/$f"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT="$(free_port)"
"$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break
    sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" || fail "moto did not start (see $WORK/moto.log)"

export JWT_SECRET="rill-lambda-check-$(date +%s%N)"
suffix="lambda-check-$(date +%s)"
AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_REGION=us-east-1 TABLE_NAME="rill-$suffix" BUCKET_NAME="rill-$suffix" RUST_LOG=warn \
    "$DEBUG_DIR/rill-gateway" --port 0 --init-resources --no-stream-poller \
    --template infra/template.yaml --functions-dir "$FN_DIR" \
    >"$WORK/gateway.out" 2>"$WORK/gateway.log" &
PIDS+=($!)
BASE=""
for _ in $(seq 1 300); do
    BASE="$(sed -n 's/^rill-gateway listening on //p' "$WORK/gateway.out" | head -n1)"
    [ -n "$BASE" ] && break
    kill -0 "${PIDS[1]}" 2>/dev/null || break
    sleep 0.1
done
[ -n "$BASE" ] || fail "the gateway did not start: $(tail -n 20 "$WORK/gateway.log")"

TOKEN="$(python3 scripts/dev-token.py lambda-check "Lambda Check")"
status="$(curl -s -o "$WORK/create.json" -w '%{http_code}' -X POST "$BASE/api/streams/create" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"channelId":"lambda-check","title":"Shipped bootstrap"}')"
[ "$status" = 201 ] || fail "POST /api/streams/create answered $status: $(cat "$WORK/create.json")"
id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/create.json")"
ok "streams-create (shipped bootstrap) under rill-gateway + moto: 201, stream $id"

status="$(curl -s -o "$WORK/get.json" -w '%{http_code}' "$BASE/api/streams/$id")"
[ "$status" = 200 ] || fail "GET /api/streams/$id answered $status: $(cat "$WORK/get.json")"
python3 - "$WORK/get.json" "$id" <<'PY' || fail "GET /api/streams/$id: $(cat "$WORK/get.json")"
import json, sys
body = json.load(open(sys.argv[1]))
assert body.get("id") == sys.argv[2], body
assert body.get("title") == "Shipped bootstrap", body
PY
ok "streams-get (shipped bootstrap): 200, the stream created above"

# The instances that answered were the copied bootstraps (the gateway's stats name them).
python3 - "$BASE" <<'PY' || fail "the gateway did not run the shipped bootstraps"
import json, sys, urllib.request
stats = json.load(urllib.request.urlopen(sys.argv[1] + "/_gateway/stats"))
for f in ("streams-create", "streams-get"):
    assert stats["functions"][f]["instances"], f
PY
ok "both requests were served by instances of the shipped bootstraps"
