//! The backing services of the harness, one of each per test process, shared by its tests:
//! moto (S3, and everything else that is not DynamoDB) and Amazon's DynamoDB Local
//! (DynamoDB and DynamoDB Streams), each on a free port.
//!
//! `RILL_DYNAMODB=moto` puts DynamoDB on moto too (the earlier local stack, for comparing
//! the two; moto serialises its requests to keep conditional writes atomic).
//!
//! Both die with the test process: each runs under a shell wrapper that kills it when our
//! end of its stdin closes.

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// The Python that has moto and boto3 (the venv made by scripts/setup.sh).
pub fn moto_python() -> PathBuf {
    if let Ok(p) = std::env::var("RILL_MOTO_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var("RILL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv"));
    let candidate = venv.join("bin/python");
    if candidate.exists() {
        candidate
    } else {
        PathBuf::from("python3")
    }
}

/// A server process held for the life of the test process.
struct Service {
    url: String,
    // Closing it stops the server (see `spawn`).
    _stdin: ChildStdin,
    _child: Child,
}

static MOTO: OnceLock<Mutex<Service>> = OnceLock::new();
static DYNAMODB_LOCAL: OnceLock<Mutex<Service>> = OnceLock::new();

fn url_of(service: &OnceLock<Mutex<Service>>, start: fn() -> Service) -> String {
    let s = service.get_or_init(|| Mutex::new(start()));
    s.lock()
        .map(|m| m.url.clone())
        .unwrap_or_else(|p| p.into_inner().url.clone())
}

/// The shared moto server's URL, starting it on first use.
pub fn moto_url() -> String {
    url_of(&MOTO, start_moto)
}

/// Where the stack's DynamoDB (and DynamoDB Streams) is: DynamoDB Local, started on first
/// use, or moto when `RILL_DYNAMODB=moto`.
pub fn dynamodb_url() -> String {
    if std::env::var("RILL_DYNAMODB").is_ok_and(|v| v == "moto") {
        return moto_url();
    }
    url_of(&DYNAMODB_LOCAL, start_dynamodb_local)
}

/// Replaces the shared DynamoDB Local with a fresh, empty one (stacks started before keep
/// pointing at the old URL, which stops answering). For benchmarks whose scenarios must
/// not inherit each other's storage: DynamoDB Local slows down as its in-memory database
/// fills (tens of thousands of items and stream records from one scenario halved the joins
/// of the next here). A no-op on moto.
pub fn restart_dynamodb_local() {
    if std::env::var("RILL_DYNAMODB").is_ok_and(|v| v == "moto") {
        return;
    }
    let service = DYNAMODB_LOCAL.get_or_init(|| Mutex::new(start_dynamodb_local()));
    let mut guard = service.lock().unwrap_or_else(|p| p.into_inner());
    *guard = start_dynamodb_local();
}

fn start_moto() -> Service {
    let port = free_port();
    let python = moto_python();
    let server = repo_root().join("scripts/moto_server.py");
    let command = format!(
        "\"{}\" \"{}\" -H 127.0.0.1 -p {port}",
        python.display(),
        server.display()
    );
    spawn(
        "moto_server (run scripts/setup.sh to install it)",
        &command,
        port,
        Duration::from_secs(30),
    )
}

fn start_dynamodb_local() -> Service {
    let port = free_port();
    let script = repo_root().join("scripts/dynamodb-local.sh");
    let command = format!("\"{}\" -port {port}", script.display());
    // The JVM takes a second or two to start; more on a loaded machine.
    spawn(
        "DynamoDB Local (run scripts/setup.sh to install it)",
        &command,
        port,
        Duration::from_secs(60),
    )
}

/// Runs `command` in the background of a shell that kills it once its stdin closes, and
/// waits until `port` accepts connections.
fn spawn(what: &str, command: &str, port: u16, within: Duration) -> Service {
    // `read` returns when the test process exits and its end of the pipe closes.
    let script = format!("{command} >/dev/null 2>&1 & pid=$!; read _; kill $pid 2>/dev/null");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdin = child.stdin.take().expect("piped stdin");
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Service {
        url: format!("http://127.0.0.1:{port}"),
        _stdin: stdin,
        _child: child,
    }
}
