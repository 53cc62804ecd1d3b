//! The local gateway behaves like API Gateway + Lambda for the real function binaries.

use rill_tests::{Stack, User, wait_for};
use serde_json::json;

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let stack = Stack::start();
    for (method, path) in [
        ("GET", "/api/nope"),
        ("POST", "/api/streams/live"),
        ("PUT", "/api/streams/create"),
    ] {
        let r = User::anonymous().send(&stack, method, path, None).await;
        assert!(
            r.status == 404 || r.status == 405,
            "{method} {path}: {}",
            r.status
        );
        assert!(
            r.body["error"]["code"].is_string(),
            "{method} {path}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn browsers_get_cors_preflight_and_headers() {
    let stack = Stack::start();
    let r = stack
        .http
        .request(reqwest::Method::OPTIONS, stack.url("/api/streams/create"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert!(r.status().is_success(), "{}", r.status());
    let allow = r
        .headers()
        .get("access-control-allow-origin")
        .expect("allow-origin");
    assert!(allow == "*" || allow == "http://localhost:5173");
    let r = stack
        .http
        .get(stack.url("/api/streams/live"))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .expect("get");
    assert!(r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn hls_objects_are_served_from_the_bucket_with_their_headers() {
    let stack = Stack::start();
    let s3 = stack.s3().await;
    let playlist = "#EXTM3U\n#EXT-X-VERSION:7\n";
    s3.put_object()
        .bucket(&stack.bucket)
        .key("live/abc/master.m3u8")
        .content_type("application/vnd.apple.mpegurl")
        .cache_control("no-cache")
        .body(playlist.as_bytes().to_vec().into())
        .send()
        .await
        .expect("put");
    let r = stack
        .http
        .get(stack.url("/hls/live/abc/master.m3u8"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.text().await.expect("body"), playlist);
    let r = stack
        .http
        .get(stack.url("/hls/live/abc/missing.m4s"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let r = stack
        .http
        .get(stack.url("/hls/live/../secret"))
        .send()
        .await
        .expect("get");
    assert_ne!(r.status(), 200);
}

#[tokio::test]
async fn a_killed_function_instance_is_replaced_and_reported() {
    let stack = Stack::start();
    let owner = User::named("owner");
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"c","title":"t"}),
        )
        .await;
    let id = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await
            .status,
        200
    );

    let stats = stack.gateway_stats().await;
    let f = &stats["functions"]["streams-get"];
    let instance = &f["instances"][0];
    assert!(
        instance["init_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "init time is recorded: {f}"
    );
    assert!(instance["rss_kb"].as_u64().expect("rss") > 0);
    let pid = instance["pid"].as_u64().expect("pid");
    std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    // The next request is for a new instance once the gateway has reaped the killed one
    // (it leaves the function's instances).
    wait_for(
        "the gateway to drop the killed instance",
        std::time::Duration::from_secs(10),
        || async {
            let stats = stack.gateway_stats().await;
            stats["functions"]["streams-get"]["instances"]
                .as_array()
                .is_some_and(|all| all.iter().all(|i| i["pid"].as_u64() != Some(pid)))
        },
    )
    .await;

    let r = User::anonymous()
        .get(&stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(
        r.status, 200,
        "a new instance serves the next request: {}",
        r.text
    );
    let stats = stack.gateway_stats().await;
    assert!(
        stats["functions"]["streams-get"]["cold_starts"]
            .as_u64()
            .expect("cold starts")
            >= 2
    );
}

#[tokio::test]
async fn concurrent_requests_scale_out_to_more_instances_up_to_the_limit() {
    let stack = Stack::start_with(&[("GATEWAY_MAX_INSTANCES", "3")]);
    let owner = User::named("owner");
    let r = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"c","title":"t"}),
        )
        .await;
    let id = r.body["id"].as_str().expect("id").to_owned();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (http, url) = (stack.http.clone(), stack.url(&format!("/api/streams/{id}")));
        tasks.push(tokio::spawn(async move {
            http.get(url).send().await.expect("get").status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    let stats = stack.gateway_stats().await;
    let n = stats["functions"]["streams-get"]["instances"]
        .as_array()
        .expect("instances")
        .len();
    assert!((1..=3).contains(&n), "instances within the limit: {n}");
}

/// The local stack splits AWS the way the README says: the table (and its stream) in
/// DynamoDB Local, the bucket in moto. Unless `RILL_DYNAMODB=moto` asks for moto only.
#[tokio::test]
async fn the_table_lives_in_dynamodb_local_and_the_bucket_in_moto() {
    let stack = Stack::start();
    let owner = User::named("split-owner");
    let (id, _) = owner
        .create_stream(&stack, json!({"channelId": "split", "title": "Split"}))
        .await;
    let on_moto = rill_aws::dynamodb_client(&rill_tests::moto_sdk(&stack.moto).await);
    let moto_tables = on_moto
        .list_tables()
        .send()
        .await
        .expect("moto lists its tables")
        .table_names
        .unwrap_or_default();
    let items = stack.scan_all().await;
    assert!(
        items.iter().any(|i| i
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|pk| pk.ends_with(&id))),
        "the stream is in the stack's DynamoDB"
    );
    let described = stack
        .dynamodb()
        .await
        .describe_table()
        .table_name(&stack.table)
        .send()
        .await
        .expect("describe");
    assert!(
        described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .is_some(),
        "the table has its stream"
    );
    let buckets = stack
        .s3()
        .await
        .list_buckets()
        .send()
        .await
        .expect("moto lists its buckets");
    assert!(
        buckets
            .buckets()
            .iter()
            .any(|b| b.name() == Some(stack.bucket.as_str())),
        "the bucket is in moto"
    );
    if std::env::var("RILL_DYNAMODB").is_ok_and(|v| v == "moto") {
        assert_eq!(stack.dynamodb, stack.moto);
    } else {
        assert_ne!(stack.dynamodb, stack.moto);
        assert!(
            !moto_tables.contains(&stack.table),
            "the table must not be in moto: {moto_tables:?}"
        );
    }
}
