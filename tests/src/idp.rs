//! The test OpenID provider (`scripts/test_idp.py`) as a harness part: RS256 tokens, a
//! JWKS and the PKCE code flow on a free port, killed with the test process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// App client id the provider accepts (the template's Cognito app client stands here).
pub const CLIENT_ID: &str = "rill-web";

#[derive(Debug)]
pub struct TestIdp {
    /// `http://127.0.0.1:{port}`: the issuer, also the base of every endpoint.
    pub issuer: String,
    child: Child,
}

impl TestIdp {
    /// Starts the provider; tokens live `ttl_secs`.
    pub fn start(ttl_secs: u32) -> TestIdp {
        let script = crate::repo_root().join("scripts/test_idp.py");
        let mut child = Command::new(crate::moto_python())
            .arg(&script)
            .args(["--client-id", CLIENT_ID, "--ttl", &ttl_secs.to_string()])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start scripts/test_idp.py (the venv of scripts/setup.sh has cryptography)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("test-idp stdout");
        let issuer = line
            .trim()
            .strip_prefix("test-idp listening on ")
            .unwrap_or_else(|| panic!("unexpected test-idp output: {line:?}"))
            .to_owned();
        TestIdp { issuer, child }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer)
    }

    /// What the functions need to verify this provider's tokens, with HS256 turned off, as
    /// on AWS.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("JWKS_URL", self.jwks_url()),
            ("JWT_ISSUER", self.issuer.clone()),
            ("JWT_AUDIENCE", CLIENT_ID.to_owned()),
            ("JWT_SECRET", String::new()),
        ]
    }

    /// A token signed by the provider: the defaults (issuer, audience, an hour of life,
    /// `sub`, `name`) overridden by `claims` and without the `drop`ped ones; `foreign`
    /// signs with a key that is not in the JWKS, under the real `kid`.
    pub async fn mint(&self, claims: Value, drop: &[&str], foreign: bool) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/test/mint", self.issuer))
            .json(&serde_json::json!({"claims": claims, "drop": drop, "foreign_key": foreign}))
            .send()
            .await
            .expect("mint");
        let body: Value = r.json().await.expect("mint reply");
        body["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
