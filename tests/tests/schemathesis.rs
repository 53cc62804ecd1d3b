//! The REST API against its own OpenAPI document (`functions/api/openapi.json`), checked by
//! schemathesis on the local stack: the examples, coverage, fuzzing and stateful phases with
//! every check: no 5xx, statuses, headers and bodies as documented, schema-valid requests
//! accepted and schema-violating ones refused. `tests/schemathesis.toml` holds the
//! allowances for refusals no schema can express, and keeps the coverage phase from sending
//! undeclared methods (`TRACE`): API Gateway itself answers those 404, and a `$default`
//! route that could answer 405 would also take the CORS preflights API Gateway answers
//! only while no route matches `OPTIONS`. The 405s the API does give are tested in
//! tests/tests/contract.rs. Each allowance states its reason.
//!
//! Known gap: the document has links from `streams-create` (and `chat-send`) to the
//! operations that take their ids, but schemathesis 4.32's stateful phase never starts
//! from `create` here ("API Links: 0 covered"), so operations on a real stream are reached
//! only by the e2e tests, not by this run.
//!
//! The seed is fixed so a failure reproduces; drop `--seed` to explore further. WHIP is left
//! out: its bodies are SDP offers, which schemathesis cannot generate meaningfully.
//!
//! A missing schemathesis is a failure, not a skip: scripts/setup.sh installs it.

use std::path::PathBuf;
use std::process::Command;

use rill_tests::{Stack, repo_root, token};

fn schemathesis() -> PathBuf {
    let venv = std::env::var("RILL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv"));
    let bin = venv.join("bin/schemathesis");
    assert!(
        bin.exists(),
        "{} not found: run scripts/setup.sh (or point RILL_VENV at its venv)",
        bin.display()
    );
    bin
}

#[test]
fn the_api_keeps_its_openapi_contract() {
    let stack = Stack::start();
    let auth = format!(
        "Authorization: Bearer {}",
        token("contract", "Contract Tester")
    );
    let out = Command::new(schemathesis())
        .arg("--config-file")
        .arg(repo_root().join("tests/schemathesis.toml"))
        .arg("run")
        .arg(stack.url("/api/openapi.json"))
        .args(["--url", &stack.base, "-H", &auth])
        .args([
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "20261207",
        ])
        .args(["--exclude-path-regex", "^/whip", "--no-color"])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
