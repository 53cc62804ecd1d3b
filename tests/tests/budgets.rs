//! Storage-call budgets of the realtime operations (docs/architecture.md section 6), counted
//! on the real binaries: the stack reaches DynamoDB through a counting proxy that attributes
//! every DynamoDB request to the function that sent it (`rill_tests::Counter`).
//!
//! Budgets are for a warm instance (the common case on a busy stream): caches with stated
//! staleness stand in for reads a cold instance makes once. Each test warms the function
//! with one operation, then counts the next one.

use std::time::Duration;

use rill_tests::{Counter, Stack, User};
use serde_json::json;

/// No function call for this long: the table stream's next poll (250 ms) and what it sets off
/// (a presence send waits up to a second) have happened.
const QUIET: Duration = Duration::from_millis(1500);
const WITHIN: Duration = Duration::from_secs(10);

async fn counted(counter: &Counter, function: &str) -> Vec<String> {
    counter.settle(QUIET, WITHIN).await;
    counter.dynamodb_calls_of(function)
}

fn writes(calls: &[String]) -> usize {
    calls
        .iter()
        .filter(|c| {
            matches!(
                c.as_str(),
                "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
            )
        })
        .count()
}

async fn live(stack: &Stack) -> String {
    stack
        .live_stream(&User::named("owner"), "budgets", "Budgets", json!({}))
        .await
}

#[tokio::test]
async fn connect_takes_at_most_two_calls_with_its_authorizer_and_disconnect_one_write() {
    let (stack, counter) = Stack::start_counted(&[]);
    let id = live(&stack).await;
    for user in [User::anonymous(), User::named("viewer")] {
        // A busy stream: another viewer connected just before, so the stream is in the
        // warm authorizer's 2 s cache.
        let other = stack.socket(&id, &User::named("warm")).await;
        counter.clear();
        let socket = stack.socket(&id, &user).await;
        let mut calls = counted(&counter, "ws-authorize").await;
        let connect = counted(&counter, "ws-connect").await;
        assert_eq!(connect, ["PutItem"], "$connect registers in one write");
        calls.extend(connect);
        assert!(
            calls.len() <= 2,
            "$connect with its authorizer made {calls:?}"
        );
        counter.clear();
        socket.close().await;
        let calls = counted(&counter, "ws-disconnect").await;
        assert_eq!(
            calls,
            ["DeleteItem"],
            "$disconnect: the listing's delete (the ended view follows in events-presence)"
        );
        other.close().await;
    }
}

#[tokio::test]
async fn a_chat_message_takes_at_most_two_calls_before_fan_out() {
    let (stack, counter) = Stack::start_counted(&[]);
    let id = live(&stack).await;
    let mut socket = stack.socket(&id, &User::named("chatter")).await;
    socket
        .send_json(json!({"action": "chat", "content": "warming up"}))
        .await;
    socket.expect("stream:chat-message", WITHIN).await;
    // Right after (within the caches' 2 s; the rate limit's burst allows it).
    counter.clear();
    socket
        .send_json(json!({"action": "chat", "content": "counted"}))
        .await;
    socket.expect("stream:chat-message", WITHIN).await;
    let calls = counted(&counter, "ws-chat").await;
    // The connection list (`Query`) is the fan-out's.
    let before: Vec<_> = calls.iter().filter(|c| *c != "Query").collect();
    assert!(before.len() <= 2, "chat made {calls:?}");
}

#[tokio::test]
async fn a_reaction_is_one_write_and_a_heartbeat_at_most_one() {
    let (stack, counter) = Stack::start_counted(&[]);
    let id = live(&stack).await;
    let mut socket = stack.socket(&id, &User::named("fan")).await;
    // The join's own presence batch (up to a second later) reads the connection list
    // too: let it go out before counting the reactions' batches.
    socket.expect("stream:viewer-count", WITHIN).await;
    counter.settle(QUIET, WITHIN).await;
    for _ in 0..2 {
        counter.clear();
        socket
            .send_json(json!({"action": "react", "emoji": "🔥"}))
            .await;
        socket.expect("stream:reaction", WITHIN).await;
        let calls = counted(&counter, "ws-react").await;
        // One write; at most the stream's read besides (its 2 s cache), never the
        // connection's.
        assert_eq!(writes(&calls), 1, "reaction made {calls:?}");
        assert!(calls.len() <= 2, "reaction made {calls:?}");
        // Its batch: one write that counts the batch's reactions on the stream, the
        // feed's head read and one transaction appending the batch's events, and the
        // connection list once.
        let mut calls = counted(&counter, "events-fanout").await;
        calls.sort();
        assert_eq!(
            calls,
            ["GetItem", "Query", "TransactWriteItems", "UpdateItem"],
            "the reaction's fan-out"
        );
    }
    for _ in 0..2 {
        counter.clear();
        socket
            .send_json(json!({"action": "heartbeat", "quality": "720p", "buffering": 0}))
            .await;
        let calls = counted(&counter, "ws-heartbeat").await;
        assert_eq!(
            calls,
            ["UpdateItem"],
            "a heartbeat is one write, nothing read"
        );
    }
    socket.close().await;
}

#[tokio::test]
async fn a_viewer_count_read_is_one_call() {
    let (stack, counter) = Stack::start_counted(&[]);
    let id = live(&stack).await;
    counter.clear();
    let r = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/viewers"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = counted(&counter, "streams-viewers").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
}

#[tokio::test]
async fn a_presence_send_reads_the_list_once_and_writes_at_most_twice_plus_the_ended_views() {
    let (stack, counter) = Stack::start_counted(&[]);
    let id = live(&stack).await;
    // The owner's page gets the counts but is no viewer.
    let mut watcher = stack.socket(&id, &User::named("owner")).await;
    watcher.expect("stream:viewer-count", WITHIN).await;
    counter.clear();
    let viewer = stack.socket(&id, &User::named("viewer")).await;
    let count = watcher.expect("stream:viewer-count", WITHIN).await;
    assert_eq!(count["data"], json!({"count": 1, "peak": 1}));
    let all = counted(&counter, "events-presence").await;
    // The analytics folded in the same batches write minute buckets: one per stream-minute
    // per batch (here the join's batch, and the count's own), whatever the audience.
    let (buckets, calls): (Vec<String>, Vec<String>) =
        all.into_iter().partition(|c| c == "UpdateItem MIN#");
    assert!(buckets.len() <= 2, "analytics wrote {buckets:?}");
    // The list, the count (with the view), and the peak (a new high).
    assert_eq!(
        calls,
        ["Query", "UpdateItem", "UpdateItem"],
        "presence made {calls:?}"
    );
    counter.clear();
    viewer.close().await;
    let count = watcher.expect("stream:viewer-count", WITHIN).await;
    assert_eq!(count["data"], json!({"count": 0, "peak": 1}));
    let calls: Vec<String> = counted(&counter, "events-presence")
        .await
        .into_iter()
        .filter(|c| c != "UpdateItem MIN#")
        .collect();
    // The list, the count, then the ended view of the viewer who left (one batch write
    // for up to 25 leaves).
    assert_eq!(
        calls,
        ["Query", "UpdateItem", "BatchWriteItem"],
        "no new peak: {calls:?}"
    );
}
