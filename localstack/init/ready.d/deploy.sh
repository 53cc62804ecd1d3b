#!/usr/bin/env bash
# LocalStack "ready" hook: deploys infra/template.yaml (the same SAM template as
# AWS) into this LocalStack, using the function binaries built on the host.
#
# Runs inside the LocalStack container; the repository is mounted read-only at
# /rill (see ../../docker-compose.yml). Untested on the development machines,
# which have no Docker engine - see ../../README.md.
#
# Binaries, either of (checked in this order):
#   * `sam build --beta-features` output: /rill/.aws-sam/build/template.yaml
#   * `cargo lambda build --release` output: /rill/target/lambda/<bin>/bootstrap
#     (the template's Metadata.BuildProperties.Binary names <bin>)
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

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '[default]\ns3 =\n    addressing_style = path\n' >"$work/aws-config"
export AWS_CONFIG_FILE="$work/aws-config"

if [ -f "$REPO/.aws-sam/build/template.yaml" ]; then
    log "using sam build output ($REPO/.aws-sam/build)"
    built="$REPO/.aws-sam/build/template.yaml"
else
    # Point each function's CodeUri at its cargo-lambda output directory. The
    # template keeps Metadata (with Binary) before Properties (with CodeUri) in
    # every function, so one pass suffices.
    built="$work/template.yaml"
    awk -v target="$REPO/target/lambda" '
        /^        Binary: / { bin = $2 }
        /^      CodeUri: / {
            if (bin == "") { print "CodeUri before Binary" > "/dev/stderr"; exit 1 }
            print "      CodeUri: " target "/" bin "/"; bin = ""; next
        }
        { print }
    ' "$REPO/infra/template.yaml" >"$built"
    missing=()
    while read -r bin; do
        [ -x "$REPO/target/lambda/$bin/bootstrap" ] || missing+=("$bin")
    done < <(sed -n 's/^        Binary: //p' "$REPO/infra/template.yaml")
    if [ "${#missing[@]}" -gt 0 ]; then
        die "not built: ${missing[*]}. On the host, from the repo root: cargo lambda build --release (or sam build --beta-features)"
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

log "deploying stack $STACK"
aws_ cloudformation deploy \
    --stack-name "$STACK" \
    --template-file "$work/packaged.yaml" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --no-fail-on-empty-changeset \
    --parameter-overrides \
        "JwtSecret=$JWT_SECRET" \
        "MediaBucketName=$MEDIA_BUCKET" \
        "HlsBaseUrl=$HLS_BASE_URL" \
        "IngestPublicUrl=$INGEST_URL" \
        "RtmpPublicUrl=$RTMP_URL"

log "stack outputs:"
aws_ cloudformation describe-stacks --stack-name "$STACK" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
log "HLS_BASE_URL=$HLS_BASE_URL"
