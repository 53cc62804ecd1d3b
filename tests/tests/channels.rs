//! Channels and roles end to end: gateway -> function binaries -> DynamoDB Local. Who may
//! stream in a channel, who grants roles, who moderates its streams, and that nobody can
//! squat or take over a channel.

use rill_tests::{Stack, User};
use serde_json::{Value, json};

async fn stream_in(stack: &Stack, user: &User, channel: &str) -> rill_tests::Reply {
    user.post(
        stack,
        "/api/streams/create",
        json!({"channelId": channel, "title": "In the channel"}),
    )
    .await
}

async fn set_role(
    stack: &Stack,
    caller: &User,
    channel: &str,
    user: &str,
    role: Option<&str>,
) -> rill_tests::Reply {
    let path = format!("/api/channels/{channel}/members/{user}");
    match role {
        Some(role) => {
            caller
                .send(stack, "PUT", &path, Some(json!({ "role": role })))
                .await
        }
        None => caller.send(stack, "DELETE", &path, None).await,
    }
}

async fn your_role(stack: &Stack, user: &User, channel: &str) -> Value {
    let r = user.get(stack, &format!("/api/channels/{channel}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["yourRole"].clone()
}

#[tokio::test]
async fn a_channel_cannot_be_squatted_and_broadcasters_stream_only_while_granted() {
    let stack = Stack::start();
    let (alice, bob) = (User::named("alice"), User::named("bob"));

    // The reference document's create request claims an unknown channel for its caller.
    let r = stream_in(&stack, &alice, "channel-uuid").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(your_role(&stack, &alice, "channel-uuid").await, "owner");

    // A second user holding no role cannot stream there, nor grant themselves a role.
    let r = stream_in(&stack, &bob, "channel-uuid").await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.text);
    for role in ["broadcaster", "moderator", "subscriber"] {
        let r = set_role(&stack, &bob, "channel-uuid", "bob", Some(role)).await;
        assert_eq!((r.status, r.code()), (403, "not_owner"), "{}", r.text);
    }
    // Following is self-service, and does not let them stream either.
    let r = set_role(&stack, &bob, "channel-uuid", "bob", Some("follower")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(your_role(&stack, &bob, "channel-uuid").await, "follower");
    let r = stream_in(&stack, &bob, "channel-uuid").await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Granted broadcaster, bob streams in alice's channel; revoked, he cannot any more.
    let r = set_role(&stack, &alice, "channel-uuid", "bob", Some("broadcaster")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = stream_in(&stack, &bob, "channel-uuid").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["ownerId"], "bob");
    let channel = alice.get(&stack, "/api/channels/channel-uuid").await.body;
    assert_eq!(
        (channel["ownerId"].clone(), channel["streamCount"].clone()),
        (json!("alice"), json!(2))
    );
    let r = set_role(&stack, &alice, "channel-uuid", "bob", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(your_role(&stack, &bob, "channel-uuid").await, Value::Null);
    let r = stream_in(&stack, &bob, "channel-uuid").await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.text);
    assert_eq!(
        alice.get(&stack, "/api/channels/channel-uuid").await.body["streamCount"],
        2,
        "a refused create counts nothing"
    );
}

#[tokio::test]
async fn ownership_is_never_granted_revoked_or_changed() {
    let stack = Stack::start();
    let (alice, bob) = (User::named("alice"), User::named("bob"));
    assert_eq!(stream_in(&stack, &alice, "keep").await.status, 201);
    set_role(&stack, &alice, "keep", "bob", Some("broadcaster")).await;

    let r = set_role(&stack, &alice, "keep", "alice", Some("follower")).await;
    assert_eq!((r.status, r.code()), (409, "owner_role"), "{}", r.text);
    let r = set_role(&stack, &alice, "keep", "alice", None).await;
    assert_eq!((r.status, r.code()), (409, "owner_role"), "{}", r.text);
    let r = set_role(&stack, &bob, "keep", "alice", None).await;
    assert_eq!((r.status, r.code()), (403, "not_owner"), "{}", r.text);
    let r = set_role(&stack, &alice, "keep", "bob", Some("owner")).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "validation_failed"),
        "{}",
        r.text
    );
    let r = set_role(&stack, &alice, "keep", "bob", Some("admin")).await;
    assert_eq!((r.status, r.code()), (400, "invalid_body"), "{}", r.text);
    // A broadcaster grants nothing, not even to others below them.
    let r = set_role(&stack, &bob, "keep", "carol", Some("follower")).await;
    assert_eq!((r.status, r.code()), (403, "not_owner"), "{}", r.text);
    // An explicit create of a taken id is refused and changes nothing.
    let r = bob
        .post(
            &stack,
            "/api/channels",
            json!({"id": "keep", "name": "Mine now"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "already_exists"), "{}", r.text);
    let channel = User::anonymous().get(&stack, "/api/channels/keep").await;
    assert_eq!(channel.status, 200, "{}", channel.text);
    assert_eq!(
        (
            channel.body["ownerId"].clone(),
            channel.body["name"].clone(),
            channel.body["yourRole"].clone()
        ),
        (json!("alice"), json!("keep"), Value::Null)
    );
    assert_eq!(your_role(&stack, &alice, "keep").await, "owner");
    // Leaving is the user's own right, whatever their role.
    let r = set_role(&stack, &bob, "keep", "bob", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(your_role(&stack, &bob, "keep").await, Value::Null);
}

#[tokio::test]
async fn channels_are_created_explicitly_and_validated() {
    let stack = Stack::start();
    let alice = User::named("alice");
    let r = alice
        .post(
            &stack,
            "/api/channels",
            json!({"id": "music", "name": " Music ", "description": "Live sets"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (
            r.body["id"].clone(),
            r.body["name"].clone(),
            r.body["yourRole"].clone()
        ),
        (json!("music"), json!("Music"), json!("owner"))
    );
    assert_eq!(r.body["streamCount"], 0);
    let generated = alice
        .post(&stack, "/api/channels", json!({"name": "Untitled"}))
        .await;
    assert_eq!(generated.status, 201, "{}", generated.text);
    let id = generated.body["id"].as_str().expect("generated id");
    assert!(rill_core::ids::is_valid_id(id), "{id}");

    // The owner streams in an explicit channel like in an implicit one.
    assert_eq!(stream_in(&stack, &alice, "music").await.status, 201);
    assert_eq!(
        User::anonymous()
            .get(&stack, "/api/channels/music")
            .await
            .body["streamCount"],
        1
    );

    let bad = [
        (json!({"id": "a#b", "name": "x"}), 422, "id"),
        (json!({"name": "  "}), 422, "name"),
        (json!({"name": "bad\u{7}"}), 422, "name"),
        (json!({"name": "x".repeat(101)}), 422, "name"),
    ];
    for (body, status, field) in bad {
        let r = alice.post(&stack, "/api/channels", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{body}");
    }
    let r = alice
        .post(&stack, "/api/channels", json!({"name": "x", "owner": "me"}))
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_body"), "{}", r.text);
    let r = User::anonymous()
        .post(&stack, "/api/channels", json!({"name": "x"}))
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    for path in ["/api/channels/nobody-made-this", "/api/channels/a%23b"] {
        let r = User::anonymous().get(&stack, path).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found"),
            "{path}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn channel_moderators_moderate_every_stream_and_see_the_members() {
    let stack = Stack::start();
    let (alice, bob, carol) = (
        User::named("alice"),
        User::named("bob"),
        User::named("carol"),
    );
    assert_eq!(stream_in(&stack, &alice, "show").await.status, 201);
    set_role(&stack, &alice, "show", "bob", Some("broadcaster")).await;
    let r = set_role(&stack, &alice, "show", "carol", Some("moderator")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    set_role(&stack, &alice, "show", "dave", Some("subscriber")).await;
    let bobs = stream_in(&stack, &bob, "show").await;
    assert_eq!(bobs.status, 201, "{}", bobs.text);
    let stream = bobs.body["id"].as_str().expect("id").to_owned();
    let ban = |who: &str| format!("/api/streams/{stream}/bans/{who}");

    // carol moderates bob's stream without being named on it, but outranks neither owner.
    let r = carol.send(&stack, "PUT", &ban("dave"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = carol.send(&stack, "PUT", &ban("bob"), None).await;
    assert_eq!((r.status, r.code()), (403, "not_allowed"), "{}", r.text);
    // The stream's owner bans a channel moderator from his stream; the channel's owner
    // outranks him.
    let r = bob.send(&stack, "PUT", &ban("carol"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = bob.send(&stack, "PUT", &ban("alice"), None).await;
    assert_eq!((r.status, r.code()), (403, "not_allowed"), "{}", r.text);
    // A subscriber moderates nothing.
    let r = User::named("dave")
        .send(&stack, "DELETE", &ban("dave"), None)
        .await;
    assert_eq!((r.status, r.code()), (403, "not_moderator"), "{}", r.text);

    // The member list: the owner and moderators see it, others do not.
    let r = carol
        .get(&stack, "/api/channels/show/members?limit=2")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut page = r.body;
    loop {
        for m in page["items"].as_array().expect("items") {
            seen.push((
                m["userId"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            ));
        }
        let Some(cursor) = page["nextCursor"].as_str() else {
            break;
        };
        let r = alice
            .get(
                &stack,
                &format!("/api/channels/show/members?limit=2&cursor={cursor}"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        page = r.body;
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("bob", "broadcaster"),
            ("carol", "moderator"),
            ("dave", "subscriber")
        ]
        .map(|(u, r)| (u.to_owned(), r.to_owned()))
    );
    let r = User::named("dave")
        .get(&stack, "/api/channels/show/members")
        .await;
    assert_eq!((r.status, r.code()), (403, "not_moderator"), "{}", r.text);
    let r = alice
        .get(&stack, "/api/channels/show/members?cursor=forged")
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"), "{}", r.text);
    let r = alice.get(&stack, "/api/channels/nothing/members").await;
    assert_eq!(r.status, 404, "{}", r.text);
}
