//! The WHIP router (`whip-router`) and the registry listing (`nodes-list`) through the
//! local gateway, the real function binaries, DynamoDB Local and moto.
//!
//! The ingest nodes here are **stand-ins for the node's HTTP side only** ([`StandIn`]): a
//! few lines of HTTP server that record what reaches them (method, path, `Authorization`,
//! `Content-Type`, body) and answer as a node would (201 + `Location` + an SDP body, or
//! 503 + `Retry-After` for a full node). They are registered in the real table with
//! `privateUrl` pointing at them, exactly as a node registers itself. What they do not
//! show — a real WebRTC session through the router — is the two-node fleet test's job
//! (real `rill-ingest` processes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_core::fleet::{FleetStore, LEASE_TTL, NodeRecord, NodeState};
use rill_core::time;
use rill_tests::{JWT_SECRET, Reply, Stack, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
const KEY: &str = "Bearer sk_live_0123456789abcdef0123456789abcdef";

/// One request as the stand-in node received it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Takes publishes: POST -> 201 + absolute `Location` + SDP; PATCH -> 204; DELETE -> 200.
    Accept,
    /// At capacity: every request -> 503 + `Retry-After`, like the real node.
    Full,
}

/// A stand-in for an ingest node's HTTP side (module docs).
#[derive(Debug)]
struct StandIn {
    id: String,
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    async fn start(id: &str, mode: Mode) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (record, base, node) = (seen.clone(), url.clone(), id.to_owned());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (record, base, node) = (record.clone(), base.clone(), node.clone());
                tokio::spawn(async move { serve(sock, mode, &base, &node, &record).await });
            }
        });
        StandIn {
            id: id.to_owned(),
            url,
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Its registry entry: alive (heartbeat now) with `capacity` and `active` streams.
    fn record(&self, capacity: u32, active: u32) -> NodeRecord {
        record(&self.id, &self.url, capacity, active)
    }
}

fn record(id: &str, url: &str, capacity: u32, active: u32) -> NodeRecord {
    let now = time::now();
    NodeRecord {
        id: id.into(),
        public_ip: Some("198.51.100.7".into()),
        private_url: url.into(),
        rtmp_addr: "127.0.0.1:1935".into(),
        capacity,
        active_streams: active,
        state: NodeState::Active,
        started_at: now,
        heartbeat_at: now,
        version: "stand-in".into(),
    }
}

/// One HTTP/1.1 exchange per connection (`Connection: close`).
async fn serve(
    mut sock: tokio::net::TcpStream,
    mode: Mode,
    base: &str,
    node: &str,
    seen: &Mutex<Vec<Seen>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (
        first.next().unwrap_or_default().to_owned(),
        first.next().unwrap_or_default().to_owned(),
    );
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    seen.lock().expect("lock").push(Seen {
        method: method.clone(),
        path: path.clone(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body,
    });
    let (status, headers, body): (&str, Vec<(&str, String)>, String) = match (mode, method.as_str())
    {
        (Mode::Full, _) => (
            "503 Service Unavailable",
            vec![
                ("Content-Type", "application/json".into()),
                ("Retry-After", "5".into()),
            ],
            r#"{"error":{"code":"unavailable","message":"The ingest node is at capacity; retry shortly."}}"#.into(),
        ),
        (Mode::Accept, "POST") => (
            "201 Created",
            vec![
                ("Content-Type", "application/sdp".into()),
                // Absolute, with the node's private address: the router must not leak it.
                ("Location", format!("{base}{path}/sess-{node}")),
                ("ETag", format!("\"{node}-1\"")),
            ],
            format!("v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns={node}\r\n"),
        ),
        (Mode::Accept, "PATCH") => ("204 No Content", vec![], String::new()),
        (Mode::Accept, _) => ("200 OK", vec![], String::new()),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let _ = sock.write_all(out.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn register(stack: &Stack, nodes: &[NodeRecord]) {
    let store = stack.store().await;
    for n in nodes {
        store.put_node(n).await.expect("register node");
    }
}

async fn whip(stack: &Stack, method: &str, path: &str, body: Option<(&str, &str)>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = stack
        .http
        .request(method, stack.url(path))
        .header("authorization", KEY);
    if let Some((content_type, text)) = body {
        req = req
            .header("content-type", content_type)
            .body(text.to_owned());
    }
    Reply::from(req.send().await.expect("request")).await
}

async fn offer(stack: &Stack, stream: &str) -> Reply {
    whip(
        stack,
        "POST",
        &format!("/whip/{stream}"),
        Some(("application/sdp", OFFER)),
    )
    .await
}

#[tokio::test]
async fn an_offer_reaches_the_live_node_with_the_most_free_slots_unchanged() {
    let stack = Stack::start();
    let busy = StandIn::start("busy", Mode::Accept).await;
    let roomy = StandIn::start("roomy", Mode::Accept).await;
    let dead = StandIn::start("dead", Mode::Accept).await;
    let mut silent = dead.record(16, 0);
    silent.heartbeat_at = time::now() - chrono::Duration::seconds(60);
    register(
        &stack,
        &[busy.record(4, 3), roomy.record(4, 1), silent.clone()],
    )
    .await;

    let r = offer(&stack, "stream-1").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/sdp");
    assert!(
        r.text.contains("s=roomy"),
        "the node's own answer: {}",
        r.text
    );
    assert_eq!(
        r.headers["location"], "/whip/stream-1/sess-roomy",
        "Location points back at the router, not the node's private address"
    );
    assert_eq!(r.headers["etag"], "\"roomy-1\"");

    assert_eq!(
        roomy.seen(),
        [Seen {
            method: "POST".into(),
            path: "/whip/stream-1".into(),
            authorization: Some(KEY.into()),
            content_type: Some("application/sdp".into()),
            body: OFFER.into(),
        }]
    );
    assert!(busy.seen().is_empty() && dead.seen().is_empty());
}

#[tokio::test]
async fn full_and_unreachable_nodes_are_skipped_for_the_next() {
    let stack = Stack::start();
    let full = StandIn::start("full", Mode::Full).await;
    let taker = StandIn::start("taker", Mode::Accept).await;
    // Nothing listens there (a node that died without deregistering, heartbeat still fresh).
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    register(
        &stack,
        &[
            record("gone", &gone, 10, 0),
            full.record(8, 0),
            taker.record(4, 2),
        ],
    )
    .await;

    let r = offer(&stack, "stream-2").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.text.contains("s=taker"), "{}", r.text);
    assert_eq!(r.headers["location"], "/whip/stream-2/sess-taker");
    assert_eq!(full.seen().len(), 1, "the full node was asked once");
    assert_eq!(taker.seen().len(), 1);
}

#[tokio::test]
async fn at_most_three_nodes_are_tried_then_503_with_retry_after() {
    let stack = Stack::start();
    let mut full = Vec::new();
    for (i, free) in [(1, 9), (2, 8), (3, 7)] {
        let node = StandIn::start(&format!("full-{i}"), Mode::Full).await;
        register(&stack, &[node.record(free, 0)]).await;
        full.push(node);
    }
    let fourth = StandIn::start("fourth", Mode::Accept).await;
    register(&stack, &[fourth.record(2, 0)]).await;

    let r = offer(&stack, "stream-3").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.code(), "no_capacity");
    assert_eq!(r.headers["retry-after"], "5");
    assert_eq!(r.headers["content-type"], "application/json");
    for node in &full {
        assert_eq!(node.seen().len(), 1, "{} tried once", node.id);
    }
    assert!(fourth.seen().is_empty(), "no fourth try");
}

#[tokio::test]
async fn no_node_with_capacity_is_503_json_with_retry_after() {
    let stack = Stack::start();
    let r = offer(&stack, "stream-4").await;
    assert_eq!((r.status, r.code()), (503, "no_capacity"), "{}", r.text);
    assert_eq!(r.headers["retry-after"], "5");

    // Registered but full (by its own report) or draining: still nobody to ask.
    let full = StandIn::start("full", Mode::Accept).await;
    let draining = StandIn::start("draining", Mode::Accept).await;
    let mut d = draining.record(8, 0);
    d.state = NodeState::Draining;
    register(&stack, &[full.record(2, 2), d]).await;
    let r = offer(&stack, "stream-4").await;
    assert_eq!((r.status, r.code()), (503, "no_capacity"), "{}", r.text);
    assert!(full.seen().is_empty() && draining.seen().is_empty());
}

#[tokio::test]
async fn session_requests_and_reconnects_go_to_the_lease_holder() {
    let stack = Stack::start();
    let holder = StandIn::start("holder", Mode::Accept).await;
    let other = StandIn::start("other", Mode::Accept).await;
    register(&stack, &[holder.record(2, 1), other.record(8, 0)]).await;
    stack
        .store()
        .await
        .acquire_lease("stream-5", "holder", LEASE_TTL, time::now())
        .await
        .expect("lease");

    let frag = "a=ice-ufrag:abcd\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n";
    let r = whip(
        &stack,
        "PATCH",
        "/whip/stream-5/sess-holder",
        Some(("application/trickle-ice-sdpfrag", frag)),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = whip(&stack, "DELETE", "/whip/stream-5/sess-holder", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A publisher coming back while the lease stands goes to its node, though another has
    // more room.
    let r = offer(&stack, "stream-5").await;
    assert_eq!(r.status, 201, "{}", r.text);

    let seen = holder.seen();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("PATCH", "/whip/stream-5/sess-holder"),
            ("DELETE", "/whip/stream-5/sess-holder"),
            ("POST", "/whip/stream-5"),
        ]
    );
    assert_eq!(seen[0].body, frag);
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/trickle-ice-sdpfrag")
    );
    assert!(other.seen().is_empty());
}

#[tokio::test]
async fn session_requests_without_a_live_holder_are_404() {
    let stack = Stack::start();
    let r = whip(&stack, "DELETE", "/whip/stream-6/sess-x", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);

    // The holder's heartbeat stopped: its lease no longer routes anything.
    let dead = StandIn::start("dead", Mode::Accept).await;
    let mut rec = dead.record(4, 1);
    rec.heartbeat_at = time::now() - chrono::Duration::seconds(60);
    register(&stack, &[rec]).await;
    stack
        .store()
        .await
        .acquire_lease("stream-6", "dead", LEASE_TTL, time::now())
        .await
        .expect("lease");
    let r = whip(&stack, "DELETE", "/whip/stream-6/sess-x", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);
    assert!(dead.seen().is_empty());
}

#[tokio::test]
async fn malformed_ids_are_400_before_any_storage_call() {
    let stack = Stack::start();
    // Storage is made unusable for this stack: any read the router made would fail (503
    // `storage_unavailable`).
    stack
        .dynamodb()
        .await
        .delete_table()
        .table_name(&stack.table)
        .send()
        .await
        .expect("delete table");
    let control = offer(&stack, "valid-id").await;
    assert_eq!(
        (control.status, control.code()),
        (503, "storage_unavailable"),
        "a well-formed id reads storage: {}",
        control.text
    );

    let long = "x".repeat(129);
    for path in [
        "/whip/bad.id".to_owned(),
        format!("/whip/{long}"),
        "/whip/stream~1".to_owned(),
    ] {
        let r = offer(&stack, path.trim_start_matches("/whip/")).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_path"),
            "{path}: {}",
            r.text
        );
        assert_eq!(r.headers["content-type"], "application/json");
    }
    for path in ["/whip/ok-id/bad.session", "/whip/bad.id/sess-1"] {
        let r = whip(&stack, "DELETE", path, None).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_path"),
            "{path}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn browsers_may_read_the_whip_headers_and_the_api_hands_out_the_router() {
    let stack = Stack::start_with(&[("INGEST_PUBLIC_URL", "api")]);
    let pre = stack
        .http
        .request(reqwest::Method::OPTIONS, stack.url("/whip/s1"))
        .header("origin", "https://app.example.test")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert!(pre.status().is_success(), "{}", pre.status());
    let node = StandIn::start("n", Mode::Accept).await;
    register(&stack, &[node.record(2, 0)]).await;
    let r = stack
        .http
        .post(stack.url("/whip/s1"))
        .header("origin", "https://app.example.test")
        .header("authorization", KEY)
        .header("content-type", "application/sdp")
        .body(OFFER)
        .send()
        .await
        .expect("offer");
    assert_eq!(r.status(), 201);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .expect("text")
        .to_ascii_lowercase();
    for h in ["location", "etag", "link"] {
        assert!(exposed.contains(h), "{exposed}");
    }

    let (id, _key) = User::named("alice")
        .create_stream(
            &stack,
            serde_json::json!({"channelId": "ch-alice", "title": "via the router"}),
        )
        .await;
    let r = User::named("alice")
        .get(&stack, &format!("/api/streams/{id}?ingest=true"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["ingest"]["whipUrl"],
        format!("{}/whip/{id}", stack.base),
        "INGEST_PUBLIC_URL=api: the router on the API the request reached"
    );
}

fn operator_token() -> String {
    let claims = serde_json::json!({
        "sub": "ops-1",
        "name": "Operator",
        "rill:admin": true,
        "exp": chrono::Utc::now().timestamp() + 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign")
}

#[tokio::test]
async fn the_registry_is_listed_to_operators_only() {
    let stack = Stack::start();
    let mut stale = record("n-stale", "http://10.0.0.9:8889", 4, 1);
    stale.heartbeat_at = time::now() - chrono::Duration::seconds(60);
    register(
        &stack,
        &[record("n-live", "http://10.0.0.8:8889", 4, 1), stale],
    )
    .await;

    let anonymous = User::anonymous().get(&stack, "/api/nodes").await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "unauthorized"));
    let viewer = User::named("bob").get(&stack, "/api/nodes").await;
    assert_eq!((viewer.status, viewer.code()), (403, "not_operator"));

    let ops = User {
        token: Some(operator_token()),
    };
    let live = ops.get(&stack, "/api/nodes").await;
    assert_eq!(live.status, 200, "{}", live.text);
    let items = live.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", live.text);
    assert_eq!(items[0]["id"], "n-live");
    assert_eq!(items[0]["alive"], true);
    assert_eq!(items[0]["privateUrl"], "http://10.0.0.8:8889");
    assert_eq!(items[0]["free"], 3);
    assert_eq!(items[0]["state"], "active");
    assert!(live.body["now"].is_string());

    let all = ops.get(&stack, "/api/nodes?all=true").await;
    let ids: Vec<(&str, bool)> = all.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| {
            (
                n["id"].as_str().expect("id"),
                n["alive"].as_bool().expect("alive"),
            )
        })
        .collect();
    assert_eq!(ids, [("n-live", true), ("n-stale", false)]);

    let bad = ops.get(&stack, "/api/nodes?all=yes").await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_query"));
}

#[tokio::test]
async fn a_node_that_does_not_answer_in_time_is_skipped() {
    let stack = Stack::start();
    // Accepts the connection, never answers: the router gives up after its 5 s timeout.
    let mute = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mute_url = format!("http://{}", mute.local_addr().expect("addr"));
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = mute.accept().await {
            keep.lock().expect("lock").push(sock);
        }
    });
    let taker = StandIn::start("taker", Mode::Accept).await;
    register(
        &stack,
        &[record("mute", &mute_url, 9, 0), taker.record(2, 0)],
    )
    .await;
    let started = std::time::Instant::now();
    let r = offer(&stack, "stream-7").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.text.contains("s=taker"));
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(
        held.lock().expect("lock").len(),
        1,
        "the mute node was tried"
    );
}
