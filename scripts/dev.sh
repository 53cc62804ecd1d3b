#!/usr/bin/env bash
# scripts/dev.sh - set up and run Rill's local stack in the foreground; Ctrl-C stops it.
#
# Installs what is missing (scripts/setup.sh), builds the workspace, starts moto (S3),
# Amazon's DynamoDB Local (DynamoDB and DynamoDB Streams; RILL_DYNAMODB=moto puts DynamoDB
# on moto instead) and rill-gateway (REST API, web app, HLS from the bucket), creates the
# table and bucket, and prints the URLs and a dev JWT. Every setting below can be given in the
# environment beforehand; a value set there wins over the default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/setup.sh"
VENV="${RILL_VENV:-$ROOT/.venv}"

mkdir -p "$ROOT/.rill"
MOTO_PORT="${MOTO_PORT:-4566}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
GATEWAY_PORT="${GATEWAY_PORT:-3000}"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:$MOTO_PORT}"
if [ "${RILL_DYNAMODB:-}" = moto ]; then
    export AWS_ENDPOINT_URL_DYNAMODB="${AWS_ENDPOINT_URL_DYNAMODB:-$AWS_ENDPOINT_URL}"
else
    export AWS_ENDPOINT_URL_DYNAMODB="${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:$DYNAMODB_PORT}"
fi
# DynamoDB Local serves the table's stream on the same port.
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="${AWS_ENDPOINT_URL_DYNAMODB_STREAMS:-$AWS_ENDPOINT_URL_DYNAMODB}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export TABLE_NAME="${TABLE_NAME:-rill}"
export BUCKET_NAME="${BUCKET_NAME:-rill-media}"
export HLS_BASE_URL="${HLS_BASE_URL:-http://127.0.0.1:$GATEWAY_PORT/hls}"
export WS_MANAGEMENT_ENDPOINT="${WS_MANAGEMENT_ENDPOINT:-http://127.0.0.1:$GATEWAY_PORT}"
export INGEST_PUBLIC_URL="${INGEST_PUBLIC_URL:-http://127.0.0.1:8889}"
export RTMP_PUBLIC_URL="${RTMP_PUBLIC_URL:-rtmp://127.0.0.1:1935/live}"
# The node's own default is what its cores carry at a 1080p ladder's cost (1 stream on 2
# cores); a laptop demo may run a few smaller streams side by side.
export NODE_CAPACITY="${NODE_CAPACITY:-4}"
export RUST_LOG="${RUST_LOG:-info}"
# The dev secret is generated once and kept out of git, so tokens survive restarts.
if [ -z "${JWT_SECRET:-}" ]; then
    mkdir -p "$ROOT/.rill"
    [ -s "$ROOT/.rill/jwt-secret" ] || head -c 32 /dev/urandom | base64 | tr -d '\n=+/' >"$ROOT/.rill/jwt-secret"
    JWT_SECRET="$(cat "$ROOT/.rill/jwt-secret")"
fi
export JWT_SECRET

echo "dev: building the web app (npm run build) and the workspace (cargo build --workspace --bins)..."
(cd "$ROOT/web" && npm run --silent build >/dev/null)
cargo build --workspace --bins --quiet
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

pids=()
stop() {
    trap - INT TERM EXIT
    # Newest first: the ingest node finalises its streams while the gateway and moto still run.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    echo "dev: stopped"
}
trap stop INT TERM EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "$AWS_ENDPOINT_URL" = "http://127.0.0.1:$MOTO_PORT" ]; then
    port_busy "$MOTO_PORT" && { echo "dev: port $MOTO_PORT is in use (another moto or LocalStack?): stop it or set MOTO_PORT" >&2; exit 1; }
    "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$ROOT/.rill/moto.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do port_busy "$MOTO_PORT" && break; sleep 0.1; done
    port_busy "$MOTO_PORT" || { echo "dev: moto did not start; see .rill/moto.log" >&2; exit 1; }
fi
if [ "$AWS_ENDPOINT_URL_DYNAMODB" = "http://127.0.0.1:$DYNAMODB_PORT" ]; then
    port_busy "$DYNAMODB_PORT" && { echo "dev: port $DYNAMODB_PORT is in use (another DynamoDB Local?): stop it or set DYNAMODB_PORT" >&2; exit 1; }
    "$ROOT/scripts/dynamodb-local.sh" -port "$DYNAMODB_PORT" >"$ROOT/.rill/dynamodb-local.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do port_busy "$DYNAMODB_PORT" && break; sleep 0.1; done
    port_busy "$DYNAMODB_PORT" || { echo "dev: DynamoDB Local did not start; see .rill/dynamodb-local.log" >&2; exit 1; }
fi

port_busy "$GATEWAY_PORT" && { echo "dev: port $GATEWAY_PORT is in use: stop that process or set GATEWAY_PORT" >&2; exit 1; }
"$TARGET_DIR/rill-gateway" --port "$GATEWAY_PORT" --init-resources --template "$ROOT/infra/template.yaml" \
    --functions-dir "$TARGET_DIR" --static-dir "$ROOT/web/dist" > >(tee "$ROOT/.rill/gateway.stdout") &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening" "$ROOT/.rill/gateway.stdout" 2>/dev/null && break; sleep 0.1; done
grep -q "listening" "$ROOT/.rill/gateway.stdout" || { echo "dev: the gateway did not start" >&2; exit 1; }

RTMP_PORT="${RTMP_PORT:-1935}"
INGEST_PORT="${INGEST_PORT:-8889}"
port_busy "$RTMP_PORT" && { echo "dev: port $RTMP_PORT (RTMP) is in use: stop that process or set RTMP_PORT" >&2; exit 1; }
RTMP_ADDR="127.0.0.1:$RTMP_PORT" INGEST_HTTP_ADDR="127.0.0.1:$INGEST_PORT" \
    "$TARGET_DIR/rill-ingest" > >(tee "$ROOT/.rill/ingest.stdout") &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening" "$ROOT/.rill/ingest.stdout" 2>/dev/null && break; sleep 0.1; done
grep -q "listening" "$ROOT/.rill/ingest.stdout" || { echo "dev: the ingest node did not start" >&2; exit 1; }

TOKEN="$(python3 "$ROOT/scripts/dev-token.py" demo-user "Demo User")"
VIEWER_TOKEN="$(python3 "$ROOT/scripts/dev-token.py" demo-viewer "Demo Viewer")"
cat <<INFO

Rill local stack is up.
  Web app        http://127.0.0.1:$GATEWAY_PORT/#token=$TOKEN
                 broadcaster "demo-user": "Go live", allow the camera, then share the watch link
  Second user    http://localhost:$GATEWAY_PORT/#token=$VIEWER_TOKEN
                 viewer "demo-viewer" (another origin, so its sign-in is separate): chat, react
  REST API       http://127.0.0.1:$GATEWAY_PORT/api   (OpenAPI: /api/openapi.json)
  HLS (CDN)      $HLS_BASE_URL
  moto (S3)      $AWS_ENDPOINT_URL   bucket=$BUCKET_NAME
  DynamoDB       $AWS_ENDPOINT_URL_DYNAMODB   table=$TABLE_NAME (and its stream)
  Ingest node    rtmp://127.0.0.1:$RTMP_PORT/live/<streamKey>  (OBS "Custom"), http://127.0.0.1:$INGEST_PORT/metrics

Dev JWT for "demo-user" (valid 7 days):
  export TOKEN=$TOKEN

Try:
  curl -X POST http://localhost:$GATEWAY_PORT/api/streams/create -H "Content-Type: application/json" -H "Authorization: Bearer \$TOKEN" -d '{"channelId":"channel-uuid","title":"Test Stream","description":"Testing live streaming"}'

Go live with the streamKey from the create response (OBS: Server rtmp://127.0.0.1:$RTMP_PORT/live, Stream Key <streamKey>):
  ffmpeg -re -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i sine=frequency=440 -c:v libx264 -preset veryfast -b:v 3000k -g 60 -c:a aac -f flv rtmp://127.0.0.1:$RTMP_PORT/live/<streamKey>
Watch: curl http://localhost:$GATEWAY_PORT/api/streams/<id>/hls  ->  ffplay (or hls.js) on the manifestUrl

Ctrl-C stops everything (live streams are finalised first).
INFO
wait -n "${pids[@]}" || true
echo "dev: a process exited; stopping the stack" >&2
