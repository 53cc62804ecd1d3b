#!/usr/bin/env bash
# scripts/check-layering.sh - dependency rules of DESIGN.md ("Layout") that cargo cannot
# enforce by itself:
#   - rill-core depends on no AWS, Lambda or media crate;
#   - rill-ingest reaches the AWS SDK only through rill-aws (it writes media through the
#     media-bucket port of rill-core, implemented in rill-aws).
# Only normal dependencies count: dev-dependencies may use the SDK to check what tests wrote.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# AWS SDK crates (aws-sdk-*, aws-config, aws-smithy-*, aws-types, ...). aws-lc-rs/aws-lc-sys
# are a crypto library (TLS, DTLS in str0m), not the SDK.
is_sdk() { grep -E '^aws-' | grep -Ev '^aws-lc-' || true; }

# Package names of a `cargo tree --prefix none` listing, deduplicated.
names() { awk '{print $1}' | sort -u; }

failed=0

# Every package reachable from rill-ingest once rill-aws is cut out of the graph: an SDK crate
# left here is reached some other way (a direct dependency, or another crate that pulls it).
ingest=$(cargo tree -p rill-ingest -e normal --prune rill-aws --prefix none | names)
if ! grep -qx 'rill-core' <<<"$ingest"; then
    # A listing without rill-core means cargo tree did not describe rill-ingest: fail
    # rather than pass on an empty graph.
    echo "check-layering: unexpected cargo tree output for rill-ingest" >&2
    exit 1
fi
leaks=$(is_sdk <<<"$ingest")
if [ -n "$leaks" ]; then
    echo "check-layering: rill-ingest reaches AWS SDK crates other than through rill-aws:" >&2
    sed 's/^/  /' <<<"$leaks" >&2
    for crate in $(grep -E '^aws-sdk-' <<<"$leaks" || true); do
        echo "  path(s) to $crate:" >&2
        cargo tree -p rill-ingest -e normal --prune rill-aws -i "$crate" | sed 's/^/    /' >&2
    done
    failed=1
fi

core=$(cargo tree -p rill-core -e normal --prefix none | names)
core_leaks=$( (is_sdk <<<"$core"; grep -E '^(lambda_|aws_lambda_events|ffmpeg|str0m)' <<<"$core" || true) )
if [ -n "$core_leaks" ]; then
    echo "check-layering: rill-core must not depend on AWS, Lambda or media crates:" >&2
    sed 's/^/  /' <<<"$core_leaks" >&2
    failed=1
fi

if [ "$failed" -eq 0 ]; then
    echo "check-layering: ok (rill-core is SDK-free; rill-ingest reaches AWS only through rill-aws)"
fi
exit "$failed"
