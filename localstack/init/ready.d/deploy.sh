#!/usr/bin/env bash
# LocalStack "ready" hook: deploys infra/template.yaml (the same SAM template as
# AWS) into this LocalStack, using the function binaries built on the host, then
# writes the ingest node's environment file (table and bucket names, HLS base URL)
# for the compose file's `ingest` service.
#
# Runs inside the LocalStack container; the repository is mounted read-only at
# /rill (see ../../docker-compose.yml). Untested on the development machines,
# which have no Docker engine - see ../../README.md. What can run without Docker
# (this script with a stand-in `aws`, and its helper ../rill_localstack.py) is
# tested by tests/deploy/test_localstack.py.
#
# Binaries, either of (checked in this order):
#   * `sam build` output: /rill/.aws-sam/build/template.yaml (`sam build -t
#     infra/template.yaml` from the repo root) or /rill/infra/.aws-sam/build/
#     (`sam build` inside infra/); the newer if both exist
#   * `cargo lambda build --release -p rill-api` output:
#     /rill/target/lambda/<bin>/bootstrap (the template's
#     Metadata.BuildProperties.Binary names <bin>)
set -euo pipefail

REPO="${RILL_REPO:-/rill}"
STACK="${RILL_STACK_NAME:-rill}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"
ARTIFACTS_BUCKET="${RILL_ARTIFACTS_BUCKET:-rill-sam-artifacts}"
MEDIA_BUCKET="${RILL_MEDIA_BUCKET:-rill-media-local}"
INGEST_URL="${RILL_INGEST_PUBLIC_URL:-http://127.0.0.1:8889}"
RTMP_URL="${RILL_RTMP_PUBLIC_URL:-rtmp://127.0.0.1:1935/live}"
# Development only; the template requires >= 32 characters or empty.
JWT_SECRET="${RILL_JWT_SECRET:-rill-localstack-dev-secret-not-for-production}"
# No CloudFront in LocalStack Community: players read the bucket path-style.
HLS_BASE_URL="${RILL_HLS_BASE_URL:-http://localhost.localstack.cloud:4566/$MEDIA_BUCKET}"
# Shared with the ingest service (a named volume): ingest.env is written last, only
# when the deployment succeeded, and the compose healthcheck waits for it.
OUT_DIR="${RILL_OUT_DIR:-/var/lib/rill-localstack}"
HELPER="$REPO/localstack/init/rill_localstack.py"

log() { printf 'rill-deploy: %s\n' "$*"; }
die() { printf 'rill-deploy: error: %s\n' "$*" >&2; exit 1; }

# Plain aws CLI with AWS_ENDPOINT_URL rather than awslocal/--endpoint-url:
# `cloudformation package` builds its own S3 client, which ignores
# --endpoint-url but honours the environment variable (and path-style below).
command -v aws >/dev/null 2>&1 || die "the aws CLI is not available in this container"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://localhost:4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
aws_() { aws --region "$REGION" "$@"; }

[ -f "$REPO/infra/template.yaml" ] || die "$REPO/infra/template.yaml not found (is the repo mounted at $REPO?)"
[ -f "$HELPER" ] || die "$HELPER not found"
command -v python3 >/dev/null 2>&1 || die "python3 is not available in this container"

# A file left by an earlier run must not let the ingest node start before this one.
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR/ingest.env"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '[default]\ns3 =\n    addressing_style = path\n' >"$work/aws-config"
export AWS_CONFIG_FILE="$work/aws-config"

sam_built="$(python3 "$HELPER" sam-build "$REPO")"
if [ -n "$sam_built" ]; then
    log "using sam build output ($(dirname "$sam_built"))"
    built="$sam_built"
else
    # Point each function's CodeUri at its cargo-lambda output directory.
    built="$work/template.yaml"
    python3 "$HELPER" codeuri "$REPO/infra/template.yaml" "$REPO/target/lambda" "$built" >"$work/binaries" ||
        die "could not rewrite the CodeUri of the functions in $REPO/infra/template.yaml"
    missing=()
    while read -r bin; do
        [ -x "$REPO/target/lambda/$bin/bootstrap" ] || missing+=("$bin")
    done <"$work/binaries"
    if [ "${#missing[@]}" -gt 0 ]; then
        die "not built: ${missing[*]}. On the host, from the repo root: cargo lambda build --release -p rill-api (or sam build -t infra/template.yaml)"
    fi
    log "using cargo lambda binaries ($REPO/target/lambda)"
fi

aws_ s3api head-bucket --bucket "$ARTIFACTS_BUCKET" >/dev/null 2>&1 ||
    aws_ s3 mb "s3://$ARTIFACTS_BUCKET" >/dev/null

log "packaging"
aws_ cloudformation package \
    --template-file "$built" \
    --s3-bucket "$ARTIFACTS_BUCKET" \
    --output-template-file "$work/packaged.yaml" >/dev/null

# CreateUserPool=false: sign-in here is HS256 tokens signed with JWT_SECRET
# (scripts/dev-token.py). LocalStack Community has no Cognito, and LocalStack's
# Cognito issues tokens under its own issuer, not the
# https://cognito-idp.<region>.amazonaws.com/<pool> the template trusts.
log "deploying stack $STACK"
aws_ cloudformation deploy \
    --stack-name "$STACK" \
    --template-file "$work/packaged.yaml" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --no-fail-on-empty-changeset \
    --parameter-overrides \
        "JwtSecret=$JWT_SECRET" \
        "CreateUserPool=false" \
        "MediaBucketName=$MEDIA_BUCKET" \
        "HlsBaseUrl=$HLS_BASE_URL" \
        "IngestPublicUrl=$INGEST_URL" \
        "RtmpPublicUrl=$RTMP_URL"

log "stack outputs:"
aws_ cloudformation describe-stacks --stack-name "$STACK" \
    --query 'Stacks[0].Outputs' --output json >"$work/outputs.json"
python3 -c 'import json, sys
for o in json.load(open(sys.argv[1])) or []:
    print(o["OutputKey"], o["OutputValue"], sep="\t")' "$work/outputs.json"
log "HLS_BASE_URL=$HLS_BASE_URL"

python3 "$HELPER" ingest-env "$work/outputs.json" "$HLS_BASE_URL" "$OUT_DIR/ingest.env" ||
    die "could not write $OUT_DIR/ingest.env"
log "wrote $OUT_DIR/ingest.env (the ingest service starts once it exists):"
sed 's/^/    /' "$OUT_DIR/ingest.env"
