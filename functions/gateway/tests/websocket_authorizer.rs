//! The `$connect` route's Lambda REQUEST authorizer end to end: the real gateway binary
//! with the `ws_probe` example as every route's function and as the authorizer (it
//! decides from the query string, see the example's docs), a tokio-tungstenite client,
//! and the events the probe logged.

mod common;

use std::time::Duration;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayWebsocketProxyRequest,
};
use common::probe::{Probe, authorized_template, connection_of, event_type, next_json, send};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

/// The handshake's refusal: its status and JSON body.
async fn refused(probe: &Probe, query: &str) -> (u16, Value) {
    match tokio_tungstenite::connect_async(probe.url(query)).await {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
            (response.status().as_u16(), body)
        }
        Ok((_, response)) => panic!("{query}: handshake accepted ({})", response.status()),
        Err(other) => panic!("{query}: expected an HTTP refusal, got {other:?}"),
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| event_type(e) == kind).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_handshake_hands_the_authorizer_context_to_connect_messages_and_disconnect() {
    let probe = Probe::start_with(&authorized_template(&["route.request.header.Host"]), &[]);
    let mut ws = probe.connect("streamId=s1").await;
    send(&mut ws, json!({"action": "echo"})).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["authorizer"]["user"], "probe-user", "{reply}");
    ws.close(None).await.expect("close");
    let events = probe
        .wait_for_event("DISCONNECT", |e| event_type(e) == "DISCONNECT")
        .await;

    // The authorizer ran first, once, with the REQUEST authorizer input.
    let kinds: Vec<&str> = events.iter().map(event_type).collect();
    assert_eq!(kinds, ["AUTHORIZER", "CONNECT", "MESSAGE", "DISCONNECT"]);
    let input: ApiGatewayCustomAuthorizerRequestTypeRequest =
        serde_json::from_value(events[0].clone()).expect("authorizer input");
    assert_eq!(input.type_.as_deref(), Some("REQUEST"));
    assert_eq!(
        input.method_arn.as_deref(),
        Some("arn:aws:execute-api:local:000000000000:local/live/$connect")
    );
    assert_eq!(input.query_string_parameters.first("streamId"), Some("s1"));
    assert!(input.headers.contains_key("host"));
    assert_eq!(connection_of(&events[0]), connection_of(&events[1]));
    assert_eq!(
        events[0]["requestContext"]["requestId"], events[1]["requestContext"]["requestId"],
        "one request: the authorizer's and $connect's"
    );

    // Every event of the connection carries the same context, as the function answered.
    let expected = &events[1]["requestContext"]["authorizer"];
    assert!(
        expected["integrationLatency"].is_u64(),
        "integrationLatency: {expected}"
    );
    for event in &events[1..] {
        assert_eq!(&event["requestContext"]["authorizer"], expected, "{event}");
        let parsed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event.clone())
            .unwrap_or_else(|e| panic!("not an ApiGatewayWebsocketProxyRequest ({e}): {event}"));
        let fields = parsed.request_context.authorizer.fields;
        assert_eq!(fields["principalId"], "probe-user");
        assert_eq!(fields["user"], "probe-user");
        assert_eq!(fields["streamId"], "s1");
        assert_eq!(fields["n"], 7);
        assert_eq!(fields["counted"], true);
        assert_eq!(fields.len(), 6, "nothing else: {fields:?}");
    }
    assert_eq!(&reply["authorizer"], expected);
    let stats = probe.gateway.stats();
    assert_eq!(stats["websocket"]["connections"], 1);
    assert_eq!(stats["websocket"]["authorizer_refused"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denying_policy_refuses_the_handshake_with_403_and_connect_never_runs() {
    let probe = Probe::start_with(&authorized_template(&["route.request.header.Host"]), &[]);
    assert_eq!(
        refused(&probe, "deny=1").await,
        (403, json!({"message": "Forbidden"}))
    );
    // An absence: a window for a wrong $connect to show, which no poll can wait for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = probe.events();
    assert_eq!(of_type(&events, "AUTHORIZER").len(), 1, "{events:#?}");
    assert!(of_type(&events, "CONNECT").is_empty(), "{events:#?}");
    let stats = probe.gateway.stats();
    assert_eq!(stats["websocket"]["connect_refused"], 1);
    assert_eq!(stats["websocket"]["authorizer_refused"], 1);
    assert_eq!(stats["websocket"]["connections"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unauthorized_error_refuses_with_401_and_a_broken_authorizer_with_500() {
    let probe = Probe::start_with(&authorized_template(&["route.request.header.Host"]), &[]);
    assert_eq!(
        refused(&probe, "unauth=1").await,
        (401, json!({"message": "Unauthorized"}))
    );
    // Any other error, or a context value API Gateway refuses, is the authorizer's bug.
    for query in ["authfail=1", "badctx=1"] {
        assert_eq!(
            refused(&probe, query).await,
            (500, json!({"message": "Internal server error"})),
            "{query}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = probe.events();
    assert_eq!(of_type(&events, "AUTHORIZER").len(), 3);
    assert!(of_type(&events, "CONNECT").is_empty(), "{events:#?}");
    let stats = probe.gateway.stats();
    assert_eq!(stats["websocket"]["connect_refused"], 3);
    assert_eq!(stats["websocket"]["authorizer_refused"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handshake_without_its_identity_source_is_refused_with_401_without_invoking_the_authorizer()
 {
    let probe = Probe::start_with(
        &authorized_template(&["route.request.querystring.token"]),
        &[],
    );
    for query in ["streamId=s1", "token="] {
        assert_eq!(
            refused(&probe, query).await,
            (401, json!({"message": "Unauthorized"})),
            "{query}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        probe.events().is_empty(),
        "nothing invoked: {:#?}",
        probe.events()
    );
    let stats = probe.gateway.stats();
    assert_eq!(stats["websocket"]["connect_refused"], 2);
    assert_eq!(stats["websocket"]["authorizer_refused"], 2);

    // With the token the authorizer decides (and admits).
    let _ws = probe.connect("token=t").await;
    let events = probe.events();
    assert_eq!(of_type(&events, "AUTHORIZER").len(), 1);
    assert_eq!(of_type(&events, "CONNECT").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_during_an_authorized_connect_gets_its_disconnect_with_the_context() {
    let probe = Probe::start_with(&authorized_template(&["route.request.header.Host"]), &[]);
    // The client gives up while `$connect` is still running (it accepts after 600 ms).
    let attempt = tokio::time::timeout(
        Duration::from_millis(150),
        tokio_tungstenite::connect_async(probe.url("sleep=600&streamId=s2")),
    )
    .await;
    assert!(
        attempt.is_err(),
        "the handshake cannot finish within 150 ms"
    );
    let events = probe
        .wait_for_event("$disconnect of the abandoned connection", |e| {
            event_type(e) == "DISCONNECT"
        })
        .await;
    let connect = of_type(&events, "CONNECT");
    let disconnect = of_type(&events, "DISCONNECT");
    assert_eq!((connect.len(), disconnect.len()), (1, 1), "{events:#?}");
    assert_eq!(connection_of(connect[0]), connection_of(disconnect[0]));
    let context = &disconnect[0]["requestContext"]["authorizer"];
    assert_eq!(context["streamId"], "s2", "{context}");
    assert_eq!(context, &connect[0]["requestContext"]["authorizer"]);
}
