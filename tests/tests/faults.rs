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

/// A real function process dying in the middle of a request (killed while it waits on a
/// stalled table): the caller gets 502 `function_crashed` at once, not a hang; the next
/// request gets a fresh instance and works; what was acknowledged before is still there.
#[tokio::test]
async fn a_function_killed_mid_request_answers_502_and_the_next_request_works() {
    let (stack, counter) = Stack::start_counted(&[]);
    let owner = User::named("owner");
    let (id, _) = owner
        .create_stream(&stack, json!({"channelId": "faults", "title": "Crash"}))
        .await;
    let path = format!("/api/streams/{id}");
    let chat = format!("{path}/chat");
    let r = owner
        .post(&stack, &chat, json!({"content": "acknowledged before"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    counter.set_fault(Fault::Stall);
    let killed = async {
        // The instance serving the request, busy because its table read is stalled.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = stack.gateway_stats().await;
            let busy = stats["functions"]["streams-get"]["instances"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["state"] == "busy")
                .and_then(|i| i["pid"].as_u64());
            if let Some(pid) = busy {
                let status = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .expect("kill");
                assert!(status.success(), "kill {pid}");
                return (pid, Instant::now());
            }
            assert!(Instant::now() < deadline, "no busy streams-get instance");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (r, (pid, killed_at)) = tokio::join!(owner.get(&stack, &path), killed);
    let answered_after_kill = killed_at.elapsed();
    assert_eq!(
        (r.status, r.code()),
        (502, "function_crashed"),
        "{}",
        r.text
    );
    assert!(
        answered_after_kill < Duration::from_secs(3),
        "the crash was answered {answered_after_kill:?} after the kill"
    );

    counter.set_fault(Fault::None);
    let r = owner.get(&stack, &path).await;
    assert_eq!(r.status, 200, "after the crash: {}", r.text);
    let stats = stack.gateway_stats().await;
    let pids: Vec<u64> = stats["functions"]["streams-get"]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter(|i| i["state"] != "dead")
        .filter_map(|i| i["pid"].as_u64())
        .collect();
    assert!(
        !pids.contains(&pid),
        "the killed instance still serves: {stats}"
    );
    let r = owner.get(&stack, &chat).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["items"][0]["content"], "acknowledged before");
}
