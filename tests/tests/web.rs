//! The web app end to end in a real browser: Debian's Chromium (fake camera and microphone)
//! driven by playwright-core runs `web/e2e/browser.e2e.mjs` against the whole local stack —
//! the gateway serving the built app, the real functions, moto, and an ingest node taking the
//! broadcaster page's WHIP publish and writing HLS that the viewer page plays with hls.js.
//!
//! Needs `web/node_modules` and `web/dist` (scripts/test.sh installs and builds them first).
//! Screenshots land in `artifacts/web-e2e/`.

use rill_tests::{BrowserStack, repo_root};

#[test]
fn a_broadcast_from_the_browser_is_watched_chatted_and_reacted_to_in_another() {
    let stack = BrowserStack::start();
    let artifacts = repo_root().join("artifacts/web-e2e");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let out = stack
        .node_command("e2e/browser.e2e.mjs", &artifacts)
        .output()
        .expect("run node (scripts/setup.sh installs Node.js packages)");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{log}");
    assert!(
        out.status.success(),
        "browser e2e failed ({}); screenshots in {}:\n{log}",
        out.status,
        artifacts.display()
    );
}
