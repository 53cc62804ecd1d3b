#!/usr/bin/env bash
# scripts/check-image-rootfs.sh [rill-ingest binary] - prove that the runtime stage of
# ingest-node/Dockerfile installs everything rill-ingest needs, without Docker: build a
# Debian 12 (bookworm) rootfs with mmdebstrap from exactly the runtime stage's packages
# (parsed from the Dockerfile) on the minbase variant (what debian:bookworm-slim is made
# of), copy the binary and the image's entry point in, and in a chroot, as the image's
# non-root user 10001:
#
#   1. the dynamic loader resolves every library (ldd: nothing "not found");
#   2. `rill-ingest --version` prints a version - or, for a binary without that flag yet,
#      the node starts instead, which is then the evidence;
#   3. the node starts through the entry point with the image's wildcard WebRTC bind
#      (the entry point fills in WEBRTC_ADVERTISE_IP), /healthz answers 200, and the
#      Dockerfile's own HEALTHCHECK command succeeds inside the rootfs;
#   4. the host's ffmpeg publishes a few seconds of RTMP to 127.0.0.1. No table or bucket
#      exists (AWS_ENDPOINT_URL points at a closed port on 127.0.0.1), so the node refuses
#      the stream key; the node's "rtmp stream key refused" line is the evidence that it
#      took the RTMP connection, completed the handshake and ran its publish path;
#   5. SIGTERM stops it cleanly.
#
# Slow (the rootfs download, ~100 MB) and needs root (chroot), mmdebstrap, the Debian
# mirror, ffmpeg and curl: not part of scripts/test.sh. Every socket is on 127.0.0.1
# except the WebRTC UDP bind (0.0.0.0, as in the image; nothing is sent to it).
#
# Environment:
#   RILL_ROOTFS_DIR   where to build the rootfs (default: a temporary directory, removed
#                     at the end). A directory from an earlier run with the same package
#                     list is reused.
#   RILL_KEEP_ROOTFS=1  keep the temporary rootfs.
#   RILL_DOCKERFILE   the Dockerfile whose runtime packages to use (default ingest-node/Dockerfile).
#   RILL_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian), and
#   RILL_DEBIAN_SECURITY  its security archive (default http://deb.debian.org/debian-security).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERFILE="${RILL_DOCKERFILE:-$ROOT/ingest-node/Dockerfile}"
ENTRYPOINT="$ROOT/ingest-node/docker-entrypoint.sh"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
MIRROR="${RILL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${RILL_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
USERSPEC=10001:10001

log() { printf 'check-image-rootfs: %s\n' "$*"; }
fail() { printf 'check-image-rootfs: FAIL: %s\n' "$*" >&2; exit 1; }

BIN="${1:-}"
if [ -z "$BIN" ]; then
    for b in "$TARGET_DIR/release/rill-ingest" "$TARGET_DIR/debug/rill-ingest"; do
        [ -f "$b" ] && BIN="$b" && break
    done
fi
[ -n "$BIN" ] && [ -f "$BIN" ] ||
    fail "no rill-ingest binary (build one: cargo build -p rill-ingest --bin rill-ingest, or pass its path)"
[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap's root mode and chroot)"
for tool in mmdebstrap chroot ffmpeg curl python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (apt-get install mmdebstrap ffmpeg curl)"
done

mapfile -t PACKAGES < <(python3 "$ROOT/scripts/dockerfile_packages.py" "$DOCKERFILE")
[ "${#PACKAGES[@]}" -gt 0 ] || fail "no runtime packages parsed from $DOCKERFILE"
log "runtime stage packages: ${PACKAGES[*]}"
log "binary: $BIN"

# ------------------------------------------------------------------------ rootfs
if [ -n "${RILL_ROOTFS_DIR:-}" ]; then
    ROOTFS="$RILL_ROOTFS_DIR"
    KEEP=1
else
    ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/rill-rootfs.XXXXXX")"
    KEEP="${RILL_KEEP_ROOTFS:-0}"
fi
NODE_PID=""
LOG="$(mktemp "${TMPDIR:-/tmp}/rill-rootfs-node.XXXXXX.log")"
cleanup() {
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -KILL "$NODE_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then
        log "rootfs kept at $ROOTFS"
    else
        rm -rf --one-file-system "$ROOTFS"
    fi
    rm -f "$LOG"
}
trap cleanup EXIT

stamp="$(printf '%s\n' "${PACKAGES[@]}" "$MIRROR" "$SECURITY" | cksum | cut -d' ' -f1)"
if [ -f "$ROOTFS/.rill-rootfs-stamp" ] && [ "$(cat "$ROOTFS/.rill-rootfs-stamp")" = "$stamp" ]; then
    log "reusing the rootfs at $ROOTFS"
else
    [ -z "$(ls -A "$ROOTFS" 2>/dev/null)" ] || fail "$ROOTFS is not empty and not a rootfs of this script"
    include="$(IFS=,; printf '%s' "${PACKAGES[*]}")"
    log "mmdebstrap bookworm (minbase + $include) into $ROOTFS ..."
    started=$SECONDS
    # No recommends, like the Dockerfile's --no-install-recommends. Sources as in
    # debian:bookworm-slim: main, updates, security. Stdin closed: mmdebstrap would read
    # sources from a non-terminal stdin.
    mmdebstrap --variant=minbase --mode=root --quiet \
        --aptopt='APT::Install-Recommends "false"' \
        --include="$include" \
        bookworm "$ROOTFS" \
        "deb $MIRROR bookworm main" \
        "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY bookworm-security main" </dev/null ||
        fail "mmdebstrap failed (is the Debian mirror reachable? RILL_DEBIAN_MIRROR)"
    printf '%s\n' "$stamp" >"$ROOTFS/.rill-rootfs-stamp"
    log "rootfs ready in $((SECONDS - started)) s ($(du -sh --exclude=proc --exclude=sys "$ROOTFS" 2>/dev/null | cut -f1))"
fi

# What the Dockerfile does after apt-get: the user, the binary, the entry point.
chroot "$ROOTFS" getent group 10001 >/dev/null || chroot "$ROOTFS" groupadd --system --gid 10001 rill
chroot "$ROOTFS" getent passwd 10001 >/dev/null ||
    chroot "$ROOTFS" useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin rill 2>/dev/null
install -D -m 0755 "$BIN" "$ROOTFS/usr/local/bin/rill-ingest"
install -D -m 0755 "$ENTRYPOINT" "$ROOTFS/usr/local/bin/rill-ingest-entrypoint"
# Name resolution inside the chroot (the node resolves nothing but 127.0.0.1 here).
cp /etc/hosts "$ROOTFS/etc/hosts"

in_rootfs() {
    # A clean environment like the image's: PATH, the image's ENV, plus what is passed.
    chroot --userspec="$USERSPEC" "$ROOTFS" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/nonexistent RUST_LOG=info NO_COLOR=1 "$@"
}
# In the background: `start_in_rootfs ... &` then $! is the node itself (chroot, env, the
# entry point and the node each exec the next), so signals reach it.
start_in_rootfs() {
    exec chroot --userspec="$USERSPEC" "$ROOTFS" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/nonexistent RUST_LOG=info NO_COLOR=1 "$@"
}

# ---------------------------------------------------------------- 1. the loader
ldd_out="$(chroot "$ROOTFS" /usr/bin/ldd /usr/local/bin/rill-ingest 2>&1)" ||
    fail "ldd in the rootfs failed: $ldd_out"
if grep -q 'not found' <<<"$ldd_out"; then
    printf '%s\n' "$ldd_out" >&2
    fail "libraries missing from the runtime packages (above: 'not found')"
fi
log "1. ldd in the rootfs: $(grep -c '=>' <<<"$ldd_out") libraries resolved, none missing"

# ------------------------------------------------------------------ free ports
read -r RTMP_PORT HTTP_PORT UDP_PORT CLOSED_PORT < <(python3 - <<'PY'
import socket
socks = []
for kind in (socket.SOCK_STREAM, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
PY
)
NODE_ENV=(
    RTMP_ADDR="127.0.0.1:$RTMP_PORT"
    INGEST_HTTP_ADDR="127.0.0.1:$HTTP_PORT"
    WEBRTC_UDP_ADDR="0.0.0.0:$UDP_PORT"
    # Nothing listens there: every DynamoDB/S3 call fails at once, on this machine.
    AWS_ENDPOINT_URL="http://127.0.0.1:$CLOSED_PORT"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    TABLE_NAME=rill-rootfs-check BUCKET_NAME=rill-rootfs-check
    AWS_EC2_METADATA_DISABLED=true
)

healthz() { curl -fsS --max-time 2 "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null; }

wait_for_health() { # pid, seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 1
        [ "$(healthz)" = ok ] && return 0
        sleep 0.1
    done
    return 1
}

stop_node() { # pid; SIGTERM, then wait for the node to finish its streams
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1" 2>/dev/null || true
        return 1
    fi
    wait "$1" 2>/dev/null
}

# ------------------------------------------------------------ 2. --version
# Called directly (no entry point), so WebRTC binds loopback rather than the wildcard.
start_in_rootfs "${NODE_ENV[@]}" WEBRTC_UDP_ADDR="127.0.0.1:$UDP_PORT" \
    /usr/local/bin/rill-ingest --version >"$LOG" 2>&1 &
NODE_PID=$!
version_seen=0
for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
        if wait "$NODE_PID"; then version_seen=1; fi
        NODE_PID=""
        break
    fi
    [ "$(healthz)" = ok ] && break
    sleep 0.1
done
if [ "$version_seen" = 1 ] && [ -s "$LOG" ]; then
    log "2. rill-ingest --version in the rootfs: $(head -n1 "$LOG")"
elif [ -n "$NODE_PID" ] && [ "$(healthz)" = ok ]; then
    log "2. this rill-ingest has no --version yet: it started the node instead (its /healthz answered); the start below is the evidence"
    stop_node "$NODE_PID" || true
    NODE_PID=""
else
    cat "$LOG" >&2
    fail "rill-ingest --version neither printed a version nor started the node (output above)"
fi

# ----------------------------------------------- 3. the node, health, HEALTHCHECK
: >"$LOG"
start_in_rootfs "${NODE_ENV[@]}" /usr/local/bin/rill-ingest-entrypoint >"$LOG" 2>&1 &
NODE_PID=$!
if ! wait_for_health "$NODE_PID" 20; then
    cat "$LOG" >&2
    fail "the node did not answer /healthz within 20 s in the rootfs (log above)"
fi
grep -aq 'WEBRTC_ADVERTISE_IP unset; advertising' "$LOG" ||
    { cat "$LOG" >&2; fail "the entry point did not fill in WEBRTC_ADVERTISE_IP for the wildcard WebRTC bind"; }
log "3. node started via the entry point ($(grep -ao 'advertising [0-9.]*' "$LOG" | head -n1)); /healthz on 127.0.0.1:$HTTP_PORT answered ok"

# The Dockerfile's HEALTHCHECK, as the image would run it (its port swapped for this run's).
mapfile -t HC < <(python3 - "$DOCKERFILE" "$HTTP_PORT" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
if not m:
    sys.exit("no HEALTHCHECK CMD [...] in the Dockerfile")
for arg in json.loads(m.group(1)):
    print(arg.replace("8889", sys.argv[2]))
PY
)
[ "${#HC[@]}" -gt 0 ] || fail "could not read the Dockerfile's HEALTHCHECK command"
in_rootfs "${HC[@]}" || fail "the Dockerfile's HEALTHCHECK command failed inside the rootfs"
log "   the Dockerfile's HEALTHCHECK command (${HC[0]} ...) succeeds inside the rootfs"

# ------------------------------------------------------------ 4. RTMP publish
log "4. publishing 3 s of RTMP (host ffmpeg, test pattern) to rtmp://127.0.0.1:$RTMP_PORT/live/<key>"
set +e
timeout 30 ffmpeg -nostdin -hide_banner -loglevel error \
    -re -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t 3 -c:v libx264 -preset ultrafast -g 30 -c:a aac -f flv \
    "rtmp://127.0.0.1:$RTMP_PORT/live/rootfs-check-key" >"$LOG.ffmpeg" 2>&1
ffmpeg_rc=$?
set -e
sleep 0.5
if grep -aq 'rtmp stream key refused' "$LOG"; then
    log "   the node took the RTMP connection and refused the key (no table on this machine), as expected:"
    grep -a 'rtmp stream key refused' "$LOG" | head -n1 | sed 's/^/     node: /'
    log "   ffmpeg exit status $ffmpeg_rc: $(tr '\n' ' ' <"$LOG.ffmpeg" | cut -c1-200)"
elif grep -aqiE 'publish|stream' "$LOG" && [ "$ffmpeg_rc" -eq 0 ]; then
    log "   ffmpeg published (exit 0); node log:"
    sed 's/^/     node: /' "$LOG" | tail -n 5
else
    cat "$LOG" >&2
    cat "$LOG.ffmpeg" >&2
    rm -f "$LOG.ffmpeg"
    fail "no sign in the node's log that it handled the RTMP publish (logs above)"
fi
rm -f "$LOG.ffmpeg"
kill -0 "$NODE_PID" 2>/dev/null || fail "the node died during the RTMP publish"
[ "$(healthz)" = ok ] || fail "/healthz stopped answering after the RTMP publish"

# ---------------------------------------------------------------- 5. SIGTERM
if stop_node "$NODE_PID"; then
    log "5. SIGTERM: the node exited cleanly"
else
    fail "the node did not exit within 30 s of SIGTERM"
fi
NODE_PID=""
log "OK: the runtime packages of ${DOCKERFILE#"$ROOT"/} run rill-ingest"
