//! Drives the real `rill-gateway` binary with the `echo` example as the function: the
//! Runtime API protocol end to end, warm reuse, timeouts, crashes, limits, CORS, the debug
//! endpoints and shutdown. The harness is in `common/`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Gateway, examples_dir, request, temp_dir};
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

impl Gateway {
    fn echo(extra: &[(&str, &str)]) -> Self {
        Self::start(TEMPLATE, &examples_dir(&["echo"]), extra).expect("gateway starts")
    }
}

fn instances(stats: &Value) -> Vec<Value> {
    stats["functions"]["echo"]["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits (up to 10 s) until the one `echo` instance is running an invocation.
fn wait_until_busy(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !instances(&gw.stats()).iter().any(|i| i["state"] == "busy") {
        assert!(Instant::now() < deadline, "no instance became busy");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    wait_until_busy(&gw);
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
    // One instance, 2 s timeout: A holds it for 0-2 s, B (queued once A runs) for 2-4 s, so
    // C (queued 0.7 s after B) gives up at about 2.7 s. The 0.7 s only orders C behind B
    // (nothing shows a queued request); the assertions wait for the answers themselves.
    let gw = Gateway::echo(&[("GATEWAY_MAX_INSTANCES", "1")]);
    let port = gw.port;
    let slow = move || request(port, "GET", "/sleep/5000", &[], b"").status;
    let a = std::thread::spawn(slow);
    wait_until_busy(&gw);
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

/// Lambda's Invoke API on the gateway's port (`AWS_ENDPOINT_URL_LAMBDA` of the functions).
#[test]
fn the_invoke_api_runs_template_functions_by_name() {
    let gw = Gateway::echo(&[]);
    let path = "/2015-03-31/functions/echo/invocations";
    let event = [("x-amz-invocation-type", "Event")];

    // Event: accepted at once, run in the background.
    let accepted = gw.request("POST", path, &event, br#"{"anything":1}"#);
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert!(accepted.body.is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.stats()["functions"]["echo"]["invocations"] != 1 {
        assert!(Instant::now() < deadline, "the event was never invoked");
        std::thread::sleep(Duration::from_millis(50));
    }

    // RequestResponse (the default): the function's answer, or its error as Lambda
    // reports it (a bare JSON document is no HTTP event for lambda_http).
    let sync = gw.request("POST", path, &[], b"{}");
    assert_eq!(sync.status, 200, "{sync:?}");
    assert_eq!(sync.header("x-amz-function-error"), Some("Unhandled"));
    assert!(sync.json()["errorType"].is_string());

    // By ARN too.
    let arn =
        "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:echo/invocations";
    assert_eq!(gw.request("POST", arn, &event, b"{}").status, 202);

    let unknown = gw.request(
        "POST",
        "/2015-03-31/functions/nope/invocations",
        &event,
        b"{}",
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.header("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );
    assert!(
        unknown.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nope")
    );

    let too_large = vec![b' '; 256 * 1024 + 1];
    assert_eq!(gw.request("POST", path, &event, &too_large).status, 413);
    assert_eq!(
        gw.request("POST", path, &[("x-amz-invocation-type", "DryRun")], b"{}")
            .status,
        204
    );
}
