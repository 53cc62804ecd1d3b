//! Editing a stream end to end (gateway -> function binaries -> DynamoDB Local, moto for
//! the media bucket): the owner's `PATCH` of title, description, thumbnail and settings,
//! thumbnail uploads through a presigned `PUT`, the bucket's CORS for the web app, and
//! that nobody else changes a stream. Lifecycle, keys and listings are in `streams.rs`.

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

#[tokio::test]
async fn the_owner_edits_title_description_thumbnail_and_settings() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(
        &stack,
        &owner,
        json!({"channelId":"c","title":"Before","settings":{"maxBitrateKbps":2500}}),
    )
    .await;
    let id = s["id"].as_str().expect("id");
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"title":"After","thumbnailUrl":"https://cdn.example.com/t.jpg",
                        "settings":{"quality":"720p","chatMode":"followers","slowModeSeconds":10,"reactionsEnabled":false}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["title"], "After");
    assert_eq!(r.body["thumbnailUrl"], "https://cdn.example.com/t.jpg");
    assert_eq!(r.body["settings"]["quality"], "720p");
    assert_eq!(r.body["settings"]["maxBitrateKbps"], 2500);
    assert_eq!(r.body["settings"]["reactionsEnabled"], false);
    assert_eq!(r.body["version"], 2);
    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"thumbnailUrl":null,"settings":{"maxBitrateKbps":null}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["thumbnailUrl"].is_null());
    assert!(r.body["settings"]["maxBitrateKbps"].is_null());
    let stored = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(stored.body["version"], 3);
    assert_eq!(stored.body["settings"]["chatMode"], "followers");
}

#[tokio::test]
async fn a_thumbnail_is_uploaded_with_a_presigned_put_and_set_by_a_patch() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(&stack, &owner, json!({"channelId":"c","title":"Thumb"})).await;
    let id = s["id"].as_str().expect("id");
    let path = format!("/api/streams/{id}/thumbnail");
    let image = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes S3 keeps as they are".to_vec();

    for (body, status, field) in [
        (
            json!({"contentType":"image/gif","contentLength":10}),
            422,
            "contentType",
        ),
        (
            json!({"contentType":"image/jpeg","contentLength":0}),
            422,
            "contentLength",
        ),
        (
            json!({"contentType":"image/jpeg","contentLength":3_000_000}),
            422,
            "contentLength",
        ),
    ] {
        let r = owner.post(&stack, &path, body).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.body["error"]["field"], field);
    }
    let r = User::named("mallory")
        .post(
            &stack,
            &path,
            json!({"contentType":"image/jpeg","contentLength":image.len()}),
        )
        .await;
    assert_eq!(r.code(), "not_owner");
    let r = User::anonymous()
        .post(
            &stack,
            &path,
            json!({"contentType":"image/jpeg","contentLength":image.len()}),
        )
        .await;
    assert_eq!(r.status, 401);

    let r = owner
        .post(
            &stack,
            &path,
            json!({"contentType":"image/jpeg","contentLength":image.len()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let upload = r.body;
    let url = upload["thumbnailUrl"].as_str().expect("thumbnailUrl");
    assert!(
        url.starts_with(&stack.url(&format!("/hls/thumbnails/{id}/"))),
        "{url}"
    );
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["content-type"], "image/jpeg");
    let names: Vec<&String> = upload["headers"]
        .as_object()
        .expect("headers")
        .keys()
        .collect();
    assert!(
        names
            .iter()
            .all(|n| *n == "content-type" || *n == "cache-control" || n.starts_with("x-amz-")),
        "only headers the browser may and must send: {names:?}"
    );
    // Nothing changes on the stream until the owner sets the URL.
    let before = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert!(before.body["thumbnailUrl"].is_null());

    let http = reqwest::Client::new();
    let mut put = http
        .put(upload["uploadUrl"].as_str().expect("uploadUrl"))
        .body(image.clone());
    for (k, v) in upload["headers"].as_object().expect("headers") {
        put = put.header(k, v.as_str().expect("header value"));
    }
    let put = put.send().await.expect("PUT");
    assert!(put.status().is_success(), "{}", put.status());
    let got = http.get(url).send().await.expect("GET thumbnail");
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.headers()["content-type"].to_str().expect("type"),
        "image/jpeg"
    );
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), image);

    let r = owner
        .send(
            &stack,
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"thumbnailUrl": url})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["thumbnailUrl"], url);
}

#[tokio::test]
async fn the_media_bucket_lets_the_web_app_upload_from_another_origin() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let s = create(&stack, &owner, json!({"channelId":"c","title":"Cors"})).await;
    let id = s["id"].as_str().expect("id");
    let r = owner
        .post(
            &stack,
            &format!("/api/streams/{id}/thumbnail"),
            json!({"contentType":"image/png","contentLength":5}),
        )
        .await;
    let upload_url = r.body["uploadUrl"].as_str().expect("uploadUrl").to_owned();
    // The browser's preflight for a cross-origin PUT, as S3 answers it from the bucket's CORS rules.
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &upload_url)
        .header("Origin", stack.url(""))
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert!(
        preflight
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn only_the_owner_changes_a_stream_and_a_refusal_changes_nothing() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let viewer = User::named("viewer");
    let anon = User::anonymous();
    let s = create(
        &stack,
        &owner,
        json!({"channelId":"c","title":"Mine","scheduledAt":future(30)}),
    )
    .await;
    let id = s["id"].as_str().expect("id");
    let before = anon.get(&stack, &format!("/api/streams/{id}")).await.body;

    for (method, action, body) in [
        ("POST", "start", Some(json!({}))),
        ("POST", "end", Some(json!({}))),
        ("POST", "cancel", Some(json!({}))),
        ("POST", "key", Some(json!({}))),
        ("PATCH", "", Some(json!({"title":"Hijacked"}))),
    ] {
        let path = if action.is_empty() {
            format!("/api/streams/{id}")
        } else {
            format!("/api/streams/{id}/{action}")
        };
        let r = viewer.send(&stack, method, &path, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "not_owner"),
            "viewer {method} {path}"
        );
        let r = anon.send(&stack, method, &path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized"),
            "anonymous {method} {path}"
        );
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    let r = anon
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"c","title":"x"}),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        anon.get(&stack, &format!("/api/streams/{id}")).await.body,
        before,
        "nothing changed"
    );
}
