//! Stream visibility end to end: a members-only stream does not exist for outsiders on any
//! REST path, socket or listing, and its media (published by a real ingest node under
//! `members/{id}/`) is served only with the signed grant its members get from
//! `GET /hls`; an unlisted one plays by link but lists only for those who run the channel.

use std::time::Duration;

use rill_tests::{Connect, IngestNode, RtmpPublisher, Stack, User, wait_for};
use serde_json::{Value, json};

fn future() -> String {
    rill_core::time::format(&(rill_core::time::now() + chrono::Duration::hours(2)))
}

async fn scheduled(stack: &Stack, owner: &User, channel: &str, visibility: &str) -> String {
    let r = owner
        .post(
            stack,
            "/api/streams/create",
            json!({"channelId": channel, "title": visibility, "visibility": visibility,
                   "scheduledAt": future()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["visibility"], visibility);
    r.body["id"].as_str().expect("id").to_owned()
}

async fn listed(stack: &Stack, user: &User, channel: Option<&str>) -> Vec<String> {
    let path = match channel {
        Some(c) => format!("/api/streams/scheduled?channelId={c}"),
        None => "/api/streams/scheduled".to_owned(),
    };
    let r = user.get(stack, &path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn role(stack: &Stack, owner: &User, channel: &str, user: &str, role: &str) {
    let r = owner
        .send(
            stack,
            "PUT",
            &format!("/api/channels/{channel}/members/{user}"),
            Some(json!({ "role": role })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_members_only_stream_does_not_exist_for_outsiders_on_any_path() {
    let stack = Stack::start();
    let alice = User::named("alice");
    let id = scheduled(&stack, &alice, "club", "members").await;
    role(&stack, &alice, "club", "carol", "subscriber").await;
    // Following is self-service, so it opens nothing.
    let dave = User::named("dave");
    let r = dave
        .send(
            &stack,
            "PUT",
            "/api/channels/club/members/dave",
            Some(json!({"role": "follower"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let reads = [
        format!("/api/streams/{id}"),
        format!("/api/streams/{id}/hls"),
        format!("/api/streams/{id}/viewers"),
        format!("/api/streams/{id}/chat"),
        format!("/api/streams/{id}/questions"),
        format!("/api/streams/{id}/moderators"),
    ];
    for outsider in [User::anonymous(), User::named("bob"), dave] {
        for path in &reads {
            let r = outsider.get(&stack, path).await;
            assert_eq!(
                (r.status, r.code()),
                (404, "not_found"),
                "{path}: {}",
                r.text
            );
        }
        let r = outsider
            .post(
                &stack,
                &format!("/api/streams/{id}/chat"),
                json!({"content": "let me in"}),
            )
            .await;
        assert!(
            matches!(r.status, 401 | 404),
            "chat from an outsider: {}",
            r.text
        );
        match stack.connect(&id, &outsider).await {
            Connect::Refused(status) => assert_eq!(status, 404),
            Connect::Open(_) => panic!("an outsider's socket was accepted"),
        }
        assert!(!listed(&stack, &outsider, Some("club")).await.contains(&id));
        assert!(!listed(&stack, &outsider, None).await.contains(&id));
    }

    // The owner and a member see it everywhere but in the listing across channels.
    for insider in [&alice, &User::named("carol")] {
        for path in &reads[..1] {
            let r = insider.get(&stack, path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
        }
        assert!(matches!(
            stack.connect(&id, insider).await,
            Connect::Open(_)
        ));
        assert!(listed(&stack, insider, Some("club")).await.contains(&id));
        assert!(!listed(&stack, insider, None).await.contains(&id));
    }

    // The stream's own moderators, whom its owner chose, see it without a channel role.
    let r = alice
        .send(
            &stack,
            "PUT",
            &format!("/api/streams/{id}/moderators/eve"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = User::named("eve").get(&stack, &reads[0]).await;
    assert_eq!(r.status, 200, "a stream moderator: {}", r.text);

    // Made public by its owner, it is everybody's.
    let r = alice
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["visibility"].clone()),
        (200, json!("public")),
        "{}",
        r.text
    );
    assert_eq!(User::named("bob").get(&stack, &reads[0]).await.status, 200);
    assert!(listed(&stack, &User::anonymous(), None).await.contains(&id));
}

#[tokio::test]
async fn an_unlisted_stream_plays_by_link_and_lists_only_for_those_who_run_the_channel() {
    let stack = Stack::start();
    let alice = User::named("alice");
    let unlisted = scheduled(&stack, &alice, "show", "unlisted").await;
    let public = scheduled(&stack, &alice, "show", "public").await;
    role(&stack, &alice, "show", "mo", "moderator").await;
    role(&stack, &alice, "show", "sub", "subscriber").await;

    for anyone in [User::anonymous(), User::named("bob"), User::named("sub")] {
        let r = anyone
            .get(&stack, &format!("/api/streams/{unlisted}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let in_channel = listed(&stack, &anyone, Some("show")).await;
        assert!(in_channel.contains(&public) && !in_channel.contains(&unlisted));
        assert!(!listed(&stack, &anyone, None).await.contains(&unlisted));
    }
    for runs_it in [&alice, &User::named("mo")] {
        assert!(
            listed(&stack, runs_it, Some("show"))
                .await
                .contains(&unlisted)
        );
    }
    let bad = alice
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{unlisted}"),
            Some(json!({"visibility": "secret"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (400, "invalid_body"),
        "{}",
        bad.text
    );
    let null = alice
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{unlisted}"),
            Some(json!({"visibility": Value::Null})),
        )
        .await;
    assert_eq!(null.status, 400, "{}", null.text);
}

/// `GET /hls/...` with an optional query and cookie header: the status.
async fn media_status(stack: &Stack, url: &str, cookie: Option<&str>) -> u16 {
    let mut req = stack.http.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.expect("gateway answers").status().as_u16()
}

#[tokio::test]
async fn members_only_media_is_served_only_with_a_members_signed_grant() {
    let stack = Stack::start();
    let node = IngestNode::start(&stack, &[("RECONNECT_WINDOW_SECONDS", "2")]);
    let alice = User::named("alice");
    let (id, key) = alice
        .create_stream(
            &stack,
            json!({"channelId": "club", "title": "Members", "visibility": "members"}),
        )
        .await;
    role(&stack, &alice, "club", "carol", "subscriber").await;
    let _publisher = RtmpPublisher::start(&node.rtmp, &key, "320x240", 20);
    let status_path = format!("/api/streams/{id}");
    wait_for("live", Duration::from_secs(60), || async {
        alice.get(&stack, &status_path).await.body["status"] == "live"
    })
    .await;

    // A member gets the manifest under members/ and a grant for it.
    let carol = User::named("carol");
    let r = carol.get(&stack, &format!("/api/streams/{id}/hls")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let manifest = r.body["manifestUrl"]
        .as_str()
        .expect("manifestUrl")
        .to_owned();
    assert!(
        manifest.ends_with(&format!("/hls/members/{id}/master.m3u8")),
        "{manifest}"
    );
    let query = r.body["access"]["query"]
        .as_str()
        .expect("query")
        .to_owned();
    let cookies: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            v.to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair")
                .to_owned()
        })
        .collect();
    assert_eq!(cookies.len(), 4, "{cookies:?}");
    assert!(
        r.headers.get_all("set-cookie").iter().all(|v| v
            .to_str()
            .is_ok_and(|c| c.contains(&format!("Path=/hls/members/{id}/")))),
        "cookies scoped to the stream"
    );
    let cookie = cookies.join("; ");

    // Nothing was written where public media lives.
    assert_eq!(
        media_status(
            &stack,
            &stack.url(&format!("/hls/live/{id}/master.m3u8")),
            None
        )
        .await,
        404
    );
    // Without a grant: refused, on the playlist and on a segment.
    let master = format!("{manifest}?{query}");
    let text = stack.http.get(&master).send().await.expect("answers");
    assert_eq!(text.status(), 200);
    let text = text.text().await.expect("body");
    let variant = text
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a variant")
        .to_owned();
    let base = manifest.trim_end_matches("master.m3u8");
    let variant_url = format!("{base}{variant}");
    let playlist = stack
        .http
        .get(format!("{variant_url}?{query}"))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    let dir = variant_url.rsplit_once('/').expect("dir").0.to_owned();
    let segment = playlist
        .lines()
        .find(|l| l.ends_with(".m4s"))
        .map(|s| format!("{dir}/{s}"))
        .expect("a segment");
    for url in [&manifest, &variant_url, &segment] {
        assert_eq!(media_status(&stack, url, None).await, 403, "{url} unsigned");
        assert_eq!(
            media_status(&stack, &format!("{url}?{query}"), None).await,
            200,
            "{url} with the query"
        );
        assert_eq!(
            media_status(&stack, url, Some(&cookie)).await,
            200,
            "{url} with the cookies"
        );
    }
    // A grant is for its stream only, and a touched signature is worthless.
    let other = manifest.replace(&id, "01ZZZZZZZZZZZZZZZZZZZZZZZZ");
    assert_eq!(
        media_status(&stack, &format!("{other}?{query}"), None).await,
        403
    );
    let forged = touch_signature(&query);
    assert_ne!(forged, query);
    assert_eq!(
        media_status(&stack, &format!("{manifest}?{forged}"), None).await,
        403
    );
    // Outsiders get no grant at all (the stream does not exist for them).
    for outsider in [User::anonymous(), User::named("bob")] {
        let r = outsider
            .get(&stack, &format!("/api/streams/{id}/hls"))
            .await;
        assert_eq!(r.status, 404, "{}", r.text);
    }
    // Its media stays where it is: members-only cannot be switched off once live.
    let r = alice
        .send(
            &stack,
            "PATCH",
            &status_path,
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (409, "visibility_locked"),
        "{}",
        r.text
    );
}

/// The grant's query with one character of its signature changed.
fn touch_signature(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.strip_prefix("Signature=") {
            Some(signature) => {
                let mut chars: Vec<char> = signature.chars().collect();
                let middle = chars.len() / 2;
                chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
                format!("Signature={}", chars.into_iter().collect::<String>())
            }
            None => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}
