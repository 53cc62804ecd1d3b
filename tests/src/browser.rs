//! The whole local stack as a browser sees it, for the browser e2e tests and the latency
//! benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::*;

/// The whole local stack as a browser sees it: the gateway serving the built web app
/// (`web/dist`) with `/api`, `/ws`, `/hls` and the WHIP router (`/whip`), and an ingest
/// node registered in the fleet behind it. Used by the browser end-to-end test and the latency benchmark.
pub struct BrowserStack {
    pub stack: Stack,
    pub ingest: IngestNode,
    _static: Option<TempDir>,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

impl std::fmt::Debug for BrowserStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserStack")
            .field("base", &self.stack.base)
            .field("whip", &self.ingest.http)
            .finish()
    }
}

impl BrowserStack {
    pub fn start() -> BrowserStack {
        let dist = repo_root().join("web/dist");
        assert!(
            dist.join("index.html").exists(),
            "{} is missing: build the web app first (scripts/setup.sh, then cd web && npm run build)",
            dist.display()
        );
        // WHIP goes through the gateway's `whip-router` (`INGEST_PUBLIC_URL=api`), as it does
        // on AWS: the browser's offer is proxied to the node the registry offers, and the
        // media goes straight to the node's UDP port from the SDP answer.
        let stack = Stack::start_with(&[
            ("STATIC_DIR", dist.to_str().expect("utf-8 path")),
            ("INGEST_PUBLIC_URL", "api"),
        ]);
        let ingest = IngestNode::start(&stack, &[]);
        BrowserStack {
            stack,
            ingest,
            _static: None,
        }
    }

    /// As [`BrowserStack::start`], signed in the production way: the functions verify the
    /// provider's RS256 tokens (HS256 off) and the app's `config.json` names the provider,
    /// so its "Sign in" runs the authorization code flow with PKCE. The app is served from a
    /// temporary directory (links to `web/dist` plus that `config.json`), so the shared build
    /// stays as it is.
    pub fn start_with_idp(idp: &TestIdp) -> BrowserStack {
        let dist = repo_root().join("web/dist");
        assert!(
            dist.join("index.html").exists(),
            "{} is missing: build the web app first (scripts/setup.sh, then cd web && npm run build)",
            dist.display()
        );
        let dir = tempfile_dir("rill-web-idp");
        for entry in std::fs::read_dir(&dist).expect("web/dist") {
            let entry = entry.expect("entry");
            if entry.file_name() != "config.json" {
                std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name()))
                    .expect("link web/dist entry");
            }
        }
        let config =
            serde_json::json!({"auth": {"domain": idp.issuer, "clientId": idp::CLIENT_ID}});
        std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
        let mut env = idp.env();
        env.push(("STATIC_DIR", dir.to_str().expect("utf-8 path").to_owned()));
        env.push(("INGEST_PUBLIC_URL", "api".to_owned()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let stack = Stack::start_with(&env);
        let ingest = IngestNode::start(&stack, &[]);
        BrowserStack {
            stack,
            ingest,
            _static: Some(TempDir(dir)),
        }
    }

    /// `node <script>` from `web/` with the stack's URL, two users' tokens and an artifacts
    /// directory in its environment.
    pub fn node_command(&self, script: &str, artifacts: &Path) -> Command {
        let mut cmd = Command::new("node");
        cmd.current_dir(repo_root().join("web"))
            .arg(script)
            .env("RILL_URL", &self.stack.base)
            .env("RILL_OWNER_TOKEN", token("alice", "Alice"))
            .env("RILL_VIEWER_TOKEN", token("bob", "Bob"))
            .env("RILL_ARTIFACTS", artifacts)
            .env("RILL_RTMP_URL", format!("{}/live", self.ingest.rtmp))
            .env(
                "CHROMIUM",
                std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            )
            .stdin(Stdio::null());
        cmd
    }
}
