//! Stream endpoints end to end: gateway -> function binaries -> DynamoDB Local. Editing
//! (PATCH, thumbnails, owner-only changes) is in `stream_edits.rs`.

use rill_core::key::StreamKey;
use rill_core::store::StreamStore;
use rill_core::time;
use rill_tests::{Stack, User};
use serde_json::{Value, json};

fn future(minutes: i64) -> String {
    time::format(&(time::now() + chrono::Duration::minutes(minutes)))
}

async fn create(stack: &Stack, owner: &User, body: Value) -> Value {
    let r = owner.post(stack, "/api/streams/create", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// Acts as the ingest node does when the first segments are stored.
async fn go_live(stack: &Stack, id: &str) {
    stack.go_live(id).await;
}

#[tokio::test]
async fn the_reference_curl_example_creates_a_preparing_stream_with_ingest_credentials() {
    let stack = Stack::start();
    let owner = User::named("owner-1");
    let s = create(
        &stack,
        &owner,
        json!({"channelId":"channel-uuid","title":"Test Stream","description":"Testing live streaming"}),
    )
    .await;
    assert_eq!(s["status"], "preparing");
    assert_eq!(s["title"], "Test Stream");
    assert_eq!(s["ownerId"], "owner-1");
    assert_eq!(s["settings"]["quality"], "1080p");
    let key = s["ingest"]["streamKey"].as_str().expect("key shown once");
    assert_eq!(key.len(), 43);
    let id = s["id"].as_str().expect("id");
    assert_eq!(
        s["ingest"]["whipUrl"],
        format!("http://127.0.0.1:8889/whip/{id}")
    );
    assert_eq!(
        s["ingest"]["rtmpUrl"],
        format!("rtmp://127.0.0.1:1935/live/{key}")
    );
}

#[tokio::test]
async fn the_stream_key_is_shown_once_stored_only_as_a_hash_and_never_shown_to_others() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let viewer = User::named("viewer");
    let s = create(&stack, &owner, json!({"channelId":"c1","title":"Key test"})).await;
    let id = s["id"].as_str().expect("id").to_owned();
    let key = s["ingest"]["streamKey"].as_str().expect("key").to_owned();

    for user in [&owner, &viewer, &User::anonymous()] {
        let r = user.get(&stack, &format!("/api/streams/{id}")).await;
        assert_eq!(r.status, 200);
        assert!(!r.text.contains(&key), "GET must never show the key");
        assert!(r.body.get("ingest").is_none());
    }
    let r = owner
        .get(&stack, &format!("/api/streams/{id}?ingest=true"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["ingest"]["whipUrl"].is_string());
    assert!(r.body["ingest"].get("streamKey").is_none() && !r.text.contains(&key));
    assert_eq!(
        viewer
            .get(&stack, &format!("/api/streams/{id}?ingest=true"))
            .await
            .status,
        403
    );
    assert_eq!(
        User::anonymous()
            .get(&stack, &format!("/api/streams/{id}?ingest=true"))
            .await
            .status,
        401
    );

    let items = stack.scan_all().await;
    let dump = format!("{items:?}");
    assert!(!dump.contains(&key), "the plaintext key is never stored");
    let hash = StreamKey::parse(&key).expect("valid key").hash();
    assert!(dump.contains(&hash.0), "its SHA-256 is");
    let found = stack
        .store()
        .await
        .stream_for_key(&hash)
        .await
        .expect("lookup")
        .expect("found by hash");
    assert_eq!(found.id, id);
}

#[tokio::test]
async fn rotating_the_key_retires_the_old_one_at_once() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(&stack, &owner, json!({"channelId":"c1","title":"Rotate"})).await;
    let id = s["id"].as_str().expect("id");
    let old = StreamKey::parse(s["ingest"]["streamKey"].as_str().expect("key")).expect("valid");

    assert_eq!(
        User::named("intruder")
            .post(&stack, &format!("/api/streams/{id}/key"), json!({}))
            .await
            .status,
        403
    );
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/key"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    let new = StreamKey::parse(r.body["streamKey"].as_str().expect("new key")).expect("valid");
    assert_ne!(new.expose(), old.expose());

    let store = stack.store().await;
    assert!(
        store
            .stream_for_key(&old.hash())
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(
        store
            .stream_for_key(&new.hash())
            .await
            .expect("lookup")
            .expect("found")
            .id,
        id
    );

    assert_eq!(
        owner
            .post(&stack, &format!("/api/streams/{id}/end"), json!({}))
            .await
            .status,
        200
    );
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/key"), json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "stream_over"));
}

#[tokio::test]
async fn a_stream_goes_preparing_live_ended_and_refuses_illegal_moves() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(
        &stack,
        &owner,
        json!({"channelId":"life","title":"Lifecycle"}),
    )
    .await;
    let id = s["id"].as_str().expect("id").to_owned();
    let path = |action: &str| format!("/api/streams/{id}/{action}");

    // start is idempotent on preparing
    let r = owner.post(&stack, &path("start"), json!({})).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("preparing"))
    );
    let r = owner.get(&stack, &path("hls")).await;
    assert_eq!((r.status, r.code()), (409, "not_playable"));

    go_live(&stack, &id).await;
    let r = owner.get(&stack, &format!("/api/streams/{id}")).await;
    assert_eq!(r.body["status"], "live");
    assert!(r.body["startedAt"].is_string());
    let r = User::anonymous().get(&stack, &path("hls")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["manifestUrl"],
        // The gateway is the CDN stand-in and tells the functions its own /hls.
        stack.url(&format!("/hls/live/{id}/master.m3u8"))
    );
    let r = User::anonymous()
        .get(&stack, "/api/streams/live?channelId=life")
        .await;
    assert_eq!(r.body["items"][0]["id"], id.as_str());

    for action in ["start", "cancel"] {
        let r = owner.post(&stack, &path(action), json!({})).await;
        assert_eq!(
            (r.status, r.code()),
            (409, "invalid_transition"),
            "{action} on live"
        );
    }
    let r = owner.post(&stack, &path("end"), json!({})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ended")));
    assert!(r.body["endedAt"].is_string());
    for action in ["start", "end", "cancel"] {
        let r = owner.post(&stack, &path(action), json!({})).await;
        assert_eq!(
            (r.status, r.code()),
            (409, "invalid_transition"),
            "{action} on ended"
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("ended")
        );
    }
    // replayable after the end
    assert_eq!(
        User::anonymous().get(&stack, &path("hls")).await.status,
        200
    );
    let past = User::anonymous()
        .get(&stack, "/api/streams/past?channelId=life")
        .await;
    assert_eq!(past.body["items"][0]["id"], id.as_str());
    let live = User::anonymous()
        .get(&stack, "/api/streams/live?channelId=life")
        .await;
    assert_eq!(live.body["items"], json!([]));
}

#[tokio::test]
async fn a_scheduled_stream_is_listed_started_or_cancelled() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let later = create(
        &stack,
        &owner,
        json!({"channelId":"sched","title":"Later","scheduledAt":future(120)}),
    )
    .await;
    let sooner = create(
        &stack,
        &owner,
        json!({"channelId":"sched","title":"Sooner","scheduledAt":future(60)}),
    )
    .await;
    let other = create(
        &stack,
        &owner,
        json!({"channelId":"elsewhere","title":"Other","scheduledAt":future(30)}),
    )
    .await;
    assert_eq!(later["status"], "scheduled");

    let r = User::anonymous()
        .get(&stack, "/api/streams/scheduled?channelId=sched")
        .await;
    let titles: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["title"].as_str().expect("t"))
        .collect();
    assert_eq!(titles, ["Sooner", "Later"], "soonest first");
    let r = User::anonymous()
        .get(&stack, "/api/streams/scheduled")
        .await;
    assert_eq!(
        r.body["items"].as_array().expect("items").len(),
        3,
        "across channels"
    );
    assert_eq!(r.body["items"][0]["id"], other["id"]);

    let id = sooner["id"].as_str().expect("id");
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/start"), json!({}))
        .await;
    assert_eq!(r.body["status"], "preparing");
    let id = later["id"].as_str().expect("id");
    let r = owner
        .post(&stack, &format!("/api/streams/{id}/cancel"), json!({}))
        .await;
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(
        owner
            .post(&stack, &format!("/api/streams/{id}/cancel"), json!({}))
            .await
            .status,
        409
    );
    let r = User::anonymous()
        .get(&stack, "/api/streams/scheduled?channelId=sched")
        .await;
    assert_eq!(r.body["items"], json!([]));
}

#[tokio::test]
async fn listings_page_with_cursors_and_refuse_forged_ones() {
    let stack = Stack::start();
    let owner = User::named("owner");
    for i in 0..5 {
        create(
            &stack,
            &owner,
            json!({"channelId":"pages","title":format!("S{i}"),"scheduledAt":future(10 + i)}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/api/streams/scheduled?channelId=pages&limit=2&cursor={c}"),
            None => "/api/streams/scheduled?channelId=pages&limit=2".into(),
        };
        let r = User::anonymous().get(&stack, &path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for s in r.body["items"].as_array().expect("items") {
            seen.push(s["title"].as_str().expect("t").to_owned());
        }
        cursor = r.body["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["S0", "S1", "S2", "S3", "S4"]);

    let first = User::anonymous()
        .get(&stack, "/api/streams/scheduled?channelId=pages&limit=2")
        .await;
    let c = first.body["nextCursor"].as_str().expect("cursor");
    let r = User::anonymous()
        .get(
            &stack,
            &format!("/api/streams/scheduled?channelId=other&cursor={c}"),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_query"),
        "a cursor only works for its own listing"
    );
    for bad in ["garbage", "e30", "bad%20cursor"] {
        let r = User::anonymous()
            .get(&stack, &format!("/api/streams/scheduled?cursor={bad}"))
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_query"), "{bad}");
    }
    for bad in ["0", "101", "x"] {
        let r = User::anonymous()
            .get(&stack, &format!("/api/streams/live?limit={bad}"))
            .await;
        assert_eq!(r.status, 400, "limit={bad}");
    }
    assert_eq!(
        User::anonymous()
            .get(&stack, "/api/streams/live?channelId=a%23b")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(&stack, &owner, json!({"channelId":"c","title":"Valid"})).await;
    let id = s["id"].as_str().expect("id").to_owned();
    let items_before = stack.scan_all().await.len();
    let stream_before = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await
        .body;

    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = stack
            .http
            .post(stack.url("/api/streams/create"))
            .bearer_auth(owner.token.clone().expect("token"))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            raw("{\"title\":", Some("application/json")),
            400,
            "invalid_json",
        ),
        (
            "not an object",
            raw("[1,2]", Some("application/json")),
            400,
            "invalid_body",
        ),
        (
            "missing title",
            raw(r#"{"channelId":"c"}"#, Some("application/json")),
            400,
            "invalid_body",
        ),
        (
            "wrong type",
            raw(r#"{"channelId":"c","title":5}"#, Some("application/json")),
            400,
            "invalid_body",
        ),
        (
            "unknown field",
            raw(
                r#"{"channelId":"c","title":"t","status":"live"}"#,
                Some("application/json"),
            ),
            400,
            "invalid_body",
        ),
        (
            "bad preset",
            raw(
                r#"{"channelId":"c","title":"t","settings":{"quality":"4k"}}"#,
                Some("application/json"),
            ),
            400,
            "invalid_body",
        ),
        (
            "empty title",
            raw(
                r#"{"channelId":"c","title":"   "}"#,
                Some("application/json"),
            ),
            422,
            "validation_failed",
        ),
        (
            "bad channel",
            raw(
                r#"{"channelId":"a/b","title":"t"}"#,
                Some("application/json"),
            ),
            422,
            "validation_failed",
        ),
        (
            "bad schedule",
            raw(
                r#"{"channelId":"c","title":"t","scheduledAt":"tomorrow"}"#,
                Some("application/json"),
            ),
            400,
            "invalid_body",
        ),
        (
            "slow mode",
            raw(
                r#"{"channelId":"c","title":"t","settings":{"slowModeSeconds":4000}}"#,
                Some("application/json"),
            ),
            422,
            "validation_failed",
        ),
        (
            "bitrate",
            raw(
                r#"{"channelId":"c","title":"t","settings":{"maxBitrateKbps":10}}"#,
                Some("application/json"),
            ),
            422,
            "validation_failed",
        ),
        (
            "no content type",
            raw(r#"{"channelId":"c","title":"t"}"#, None),
            415,
            "unsupported_media_type",
        ),
        (
            "text/plain",
            raw(r#"{"channelId":"c","title":"t"}"#, Some("text/plain")),
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, req, status, code) in cases {
        let r = rill_tests::Reply::from(req.send().await.expect("send")).await;
        assert_eq!((r.status, r.code()), (status, code), "{what}: {}", r.text);
        assert!(r.body["error"]["message"].is_string(), "{what}");
    }
    let long_title = "x".repeat(201);
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"c","title":long_title}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("title"))
    );
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"c","title":"t","description":"d".repeat(5001)}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (422, Some("description"))
    );
    let big = json!({"channelId":"c","title":"t","description":"d".repeat(70_000)});
    let r = owner.post(&stack, "/api/streams/create", big).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));

    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"title":""})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"status":"ended"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"thumbnailUrl":"javascript:alert(1)"})),
        )
        .await;
    assert_eq!(r.status, 422);

    let unknown = rill_core::ids::new_id();
    for path in [
        format!("/api/streams/{unknown}"),
        "/api/streams/not-a-ulid".into(),
        format!("/api/streams/{unknown}/hls"),
    ] {
        let r = User::anonymous().get(&stack, &path).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{path}");
    }
    assert_eq!(
        owner
            .post(&stack, &format!("/api/streams/{unknown}/end"), json!({}))
            .await
            .status,
        404
    );
    let r = stack
        .http
        .get(stack.url(&format!("/api/streams/{id}")))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let expired = {
        let claims = json!({"sub":"owner","exp": chrono::Utc::now().timestamp() - 600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(rill_tests::JWT_SECRET.as_bytes()),
        )
        .expect("sign")
    };
    let r = stack
        .http
        .post(stack.url(&format!("/api/streams/{id}/end")))
        .bearer_auth(expired)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);

    assert_eq!(
        stack.scan_all().await.len(),
        items_before,
        "no item was written by a refused request"
    );
    assert_eq!(
        User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await
            .body,
        stream_before
    );
}

#[tokio::test]
async fn concurrent_ends_are_settled_by_conditional_writes() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(&stack, &owner, json!({"channelId":"race","title":"Race"})).await;
    let id = s["id"].as_str().expect("id").to_owned();
    go_live(&stack, &id).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, url, token) = (
            stack.http.clone(),
            stack.url(&format!("/api/streams/{id}/end")),
            owner.token.clone().expect("t"),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
}

#[tokio::test]
async fn start_and_cancel_racing_on_a_scheduled_stream_always_end_cancelled() {
    let stack = Stack::start();
    let owner = User::named("owner");
    for _ in 0..3 {
        let s = create(
            &stack,
            &owner,
            json!({"channelId":"race","title":"Race","scheduledAt":future(5)}),
        )
        .await;
        let id = s["id"].as_str().expect("id").to_owned();
        let (start_path, cancel_path) = (
            format!("/api/streams/{id}/start"),
            format!("/api/streams/{id}/cancel"),
        );
        let start = owner.post(&stack, &start_path, json!({}));
        let cancel = owner.post(&stack, &cancel_path, json!({}));
        let (start, cancel) = tokio::join!(start, cancel);
        assert_eq!(
            cancel.status, 200,
            "cancel is legal from scheduled and from preparing"
        );
        assert!(
            start.status == 200 || (start.status == 409 && start.code() == "invalid_transition")
        );
        let r = User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await;
        assert_eq!(r.body["status"], "cancelled");
    }
}

#[tokio::test]
async fn viewers_reports_the_counter() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(&stack, &owner, json!({"channelId":"c","title":"Viewers"})).await;
    let r = User::anonymous()
        .get(
            &stack,
            &format!("/api/streams/{}/viewers", s["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["count"], 0);
}

#[tokio::test]
async fn a_channel_belongs_to_the_owner_of_its_first_stream() {
    let stack = Stack::start();
    let owner = User::named("owner");
    create(&stack, &owner, json!({"channelId":"mine","title":"First"})).await;
    let before = stack.scan_all().await.len();
    let r = User::named("squatter")
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"mine","title":"Mine now"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    assert_eq!(
        stack.scan_all().await.len(),
        before,
        "the refused create wrote nothing"
    );
    create(&stack, &owner, json!({"channelId":"mine","title":"Second"})).await;
    let r = User::named("squatter")
        .send(
            &stack,
            "PUT",
            "/api/channels/mine/members/friend",
            Some(json!({"role":"subscriber"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "not_owner"));
    let r = owner
        .send(
            &stack,
            "PUT",
            "/api/channels/nobody-has-this/members/friend",
            Some(json!({"role":"subscriber"})),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = owner
        .send(
            &stack,
            "PUT",
            "/api/channels/mine/members/friend",
            Some(json!({"role":"vip"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = owner
        .send(
            &stack,
            "PUT",
            "/api/channels/mine/members/bad%20id",
            Some(json!({"role":"follower"})),
        )
        .await;
    assert_eq!(r.status, 422);
}
