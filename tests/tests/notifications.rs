//! Notifications on the real binaries: when a stream goes live its channel's people find a
//! `stream:start` notification in `GET /api/me/notifications`, as its settings say (whom:
//! followers, subscribers, nobody; a members-only stream never reaches followers; never its
//! owner), and mark them read; bad settings are refused. A signed-in user's notifications
//! socket (no stream) gets each new notification pushed at once.

use std::time::{Duration, Instant};

use rill_tests::{Connect, Stack, User};
use serde_json::{Value, json};

async fn list(stack: &Stack, user: &User, query: &str) -> Vec<Value> {
    let r = user
        .get(stack, &format!("/api/me/notifications{query}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().expect("items").clone()
}

/// Waits until `user` has a notification about `stream_id`.
async fn wait_for(stack: &Stack, user: &User, stream_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(n) = list(stack, user, "")
            .await
            .into_iter()
            .find(|n| n["streamId"] == stream_id)
        {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "no notification about {stream_id}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn about(items: &[Value], stream_id: &str) -> bool {
    items.iter().any(|n| n["streamId"] == stream_id)
}

async fn role(stack: &Stack, by: &User, user: &str, role: &str) {
    let r = by
        .send(
            stack,
            "PUT",
            &format!("/api/channels/notes/members/{user}"),
            Some(json!({"role": role})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn live(stack: &Stack, owner: &User, title: &str, extra: Value) -> String {
    let mut body = json!({"channelId": "notes", "title": title});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = owner.post(stack, "/api/streams/create", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    stack.go_live(&id).await;
    id
}

#[tokio::test]
async fn a_channels_people_are_told_a_stream_went_live_as_its_settings_say() {
    let stack = Stack::start();
    let owner = User::named("notes-owner");
    let follower = User::named("notes-follower");
    let subscriber = User::named("notes-subscriber");
    let outsider = User::named("notes-outsider");
    let r = owner
        .post(
            &stack,
            "/api/channels",
            json!({"id": "notes", "name": "Notes"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    role(&stack, &follower, "notes-follower", "follower").await;
    role(&stack, &owner, "notes-subscriber", "subscriber").await;

    // Subscribers only.
    let members_only_audience = live(
        &stack,
        &owner,
        "For subscribers",
        json!({"settings": {"notifications": {"audience": "subscribers"}}}),
    )
    .await;
    let n = wait_for(&stack, &subscriber, &members_only_audience).await;
    assert_eq!(n["type"], "stream:start");
    assert_eq!(n["channelId"], "notes");
    assert_eq!(n["title"], "For subscribers");
    assert_eq!(n["read"], false);
    // Written in the same batch: the others would have theirs by now.
    assert!(!about(
        &list(&stack, &follower, "").await,
        &members_only_audience
    ));
    assert!(list(&stack, &outsider, "").await.is_empty());
    assert!(list(&stack, &owner, "").await.is_empty(), "never the owner");

    // Nobody, then the default (followers): the second arriving proves the first never will.
    let silent = live(
        &stack,
        &owner,
        "Quiet",
        json!({"settings": {"notifications": {"audience": "nobody"}}}),
    )
    .await;
    let everyone = live(&stack, &owner, "For everyone", json!({})).await;
    wait_for(&stack, &follower, &everyone).await;
    wait_for(&stack, &subscriber, &everyone).await;
    // A members-only stream never reaches a follower, whatever its audience.
    let private = live(&stack, &owner, "Members", json!({"visibility": "members"})).await;
    wait_for(&stack, &subscriber, &private).await;
    let follower_sees = list(&stack, &follower, "").await;
    assert!(!about(&follower_sees, &silent) && !about(&follower_sees, &private));
    assert!(!about(&list(&stack, &subscriber, "").await, &silent));
    assert!(list(&stack, &outsider, "").await.is_empty());

    // Newest first; marking read.
    let all = list(&stack, &subscriber, "").await;
    let streams: Vec<&str> = all
        .iter()
        .map(|n| n["streamId"].as_str().expect("id"))
        .collect();
    assert_eq!(streams, [&private, &everyone, &members_only_audience]);
    let first = all[2]["id"].as_str().expect("id").to_owned();
    let r = subscriber
        .post(
            &stack,
            "/api/me/notifications/read",
            json!({"ids": [first.clone(), first.clone()]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["read"], 1);
    let unread = list(&stack, &subscriber, "?unread=true").await;
    assert_eq!(unread.len(), 2, "{unread:?}");
    assert!(unread.iter().all(|n| n["id"] != first.as_str()));
    // Someone else's id marks nothing of theirs.
    let r = follower
        .post(
            &stack,
            "/api/me/notifications/read",
            json!({"ids": [first]}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["read"].clone()),
        (200, json!(0)),
        "{}",
        r.text
    );
    // Paging.
    let r = subscriber
        .get(&stack, "/api/me/notifications?limit=2")
        .await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(2));
    let next = r.body["nextCursor"].as_str().expect("a next page");
    let r = subscriber
        .get(
            &stack,
            &format!("/api/me/notifications?limit=2&cursor={next}"),
        )
        .await;
    assert_eq!(
        r.body["items"][0]["streamId"],
        members_only_audience.as_str()
    );
}

#[tokio::test]
async fn bad_notification_settings_and_requests_are_refused() {
    let stack = Stack::start();
    let owner = User::named("bad-notes");
    for (settings, status, field) in [
        (
            json!({"reminders": [0]}),
            422,
            "settings.notifications.reminders",
        ),
        (
            json!({"reminders": [10081]}),
            422,
            "settings.notifications.reminders",
        ),
        (
            json!({"reminders": [1, 2, 3, 4]}),
            422,
            "settings.notifications.reminders",
        ),
        (json!({"audience": "everyone"}), 400, ""),
        (json!({"when": "now"}), 400, ""),
    ] {
        let r = owner
            .post(
                &stack,
                "/api/streams/create",
                json!({"channelId": "bad-notes", "title": "t", "settings": {"notifications": settings.clone()}}),
            )
            .await;
        assert_eq!(r.status, status, "{settings}: {}", r.text);
        if status == 422 {
            assert_eq!(r.body["error"]["field"], field, "{}", r.text);
        }
    }
    // Kept in order, largest first, duplicates dropped.
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId": "bad-notes", "title": "t",
                   "settings": {"notifications": {"reminders": [15, 60, 15], "atStart": false}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["settings"]["notifications"],
        json!({"audience": "followers", "atStart": false, "reminders": [60, 15]})
    );
    let anyone = User::anonymous();
    assert_eq!(
        anyone.get(&stack, "/api/me/notifications").await.status,
        401
    );
    for (body, status) in [
        (json!({"ids": []}), 422),
        (json!({"ids": ["nope"]}), 422),
        (json!({"ids": "x"}), 400),
        (
            json!({"ids": ["1796000000000-01JDQ0000000000000000000AA-start"], "x": 1}),
            400,
        ),
    ] {
        let r = owner
            .post(&stack, "/api/me/notifications/read", body.clone())
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let r = owner
        .get(&stack, "/api/me/notifications?unread=maybe")
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn a_notifications_socket_is_told_at_once_and_only_its_users_notifications() {
    let stack = Stack::start();
    let owner = User::named("push-owner");
    let follower =
        rill_tests::channel_with_follower(&stack, &owner, "pushes", "push-follower").await;
    let outsider = User::named("push-outsider");

    // A notifications socket needs a signed-in user.
    match stack.notifications_socket(&User::anonymous()).await {
        Connect::Refused(status) => assert_eq!(status, 400),
        Connect::Open(_) => panic!("an anonymous notifications socket was accepted"),
    }
    match stack
        .notifications_socket(&User::bearing("not-a-token".into()))
        .await
    {
        Connect::Refused(status) => assert_eq!(status, 401),
        Connect::Open(_) => panic!("a bad token was accepted"),
    }
    let open = |user: &User| {
        let stack = &stack;
        let user = user.clone();
        async move {
            match stack.notifications_socket(&user).await {
                Connect::Open(s) => *s,
                Connect::Refused(status) => panic!("refused with {status}"),
            }
        }
    };
    // Two tabs of the follower, one of the outsider.
    let mut tab1 = open(&follower).await;
    let mut tab2 = open(&follower).await;
    let mut other = open(&outsider).await;
    tab1.send_json(json!({"action": "ping"})).await;
    assert_eq!(
        tab1.expect("pong", Duration::from_secs(5)).await["type"],
        "pong"
    );

    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId": "pushes", "title": "Pushed"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    stack.go_live(&id).await;
    for tab in [&mut tab1, &mut tab2] {
        let f = tab.expect("stream:start", Duration::from_secs(15)).await;
        assert_eq!(f["streamId"], id.as_str());
        assert_eq!(f["data"]["title"], "Pushed");
        assert_eq!(f["data"]["read"], false);
        let listed = wait_for(&stack, &follower, &id).await;
        assert_eq!(
            f["data"]["id"], listed["id"],
            "the same notification as the list"
        );
    }
    assert!(
        other.drain(Duration::from_secs(1)).await.is_empty(),
        "not the outsider's"
    );

    // A closed tab leaves the user's set; the other still gets the next one (a reminder).
    tab1.close().await;
    let dynamo = stack.dynamodb().await;
    let key = |pk: &str, sk: &str| {
        std::collections::HashMap::from([
            (
                "pk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S(pk.into()),
            ),
            (
                "sk".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S(sk.into()),
            ),
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let item = dynamo
            .get_item()
            .table_name(&stack.table)
            .set_key(Some(key("USER#push-follower", "SOCKETS")))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
            .unwrap_or_default();
        let ids = item
            .get("ids")
            .and_then(|v| v.as_ss().ok())
            .map_or(0, Vec::len);
        if ids == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{ids} sockets left, not 1");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start = chrono::Utc::now() + chrono::Duration::minutes(15) + chrono::Duration::seconds(3);
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId": "pushes", "title": "Later",
                   "scheduledAt": rill_core::time::format(&start),
                   "settings": {"notifications": {"reminders": [15]}}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let f = tab2
        .expect("stream:scheduled-reminder", Duration::from_secs(20))
        .await;
    assert_eq!(f["data"]["minutesBefore"], 15);
    assert_eq!(f["data"]["title"], "Later");
    tab2.close().await;
    other.close().await;
}
