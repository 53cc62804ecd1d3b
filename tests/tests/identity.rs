//! Production sign-in end to end: the functions verify RS256 tokens from a real OpenID
//! provider (`scripts/test_idp.py`: RS256, JWKS, PKCE) with HS256 turned off, as on AWS.
//! A good token creates a stream and chats; unsigned, expired, wrong-issuer,
//! wrong-audience, foreign-key and development (HS256) tokens get 401 on REST and a refused
//! `$connect`.

use std::time::Duration;

use rill_tests::{Connect, Stack, TestIdp, User, token};
use serde_json::json;

const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn rs256_tokens_from_the_provider_create_go_live_and_chat() {
    let idp = TestIdp::start(3600);
    let env = idp.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::start_with(&env);

    let owner = User::bearing(
        idp.mint(json!({"sub": "olga", "name": "Olga"}), &[], false)
            .await,
    );
    let id = stack
        .live_stream(&owner, "idp-channel", "Signed in with RS256", json!({}))
        .await;
    let r = owner
        .get(&stack, &format!("/api/streams/{id}?ingest=true"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["ownerId"], "olga");

    // A Cognito-style access token: the app client in client_id, no aud, no name.
    let access = idp
        .mint(
            json!({"sub": "vic", "client_id": rill_tests::idp::CLIENT_ID, "token_use": "access", "username": "vic"}),
            &["aud", "name"],
            false,
        )
        .await;
    let viewer = User::bearing(access);
    let mut vs = stack.socket(&id, &viewer).await;
    let mut os = stack.socket(&id, &owner).await;
    vs.send_json(json!({"action": "chat", "content": "hello over RS256"}))
        .await;
    for s in [&mut vs, &mut os] {
        let m = s.expect("stream:chat-message", SOON).await;
        assert_eq!(m["data"]["content"], "hello over RS256");
        assert_eq!(m["data"]["authorId"], "vic");
        assert_eq!(m["data"]["authorName"], "vic");
    }
}

#[tokio::test]
async fn bad_tokens_are_401_on_rest_and_refused_at_connect() {
    let idp = TestIdp::start(3600);
    let env = idp.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::start_with(&env);
    let owner = User::bearing(idp.mint(json!({"sub": "olga"}), &[], false).await);
    let id = stack
        .live_stream(&owner, "idp-channel", "Guarded", json!({}))
        .await;

    let now = chrono::Utc::now().timestamp();
    let good = idp.mint(json!({"sub": "mallory"}), &[], false).await;
    let unsigned = {
        let mut parts = good.split('.');
        let _header = parts.next();
        let payload = parts.next().expect("payload");
        // {"alg":"none","typ":"JWT"}
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    let cases = [
        ("unsigned", unsigned),
        (
            "expired",
            idp.mint(json!({"exp": now - 120}), &[], false).await,
        ),
        (
            "wrong issuer",
            idp.mint(json!({"iss": "https://evil.example"}), &[], false)
                .await,
        ),
        (
            "wrong audience",
            idp.mint(json!({"aud": "another-client"}), &[], false).await,
        ),
        ("no audience", idp.mint(json!({}), &["aud"], false).await),
        ("foreign key", idp.mint(json!({}), &[], true).await),
        // The development token the README prints: HS256 is off when a JWKS is configured.
        ("HS256", token("mallory", "Mallory")),
    ];
    for (what, t) in cases {
        let user = User::bearing(t);
        let r = user
            .post(
                &stack,
                "/api/streams/create",
                json!({"channelId": "m", "title": "nope"}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized"),
            "{what}: {}",
            r.text
        );
        let r = user
            .post(
                &stack,
                &format!("/api/streams/{id}/chat"),
                json!({"content": "x"}),
            )
            .await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        match stack.connect(&id, &user).await {
            Connect::Refused(status) => assert_eq!(status, 401, "{what}"),
            Connect::Open(_) => panic!("{what}: $connect accepted a bad token"),
        }
    }
    // Nothing was created by any of them.
    let r = User::anonymous().get(&stack, "/api/streams/live").await;
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    // And the good token still works.
    assert!(matches!(
        stack.connect(&id, &User::bearing(good)).await,
        Connect::Open(_)
    ));
}

#[tokio::test]
async fn with_no_verification_configured_every_token_is_refused() {
    let stack = Stack::start_with(&[("JWT_SECRET", "")]);
    let r = User::named("olga")
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId": "c", "title": "t"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"), "{}", r.text);
    assert!(r.text.contains("not configured"), "{}", r.text);
}
