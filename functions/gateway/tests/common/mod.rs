//! Shared harness of the gateway's integration tests: the real `rill-gateway` binary on a
//! free port with an inline template, plain HTTP/1.1 requests, temporary directories.
//! Blocking std I/O on purpose: the client side needs nothing more.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod probe;

/// Where cargo put the examples of this package, checked to hold `names`. `cargo test`
/// builds them, except when targets are filtered (`--test gateway`): then build them with
/// `cargo build -p rill-gateway --examples`.
pub fn examples_dir(names: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .join("examples");
    for name in names {
        assert!(
            dir.join(name).is_file(),
            "{}/{name} is missing: run `cargo test -p rill-gateway` (builds examples) or \
             `cargo build -p rill-gateway --examples`",
            dir.display()
        );
    }
    dir
}

pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rill-gateway-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub struct Gateway {
    pub child: Child,
    pub port: u16,
}

impl Gateway {
    pub fn start(
        template: &str,
        functions_dir: &Path,
        extra: &[(&str, &str)],
    ) -> Result<Self, String> {
        let dir = temp_dir();
        let template_path = dir.join("template.yaml");
        std::fs::write(&template_path, template).expect("write template");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rill-gateway"));
        cmd.args(["--port", "0", "--template"])
            .arg(&template_path)
            .arg("--functions-dir")
            .arg(functions_dir)
            .arg("--static-dir")
            .arg(dir.join("no-web-app"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .env_remove("PORT")
            .env_remove("GATEWAY_INIT_RESOURCES")
            .env_remove("GATEWAY_STREAM_POLLER")
            .env_remove("GATEWAY_WS_IDLE_TIMEOUT")
            .env_remove("GATEWAY_WS_MAX_AGE")
            // Functions must reach this gateway, whatever port it picked.
            .env_remove("WS_MANAGEMENT_ENDPOINT")
            .env_remove("AWS_ENDPOINT_URL_LAMBDA")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn rill-gateway");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read stdout");
        let Some(port) = line
            .trim_end()
            .strip_prefix("rill-gateway listening on http://127.0.0.1:")
            .and_then(|p| p.parse().ok())
        else {
            let status = child.wait().expect("wait");
            return Err(format!(
                "gateway did not start ({status}); stdout: {line:?}"
            ));
        };
        Ok(Self { child, port })
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        request(self.port, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    pub fn stats(&self) -> Value {
        self.get("/_gateway/stats").json()
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "gateway did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (k, v) in headers {
        has_length |= k.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length && !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer (413) without reading a body it refuses.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A moto server on a free port, for the gateway tests that need a table and its stream
/// (`stream.rs`): moto serves DynamoDB and DynamoDB Streams too, which is all these tests
/// need. (`scripts/dev.sh` and the end-to-end harness in `tests/` run Amazon's DynamoDB
/// Local for DynamoDB and keep moto for S3.) It dies with the test process: the shell
/// wrapper kills it when our end of its stdin closes.
pub struct Moto {
    pub url: String,
    _stdin: std::process::ChildStdin,
    child: Child,
}

impl Moto {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let bin = moto_server_path();
        let script = format!(
            "\"{}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; read _; kill $pid 2>/dev/null",
            bin.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start moto_server (scripts/setup.sh installs it)");
        let stdin = child.stdin.take().expect("piped stdin");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server ({}) did not start on port {port}",
                bin.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            _stdin: stdin,
            child,
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing stdin (a field dropped after this) stops moto; reap the wrapper.
        let _ = self.child.try_wait();
    }
}

/// `RILL_MOTO_SERVER`, the `moto_server` of the virtualenv scripts/setup.sh makes
/// (`RILL_VENV`, default `.venv`), or `moto_server` on `PATH`. (The end-to-end harness
/// runs `scripts/moto_server.py`, which serialises requests, with that virtualenv's
/// Python instead: these tests make no concurrent conditional writes.)
fn moto_server_path() -> PathBuf {
    if let Ok(p) = std::env::var("RILL_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = std::env::var("RILL_VENV").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
        PathBuf::from,
    );
    let candidate = venv.join("bin/moto_server");
    if candidate.exists() {
        candidate
    } else {
        PathBuf::from("moto_server")
    }
}
