//! Webhooks on the real binaries (`webhooks-*` functions, the local gateway's Invoke API and
//! table-stream poller, DynamoDB Local) with a real HTTP receiver on 127.0.0.1: a stream's
//! whole life arrives in order with valid signatures, also across 30 s of the receiver
//! being down; a webhook failing past its retry window is disabled with the reason and,
//! re-enabled, resumes exactly where it stopped; targets inside the network are refused;
//! only the channel's owner manages webhooks.
//!
//! Signatures are checked with the `openssl` CLI, not with our own code.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rill_tests::{Stack, User};
use serde_json::{Value, json};

const SECRET: &str = "rill-webhook-test-secret-0123456789";

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Delivery {
    signature: String,
    delivery: String,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Seen {
    deliveries: Vec<Delivery>,
    /// Requests answered with an error while `failing`.
    refused: usize,
    failing: Option<StatusCode>,
}

/// A webhook endpoint: records what it is sent; can answer errors, or be down (not
/// listening at all).
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

async fn take(State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut seen = seen.lock().expect("lock");
    if let Some(status) = seen.failing {
        seen.refused += 1;
        return status;
    }
    seen.deliveries.push(Delivery {
        signature: header("rill-signature"),
        delivery: header("rill-delivery"),
        body,
    });
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut r = Receiver {
            addr,
            seen: Arc::default(),
            server: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(self.seen.clone());
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Down: nothing listens on the port (and connections already open are answered 503).
    fn stop(&mut self) {
        self.seen.lock().expect("lock").failing = Some(StatusCode::SERVICE_UNAVAILABLE);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the same port");
        self.seen.lock().expect("lock").failing = None;
        self.serve(listener);
    }

    fn fail_with(&self, status: Option<StatusCode>) {
        self.seen.lock().expect("lock").failing = status;
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().expect("lock").deliveries.clone()
    }

    fn refused(&self) -> usize {
        self.seen.lock().expect("lock").refused
    }

    /// Every event received, in the order received (duplicates included).
    fn events(&self) -> Vec<Value> {
        self.deliveries()
            .iter()
            .flat_map(|d| {
                let body: Value = serde_json::from_slice(&d.body).expect("json body");
                body["events"].as_array().expect("events").clone()
            })
            .collect()
    }

    /// Waits until a `stream:end` of `stream_id` has arrived.
    async fn wait_for_end(&self, stream_id: &str, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let events = self.events();
            if events
                .iter()
                .any(|e| e["type"] == "stream:end" && e["streamId"] == stream_id)
            {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "no stream:end within {within:?}; got {} events",
                events.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The HMAC-SHA256 of `"{t}.{body}"` as `openssl dgst` computes it.
fn openssl_hmac(secret: &str, t: &str, body: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(t.as_bytes()).expect("write");
        stdin.write_all(b".").expect("write");
        stdin.write_all(body).expect("write");
    }
    let out = child.wait_with_output().expect("openssl output");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

/// Every delivery is signed over its exact body with the secret, recently.
fn assert_signed(deliveries: &[Delivery], secret: &str) {
    assert!(!deliveries.is_empty());
    let now = chrono::Utc::now().timestamp();
    for d in deliveries {
        let (t, v1) = d
            .signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap_or_else(|| panic!("signature header {:?}", d.signature));
        let at: i64 = t.parse().expect("t is unix seconds");
        assert!((now - at).abs() < 600, "t={at} is not recent");
        assert_eq!(
            v1,
            openssl_hmac(secret, t, &d.body),
            "signature of {}",
            d.delivery
        );
    }
}

/// The events as the receiver should de-duplicate them: by seq, first copy kept; checks
/// that copies are identical and that nothing came out of order.
fn distinct_in_order(events: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for e in events {
        let seq = e["seq"].as_u64().expect("seq");
        match out.iter().find(|k| k["seq"] == seq) {
            Some(known) => assert_eq!(known, e, "a redelivered event differs"),
            None => {
                let last = out.last().map_or(0, |k| k["seq"].as_u64().expect("seq"));
                assert_eq!(seq, last + 1, "out of order or a hole after {last}: {e}");
                out.push(e.clone());
            }
        }
    }
    out
}

/// The stream's feed, as `GET /events` replays it.
async fn feed(stack: &Stack, owner: &User, id: &str) -> Vec<Value> {
    let r = owner
        .get(
            stack,
            &format!("/api/streams/{id}/events?after=0&limit=500"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().expect("items").clone()
}

async fn channel(stack: &Stack, owner: &User, id: &str) {
    let r = owner
        .post(stack, "/api/channels", json!({"id": id, "name": id}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn register(stack: &Stack, owner: &User, channel: &str, body: Value) -> Value {
    let r = owner
        .post(stack, &format!("/api/channels/{channel}/webhooks"), body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn hooks(stack: &Stack, owner: &User, channel: &str) -> Vec<Value> {
    let r = owner
        .get(stack, &format!("/api/channels/{channel}/webhooks"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().expect("items").clone()
}

async fn chat(stack: &Stack, user: &User, id: &str, text: &str) {
    let r = user
        .post(
            stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content": text}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn end(stack: &Stack, owner: &User, id: &str) {
    let r = owner
        .post(stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_webhook_receives_a_streams_whole_life_in_order_signed_across_30_s_of_downtime() {
    let stack = Stack::start();
    let owner = User::named("hook-owner");
    let mut receiver = Receiver::start().await;
    channel(&stack, &owner, "hooked").await;
    let hook = register(
        &stack,
        &owner,
        "hooked",
        json!({"url": receiver.url(), "secret": SECRET}),
    )
    .await;
    assert!(
        hook.get("secret").is_none(),
        "a given secret is never echoed"
    );
    // Another channel's stream: none of it may reach this webhook.
    let other = User::named("other-owner");
    let elsewhere = stack
        .live_stream(&other, "elsewhere", "Other", json!({}))
        .await;
    chat(&stack, &other, &elsewhere, "not yours").await;

    let id = stack
        .live_stream(&owner, "hooked", "Hooked", json!({}))
        .await;
    for i in 1..=3 {
        chat(&stack, &owner, &id, &format!("before {i}")).await;
    }
    // Delivered so far: start + 3 messages.
    let deadline = Instant::now() + Duration::from_secs(15);
    while distinct_in_order(&receiver.events()).len() < 4 {
        assert!(Instant::now() < deadline, "{:?}", receiver.events());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    receiver.stop();
    let down_at = Instant::now();
    for i in 1..=3 {
        chat(&stack, &owner, &id, &format!("while down {i}")).await;
    }
    end(&stack, &owner, &id).await;
    // The failures are visible to the owner while the receiver is down.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = hooks(&stack, &owner, "hooked").await;
        if now[0]["failures"].as_u64().unwrap_or(0) >= 2 {
            assert_eq!(now[0]["enabled"], true);
            assert!(now[0]["lastError"].is_string(), "{}", now[0]);
            break;
        }
        assert!(Instant::now() < deadline, "no failures recorded: {now:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    receiver.restart().await;

    // Retries (backoff capped at 20 s) bring the rest once it is back.
    let got = receiver.wait_for_end(&id, Duration::from_secs(40)).await;
    let distinct = distinct_in_order(&got);
    let replay = feed(&stack, &owner, &id).await;
    assert_eq!(
        distinct, replay,
        "the webhook saw exactly the feed, in order"
    );
    let kinds: Vec<&str> = distinct
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds.first(), Some(&"stream:start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"stream:end"), "{kinds:?}");
    let texts: Vec<&str> = distinct
        .iter()
        .filter(|e| e["type"] == "stream:chat-message")
        .map(|e| e["data"]["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        texts,
        [
            "before 1",
            "before 2",
            "before 3",
            "while down 1",
            "while down 2",
            "while down 3"
        ]
    );
    assert!(
        got.iter().all(|e| e["streamId"] == id.as_str()),
        "only its channel's streams"
    );
    assert_signed(&receiver.deliveries(), SECRET);
    // Delivery ids name the batch: stream and sequence range.
    for d in receiver.deliveries() {
        assert!(d.delivery.starts_with(&format!("{id}:")), "{}", d.delivery);
    }
    // Recovered: failures back to 0, the last delivery recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = hooks(&stack, &owner, "hooked").await;
        if now[0]["failures"] == 0 && now[0]["lastDeliveryAt"].is_string() {
            assert!(now[0]["lastError"].is_null(), "{}", now[0]);
            assert!(now[0].get("secret").is_none(), "{}", now[0]);
            break;
        }
        assert!(Instant::now() < deadline, "not recovered: {now:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_webhook_failing_past_its_window_is_disabled_and_resumes_where_it_stopped() {
    let stack = Stack::start_with(&[("WEBHOOK_RETRY_WINDOW_SECONDS", "3")]);
    let owner = User::named("flaky-owner");
    let receiver = Receiver::start().await;
    channel(&stack, &owner, "flaky").await;
    // Only chat and the end: starts and quality samples are not wanted.
    let hook = register(
        &stack,
        &owner,
        "flaky",
        json!({"url": receiver.url(), "events": ["stream:chat-message", "stream:end"]}),
    )
    .await;
    let secret = hook["secret"]
        .as_str()
        .expect("a generated secret, shown once")
        .to_owned();
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    assert!(
        hooks(&stack, &owner, "flaky").await[0]
            .get("secret")
            .is_none(),
        "never shown again"
    );

    receiver.fail_with(Some(StatusCode::INTERNAL_SERVER_ERROR));
    let id = stack.live_stream(&owner, "flaky", "Flaky", json!({})).await;
    chat(&stack, &owner, &id, "one").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let disabled = loop {
        let now = hooks(&stack, &owner, "flaky").await;
        if now[0]["enabled"] == false {
            break now[0].clone();
        }
        assert!(Instant::now() < deadline, "never disabled: {now:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let reason = disabled["disabledReason"].as_str().expect("reason");
    assert!(reason.contains("answered 500"), "{reason}");
    assert!(receiver.refused() >= 2, "retried before giving up");
    let refused = receiver.refused();

    // While disabled nothing is sent, and nothing is lost.
    receiver.fail_with(None);
    chat(&stack, &owner, &id, "two").await;
    chat(&stack, &owner, &id, "three").await;
    end(&stack, &owner, &id).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(receiver.deliveries().is_empty(), "sent while disabled");
    assert_eq!(receiver.refused(), refused);

    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/channels/flaky/webhooks/{hook_id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], true);
    assert!(r.body["disabledReason"].is_null(), "{}", r.body);
    let got = receiver.wait_for_end(&id, Duration::from_secs(20)).await;
    let texts: Vec<&str> = got
        .iter()
        .filter(|e| e["type"] == "stream:chat-message")
        .map(|e| e["data"]["content"].as_str().expect("content"))
        .collect();
    assert_eq!(
        texts,
        ["one", "two", "three"],
        "resumed at the first unacknowledged event"
    );
    assert!(
        got.iter()
            .all(|e| e["type"] == "stream:chat-message" || e["type"] == "stream:end"),
        "only the events asked for: {got:?}"
    );
    // Sequence numbers are the feed's (gaps are the events not asked for).
    let seqs: Vec<u64> = got
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_signed(&receiver.deliveries(), &secret);
}

#[tokio::test]
async fn targets_inside_the_network_are_refused_and_only_the_owner_manages_webhooks() {
    // The policy of AWS: no WEBHOOK_ALLOW_LOCAL.
    let stack = Stack::start_with(&[("WEBHOOK_ALLOW_LOCAL", "false")]);
    let owner = User::named("ssrf-owner");
    channel(&stack, &owner, "guarded").await;
    let path = "/api/channels/guarded/webhooks";
    for url in [
        "http://hooks.example.com/rill",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://localhost:8443/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hook",
        "https://192.168.1.10/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://user:pass@hooks.example.com/",
        "not a url",
    ] {
        let r = owner.post(&stack, path, json!({"url": url})).await;
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "validation_failed", "{}", r.text);
        assert_eq!(r.body["error"]["field"], "url", "{}", r.text);
    }
    assert!(
        hooks(&stack, &owner, "guarded").await.is_empty(),
        "nothing stored"
    );

    // Bad input: clear 4xx, nothing stored.
    for (body, status) in [
        (
            json!({"url": "https://hooks.example.com/", "secret": "short"}),
            422,
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": []}),
            422,
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["stream:viewer-count"]}),
            422,
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["stream:nope"]}),
            400,
        ),
        (
            json!({"url": "https://hooks.example.com/", "extra": 1}),
            400,
        ),
    ] {
        let r = owner.post(&stack, path, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    assert!(
        hooks(&stack, &owner, "guarded").await.is_empty(),
        "nothing stored"
    );

    // A public https target is fine (it is never called here: no stream in the channel).
    let ok = register(
        &stack,
        &owner,
        "guarded",
        json!({"url": "https://hooks.example.com/rill"}),
    )
    .await;
    let hook_id = ok["id"].as_str().expect("id");

    // Others: 403 on every operation; an unknown channel or webhook: 404.
    let stranger = User::named("ssrf-stranger");
    let one = format!("{path}/{hook_id}");
    for (method, p, body) in [
        ("GET", path.to_owned(), None),
        (
            "POST",
            path.to_owned(),
            Some(json!({"url": "https://hooks.example.com/x"})),
        ),
        ("PATCH", one.clone(), Some(json!({"enabled": false}))),
        ("DELETE", one.clone(), None),
    ] {
        let r = stranger.send(&stack, method, &p, body).await;
        assert_eq!(r.status, 403, "{method} {p}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "not_owner");
        assert!(!r.text.contains("hooks.example.com"), "{}", r.text);
    }
    let r = owner.get(&stack, "/api/channels/nowhere/webhooks").await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = owner
        .send(
            &stack,
            "DELETE",
            &format!("{path}/01JABCDEFGHJKMNPQRSTVWXYZ0"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &one,
            Some(json!({"url": "https://10.1.1.1/"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // At most 10 per channel.
    for i in 1..10 {
        register(
            &stack,
            &owner,
            "guarded",
            json!({"url": format!("https://hooks.example.com/{i}")}),
        )
        .await;
    }
    let r = owner
        .post(&stack, path, json!({"url": "https://hooks.example.com/11"}))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "webhook_limit");
    let r = owner.send(&stack, "DELETE", &one, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(hooks(&stack, &owner, "guarded").await.len(), 9);
    let r = owner
        .post(
            &stack,
            path,
            json!({"url": "https://hooks.example.com/again"}),
        )
        .await;
    assert_eq!(
        r.status, 201,
        "a deleted webhook frees its place: {}",
        r.text
    );
}
