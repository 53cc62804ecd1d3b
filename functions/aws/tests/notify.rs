//! `rill_aws::notify::ManagementApi` (the fan-out's `PostToConnection`, a signed request of
//! Rill's own rather than the SDK's) against endpoints that judge it independently:
//!
//! - **moto** started with `INITIAL_NO_AUTH_ACTION_COUNT=3` serves the API Gateway
//!   Management API and, from the fourth request on, recomputes every request's SigV4
//!   signature: a post is accepted only if it is signed as AWS expects (`execute-api`, the
//!   connection id percent-encoded in the path). The users come from `tests/ecs_setup.py`
//!   (boto3), independently of the code under test.
//! - A one-shot HTTP responder answers 410 `GoneException`, as API Gateway does for a
//!   closed connection (moto opens any id on first use, so it never answers 410).
//!
//! A missing moto is a failure, not a skip: CI has it (`scripts/setup.sh`).

mod common;
use common::{Keys, run_setup, sdk, start_moto};

use rill_aws::notify::ManagementApi;
use rill_core::store::{Notifier, NotifyError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn keys(users: &serde_json::Value, who: &str) -> Keys {
    Keys {
        id: users[who]["id"].as_str().expect("key id").to_owned(),
        secret: users[who]["secret"].as_str().expect("secret").to_owned(),
    }
}

#[tokio::test]
async fn a_post_is_accepted_by_an_endpoint_that_checks_its_signature_and_a_bad_secret_is_not() {
    let moto = start_moto("INITIAL_NO_AUTH_ACTION_COUNT=3");
    let users = run_setup("ecs_setup.py", &[&moto.url, "users"]);
    let admin = keys(&users, "admin");

    let api = ManagementApi::new(&sdk(&moto.url, &admin), &moto.url).expect("notifier");
    // API Gateway's ids end in `=`, which the path must carry percent-encoded.
    api.post("Jx3kYdpYIAMCJ2g=", br#"{"type":"stream:chat-message"}"#)
        .await
        .expect("a correctly signed post is accepted");

    let forged = Keys {
        secret: format!("{}x", admin.secret),
        ..admin
    };
    let api = ManagementApi::new(&sdk(&moto.url, &forged), &moto.url).expect("notifier");
    match api.post("Jx3kYdpYIAMCJ2g=", b"{}").await {
        Err(NotifyError::Failed(reason)) => {
            assert!(reason.contains("403"), "refused as unauthorised: {reason}");
        }
        other => panic!("a post signed with the wrong secret must fail, got {other:?}"),
    }
}

#[tokio::test]
async fn a_gone_connection_is_reported_as_gone_not_as_a_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = vec![0u8; 16 * 1024];
        let n = socket.read(&mut request).await.expect("read");
        let body = br#"{"message":"Gone"}"#;
        let head = format!(
            "HTTP/1.1 410 Gone\r\ncontent-type: application/json\r\n\
             x-amzn-errortype: GoneException\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.expect("write");
        socket.write_all(body).await.expect("write");
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    let keys = Keys {
        id: "AKIDEXAMPLE".into(),
        secret: "secret".into(),
    };
    let api = ManagementApi::new(&sdk(&url, &keys), &format!("{url}/")).expect("notifier");

    let result = api.post("abc=", b"frame").await;

    assert!(matches!(result, Err(NotifyError::Gone)), "got {result:?}");
    let request = server.await.expect("server");
    assert!(
        request.starts_with("POST /@connections/abc%3D HTTP/1.1"),
        "the id is percent-encoded and the endpoint's trailing slash dropped: {request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("/execute-api/aws4_request"),
        "signed for execute-api: {request}"
    );
}
