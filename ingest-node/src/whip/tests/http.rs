//! The WHIP endpoint's HTTP side: offers, refusals, CORS, resources, timeouts.

use super::*;
use crate::whip::offer::tests::vp8_only_offer;

async fn post_offer(
    h: &Harness,
    key: Option<&str>,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(h.endpoint())
        .header("content-type", content_type)
        .header("origin", "http://localhost:3000")
        .body(body);
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    req.send().await.unwrap()
}

/// The recorded Chrome offer with the right key: what a browser's first request looks like.
async fn post_chrome_offer(h: &Harness) -> reqwest::Response {
    post_offer(
        h,
        Some(GOOD_KEY),
        "application/sdp",
        CHROME_OFFER.to_owned(),
    )
    .await
}

async fn error_code(res: reqwest::Response) -> String {
    let v: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bad_requests_get_clear_errors_before_the_authoriser_is_asked() {
    let h = harness(WhipConfig::default()).await;
    let offer = CHROME_OFFER.to_owned();

    let res = post_offer(&h, None, "application/sdp", offer.clone()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert_eq!(error_code(res).await, "missing_stream_key");

    let res = post_offer(&h, Some(GOOD_KEY), "application/json", offer.clone()).await;
    assert_eq!(res.status(), 415);
    assert_eq!(error_code(res).await, "unsupported_media_type");

    let res = post_offer(&h, Some(GOOD_KEY), "application/sdp", vp8_only_offer()).await;
    assert_eq!(res.status(), 406);
    let v: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "unsupported_codecs");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("H.264") && message.contains("VP8"),
        "{message}"
    );

    let res = post_offer(
        &h,
        Some(GOOD_KEY),
        "application/sdp",
        "v=0\r\nnot sdp".into(),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, "invalid_sdp");

    let no_audio = CHROME_OFFER.replace("m=audio 9 ", "m=audio 0 ");
    let res = post_offer(&h, Some(GOOD_KEY), "application/sdp", no_audio).await;
    assert_eq!(res.status(), 406);

    let huge = format!("{offer}{}", "a=x\r\n".repeat(20_000));
    let res = post_offer(&h, Some(GOOD_KEY), "application/sdp", huge).await;
    assert_eq!(res.status(), 413);

    let res = reqwest::Client::new()
        .post(format!("{}/whip/bad%20id", h.base))
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {GOOD_KEY}"))
        .body(offer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    assert!(
        h.calls.lock().unwrap().is_empty(),
        "the authoriser was never asked"
    );
    assert!(h.handle.sessions().is_empty());
}

#[tokio::test]
async fn refusals_map_to_401_403_409_and_503() {
    let mut h = harness(WhipConfig::default()).await;
    for (key, status, code) in [
        ("wrong", 401, "invalid_stream_key"),
        ("ended", 403, "publish_not_allowed"),
        ("busy", 409, "already_publishing"),
        ("down", 503, "unavailable"),
        ("full", 503, "node_full"),
        ("elsewhere", 409, "published_elsewhere"),
    ] {
        let res = post_offer(&h, Some(key), "application/sdp", CHROME_OFFER.to_owned()).await;
        assert_eq!(res.status(), status, "{key}");
        assert!(res.headers().get("location").is_none());
        // A 503 tells the client (or the WHIP router) when to try again.
        assert_eq!(
            res.headers().get("retry-after").is_some(),
            status == 503,
            "{key}"
        );
        assert_eq!(error_code(res).await, code, "{key}");
    }
    assert_eq!(h.calls.lock().unwrap().len(), 6);
    assert!(h.media.try_recv().is_err(), "refusals produce no events");
}

#[tokio::test]
async fn preflight_allows_publishing_from_another_origin() {
    let h = harness(WhipConfig::default()).await;
    for path in [h.endpoint(), format!("{}/abc", h.endpoint())] {
        let res = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, &path)
            .header("origin", "http://localhost:3000")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let hd = res.headers();
        assert_eq!(hd["access-control-allow-origin"], "*");
        let methods = hd["access-control-allow-methods"].to_str().unwrap();
        assert!(
            methods.contains("POST") && methods.contains("DELETE"),
            "{methods}"
        );
        let headers = hd["access-control-allow-headers"].to_str().unwrap();
        assert!(headers.contains("Authorization") && headers.contains("Content-Type"));
        assert!(
            hd["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("Location")
        );
    }
}

#[tokio::test]
async fn accepted_offer_gets_an_answer_a_resource_and_a_slot() {
    let config = WhipConfig {
        max_sessions: 1,
        ..WhipConfig::default()
    };
    let mut h = harness(config).await;
    let res = post_chrome_offer(&h).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "application/sdp");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("/whip/{STREAM}/")),
        "{location}"
    );
    let answer = res.text().await.unwrap();
    for needed in [
        "a=ice-lite",
        "a=recvonly",
        "H264/90000",
        "opus/48000/2",
        "nack pli",
    ] {
        assert!(answer.contains(needed), "{needed} missing in\n{answer}");
    }
    let candidate = h.handle.candidate_addr();
    assert!(
        answer.contains(&format!("{} {} typ host", candidate.ip(), candidate.port())),
        "{answer}"
    );
    let sessions = h.handle.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].stream_id, STREAM);
    assert!(!sessions[0].connected);

    // One slot only: the next publisher waits.
    let res = post_chrome_offer(&h).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));

    let client = reqwest::Client::new();
    let res = client
        .patch(format!("{}{location}", h.base))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    let res = client
        .delete(format!("{}{location}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Never connected: the sink gets End and nothing else.
    assert_eq!(
        h.events_until_end(Duration::from_secs(5)).await,
        vec![MediaEvent::End]
    );
    let res = client
        .delete(format!("{}{location}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // The slot is free again.
    let res = post_chrome_offer(&h).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_publisher_that_never_connects_times_out() {
    let config = WhipConfig {
        connect_timeout: Duration::from_millis(500),
        ..WhipConfig::default()
    };
    let mut h = harness(config).await;
    let res = post_chrome_offer(&h).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        h.events_until_end(Duration::from_secs(5)).await,
        vec![MediaEvent::End]
    );
    assert!(h.handle.sessions().is_empty());
}

#[tokio::test]
async fn binding_the_wildcard_address_needs_an_advertised_ip() {
    let auth = Arc::new(|_req: PublishRequest| async { Err::<PublishSink, _>(Refusal::BadKey) });
    let config = WhipConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..WhipConfig::default()
    };
    let err = WhipServer::bind(config.clone(), auth.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let server = WhipServer::bind(
        WhipConfig {
            advertise_ip: Some("198.51.100.7".parse().unwrap()),
            ..config
        },
        auth,
    )
    .await
    .unwrap();
    let candidate = server.handle().candidate_addr();
    assert_eq!(candidate.ip().to_string(), "198.51.100.7");
    assert_eq!(candidate.port(), server.local_addr().port());
}
