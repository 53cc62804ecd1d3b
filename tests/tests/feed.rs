//! The ordered event feed (`GET /api/streams/{id}/events`) on the real binaries: every
//! event of a stream's life, REST-born and socket-born, numbered 1, 2, 3, ... in the order
//! it happened; replay from any number gives exactly the rest; a redelivered batch adds
//! nothing; a deleted message's text is gone from the feed as from storage; only the owner
//! and moderators may read it.

use std::time::{Duration, Instant};

use rill_core::event::{Event, EventType};
use rill_core::feed::FeedEntry;
use rill_core::store::FeedStore;
use rill_tests::{Stack, User};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(10);

/// Every event of the feed, read `limit` at a time from `after = 0`.
async fn read_all(stack: &Stack, user: &User, id: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let r = user
            .get(
                stack,
                &format!("/api/streams/{id}/events?after={after}&limit={limit}"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.body["items"].as_array().expect("items").clone();
        if items.is_empty() {
            assert_eq!(r.body["next"], after, "nothing new: next stays");
            return out;
        }
        after = r.body["next"].as_u64().expect("next");
        assert_eq!(items.last().expect("one")["seq"], after);
        out.extend(items);
    }
}

#[tokio::test]
async fn a_streams_life_is_replayed_in_order_exactly_once_from_any_number() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = stack.live_stream(&owner, "feed", "Feed", json!({})).await;
    let mut socket = stack.socket(&id, &User::named("viewer")).await;
    // REST and socket chat, interleaved; a question; a reaction; a deletion; the end.
    let chat = format!("/api/streams/{id}/chat");
    let r = owner
        .post(&stack, &chat, json!({"content": "rest 1"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.body["id"].as_str().expect("id").to_owned();
    socket
        .send_json(json!({"action": "chat", "content": "socket 1"}))
        .await;
    // Stored before it is sent back (the REST message's frame may come first).
    while socket.expect("stream:chat-message", WITHIN).await["data"]["content"] != "socket 1" {}
    let r = owner
        .post(&stack, &chat, json!({"content": "rest 2"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    socket
        .send_json(json!({"action": "question", "content": "why?"}))
        .await;
    socket.expect("stream:question", WITHIN).await;
    socket
        .send_json(json!({"action": "react", "emoji": "🔥"}))
        .await;
    socket.expect("stream:reaction", WITHIN).await;
    let r = owner
        .send(&stack, "DELETE", &format!("{chat}/{first}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The feed catches up within a few polls of the table stream.
    let deadline = Instant::now() + WITHIN;
    let all = loop {
        let all = read_all(&stack, &owner, &id, 100).await;
        if all.last().is_some_and(|e| e["type"] == "stream:end") {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "no stream:end in the feed: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>(), "no holes");
    let kinds: Vec<&str> = all
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    let chats: Vec<&str> = all
        .iter()
        .filter(|e| e["type"] == "stream:chat-message")
        .map(|e| e["data"]["content"].as_str().expect("content"))
        .collect();
    // Each once, in order; the deleted one shows as deleted, its text gone everywhere.
    assert_eq!(chats, ["", "socket 1", "rest 2"], "{kinds:?}");
    let deleted: Vec<bool> = all
        .iter()
        .filter(|e| e["type"] == "stream:chat-message")
        .map(|e| e["data"]["deleted"].as_bool().expect("deleted"))
        .collect();
    assert_eq!(deleted, [true, false, false]);
    let dump = format!("{:?}", stack.scan_all().await);
    assert!(
        !dump.contains("rest 1"),
        "a deleted message's text is in storage"
    );
    assert!(dump.contains("rest 2"));
    assert_eq!(kinds.first(), Some(&"stream:start"), "{kinds:?}");
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap_or(usize::MAX);
    assert!(at("stream:question") < at("stream:reaction"), "{kinds:?}");
    assert!(
        at("stream:reaction") < at("stream:chat-deleted"),
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "stream:end").count(), 1);
    assert!(all.iter().all(|e| e["streamId"] == id.as_str()));

    // Replay from any number is exactly the rest; pages of two read the same.
    for k in [0, 1, 3, all.len() - 1, all.len()] {
        let r = owner
            .get(&stack, &format!("/api/streams/{id}/events?after={k}"))
            .await;
        assert_eq!(r.body["items"].as_array().expect("items")[..], all[k..]);
    }
    assert_eq!(read_all(&stack, &owner, &id, 2).await, all);
}

#[tokio::test]
async fn only_the_owner_and_moderators_read_the_feed_and_bad_numbers_are_refused() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let id = stack
        .live_stream(&owner, "feedrights", "Rights", json!({}))
        .await;
    let path = format!("/api/streams/{id}/events");
    let r = User::anonymous().get(&stack, &path).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"), "{}", r.text);
    let r = User::named("stranger").get(&stack, &path).await;
    assert_eq!((r.status, r.code()), (403, "not_moderator"), "{}", r.text);
    let r = owner
        .send(
            &stack,
            "PUT",
            &format!("/api/streams/{id}/moderators/mia"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = User::named("mia").get(&stack, &path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for bad in [
        "after=-1",
        "after=x",
        "after=1.5",
        "after=1000000000000",
        "limit=0",
        "limit=501",
    ] {
        let r = owner.get(&stack, &format!("{path}?{bad}")).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_query"),
            "{bad}: {}",
            r.text
        );
    }
    let r = owner
        .get(&stack, "/api/streams/01ZZZZZZZZZZZZZZZZZZZZZZZZ/events")
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test]
async fn a_redelivered_batch_appends_nothing_and_numbering_goes_on() {
    let stack = Stack::start();
    let store = stack.store().await;
    let stream = rill_core::ids::new_id();
    let entry = |position: &str, content: &str| FeedEntry {
        position: position.into(),
        event: Event::new(
            EventType::ChatMessage,
            &stream,
            json!({"content": content}),
            rill_core::time::now(),
        ),
    };
    let batch = [entry("0001", "a"), entry("0002", "b"), entry("0002", "c")];
    assert_eq!(
        store.append(&stream, &batch).await.expect("append"),
        [1, 2, 3]
    );
    assert!(
        store
            .append(&stream, &batch)
            .await
            .expect("again")
            .is_empty()
    );
    // A batch that overlaps the last one: only its new part.
    let next = [entry("0002", "c"), entry("0003", "d")];
    assert_eq!(store.append(&stream, &next).await.expect("next"), [4]);
    // More than one transaction's worth (99 events each).
    let many: Vec<FeedEntry> = (0..150)
        .map(|i| entry(&format!("1{i:04}"), &i.to_string()))
        .collect();
    let given = store.append(&stream, &many).await.expect("many");
    assert_eq!(given, (5..=154).collect::<Vec<u64>>());
    let read = store.read(&stream, 0, 500).await.expect("read");
    let contents: Vec<&str> = read
        .iter()
        .map(|e| e.event.data["content"].as_str().expect("content"))
        .collect();
    assert_eq!(&contents[..4], ["a", "b", "c", "d"]);
    assert_eq!(contents.len(), 154);
    assert_eq!(
        read.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=154).collect::<Vec<u64>>()
    );
    assert_eq!(store.read(&stream, 150, 500).await.expect("tail").len(), 4);
}
