//! Token verification: HS256, JWKS (RS256/ES256) against a real local HTTP server, the
//! authorizer's claims, operators.

use super::*;
use jsonwebtoken::{EncodingKey, Header};

fn hs(secret: &str) -> Auth {
    Auth::new(AuthConfig {
        secret: Some(secret.into()),
        ..AuthConfig::default()
    })
}

fn token(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

fn request(auth: Option<&str>) -> Request {
    let mut headers = serde_json::Map::new();
    if let Some(a) = auth {
        headers.insert("authorization".into(), serde_json::json!(a));
    }
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "GET /x", "rawPath": "/x", "rawQueryString": "",
        "headers": headers,
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "GET /x", "stage": "$default", "time": "t", "timeEpoch": 0},
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("event")
}

#[tokio::test]
async fn authorizer_claims_are_read_the_same_way_without_a_secret() {
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "GET /x", "rawPath": "/x", "rawQueryString": "", "headers": {},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "authorizer": {"jwt": {"claims": {"sub": "carol", "name": "Carol"}, "scopes": null}},
            "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "GET /x", "stage": "$default", "time": "t", "timeEpoch": 0},
        "isBase64Encoded": false
    });
    let req = lambda_http::request::from_str(&event.to_string()).expect("event");
    let p = Auth::new(AuthConfig::default())
        .require(&req)
        .await
        .expect("claims from the authorizer");
    assert_eq!(
        p,
        Principal {
            user_id: "carol".into(),
            display_name: "Carol".into()
        }
    );
}

fn exp() -> i64 {
    chrono::Utc::now().timestamp() + 600
}

#[tokio::test]
async fn a_valid_token_names_the_caller() {
    let auth = hs("s3cret");
    let t = token(
        "s3cret",
        serde_json::json!({"sub": "alice", "name": "Alice", "exp": exp()}),
    );
    let p = auth
        .require(&request(Some(&format!("Bearer {t}"))))
        .await
        .expect("ok");
    assert_eq!(
        p,
        Principal {
            user_id: "alice".into(),
            display_name: "Alice".into()
        }
    );
}

#[tokio::test]
async fn no_token_is_anonymous_but_required_routes_refuse() {
    let auth = hs("s3cret");
    assert_eq!(auth.principal(&request(None)).await.expect("ok"), None);
    assert_eq!(
        auth.require(&request(None)).await.unwrap_err().status(),
        401
    );
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let auth = hs("s3cret");
    let wrong_secret = token("other", serde_json::json!({"sub": "a", "exp": exp()}));
    let expired = token("s3cret", serde_json::json!({"sub": "a", "exp": 1000}));
    let no_sub = token("s3cret", serde_json::json!({"exp": exp()}));
    for h in [
        format!("Bearer {wrong_secret}"),
        format!("Bearer {expired}"),
        format!("Bearer {no_sub}"),
        "Bearer garbage".into(),
        "Basic dXNlcjpwYXNz".into(),
    ] {
        assert_eq!(
            auth.principal(&request(Some(&h)))
                .await
                .unwrap_err()
                .status(),
            401,
            "{h}"
        );
    }
}

#[tokio::test]
async fn operators_are_recognised_by_the_admin_claim_or_the_operator_group() {
    let auth = hs("s");
    let with = |claims: serde_json::Value| {
        let mut c = serde_json::json!({"sub": "op", "exp": exp()});
        c.as_object_mut()
            .expect("object")
            .extend(claims.as_object().expect("object").clone());
        request(Some(&format!("Bearer {}", token("s", c))))
    };
    for ok in [
        serde_json::json!({"rill:admin": true}),
        serde_json::json!({"cognito:groups": ["viewers", DEFAULT_OPERATOR_GROUP]}),
    ] {
        assert!(
            auth.require_operator(&with(ok.clone())).await.is_ok(),
            "{ok}"
        );
    }
    for refused in [
        serde_json::json!({}),
        serde_json::json!({"rill:admin": false}),
        serde_json::json!({"rill:admin": "yes"}),
        serde_json::json!({"cognito:groups": ["rill-operators-not"]}),
    ] {
        let e = auth
            .require_operator(&with(refused.clone()))
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (403, "not_operator"), "{refused}");
    }
    assert_eq!(
        auth.require_operator(&request(None))
            .await
            .unwrap_err()
            .status(),
        401
    );
}

#[test]
fn the_authorizer_string_forms_of_the_operator_claims_count() {
    use serde_json::json;
    let g = DEFAULT_OPERATOR_GROUP;
    assert!(is_operator(Some(&json!("true")), None, g));
    assert!(is_operator(None, Some(&json!(format!("[viewers {g}]"))), g));
    assert!(is_operator(None, Some(&json!(g)), g));
    assert!(!is_operator(
        Some(&json!("false")),
        Some(&json!("[viewers]")),
        g
    ));
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let auth = Auth::new(AuthConfig {
        secret: Some("s".into()),
        issuer: Some("rill".into()),
        audience: Some("api".into()),
        ..AuthConfig::default()
    });
    let good = token(
        "s",
        serde_json::json!({"sub": "a", "exp": exp(), "iss": "rill", "aud": "api"}),
    );
    let bad = token(
        "s",
        serde_json::json!({"sub": "a", "exp": exp(), "iss": "evil", "aud": "api"}),
    );
    assert!(
        auth.require(&request(Some(&format!("Bearer {good}"))))
            .await
            .is_ok()
    );
    assert!(
        auth.require(&request(Some(&format!("Bearer {bad}"))))
            .await
            .is_err()
    );
}

// ------------------------------------------------------------------ JWKS (RS256 / ES256)

/// Test-only key pairs and the JWKS of their public halves (`test-keys.json`).
fn keys() -> serde_json::Value {
    serde_json::from_str(include_str!("test-keys.json")).expect("test keys")
}

fn signed(alg: Algorithm, kid: &str, der_field: &str, claims: serde_json::Value) -> String {
    let hex = keys()[der_field].as_str().expect("hex DER").to_owned();
    let der: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_der(&der),
        _ => EncodingKey::from_rsa_der(&der),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &key).expect("encode")
}

const ISSUER: &str = "https://idp.test/pool";
const AUDIENCE: &str = "web-client";

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({"sub": "u1", "name": "Uma", "exp": exp(), "iss": ISSUER, "aud": AUDIENCE});
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A real HTTP server on 127.0.0.1 (port 0) answering every request with `body`; counts
/// the requests.
async fn jwks_server(
    body: String,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
        }
    });
    (url, hits, task)
}

fn jwks_auth(url: &str) -> Auth {
    Auth::new(AuthConfig {
        jwks_url: Some(url.into()),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..AuthConfig::default()
    })
}

async fn status_of(auth: &Auth, token: &str) -> Result<Principal, u16> {
    auth.verify(token).await.map_err(|e| e.status())
}

#[tokio::test]
async fn rs256_and_es256_tokens_from_the_jwks_name_the_caller() {
    let (url, hits, _server) = jwks_server(keys()["jwks"].to_string()).await;
    let auth = jwks_auth(&url);
    let rs = signed(
        Algorithm::RS256,
        "rsa",
        "rsa_private_der",
        claims(serde_json::json!({})),
    );
    let es = signed(
        Algorithm::ES256,
        "ec",
        "ec_private_der",
        claims(serde_json::json!({"sub": "u2", "name": null, "cognito:username": "bo"})),
    );
    let p = auth.verify(&rs).await.expect("RS256 accepted");
    assert_eq!((p.user_id.as_str(), p.display_name.as_str()), ("u1", "Uma"));
    let p = auth.verify(&es).await.expect("ES256 accepted");
    assert_eq!((p.user_id.as_str(), p.display_name.as_str()), ("u2", "bo"));
    // Cognito access tokens name the app client in client_id and have no aud.
    let access = signed(
        Algorithm::RS256,
        "rsa",
        "rsa_private_der",
        claims(serde_json::json!({"aud": null, "client_id": AUDIENCE, "token_use": "access"})),
    );
    assert!(auth.verify(&access).await.is_ok());
    // Through the Authorization header too.
    assert!(
        auth.require(&request(Some(&format!("Bearer {rs}"))))
            .await
            .is_ok()
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the set is fetched once per warm instance"
    );
}

#[tokio::test]
async fn wrong_issuer_audience_expiry_signature_or_algorithm_is_401() {
    let (url, _hits, _server) = jwks_server(keys()["jwks"].to_string()).await;
    let auth = jwks_auth(&url);
    let rs = |extra: serde_json::Value| {
        signed(Algorithm::RS256, "rsa", "rsa_private_der", claims(extra))
    };
    let cases = [
        (
            "wrong issuer",
            rs(serde_json::json!({"iss": "https://evil.test"})),
        ),
        ("no issuer", rs(serde_json::json!({"iss": null}))),
        (
            "wrong audience",
            rs(serde_json::json!({"aud": "other-client"})),
        ),
        ("no audience", rs(serde_json::json!({"aud": null}))),
        (
            "expired",
            rs(serde_json::json!({"exp": chrono::Utc::now().timestamp() - 120})),
        ),
        ("no exp", rs(serde_json::json!({"exp": null}))),
        ("no sub", rs(serde_json::json!({"sub": null}))),
        // Signed by a key that is not in the set, under a kid that is.
        (
            "foreign key",
            signed(
                Algorithm::RS256,
                "rsa",
                "rsa_other_private_der",
                claims(serde_json::json!({})),
            ),
        ),
        // The RSA key's kid with an ES256 header: the key decides the algorithm.
        (
            "algorithm confusion",
            signed(
                Algorithm::ES256,
                "rsa",
                "ec_private_der",
                claims(serde_json::json!({})),
            ),
        ),
        // HS256 is not accepted when only a JWKS is configured.
        ("HS256", token("secret", claims(serde_json::json!({})))),
        ("unsigned", {
            let rs = rs(serde_json::json!({}));
            let mut parts = rs.split('.');
            let (_, payload) = (parts.next(), parts.next().expect("payload"));
            // {"alg":"none","kid":"rsa"}
            format!("eyJhbGciOiJub25lIiwia2lkIjoicnNhIn0.{payload}.")
        }),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, t) in cases {
        assert_eq!(status_of(&auth, &t).await.unwrap_err(), 401, "{what}");
    }
    // Within the leeway an expired token still passes.
    let just = rs(serde_json::json!({"exp": chrono::Utc::now().timestamp() - 5}));
    assert!(status_of(&auth, &just).await.is_ok());
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_interval() {
    let (url, hits, _server) = jwks_server(keys()["jwks"].to_string()).await;
    let interval = std::time::Duration::from_millis(300);
    let set = jwks::KeySet::new(&url)
        .expect("key set")
        .with_min_refetch(interval);
    let count = || hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(set.key("rsa").await.expect("known").alg, Algorithm::RS256);
    assert_eq!(count(), 1);
    // Right after a fetch an unknown kid is not worth another one.
    for _ in 0..5 {
        assert_eq!(
            set.key("rotated").await.unwrap_err(),
            jwks::KeyError::UnknownKid
        );
    }
    assert_eq!(count(), 1);
    tokio::time::sleep(interval).await;
    // After the interval one refetch, then the interval again, however many ask.
    for _ in 0..5 {
        assert_eq!(
            set.key("rotated").await.unwrap_err(),
            jwks::KeyError::UnknownKid
        );
    }
    assert_eq!(count(), 2);
    assert!(set.key("ec").await.is_ok(), "known keys still work");
    assert_eq!(count(), 2, "known keys never cause a fetch");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_first_sight() {
    // The server already publishes the new key; the instance has not seen the set yet.
    let mut set = keys()["jwks"].clone();
    set["keys"]
        .as_array_mut()
        .expect("keys")
        .push(keys()["rsa_other_jwk"].clone());
    let (url, _hits, _server) = jwks_server(set.to_string()).await;
    let auth = jwks_auth(&url);
    let t = signed(
        Algorithm::RS256,
        "rsa_other",
        "rsa_other_private_der",
        claims(serde_json::json!({})),
    );
    assert!(auth.verify(&t).await.is_ok());
}

#[tokio::test]
async fn an_unreachable_jwks_is_503_not_a_sign_out() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let auth = jwks_auth(&format!("http://127.0.0.1:{port}/jwks.json"));
    let t = signed(
        Algorithm::RS256,
        "rsa",
        "rsa_private_der",
        claims(serde_json::json!({})),
    );
    let e = auth.verify(&t).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (503, "identity_provider_unreachable")
    );
}

#[tokio::test]
async fn without_a_usable_configuration_every_token_is_refused() {
    let t = signed(
        Algorithm::RS256,
        "rsa",
        "rsa_private_der",
        claims(serde_json::json!({})),
    );
    let hs_token = token("s", claims(serde_json::json!({})));
    let configs = [
        AuthConfig::default(),
        // A JWKS without issuer and audience would accept any tenant's tokens.
        AuthConfig {
            jwks_url: Some("https://idp.test/jwks.json".into()),
            ..AuthConfig::default()
        },
        AuthConfig {
            jwks_url: Some("http://idp.test/jwks.json".into()),
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            ..AuthConfig::default()
        },
    ];
    for config in configs {
        let auth = Auth::new(config.clone());
        for token in [&t, &hs_token] {
            let e = auth.verify(token).await.unwrap_err();
            assert_eq!((e.status(), e.code()), (401, "unauthorized"), "{config:?}");
        }
    }
}

#[test]
fn only_asymmetric_signing_keys_are_taken_from_a_set() {
    let set = serde_json::json!({"keys": [
        keys()["jwks"]["keys"][0],
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": keys()["jwks"]["keys"][0]["n"], "e": "AQAB"},
        {"kty": "RSA", "n": keys()["jwks"]["keys"][0]["n"], "e": "AQAB"},
        {"kty": "RSA", "kid": "mislabelled", "alg": "ES256", "n": keys()["jwks"]["keys"][0]["n"], "e": "AQAB"},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": keys()["jwks"]["keys"][1]["x"], "y": keys()["jwks"]["keys"][1]["y"]},
    ]});
    let parsed = jwks::parse_set(set.to_string().as_bytes()).expect("a JWKS");
    let mut kids: Vec<_> = parsed.iter().map(|(k, v)| (k.as_str(), v.alg)).collect();
    kids.sort_by_key(|(k, _)| *k);
    assert_eq!(kids, [("ec", Algorithm::ES256), ("rsa", Algorithm::RS256)]);
    assert!(jwks::parse_set(b"{\"not\": \"a set\"}").is_err());
}
