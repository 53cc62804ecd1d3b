#!/usr/bin/env bash
# scripts/fuzz.sh - coverage-guided fuzzing on stable Rust: AFL++ through afl.rs (`cargo afl`).
#
#   scripts/fuzz.sh [TARGET...|all] [--execs N] [--seconds S] [--cmin]
#
# Targets (fuzz/Cargo.toml; the harnesses and their invariants are documented in
# fuzz/fuzz_targets/*.rs and the modules they call):
#   rtmp_session  RTMP chunk stream, AMF0 commands and FLV through a publish session
#   flv_amf0      the AMF0 codec and the FLV demuxer (avcC, SPS, AAC config) directly
#   whip_offer    WHIP offer bodies: SDP parse, offer summary, negotiation
#   ws_frame      WebSocket client frames: parse_frame and the socket functions' validation
#   rest_body     REST JSON bodies (stream create/update, channel, chat, reaction) + validation
#   playlist      the HLS playlist writer's invariants and the playlist reader
#
# Each target runs from its seed corpus (fuzz/corpus/<target>, in the repository) into an
# output directory outside it ($RILL_FUZZ_OUT/<target>, started afresh), one target at a
# time, under `nice -n 19`, until --execs executions (afl-fuzz -E, approximate) or --seconds
# of fuzzing (afl-fuzz -V), whichever comes first; default --seconds 60. Then one line per target: executions,
# executions per second, wall time, crashes, hangs and corpus size; a summary table at the
# end (also written to $RILL_FUZZ_OUT/report.txt). Exits non-zero if any target crashed;
# the crashing inputs are listed (minimise with `cargo afl tmin`, then make each one a
# regression test next to the harness).
#
# --cmin replaces fuzz/corpus/<target> with the afl-cmin minimised queue of the run (keep it
# small: it is checked in).
#
# Installs what it needs, idempotently and without a TTY: make and gcc (Debian, only if
# missing), cargo-afl (pinned below) whose install builds AFL++ from the source the crate
# ships (no download besides crates.io); rebuilds AFL++ with `cargo afl config --build` if
# it is missing. No Debian afl++ package: afl.rs needs the AFL++ runtime of its own version.
#
# Environment:
#   RILL_FUZZ_TARGET_DIR  cargo target directory of the instrumented build
#                         (default ${RILL_CI_CACHE:-~/.cache/rill-ci}/fuzz-target)
#   RILL_FUZZ_OUT         afl-fuzz output directories (default ${RILL_CI_CACHE:-...}/fuzz-out)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${RILL_CI_CACHE:-$HOME/.cache/rill-ci}"
TARGET_DIR="${RILL_FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
OUT="${RILL_FUZZ_OUT:-$CACHE/fuzz-out}"
CARGO_AFL_VERSION="0.18.2"
ALL_TARGETS=(rtmp_session flv_amf0 whip_offer ws_frame rest_body playlist)

usage() {
    sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

targets=()
limit=()
cmin=0
while [ $# -gt 0 ]; do
    case "$1" in
        --execs) [ $# -ge 2 ] || usage; limit+=(-E "$2"); shift 2 ;;
        --seconds) [ $# -ge 2 ] || usage; limit+=(-V "$2"); shift 2 ;;
        --cmin) cmin=1; shift ;;
        all) targets+=("${ALL_TARGETS[@]}"); shift ;;
        -h|--help) usage ;;
        -*) usage ;;
        *)
            known=0
            for t in "${ALL_TARGETS[@]}"; do [ "$t" = "$1" ] && known=1; done
            [ "$known" = 1 ] || { echo "fuzz.sh: unknown target $1 (${ALL_TARGETS[*]})" >&2; exit 2; }
            targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
[ ${#limit[@]} -gt 0 ] || limit=(-V 60)

# ----------------------------------------------------------------------------
# Install
# ----------------------------------------------------------------------------
missing=()
command -v make >/dev/null || missing+=(make)
command -v gcc >/dev/null || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    echo "fuzz.sh: apt-get install ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! cargo afl --version 2>/dev/null | grep -q "^cargo-afl $CARGO_AFL_VERSION"; then
    echo "fuzz.sh: cargo install cargo-afl $CARGO_AFL_VERSION (builds AFL++, a few minutes)"
    cargo install cargo-afl --version "$CARGO_AFL_VERSION" --locked --quiet
fi
# `cargo afl --version` names the AFL++ version only when afl-fuzz is built.
if ! cargo afl --version 2>/dev/null | grep -q "AFL++ version"; then
    echo "fuzz.sh: cargo afl config --build (AFL++ from the source cargo-afl ships)"
    cargo afl config --build --force
fi

# ----------------------------------------------------------------------------
# Build (instrumented, release with debug assertions and overflow checks: cargo afl's flags)
# ----------------------------------------------------------------------------
echo "fuzz.sh: cargo afl build --release (target dir $TARGET_DIR)"
(
    cd "$ROOT/fuzz"
    CARGO_TARGET_DIR="$TARGET_DIR" nice -n 19 cargo afl build --release --locked --quiet
)
BIN="$TARGET_DIR/release"

# ----------------------------------------------------------------------------
# Run
# ----------------------------------------------------------------------------
export AFL_NO_UI=1                            # no TTY (CI, background jobs)
export AFL_SKIP_CPUFREQ=1                     # a VM: no CPU frequency governor to check
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1  # core_pattern is the host's business
export AFL_NO_AFFINITY=1                      # other builds share the cores

field() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$2"; }

mkdir -p "$OUT"
report="$OUT/report.txt"
header=$(printf '%-13s %12s %9s %8s %7s %5s %7s' target execs execs/s wall_s crashes hangs corpus)
rows=()
crashed=0
for t in "${targets[@]}"; do
    out="$OUT/$t"
    rm -rf "$out"
    dict=()
    [ -f "$ROOT/fuzz/dict/$t.dict" ] && dict=(-x "$ROOT/fuzz/dict/$t.dict")
    echo "fuzz.sh: $t: afl-fuzz ${limit[*]}"
    start=$(date +%s)
    set +e
    nice -n 19 cargo afl fuzz "${limit[@]}" "${dict[@]}" -i "$ROOT/fuzz/corpus/$t" -o "$out" \
        -- "$BIN/$t" >"$OUT/$t.log" 2>&1
    status=$?
    set -e
    wall=$(( $(date +%s) - start ))
    stats="$out/default/fuzzer_stats"
    if [ ! -f "$stats" ]; then
        echo "fuzz.sh: $t: afl-fuzz did not start (exit $status); its output:" >&2
        tail -n 40 "$OUT/$t.log" >&2
        exit 1
    fi
    crashes=$(field saved_crashes "$stats")
    row=$(printf '%-13s %12s %9s %8s %7s %5s %7s' "$t" "$(field execs_done "$stats")" \
        "$(field execs_per_sec "$stats")" "$wall" "$crashes" "$(field saved_hangs "$stats")" \
        "$(field corpus_count "$stats")")
    rows+=("$row")
    echo "$row"
    if [ "$crashes" != 0 ]; then
        crashed=1
        echo "fuzz.sh: $t: crashing inputs (reproduce: $BIN/$t < FILE):" >&2
        find "$out/default/crashes" -type f -name 'id:*' >&2
    elif [ "$status" != 0 ]; then
        echo "fuzz.sh: $t: afl-fuzz exited with $status; its output:" >&2
        tail -n 40 "$OUT/$t.log" >&2
        exit 1
    fi
    if [ "$cmin" = 1 ] && [ "$crashes" = 0 ]; then
        rm -rf "$out/cmin"
        AFL_QUIET=1 nice -n 19 cargo afl cmin -i "$out/default/queue" -o "$out/cmin" \
            -- "$BIN/$t" >"$OUT/$t.cmin.log" 2>&1
        rm -rf "$ROOT/fuzz/corpus/$t"
        mkdir -p "$ROOT/fuzz/corpus/$t"
        i=0
        for f in "$out"/cmin/*; do
            cp "$f" "$ROOT/fuzz/corpus/$t/$(printf 'min-%04d' "$i")"
            i=$((i + 1))
        done
        echo "fuzz.sh: $t: corpus minimised to $i files ($(du -sh "$ROOT/fuzz/corpus/$t" | cut -f1))"
    fi
done

{
    echo "$header"
    printf '%s\n' "${rows[@]}"
} | tee "$report"
if [ "$crashed" = 1 ]; then
    echo "fuzz.sh: crashes found (see above)" >&2
    exit 1
fi
