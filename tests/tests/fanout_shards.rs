//! Sharded fan-out end to end: with `FANOUT_SHARD_SIZE=4`, an audience of 12 sockets is
//! split into 3 shards; `events-fanout` (REST chat, through the table stream) and `ws-chat`
//! (socket chat, `emit`) deliver the first shard themselves and invoke
//! `events-fanout-shard` for the others through the gateway's Lambda Invoke API. Every
//! viewer must get every message exactly once.

use std::time::Duration;

use rill_tests::{Stack, User};
use serde_json::json;

const VIEWERS: usize = 12;
const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_large_audience_gets_each_message_exactly_once_through_shards() {
    let stack = Stack::start_with(&[("FANOUT_SHARD_SIZE", "4")]);
    let owner = User::named("owner");
    let id = stack
        .live_stream(&owner, "shards", "Sharded", json!({}))
        .await;
    let mut sockets = Vec::new();
    for i in 0..VIEWERS {
        sockets.push(stack.socket(&id, &User::named(&format!("viewer{i}"))).await);
    }
    // The socket functions read a stream's connection list at most 1 s stale: let it
    // include all twelve before the socket message. A precondition (the cache is not
    // observable from outside), not a wait for an outcome: the deliveries below are polled.
    tokio::time::sleep(rill_api::cache::CONNECTION_LISTS + Duration::from_millis(300)).await;

    let sent = User::named("alice")
        .post(
            &stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content": "via REST"}),
        )
        .await;
    assert_eq!(sent.status, 201, "{}", sent.text);
    sockets[0]
        .send_json(json!({"action": "chat", "content": "via socket"}))
        .await;

    for (i, socket) in sockets.iter_mut().enumerate() {
        let mut seen: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + WITHIN;
        while seen.len() < 2 {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = socket.next(left).await else {
                panic!("viewer {i} got only {seen:?}");
            };
            if frame["type"] == "stream:chat-message" {
                seen.push(
                    frame["data"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
        // Anything more would be a duplicate (no other chat is sent).
        let more = socket.drain(Duration::from_millis(300)).await;
        seen.extend(
            more.iter()
                .filter(|f| f["type"] == "stream:chat-message")
                .map(|f| f["data"]["content"].as_str().unwrap_or_default().to_owned()),
        );
        seen.sort();
        assert_eq!(seen, ["via REST", "via socket"], "viewer {i}");
    }

    let stats = stack.gateway_stats().await;
    let shards = stats["functions"]["events-fanout-shard"]["invocations"]
        .as_u64()
        .unwrap_or(0);
    // Two messages to 3 shards of 4: at least 2 invocations each (presence and counts
    // are sharded too).
    assert!(shards >= 4, "events-fanout-shard invocations: {shards}");
}
