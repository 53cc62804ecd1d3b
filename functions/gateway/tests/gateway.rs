//! Drives the real `rill-gateway` binary with the `echo` example as the function: the
//! Runtime API protocol end to end, warm reuse, timeouts, crashes, limits, CORS, the debug
//! endpoints and shutdown. Blocking std I/O on purpose: the client side needs nothing more.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 2
    MemorySize: 128
Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
  EchoFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: echo
    Properties:
      Handler: bootstrap
      Events:
        Echo:
          Type: HttpApi
          Properties: { Method: GET, Path: "/echo/{id}", ApiId: !Ref HttpApi }
        EchoLive:
          Type: HttpApi
          Properties: { Method: GET, Path: /echo/live, ApiId: !Ref HttpApi }
        EchoPost:
          Type: HttpApi
          Properties: { Method: POST, Path: "/echo/{id}", ApiId: !Ref HttpApi }
        Sleep:
          Type: HttpApi
          Properties: { Method: GET, Path: "/sleep/{ms}", ApiId: !Ref HttpApi }
        Fail:
          Type: HttpApi
          Properties: { Method: GET, Path: /fail, ApiId: !Ref HttpApi }
        Crash:
          Type: HttpApi
          Properties: { Method: GET, Path: /crash, ApiId: !Ref HttpApi }
"#;

/// Where cargo put the examples of this package. `cargo test` builds them, except when
/// targets are filtered (`--test gateway`): then build it with `--example echo`.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..")
        .join("examples");
    assert!(
        dir.join("echo").is_file(),
        "{}/echo is missing: run `cargo test -p rill-gateway` (builds examples) or \
         `cargo build -p rill-gateway --example echo`",
        dir.display()
    );
    dir
}

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rill-gateway-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

struct Gateway {
    child: Child,
    port: u16,
}

impl Gateway {
    fn start(template: &str, functions_dir: &Path, extra: &[(&str, &str)]) -> Result<Self, String> {
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

    fn echo(extra: &[(&str, &str)]) -> Self {
        Self::start(TEMPLATE, &examples_dir(), extra).expect("gateway starts")
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.port, method, path, headers, body)
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    fn stats(&self) -> Value {
        self.get("/_gateway/stats").json()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
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
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
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

fn instances(stats: &Value) -> Vec<Value> {
    stats["functions"]["echo"]["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn process_gone(pid: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            // A zombie has exited; only its parent's bookkeeping is left.
            Ok(stat) if stat.contains(") Z ") => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

#[test]
fn requests_reach_the_function_and_warm_instances_are_reused() {
    let gw = Gateway::echo(&[]);
    let first = gw.request(
        "GET",
        "/echo/abc?x=1&y=two",
        &[("Authorization", "Bearer t"), ("Cookie", "a=1; b=2")],
        b"",
    );
    assert_eq!(
        first.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&first.body)
    );
    let body = first.json();
    assert_eq!(body["path"], "/echo/abc");
    assert_eq!(body["pathParameters"]["id"], "abc");
    assert_eq!(body["query"]["y"], "two");
    assert_eq!(body["authorization"], "Bearer t");
    assert_eq!(body["cookie"], "a=1; b=2");
    assert_eq!(body["functionName"], "echo");
    assert_eq!(first.header("set-cookie"), Some("seen=1; Path=/"));
    assert!(first.header("apigw-requestid").is_some());

    let live = gw.get("/echo/live").json();
    assert!(
        live["pathParameters"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "literal beats {{id}}: {live}"
    );
    assert_eq!(live["pid"], body["pid"], "the warm instance answers again");

    let stats = gw.stats();
    let echo = &stats["functions"]["echo"];
    assert_eq!(echo["cold_starts"], 1);
    assert_eq!(echo["invocations"], 2);
    assert_eq!(echo["init_ms_history"].as_array().map(Vec::len), Some(1));
    let instance = &instances(&stats)[0];
    assert_eq!(instance["pid"], body["pid"]);
    assert_eq!(instance["state"], "idle");
    assert_eq!(instance["invocations"], 2);
    assert!(instance["init_ms"].is_number());
    assert!(instance["rss_kb"].as_u64().is_some_and(|kb| kb > 0));
}

#[test]
fn concurrent_requests_get_separate_instances_up_to_the_limit() {
    let gw = Gateway::echo(&[("GATEWAY_MAX_INSTANCES", "2")]);
    let port = gw.port;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                request(port, "GET", "/sleep/600", &[], b"").json()["pid"].clone()
            })
        })
        .collect();
    let pids: Vec<Value> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_ne!(pids[0], pids[1], "two busy instances at once");
    assert_eq!(instances(&gw.stats()).len(), 2);
}

#[test]
fn requests_beyond_the_instance_limit_wait_for_a_free_instance() {
    let gw = Gateway::echo(&[("GATEWAY_MAX_INSTANCES", "1")]);
    let port = gw.port;
    let first = std::thread::spawn(move || request(port, "GET", "/sleep/800", &[], b""));
    std::thread::sleep(Duration::from_millis(300));
    let second = gw.get("/echo/1");
    let first = first.join().expect("thread");
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(
        first.json()["pid"],
        second.json()["pid"],
        "one instance served both"
    );
    assert_eq!(gw.stats()["functions"]["echo"]["cold_starts"], 1);
}

#[test]
fn requests_waiting_longer_than_the_timeout_are_throttled() {
    // One instance, 2 s timeout: A holds it for 0-2 s, B (queued at 0.3 s) for 2-4 s, so C
    // (queued at 1 s) gives up at 3 s.
    let gw = Gateway::echo(&[("GATEWAY_MAX_INSTANCES", "1")]);
    let port = gw.port;
    let slow = move || request(port, "GET", "/sleep/5000", &[], b"").status;
    let a = std::thread::spawn(slow);
    std::thread::sleep(Duration::from_millis(300));
    let b = std::thread::spawn(slow);
    std::thread::sleep(Duration::from_millis(700));
    let c = gw.get("/echo/1");
    assert_eq!((c.status, c.error_code().as_str()), (503, "throttled"));
    assert_eq!(a.join().expect("thread"), 504);
    assert_eq!(b.join().expect("thread"), 504);
}

#[test]
fn timeout_answers_504_and_the_next_request_is_a_cold_start() {
    let gw = Gateway::echo(&[]);
    let before = gw.get("/echo/1").json()["pid"].as_u64().expect("pid");
    let started = Instant::now();
    let slow = gw.get("/sleep/5000");
    assert_eq!(slow.status, 504);
    assert_eq!(slow.error_code(), "function_timeout");
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "answered at the 2 s timeout"
    );
    assert!(process_gone(before), "the timed-out instance is killed");
    let after = gw.get("/echo/1");
    assert_eq!(after.status, 200);
    assert_ne!(after.json()["pid"].as_u64(), Some(before));
}

#[test]
fn crash_answers_502_and_a_fresh_instance_takes_over() {
    let gw = Gateway::echo(&[]);
    let crashed = gw.get("/crash");
    assert_eq!(crashed.status, 502);
    assert_eq!(crashed.error_code(), "function_crashed");
    let next = gw.get("/echo/1");
    assert_eq!(next.status, 200);
    assert_eq!(gw.stats()["functions"]["echo"]["cold_starts"], 2);
}

#[test]
fn function_error_answers_502_without_details_and_keeps_the_instance() {
    let gw = Gateway::echo(&[]);
    let pid = gw.get("/echo/1").json()["pid"].clone();
    let failed = gw.get("/fail");
    assert_eq!(failed.status, 502);
    assert_eq!(failed.error_code(), "function_error");
    assert!(!String::from_utf8_lossy(&failed.body).contains("asked to fail"));
    assert_eq!(gw.get("/echo/1").json()["pid"], pid);
}

#[test]
fn unknown_routes_methods_and_oversized_bodies_get_json_errors() {
    let gw = Gateway::echo(&[]);
    let missing = gw.get("/api/nothing");
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "not_found")
    );
    let wrong_method = gw.request("DELETE", "/echo/1", &[], b"");
    assert_eq!(
        (wrong_method.status, wrong_method.error_code().as_str()),
        (404, "not_found")
    );
    let big = gw.request("POST", "/echo/1", &[("Content-Length", "11534336")], b"");
    assert_eq!(
        (big.status, big.error_code().as_str()),
        (413, "payload_too_large")
    );
    let ok = gw.request("POST", "/echo/1", &[], &[7_u8; 1000]);
    assert_eq!(ok.json()["bodyLen"], 1000);
}

#[test]
fn cors_preflight_is_answered_by_the_gateway_and_function_cors_is_replaced() {
    let gw = Gateway::echo(&[]);
    let preflight = gw.request(
        "OPTIONS",
        "/echo/1",
        &[
            ("Origin", "http://localhost:5173"),
            ("Access-Control-Request-Method", "PATCH"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        b"",
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("PATCH"))
    );
    assert_eq!(
        instances(&gw.stats()).len(),
        0,
        "no function ran for the preflight"
    );

    let reply = gw.request(
        "GET",
        "/echo/1",
        &[("Origin", "http://localhost:5173")],
        b"",
    );
    let origins: Vec<_> = reply
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("access-control-allow-origin"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(origins, ["*"]);
}

#[test]
fn reset_kills_instances_but_keeps_init_history() {
    let gw = Gateway::echo(&[]);
    let pid = gw.get("/echo/1").json()["pid"].as_u64().expect("pid");
    let reset = gw.request("POST", "/_gateway/reset", &[], b"");
    assert_eq!(reset.json()["killed"], 1);
    assert!(process_gone(pid));
    let stats = gw.stats();
    assert!(instances(&stats).is_empty());
    assert_eq!(
        stats["functions"]["echo"]["init_ms_history"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(gw.get("/echo/1").status, 200);
}

#[test]
fn web_app_placeholder_is_served_when_not_built() {
    let gw = Gateway::echo(&[]);
    let page = gw.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(String::from_utf8_lossy(&page.body).contains("not built yet"));
}

#[test]
fn hls_keys_with_dot_segments_are_rejected() {
    let gw = Gateway::echo(&[]);
    let reply = gw.get("/hls/live/%2e%2e/secret");
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (400, "bad_request")
    );
}

#[test]
fn sigterm_stops_the_gateway_and_its_function_instances() {
    let gw = Gateway::echo(&[]);
    let pid = gw.get("/echo/1").json()["pid"].as_u64().expect("pid");
    let status = gw.terminate();
    assert!(status.success(), "{status}");
    assert!(
        process_gone(pid),
        "function instance {pid} outlived the gateway"
    );
}

#[test]
fn missing_function_binaries_stop_startup_with_their_names() {
    let dir = temp_dir();
    let template_path = dir.join("template.yaml");
    std::fs::write(&template_path, TEMPLATE).expect("write template");
    let output = Command::new(env!("CARGO_BIN_EXE_rill-gateway"))
        .args(["--port", "0", "--template"])
        .arg(&template_path)
        .arg("--functions-dir")
        .arg(&dir)
        .output()
        .expect("run rill-gateway");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "never claims to listen");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no executable") && stderr.contains("echo"),
        "{stderr}"
    );
}
