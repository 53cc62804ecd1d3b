//! Chat and reactions end to end.

use std::time::Duration;

use rill_tests::{Stack, User};
use serde_json::{Value, json};

async fn live_stream(stack: &Stack, owner: &User, settings: Value) -> String {
    stack.live_stream(owner, "chat", "Chatty", settings).await
}

#[tokio::test]
async fn messages_are_sent_listed_newest_first_and_paged() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let viewer = User::named("viewer");
    let id = live_stream(&stack, &owner, json!({})).await;
    let r = viewer
        .post(
            &stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content":"  hello  "}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["content"], "hello");
    assert_eq!(r.body["authorId"], "viewer");
    assert_eq!(r.body["authorName"], "viewer (display)");
    assert_eq!(r.body["isPinned"], false);
    for i in 1..5 {
        let r = owner
            .post(
                &stack,
                &format!("/api/streams/{id}/chat"),
                json!({"content":format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = format!("/api/streams/{id}/chat?limit=2");
    loop {
        let r = User::anonymous().get(&stack, &path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(
            r.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|m| m["content"].as_str().expect("c").to_owned()),
        );
        match r.body["nextCursor"].as_str() {
            Some(c) => path = format!("/api/streams/{id}/chat?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["m4", "m3", "m2", "m1", "hello"]);
    let stream = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(stream.body["stats"]["messages"], 5);

    let other = live_stream(&stack, &owner, json!({})).await;
    let first = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/chat?limit=1"))
        .await;
    let c = first.body["nextCursor"].as_str().expect("cursor");
    let r = User::anonymous()
        .get(&stack, &format!("/api/streams/{other}/chat?cursor={c}"))
        .await;
    assert_eq!(r.status, 400, "a cursor from another stream is refused");
}

#[tokio::test]
async fn chat_rules_refuse_and_store_nothing() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let viewer = User::named("viewer");
    let id = live_stream(&stack, &owner, json!({})).await;
    let path = format!("/api/streams/{id}/chat");
    let cases = [
        (
            User::anonymous(),
            json!({"content":"hi"}),
            401,
            "unauthorized",
        ),
        (
            viewer.clone(),
            json!({"content":""}),
            422,
            "validation_failed",
        ),
        (
            viewer.clone(),
            json!({"content":"x".repeat(501)}),
            422,
            "validation_failed",
        ),
        (viewer.clone(), json!({"text":"hi"}), 400, "invalid_body"),
        (
            viewer.clone(),
            json!({"content":"hi","isPinned":true}),
            400,
            "invalid_body",
        ),
    ];
    for (user, body, status, code) in cases {
        let r = user.post(&stack, &path, body.clone()).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}");
    }
    assert_eq!(
        viewer
            .post(&stack, &path, json!({"content":"é".repeat(500)}))
            .await
            .status,
        201,
        "500 characters is fine"
    );

    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"settings":{"chatEnabled":false}})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = viewer.post(&stack, &path, json!({"content":"hi"})).await;
    assert_eq!((r.status, r.code()), (403, "chat_disabled"));
    owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"settings":{"chatEnabled":true,"chatMode":"subscribers"}})),
        )
        .await;
    let r = viewer.post(&stack, &path, json!({"content":"hi"})).await;
    assert_eq!((r.status, r.code()), (403, "chat_restricted"));
    assert_eq!(
        owner
            .post(&stack, &path, json!({"content":"owner may"}))
            .await
            .status,
        201
    );

    owner
        .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    let r = owner
        .post(&stack, &path, json!({"content":"after the end"}))
        .await;
    assert_eq!((r.status, r.code()), (409, "stream_over"));
    let chats = stack.items_with_sk_prefix("CHAT#").await.len();
    assert_eq!(chats, 2, "only the two accepted messages were stored");
    let unknown = rill_core::ids::new_id();
    assert_eq!(
        viewer
            .post(
                &stack,
                &format!("/api/streams/{unknown}/chat"),
                json!({"content":"hi"})
            )
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn authors_and_owners_delete_others_cannot_and_deleted_messages_vanish() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let alice = User::named("alice");
    let bob = User::named("bob");
    let id = live_stream(&stack, &owner, json!({})).await;
    let send = |user: &User, text: &str| {
        let (user, text, path) = (
            user.clone(),
            text.to_owned(),
            format!("/api/streams/{id}/chat"),
        );
        let stack = &stack;
        async move {
            user.post(stack, &path, json!({"content":text})).await.body["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
    };
    let a1 = send(&alice, "alice 1").await;
    let a2 = send(&alice, "alice 2").await;

    let r = bob
        .send(
            &stack,
            "DELETE",
            &format!("/api/streams/{id}/chat/{a1}"),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "not_allowed"));
    let r = alice
        .send(
            &stack,
            "DELETE",
            &format!("/api/streams/{id}/chat/{a1}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["deleted"], true);
    assert_eq!(r.body["content"], "");
    let r = owner
        .send(
            &stack,
            "DELETE",
            &format!("/api/streams/{id}/chat/{a2}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = alice
        .send(
            &stack,
            "DELETE",
            &format!("/api/streams/{id}/chat/{a1}"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "already deleted");
    let unknown = rill_core::ids::new_id();
    assert_eq!(
        owner
            .send(
                &stack,
                "DELETE",
                &format!("/api/streams/{id}/chat/{unknown}"),
                None
            )
            .await
            .status,
        404
    );
    let list = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/chat"))
        .await;
    assert_eq!(
        list.body["items"],
        json!([]),
        "deleted messages are never listed again"
    );
    let dump = format!("{:?}", stack.scan_all().await);
    assert!(
        !dump.contains("alice 1"),
        "deleted content is gone from storage"
    );
}

#[tokio::test]
async fn the_owner_pins_one_message_at_a_time() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let viewer = User::named("viewer");
    let id = live_stream(&stack, &owner, json!({})).await;
    let m1 = viewer
        .post(
            &stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content":"first"}),
        )
        .await
        .body["id"]
        .clone();
    let m2 = viewer
        .post(
            &stack,
            &format!("/api/streams/{id}/chat"),
            json!({"content":"second"}),
        )
        .await
        .body["id"]
        .clone();
    let (m1, m2) = (m1.as_str().expect("id"), m2.as_str().expect("id"));

    let r = viewer
        .post(
            &stack,
            &format!("/api/streams/{id}/chat/{m1}/pin"),
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "not_moderator"));
    let r = owner
        .post(
            &stack,
            &format!("/api/streams/{id}/chat/{m1}/pin"),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["isPinned"].as_bool()),
        (200, Some(true)),
        "{}",
        r.text
    );
    let s = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(s.body["pinnedMessageId"], m1);

    let r = owner
        .post(
            &stack,
            &format!("/api/streams/{id}/chat/{m2}/pin"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    let list = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}/chat"))
        .await;
    let pinned: Vec<(&str, bool)> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| {
            (
                m["content"].as_str().expect("c"),
                m["isPinned"].as_bool().expect("b"),
            )
        })
        .collect();
    assert_eq!(pinned, [("second", true), ("first", false)]);

    owner
        .send(
            &stack,
            "DELETE",
            &format!("/api/streams/{id}/chat/{m2}"),
            None,
        )
        .await;
    let s = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert!(
        s.body["pinnedMessageId"].is_null(),
        "deleting the pinned message unpins it"
    );
    let r = owner
        .post(
            &stack,
            &format!("/api/streams/{id}/chat/{m2}/pin"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "a deleted message cannot be pinned");
}

#[tokio::test]
async fn reactions_need_a_live_stream_an_allowed_emoji_and_a_position_in_range() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let viewer = User::named("viewer");
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"c","title":"Not yet"}),
        )
        .await;
    let preparing = r.body["id"].as_str().expect("id").to_owned();
    let r = viewer
        .post(
            &stack,
            &format!("/api/streams/{preparing}/reactions"),
            json!({"emoji":"🔥"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "not_live"));

    let id = live_stream(&stack, &owner, json!({})).await;
    let path = format!("/api/streams/{id}/reactions");
    let r = viewer
        .post(
            &stack,
            &path,
            json!({"emoji":"🔥","positionX":12.5,"positionY":90}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["emoji"], "🔥");
    for (body, status) in [
        (json!({"emoji":"💩"}), 422),
        (json!({"emoji":"🔥","positionX":101}), 422),
        (json!({"emoji":"🔥","positionY":-1}), 422),
        (json!({"emoji":"🔥","size":3}), 400),
        (json!({}), 400),
    ] {
        assert_eq!(
            viewer.post(&stack, &path, body.clone()).await.status,
            status,
            "{body}"
        );
    }
    assert_eq!(
        User::anonymous()
            .post(&stack, &path, json!({"emoji":"🔥"}))
            .await
            .status,
        401
    );
    owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"settings":{"reactionsEnabled":false}})),
        )
        .await;
    let r = viewer.post(&stack, &path, json!({"emoji":"🔥"})).await;
    assert_eq!((r.status, r.code()), (403, "reactions_disabled"));
    // The stream's counter is raised by events-fanout per batch of the table stream, so it
    // follows the reaction within about half a second (the deadline only bounds a hang).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await;
        if s.body["stats"]["reactions"] == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reactions counted: {}",
            s.body["stats"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reactions: Vec<_> = stack.items_with_sk_prefix("REACT#").await;
    assert_eq!(reactions.len(), 1);
    assert!(reactions[0].contains_key("ttl"), "reactions expire");
}
