//! What the moto-backed integration tests of `rill-aws` share: a moto server per test
//! binary (stopped when the test process exits), the venv's tools, the boto3 setup scripts
//! that arrange moto independently of the code under test, and a [`SignedClient`] on it.
//!
//! A missing moto is a failure, not a skip: CI has it (`scripts/setup.sh`).

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use rill_aws::ecs::SignedClient;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
}

/// A running moto server; closing our end of its stdin stops it.
#[derive(Debug)]
pub struct MotoProcess {
    pub url: String,
    _process: Mutex<(ChildStdin, Child)>,
}

/// `$RILL_VENV/bin/<name>`, else the repository's `.venv`.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("RILL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(".venv")
        });
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} not found: install moto with scripts/setup.sh or point RILL_VENV at a venv that has it",
        bin.display()
    );
    bin
}

/// Starts `moto_server` on a free port with `env` (`NAME=value ...`, may be empty) before it.
pub fn start_moto(env: &str) -> MotoProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // `read` returns when the test process exits and its end of the pipe closes.
    let script = format!(
        "{env} \"{}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; read _; kill $pid 2>/dev/null",
        venv_bin("moto_server").display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start moto_server");
    let stdin = child.stdin.take().expect("piped stdin");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    MotoProcess {
        url: format!("http://127.0.0.1:{port}"),
        _process: Mutex::new((stdin, child)),
    }
}

/// Runs `tests/<script>` (boto3) with `args` and returns the JSON line it prints last.
pub fn run_setup(script: &str, args: &[&str]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = Command::new(venv_bin("python"))
        .arg(&path)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(out.status.success(), "{script} {args:?} failed");
    let line = BufReader::new(&out.stdout[..])
        .lines()
        .map_while(Result::ok)
        .last()
        .unwrap_or_else(|| panic!("{script} printed nothing"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{script} prints JSON: {e}"))
}

/// An SDK configuration for moto at `url` with these keys.
pub fn sdk(url: &str, keys: &Keys) -> SdkConfig {
    SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .endpoint_url(url.to_owned())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            keys.id.clone(),
            keys.secret.clone(),
            None,
            None,
            "moto",
        )))
        .behavior_version(BehaviorVersion::latest())
        .build()
}

pub fn signed_client(url: &str, keys: &Keys) -> SignedClient {
    SignedClient::new(&sdk(url, keys)).expect("client")
}
