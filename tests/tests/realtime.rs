//! WebSocket API end to end: real sockets (tokio-tungstenite) against the gateway, the real
//! socket functions, the Management API and the table-stream fan-out over DynamoDB Local:
//! what viewers send and receive (chat, reactions, questions, moderation, refusals). Who is
//! watching (counts, joins, leaves, pruning) is `presence.rs`.

use std::time::Duration;

use rill_core::store::StreamStore;
use rill_core::{Command, time};
use rill_tests::{Connect, Stack, User};
use serde_json::{Value, json};

/// How long a socket function may act on a stream or a standing it read earlier.
const STALE: Duration = rill_api::cache::SHORT.saturating_add(Duration::from_millis(300));
const SOON: Duration = Duration::from_secs(5);
/// The fan-out batches the table stream for up to a second.
const BATCHED: Duration = Duration::from_secs(6);

/// Socket functions see moderation and settings changes within their stated staleness
/// (functions/api/src/cache.rs): this waits it out after a change. A precondition, not a
/// wait for an outcome, so it stays a sleep: the staleness bound promises that the very
/// next frame after it sees the change, and that is what the assertion after it checks.
/// Polling instead would mean sending frames until one is refused, and each accepted one
/// is stored, fanned out and spends the sender's rate-limit tokens; the caches themselves
/// are not observable from outside.
async fn wait_out_stated_staleness() {
    tokio::time::sleep(STALE).await;
}

async fn live_stream(stack: &Stack, owner: &User, settings: Value) -> String {
    stack.live_stream(owner, "rt", "Realtime", settings).await
}

#[tokio::test]
async fn a_chat_message_reaches_every_viewer_and_refusals_reach_only_the_sender() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let mut alice = stack.socket(&id, &User::named("alice")).await;
    let mut bob = stack.socket(&id, &User::named("bob")).await;
    let mut anon = stack.socket(&id, &User::anonymous()).await;

    alice
        .send_json(json!({"action":"chat","content":"hello everyone"}))
        .await;
    for s in [&mut alice, &mut bob, &mut anon] {
        let m = s.expect("stream:chat-message", SOON).await;
        assert_eq!(m["data"]["content"], "hello everyone");
        assert_eq!(m["data"]["authorId"], "alice");
    }
    anon.send_json(json!({"action":"chat","content":"let me in"}))
        .await;
    let e = anon.expect("error", SOON).await;
    assert_eq!(e["data"]["code"], "unauthorized");
    let others = bob.drain(Duration::from_millis(800)).await;
    assert!(
        others.iter().all(|f| f["type"] != "stream:chat-message"),
        "a refusal is not broadcast: {others:?}"
    );
    let list = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/chat"))
        .await;
    assert_eq!(list.body["items"].as_array().expect("items").len(), 1);
}

#[tokio::test]
async fn bad_frames_get_an_error_frame_on_that_connection_only() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let mut alice = stack.socket(&id, &User::named("alice")).await;
    let mut bob = stack.socket(&id, &User::named("bob")).await;
    let cases = [
        ("not json".to_owned(), "invalid_json"),
        (r#"{"action":"dance"}"#.to_owned(), "unknown_action"),
        (r#"{"action":"chat"}"#.to_owned(), "invalid_frame"),
        (r#"{"content":"no action"}"#.to_owned(), "invalid_frame"),
        (
            json!({"action":"chat","content":"x".repeat(40_000)}).to_string(),
            "frame_too_large",
        ),
        (
            r#"{"action":"chat","content":""}"#.to_owned(),
            "validation_failed",
        ),
        (
            json!({"action":"chat","content":"x".repeat(501)}).to_string(),
            "validation_failed",
        ),
        (
            r#"{"action":"react","emoji":"💩"}"#.to_owned(),
            "validation_failed",
        ),
    ];
    for (frame, code) in cases {
        alice.send_text(frame.clone()).await;
        let e = alice.expect("error", SOON).await;
        assert_eq!(e["data"]["code"], code, "{}", &frame[..frame.len().min(60)]);
    }
    alice.send_json(json!({"action":"ping"})).await;
    alice.expect("pong", SOON).await;
    let seen = bob.drain(Duration::from_millis(1500)).await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "stream:chat-message" && f["type"] != "error"),
        "{seen:?}"
    );
    let list = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/chat"))
        .await;
    assert_eq!(list.body["items"], json!([]), "nothing stored");
}

#[tokio::test]
async fn rest_chat_pins_deletes_and_the_end_reach_sockets_through_the_table_stream() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let mut viewer = stack.socket(&id, &User::anonymous()).await;

    let sent = User::named("alice")
        .post(
            &stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content":"via REST"}),
        )
        .await;
    let msg_id = sent.body["id"].as_str().expect("id").to_owned();
    let m = viewer.expect("stream:chat-message", BATCHED).await;
    assert_eq!(m["data"]["content"], "via REST");
    assert!(m["data"].get("pk").is_none() && m["data"].get("origin").is_none());

    owner
        .post(
            &stack,
            &format!("/api/streams/{id}/chat/{msg_id}/pin"),
            json!({}),
        )
        .await;
    let p = viewer.expect("stream:chat-pinned", BATCHED).await;
    assert_eq!(p["data"]["messageId"], msg_id.as_str());
    owner
        .send(
            &stack,
            "DELETE",
            &format!("/api/streams/{id}/chat/{msg_id}"),
            None,
        )
        .await;
    let d = viewer.expect("stream:chat-deleted", BATCHED).await;
    assert_eq!(d["data"]["messageId"], msg_id.as_str());

    owner
        .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    let e = viewer.expect("stream:end", BATCHED).await;
    assert_eq!(e["data"]["stream"]["status"], "ended");
    assert!(!e.to_string().contains("keyHash"));
}

#[tokio::test]
async fn a_stream_going_live_is_announced() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"rt","title":"Soon"}),
        )
        .await;
    let id = r.body["id"].as_str().expect("id").to_owned();
    let mut viewer = stack.socket(&id, &User::anonymous()).await;
    stack
        .store()
        .await
        .apply(&id, Command::GoLive, time::now())
        .await
        .expect("live");
    let s = viewer.expect("stream:start", BATCHED).await;
    assert_eq!(s["data"]["stream"]["status"], "live");
}

#[tokio::test]
async fn reactions_arrive_in_batches_not_one_frame_each() {
    // Batching, not lateness (tested below), is what this checks: on a loaded test machine
    // 30 quick reactions may queue past the default 0.5 s and be refused `reaction_late`.
    let stack = Stack::start_with(&[("REACTION_MAX_WAIT_MS", "10000")]);
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let mut sender = stack.socket(&id, &User::anonymous()).await;
    let mut watcher = stack.socket(&id, &User::anonymous()).await;
    for i in 0..30 {
        let emoji = ["🔥", "👏", "❤️"][i % 3];
        sender
            .send_json(json!({"action":"react","emoji":emoji,"positionX":i,"positionY":50}))
            .await;
    }
    let mut total = 0;
    let mut frames = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while total < 30 && tokio::time::Instant::now() < deadline {
        let f = watcher.expect("stream:reaction", BATCHED).await;
        frames += 1;
        total += f["data"]["total"].as_u64().expect("total");
        assert!(f["data"]["counts"].is_object() && f["data"]["samples"].is_array());
    }
    assert_eq!(total, 30);
    assert!(frames <= 6, "30 reactions took {frames} frames");
    let s = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(s.body["stats"]["reactions"], 30);
}

/// A live stream with one anonymous viewer, and that viewer's connection id, for tests
/// that send the socket functions events of their own making.
async fn one_viewer() -> (Stack, String, rill_tests::Socket, String) {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let viewer = stack.socket(&id, &User::anonymous()).await;
    let conns = stack.items_with_sk_prefix("CONN#").await;
    let conn_id = conns[0]
        .get("connectionId")
        .and_then(|v| v.as_s().ok())
        .expect("connection id")
        .clone();
    (stack, id, viewer, conn_id)
}

/// `requestContext` of an API Gateway WebSocket event on `route`.
fn socket_context(route: &str, kind: &str, conn_id: &str, connected_at: i64, at: i64) -> Value {
    json!({
        "routeKey": route, "eventType": kind, "messageDirection": "IN",
        "extendedRequestId": "x", "requestId": "x", "messageId": "m",
        "requestTime": "01/Jan/2026:00:00:00 +0000", "stage": "ws",
        "connectedAt": connected_at, "requestTimeEpoch": at,
        "identity": {"sourceIp": "127.0.0.1"}, "domainName": "127.0.0.1",
        "connectionId": conn_id, "apiId": "local"
    })
}

/// Invokes a function through the gateway's Lambda Invoke API; its JSON answer.
async fn invoke(stack: &Stack, function: &str, event: &Value) -> Value {
    let url = stack.url(&format!("/2015-03-31/functions/{function}/invocations"));
    let r = reqwest::Client::new()
        .post(url)
        .json(event)
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap_or(Value::Null)
}

/// A reaction that waited too long for its function (API Gateway's `requestTimeEpoch` is
/// when the frame arrived) is refused with `reaction_late` and not stored, unless it is the
/// instance's first (that wait was a cold start); a fresh one is stored and delivered. The
/// event goes to the real `ws-react` through the gateway's Lambda Invoke API, as API
/// Gateway would send it.
#[tokio::test]
async fn a_reaction_that_waited_too_long_is_refused_not_stored() {
    let (stack, id, mut viewer, conn_id) = one_viewer().await;
    let react = |waited_ms: i64| {
        let now = time::now().timestamp_millis();
        let mut context =
            socket_context("react", "MESSAGE", &conn_id, now - 10_000, now - waited_ms);
        // What ws-authorize answered at `$connect`; API Gateway passes it on.
        context["authorizer"] = json!({
            "principalId": "anonymous", "admission": "stream",
            "streamId": id, "counted": "true"
        });
        json!({
            "requestContext": context,
            "body": "{\"action\":\"react\",\"emoji\":\"🔥\"}",
            "isBase64Encoded": false
        })
    };
    // The instance's first reaction is never refused (it waited for a cold start, not
    // behind a backlog), however old.
    invoke(&stack, "ws-react", &react(5_000)).await;
    let r = viewer.expect("stream:reaction", BATCHED).await;
    assert_eq!(r["data"]["total"], 1);
    assert_eq!(stack.items_with_sk_prefix("REACT#").await.len(), 1);

    // Warm, one that waited 5 s is refused and not stored; a fresh one goes through.
    invoke(&stack, "ws-react", &react(5_000)).await;
    let refused = viewer.expect("error", SOON).await;
    assert_eq!(refused["data"]["code"], "reaction_late", "{refused}");
    assert_eq!(stack.items_with_sk_prefix("REACT#").await.len(), 1);

    invoke(&stack, "ws-react", &react(0)).await;
    let r = viewer.expect("stream:reaction", BATCHED).await;
    assert_eq!(r["data"]["total"], 1);
    assert_eq!(stack.items_with_sk_prefix("REACT#").await.len(), 2);
}

/// A socket event without the authorizer's context (what API Gateway passes from
/// `ws-authorize`) is no registered socket: a frame is refused as `not_connected` and
/// writes nothing, and `$connect` fails closed (500). Events go to the real functions
/// through the gateway's Lambda Invoke API.
#[tokio::test]
async fn socket_events_without_the_authorizers_context_are_refused() {
    let (stack, id, mut viewer, conn_id) = one_viewer().await;
    let now = time::now().timestamp_millis();
    let react = json!({
        "requestContext": socket_context("react", "MESSAGE", &conn_id, now, now),
        "body": "{\"action\":\"react\",\"emoji\":\"🔥\"}",
        "isBase64Encoded": false
    });
    invoke(&stack, "ws-react", &react).await;
    let refused = viewer.expect("error", SOON).await;
    assert_eq!(refused["data"]["code"], "not_connected", "{refused}");
    assert!(stack.items_with_sk_prefix("REACT#").await.is_empty());

    let connect = json!({
        "requestContext": socket_context("$connect", "CONNECT", &conn_id, now, now),
        "queryStringParameters": {"streamId": id},
        "isBase64Encoded": false
    });
    let answer = invoke(&stack, "ws-connect", &connect).await;
    assert_eq!(answer["statusCode"], 500, "{answer}");
    assert_eq!(stack.items_with_sk_prefix("CONN#").await.len(), 1);
}

/// The socket functions' connection list is cached for 1 s; past that, a message goes at
/// once to the connections the stale list names while the list is re-read, and a viewer
/// who joined since gets it right after. Nobody gets it twice.
#[tokio::test]
async fn a_viewer_who_joined_since_the_list_was_cached_still_gets_chat() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let mut alice = stack.socket(&id, &User::named("alice")).await;
    alice
        .send_json(json!({"action":"chat","content":"first"}))
        .await;
    alice.expect("stream:chat-message", SOON).await;
    let mut bob = stack.socket(&id, &User::named("bob")).await;
    // Precondition, not a wait for an outcome: the list alice's instance holds must be past
    // its second (and bob is not in it) so the next message takes the stale-list path. The
    // cache is not observable from outside, so this is a sleep.
    tokio::time::sleep(rill_api::cache::CONNECTION_LISTS + Duration::from_millis(200)).await;
    alice
        .send_json(json!({"action":"chat","content":"second"}))
        .await;
    for s in [&mut alice, &mut bob] {
        let m = s.expect("stream:chat-message", SOON).await;
        assert_eq!(m["data"]["content"], "second");
    }
    let later = bob.drain(Duration::from_millis(800)).await;
    assert!(
        later.iter().all(|f| f["type"] != "stream:chat-message"),
        "no second copy: {later:?}"
    );
}

#[tokio::test]
async fn moderation_rules_hold_on_sockets() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let bob = User::named("bob");
    let mut bob_socket = stack.socket(&id, &bob).await;

    // a moderator may ban; a banned user can neither chat nor reconnect
    assert_eq!(
        owner
            .send(
                &stack,
                "PUT",
                &format!("/api/streams/{id}/moderators/mod"),
                None
            )
            .await
            .status,
        200
    );
    let r = User::named("mod")
        .send(&stack, "PUT", &format!("/api/streams/{id}/bans/bob"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = User::named("mod")
        .send(
            &stack,
            "PUT",
            &format!("/api/streams/{id}/bans/owner"),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "nobody bans the owner");
    assert_eq!(
        User::named("rando")
            .send(&stack, "PUT", &format!("/api/streams/{id}/bans/x"), None)
            .await
            .status,
        403
    );
    wait_out_stated_staleness().await;
    bob_socket
        .send_json(json!({"action":"chat","content":"spam"}))
        .await;
    assert_eq!(
        bob_socket.expect("error", SOON).await["data"]["code"],
        "banned"
    );
    match stack.connect(&id, &bob).await {
        Connect::Refused(status) => assert_eq!(status, 403),
        Connect::Open(_) => panic!("a banned user must not reconnect"),
    }
    owner
        .send(
            &stack,
            "DELETE",
            &format!("/api/streams/{id}/bans/bob"),
            None,
        )
        .await;
    wait_out_stated_staleness().await;
    bob_socket
        .send_json(json!({"action":"chat","content":"sorry"}))
        .await;
    bob_socket.expect("stream:chat-message", SOON).await;

    // followers-only chat, membership managed by the channel's owner
    owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"settings":{"chatMode":"followers"}})),
        )
        .await;
    wait_out_stated_staleness().await;
    let mut carol = stack.socket(&id, &User::named("carol")).await;
    carol
        .send_json(json!({"action":"chat","content":"hi"}))
        .await;
    assert_eq!(
        carol.expect("error", SOON).await["data"]["code"],
        "chat_restricted"
    );
    let r = User::named("bob")
        .send(
            &stack,
            "PUT",
            "/api/channels/rt/members/carol",
            Some(json!({"role":"follower"})),
        )
        .await;
    assert_eq!(r.status, 403, "only the channel owner manages members");
    let r = owner
        .send(
            &stack,
            "PUT",
            "/api/channels/rt/members/carol",
            Some(json!({"role":"follower"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_out_stated_staleness().await;
    carol
        .send_json(json!({"action":"chat","content":"hi again"}))
        .await;
    carol.expect("stream:chat-message", SOON).await;

    // chat off
    owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"settings":{"chatEnabled":false}})),
        )
        .await;
    wait_out_stated_staleness().await;
    carol
        .send_json(json!({"action":"chat","content":"anyone?"}))
        .await;
    assert_eq!(
        carol.expect("error", SOON).await["data"]["code"],
        "chat_disabled"
    );
}

#[tokio::test]
async fn the_rate_limit_and_slow_mode_hold_per_user() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let mut dave = stack.socket(&id, &User::named("dave")).await;
    for i in 0..3 {
        dave.send_json(json!({"action":"chat","content":format!("burst {i}")}))
            .await;
        dave.expect("stream:chat-message", SOON).await;
    }
    dave.send_json(json!({"action":"chat","content":"one too many"}))
        .await;
    assert_eq!(
        dave.expect("error", SOON).await["data"]["code"],
        "rate_limited"
    );
    // REST shares the same budget
    let r = User::named("dave")
        .post(
            &stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content":"rest too"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));

    owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"settings":{"slowModeSeconds":30}})),
        )
        .await;
    wait_out_stated_staleness().await;
    let mut erin = stack.socket(&id, &User::named("erin")).await;
    erin.send_json(json!({"action":"chat","content":"first"}))
        .await;
    erin.expect("stream:chat-message", SOON).await;
    erin.send_json(json!({"action":"chat","content":"second"}))
        .await;
    let e = erin.expect("error", SOON).await;
    assert_eq!(e["data"]["code"], "slow_mode");
    // the owner is not held back
    let mut boss = stack.socket(&id, &owner).await;
    for i in 0..4 {
        boss.send_json(json!({"action":"chat","content":format!("owner {i}")}))
            .await;
        boss.expect("stream:chat-message", SOON).await;
    }
}

#[tokio::test]
async fn questions_are_asked_upvoted_once_and_answered() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = live_stream(&stack, &owner, json!({})).await;
    let mut alice = stack.socket(&id, &User::named("alice")).await;
    let mut viewer = stack.socket(&id, &User::anonymous()).await;
    alice
        .send_json(json!({"action":"question","content":"What camera is that?"}))
        .await;
    let q = viewer.expect("stream:question", SOON).await;
    let qid = q["data"]["question"]["id"].as_str().expect("id").to_owned();
    viewer
        .send_json(json!({"action":"question","content":"anon?"}))
        .await;
    assert_eq!(
        viewer.expect("error", SOON).await["data"]["code"],
        "unauthorized"
    );

    let path = format!("/api/streams/{id}/questions/{qid}");
    let r = User::named("bob")
        .post(&stack, &format!("{path}/upvote"), json!({}))
        .await;
    assert_eq!((r.status, r.body["upvotes"].as_u64()), (200, Some(1)));
    let r = User::named("bob")
        .post(&stack, &format!("{path}/upvote"), json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "already_voted"));
    let up = viewer.expect("stream:question", BATCHED).await;
    assert_eq!(up["data"]["question"]["upvotes"], 1);
    assert_eq!(
        User::named("bob")
            .post(&stack, &format!("{path}/answer"), json!({}))
            .await
            .status,
        403
    );
    let r = owner
        .post(&stack, &format!("{path}/answer"), json!({}))
        .await;
    assert_eq!(r.body["answered"], true);
    let list = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/questions"))
        .await;
    assert_eq!(list.body["items"][0]["answered"], true);
}
