//! `bench-latency`: glass-to-glass latency in Chromium. Run through
//! `scripts/bench.sh latency` (release build).
//!
//! Starts the whole local stack (gateway serving the built web app, functions, moto, ingest
//! node) and runs `web/e2e/latency.bench.mjs`: the broadcaster page goes live over WHIP with
//! Chromium's fake camera, a viewer page plays the HLS with hls.js, and every second
//! `Date.now() - hls.playingDate` (the PROGRAM-DATE-TIME of the frame on screen against the
//! wall clock) is sampled after a warm-up. The script prints p50/p90 and the stall count;
//! arguments after `--` go to it (`DURATION_SECONDS`, `WARMUP_SECONDS` in the environment).

use rill_tests::{BrowserStack, repo_root};

fn main() {
    let stack = BrowserStack::start();
    let artifacts = repo_root().join("artifacts/latency");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let status = stack
        .node_command("e2e/latency.bench.mjs", &artifacts)
        .args(std::env::args().skip(1))
        .status()
        .expect("run node");
    // exit() skips destructors: stop the stack's processes first.
    drop(stack);
    std::process::exit(status.code().unwrap_or(1));
}
