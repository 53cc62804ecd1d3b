#!/usr/bin/env bash
# scripts/test.sh - run every check and test: formatting, lints, the template lint, a brief
# run of every fuzz target, unit tests and the end-to-end tests (real moto, real gateway,
# real function binaries).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/setup.sh"
VENV="${RILL_VENV:-$ROOT/.venv}"
export RILL_VENV="$VENV"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "dependency layering (rill-core SDK-free; rill-ingest reaches AWS only through rill-aws)"
"$ROOT/scripts/check-layering.sh"

step "cfn-lint infra/template.yaml (as written and after the SAM transform)"
"$ROOT/scripts/lint-template.sh" "$ROOT/infra/template.yaml"

step "deploy tests without AWS: the SAM-expanded template on moto's CloudFormation, localstack/, the guided deploy"
"$VENV/bin/python" "$ROOT/tests/deploy/test_template_deploy.py"
"$VENV/bin/python" "$ROOT/tests/deploy/test_localstack.py"  # localstack/: compose schema, hook (no Docker)
"$VENV/bin/python" "$ROOT/tests/deploy/test_cost_model.py"  # cost model: totals add up, README table current
"$ROOT/scripts/deploy-dry-run.sh"  # README's sam build + sam deploy --guided, all defaults, up to the first AWS call

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "web: typecheck, unit tests (vitest), build (served by the gateway in the browser e2e test)"
(cd "$ROOT/web" && npm run --silent test && npm run --silent build)

step "cargo build --workspace --bins (the end-to-end tests run these binaries)"
cargo build --workspace --bins --quiet

step "the shipped Lambda artifact: cargo lambda build as sam build runs it, glibc <= 2.34, run under the gateway against moto"
# Cold (empty target directory) this compiles the functions' dependencies with zig once
# (~6 min on 2 cores); warm it takes ~10 s, ~1 min after a change to the functions' code.
"$ROOT/scripts/check-lambda-artifact.sh"

step "ingest image: hadolint, runtime packages of ingest-node/Dockerfile vs the libraries rill-ingest links"
"$ROOT/scripts/check-image.sh" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/rill-ingest"

step "fuzz: every AFL++ target for 20 s (scripts/fuzz.sh; fails on any crash)"
# Instrumented build in its own target directory; cold ~15 min on 2 cores, warm seconds.
"$ROOT/scripts/fuzz.sh" all --seconds 20

step "cargo test --workspace"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/rill-test-output.txt"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "${TMPDIR:-/tmp}/rill-test-output.txt" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
# Only the harness's own summary lines: a log line such as "index.m3u8 failed" is not a count.
failed=$(grep -Eo '^test result: .*' "${TMPDIR:-/tmp}/rill-test-output.txt" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo
echo "$passed passed, $failed failed"
exit "$status"
