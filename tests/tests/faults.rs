//! DynamoDB failing under the real binaries: a fault-injecting proxy
//! (`rill_tests::counting::Fault`) sits between the stack and DynamoDB Local and refuses or
//! stalls every request on demand. REST answers 503 `storage_unavailable` with
//! `Retry-After` before the function's timeout, a socket gets an error frame for the frame
//! it sent, nothing acknowledged before the outage is lost, and the next request after it
//! works.

use std::time::{Duration, Instant};

use rill_tests::counting::Fault;
use rill_tests::{Stack, User};
use serde_json::json;

/// Lambda's timeout for the API functions (infra/template.yaml, `Globals`): an answer must
/// come before it, or the caller would see the function killed instead of a 503.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn dynamodb_down_or_stalled_is_a_503_with_retry_after_and_loses_nothing() {
    let (stack, counter) = Stack::start_counted(&[]);
    let owner = User::named("owner");
    let (id, _) = owner
        .create_stream(&stack, json!({"channelId": "faults", "title": "Outage"}))
        .await;
    let chat = format!("/api/streams/{id}/chat");
    let r = owner
        .post(&stack, &chat, json!({"content": "acknowledged before"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    for fault in [Fault::Refuse, Fault::Stall] {
        counter.set_fault(fault);
        for (method, path, body) in [
            ("GET", format!("/api/streams/{id}"), None),
            ("POST", chat.clone(), Some(json!({"content": "during"}))),
        ] {
            let started = Instant::now();
            let r = owner.send(&stack, method, &path, body).await;
            let took = started.elapsed();
            assert_eq!(
                (r.status, r.code()),
                (503, "storage_unavailable"),
                "{fault:?} {method} {path}: {}",
                r.text
            );
            assert!(
                r.headers.contains_key("retry-after"),
                "{fault:?}: {:?}",
                r.headers
            );
            assert!(took < FUNCTION_TIMEOUT, "{fault:?} {method} took {took:?}");
        }
        counter.set_fault(Fault::None);
        let r = User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await;
        assert_eq!(r.status, 200, "after {fault:?}: {}", r.text);
    }

    let r = owner.get(&stack, &chat).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let contents: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        contents,
        ["acknowledged before"],
        "refused writes wrote nothing"
    );
}

#[tokio::test]
async fn a_socket_frame_that_meets_a_failed_table_gets_an_error_frame() {
    let (stack, counter) = Stack::start_counted(&[]);
    let owner = User::named("owner");
    let id = stack
        .live_stream(&owner, "faults", "Socket outage", json!({}))
        .await;
    let mut socket = stack.socket(&id, &User::named("viewer")).await;
    // A first message warms the function's caches (connection, stream, standing), so the
    // next one needs the table only for its rate bucket and its write.
    socket
        .send_json(json!({"action": "chat", "content": "warm"}))
        .await;
    socket
        .expect("stream:chat-message", Duration::from_secs(10))
        .await;
    counter.set_fault(Fault::Refuse);
    socket
        .send_json(json!({"action": "chat", "content": "lost?"}))
        .await;
    let frame = socket.expect("error", FUNCTION_TIMEOUT).await;
    assert_eq!(frame["data"]["code"], "storage_unavailable", "{frame}");
    counter.set_fault(Fault::None);
    socket
        .send_json(json!({"action": "chat", "content": "back"}))
        .await;
    let got = socket
        .expect("stream:chat-message", Duration::from_secs(10))
        .await;
    assert_eq!(got["data"]["content"], "back", "{got}");
}
