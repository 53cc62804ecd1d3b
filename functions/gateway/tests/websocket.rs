//! The WebSocket API and the `@connections` Management API end to end: the real gateway
//! binary, the `ws_probe` example as every route's function (it logs each event and
//! replies through the real `aws-sdk-apigatewaymanagement` client), a tokio-tungstenite
//! client, and the real SDK for the Management API calls the tests make themselves
//! (harness in `common/probe.rs`; the `$connect` authorizer is `websocket_authorizer.rs`).

mod common;

use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use common::probe::{
    Probe, USER_AGENT, close_frame, connection_of, event_type, last_connection_id, next_frame,
    next_json, read_events, send,
};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

#[tokio::test(flavor = "multi_thread")]
async fn websocket_messages_are_routed_on_action_and_disconnect_runs_once() {
    let probe = Probe::start(&[]);
    let mut ws = probe.connect("streamId=s%201&token=a.b.c").await;

    send(&mut ws, json!({"action": "echo", "n": 1})).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["route"], "echo");
    assert_eq!(reply["body"], r#"{"action":"echo","n":1}"#);
    assert_eq!(reply["isBase64Encoded"], false);
    let id = reply["connectionId"].as_str().expect("id").to_owned();
    assert!(id.ends_with('=') && id.len() == 16, "AWS-like id: {id}");

    // No such route, a non-string action, not JSON, a binary frame: all $default.
    send(&mut ws, json!({"action": "nope"})).await;
    assert_eq!(next_json(&mut ws).await["route"], "$default");
    send(&mut ws, json!({"action": 7})).await;
    assert_eq!(next_json(&mut ws).await["route"], "$default");
    ws.send(Message::text("not json")).await.expect("send");
    let reply = next_json(&mut ws).await;
    assert_eq!(
        (reply["route"].as_str(), reply["body"].as_str()),
        (Some("$default"), Some("not json"))
    );
    ws.send(Message::binary(vec![0xff_u8, 0, 1]))
        .await
        .expect("send");
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["route"], "$default");
    assert_eq!(reply["isBase64Encoded"], true);
    assert_eq!(reply["body"], "/wAB");
    // `$connect` is not an action a client can choose.
    send(&mut ws, json!({"action": "$connect"})).await;
    assert_eq!(next_json(&mut ws).await["route"], "$default");

    ws.close(None).await.expect("close");
    let events = probe
        .wait_for_event("DISCONNECT", |e| event_type(e) == "DISCONNECT")
        .await;
    // Every event is what a Rust function parses on AWS.
    for event in &events {
        let parsed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(event.clone())
            .unwrap_or_else(|e| panic!("not an ApiGatewayWebsocketProxyRequest ({e}): {event}"));
        assert_eq!(
            parsed.request_context.connection_id.as_deref(),
            Some(id.as_str())
        );
        assert_eq!(parsed.request_context.stage.as_deref(), Some("live"));
    }
    let connect: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(events[0].clone()).expect("CONNECT");
    assert_eq!(
        connect.request_context.event_type.as_deref(),
        Some("CONNECT")
    );
    assert_eq!(
        connect.query_string_parameters.first("streamId"),
        Some("s 1")
    );
    assert_eq!(
        connect.query_string_parameters.first("token"),
        Some("a.b.c")
    );
    assert!(connect.headers.contains_key("sec-websocket-key"));
    assert_eq!(
        connect.request_context.identity.source_ip.as_deref(),
        Some("127.0.0.1")
    );
    let messages: Vec<&Value> = events
        .iter()
        .filter(|e| event_type(e) == "MESSAGE")
        .collect();
    assert_eq!(messages.len(), 6);
    assert!(
        messages
            .iter()
            .all(|m| m["requestContext"]["messageId"].is_string())
    );
    assert!(
        messages.iter().all(|m| m.get("headers").is_none()),
        "AWS sends no headers with messages"
    );

    // The first $disconnect is in (waited for above); this is a window for a second one
    // to show, which no poll can wait for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let disconnects: Vec<Value> = probe
        .events()
        .into_iter()
        .filter(|e| event_type(e) == "DISCONNECT")
        .collect();
    assert_eq!(
        disconnects.len(),
        1,
        "$disconnect runs once: {disconnects:#?}"
    );
    assert_eq!(
        disconnects[0]["requestContext"]["disconnectStatusCode"],
        1005
    );
    assert_eq!(disconnects[0]["requestContext"]["routeKey"], "$disconnect");

    let stats = probe.gateway.stats();
    assert_eq!(stats["websocket"]["open_connections"], 0);
    assert_eq!(stats["websocket"]["connections"], 1);
    assert_eq!(stats["websocket"]["messages"], 6);
    assert_eq!(stats["websocket"]["disconnects"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_refusal_answers_the_function_status_without_upgrading() {
    let probe = Probe::start(&[]);
    let refused = tokio_tungstenite::connect_async(probe.url("refuse=403")).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = response.body().clone().unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&body), "refused by probe");
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    match tokio_tungstenite::connect_async(probe.url("fail=1")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 502),
        other => panic!("expected 502, got {other:?}"),
    }
    // A plain GET is not a handshake.
    let plain = common::request(probe.gateway.port, "GET", "/ws", &[], b"");
    assert_eq!(
        (plain.status, plain.error_code().as_str()),
        (426, "upgrade_required")
    );

    // Refused connections never existed: no $disconnect, and posts to them are 410.
    let events = probe.events();
    let refused_id = last_connection_id(&events);
    // An absence: a window for a wrong $disconnect to show, which no poll can wait for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(probe.events().iter().all(|e| event_type(e) != "DISCONNECT"));
    let err = probe
        .sdk("")
        .post_to_connection()
        .connection_id(&refused_id)
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("gone");
    assert!(err.into_service_error().is_gone_exception());
    assert_eq!(probe.gateway.stats()["websocket"]["connect_refused"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_during_an_accepted_connect_gets_its_disconnect() {
    let probe = Probe::start(&[]);
    // The client gives up while `$connect` is still running (it accepts after 600 ms).
    let attempt = tokio::time::timeout(
        Duration::from_millis(150),
        tokio_tungstenite::connect_async(probe.url("sleep=600")),
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
    let connect = events
        .iter()
        .find(|e| event_type(e) == "CONNECT")
        .expect("$connect ran");
    let disconnect = events
        .iter()
        .find(|e| event_type(e) == "DISCONNECT")
        .expect("$disconnect ran");
    assert_eq!(connection_of(connect), connection_of(disconnect));
    assert_eq!(
        events
            .iter()
            .filter(|e| event_type(e) == "DISCONNECT")
            .count(),
        1,
        "exactly once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_of_one_connection_run_in_order_and_connections_run_concurrently() {
    let probe = Probe::start(&[]);
    let mut a = probe.connect("streamId=s").await;
    let mut b = probe.connect("streamId=s").await;

    // The slow frame is still invoked first: one invocation at a time per connection.
    send(&mut a, json!({"action": "sleep", "ms": 400})).await;
    send(&mut a, json!({"action": "echo"})).await;
    // Meanwhile another connection is served by another instance.
    send(&mut b, json!({"action": "sleep", "ms": 200})).await;
    let first = next_json(&mut a).await;
    let second = next_json(&mut a).await;
    assert_eq!(
        (first["route"].as_str(), second["route"].as_str()),
        (Some("sleep"), Some("echo"))
    );
    let other = next_json(&mut b).await;
    assert_ne!(
        other["pid"], first["pid"],
        "concurrent connections use separate instances"
    );
    // `requestTimeEpoch` is when the frame arrived (as on API Gateway), not when its turn
    // came: the echo waited ~400 ms behind the sleep, but was received with it.
    let events = probe
        .wait_for_event("echo", |e| e["requestContext"]["routeKey"] == "echo")
        .await;
    let received = |route: &str| {
        events
            .iter()
            .find(|e| e["requestContext"]["routeKey"] == route)
            .and_then(|e| e["requestContext"]["requestTimeEpoch"].as_i64())
            .expect("requestTimeEpoch")
    };
    let gap = received("echo") - received("sleep");
    assert!(
        (0..400).contains(&gap),
        "echo stamped {gap} ms after the sleep"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_frames_get_an_error_frame_and_the_connection_stays_open() {
    let probe = Probe::start(&[]);
    let mut ws = probe.connect("").await;
    let big = format!(r#"{{"action":"echo","pad":"{}"}}"#, "x".repeat(33 * 1024));
    ws.send(Message::text(big)).await.expect("send");
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert_eq!(
        error["data"],
        json!({"code": "frame_too_large", "message": "frames are limited to 32 KiB"})
    );
    assert!(
        error["ts"]
            .as_i64()
            .is_some_and(|ts| ts > 1_600_000_000_000)
    );

    // Exactly 32 KiB still goes through.
    let pad = 32 * 1024 - r#"{"action":"echo","pad":""}"#.len();
    let fits = format!(r#"{{"action":"echo","pad":"{}"}}"#, "y".repeat(pad));
    ws.send(Message::text(fits)).await.expect("send");
    assert_eq!(next_json(&mut ws).await["route"], "echo");
    let events = probe.events();
    assert_eq!(
        events.iter().filter(|e| event_type(e) == "MESSAGE").count(),
        1,
        "the oversized frame invoked nothing"
    );
    assert_eq!(probe.gateway.stats()["websocket"]["frames_too_large"], 1);

    // Over 1 MiB is not a chat message: the connection is closed (1009).
    let huge = "z".repeat(1024 * 1024 + 1);
    let _ = ws.send(Message::text(huge)).await;
    assert_eq!(close_frame(&mut ws).await.0, 1009);
    let events = probe
        .wait_for_event("DISCONNECT", |e| event_type(e) == "DISCONNECT")
        .await;
    let disconnect = events
        .iter()
        .find(|e| event_type(e) == "DISCONNECT")
        .expect("DISCONNECT");
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1009);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_invocations_send_aws_internal_error_frame_and_non_2xx_is_only_logged() {
    let probe = Probe::start(&[]);
    let mut ws = probe.connect("").await;
    send(&mut ws, json!({"action": "fail"})).await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["message"], "Internal server error");
    assert!(frame["connectionId"].is_string() && frame["requestId"].is_string());
    // A 500 answer is the function's business: nothing reaches the client.
    send(&mut ws, json!({"action": "status"})).await;
    send(&mut ws, json!({"action": "echo"})).await;
    assert_eq!(next_json(&mut ws).await["route"], "echo");
    assert_eq!(probe.gateway.stats()["websocket"]["invocation_failures"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_timeout_ignores_pings_and_max_age_closes_active_connections() {
    let probe = Probe::start(&[
        ("GATEWAY_WS_IDLE_TIMEOUT", "1"),
        ("GATEWAY_WS_MAX_AGE", "3"),
    ]);
    let mut idle = probe.connect("").await;
    let mut active = probe.connect("").await;
    let started = Instant::now();

    // Pings are answered but are not activity.
    let pinger = async {
        for _ in 0..4 {
            idle.send(Message::Ping(Vec::new().into()))
                .await
                .expect("ping");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        close_frame(&mut idle).await
    };
    // Meanwhile data frames keep the other connection alive until its maximum age.
    let talker = async {
        loop {
            send(&mut active, json!({"action": "echo"})).await;
            match tokio::time::timeout(Duration::from_millis(500), active.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    break (u16::from(frame.code), frame.reason.to_string());
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(other) => panic!("unexpected end: {other:?}"),
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never closed");
        }
    };
    let ((code, reason), closed) = tokio::join!(pinger, talker);
    assert_eq!(code, 1001);
    assert!(reason.contains("idle"), "{reason}");
    assert_eq!(closed.0, 1001);
    assert!(closed.1.contains("maximum connection age"), "{}", closed.1);
    assert!(started.elapsed() >= Duration::from_millis(2900));

    let disconnects = |events: &[Value]| {
        events
            .iter()
            .filter(|e| event_type(e) == "DISCONNECT")
            .count()
    };
    let events = probe
        .wait_until("two DISCONNECTs", |events| disconnects(events) == 2)
        .await;
    let mut reasons: Vec<String> = events
        .iter()
        .filter(|e| event_type(e) == "DISCONNECT")
        .map(|e| {
            assert_eq!(e["requestContext"]["disconnectStatusCode"], 1001);
            e["requestContext"]["disconnectReason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    reasons.sort();
    assert!(
        reasons[0].contains("idle") && reasons[1].contains("maximum"),
        "{reasons:?}"
    );
    let stats = probe.gateway.stats();
    assert_eq!(stats["websocket"]["idle_timeouts"], 1);
    assert_eq!(stats["websocket"]["max_age_closes"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn management_api_works_with_the_real_sdk() {
    let probe = Probe::start(&[]);
    let mut ws = probe.connect("streamId=s").await;
    send(&mut ws, json!({"action": "echo"})).await;
    let id = next_json(&mut ws).await["connectionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let sdk = probe.sdk("");

    // UTF-8 data arrives as a text frame, anything else as a binary frame.
    sdk.post_to_connection()
        .connection_id(&id)
        .data(Blob::new(r#"{"type":"stream:chat-message"}"#))
        .send()
        .await
        .expect("post text");
    assert_eq!(next_json(&mut ws).await["type"], "stream:chat-message");
    sdk.post_to_connection()
        .connection_id(&id)
        .data(Blob::new(vec![0xff_u8, 0xfe]))
        .send()
        .await
        .expect("post binary");
    match next_frame(&mut ws).await {
        Message::Binary(bytes) => assert_eq!(bytes.as_ref(), [0xff, 0xfe]),
        other => panic!("expected a binary frame, got {other:?}"),
    }
    // A stage path in the endpoint (https://.../live on AWS) works too.
    probe
        .sdk("/live")
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("staged"))
        .send()
        .await
        .expect("post via stage path");
    match next_frame(&mut ws).await {
        Message::Text(text) => assert_eq!(text.as_str(), "staged"),
        other => panic!("expected text, got {other:?}"),
    }

    let info = sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("get connection");
    let identity = info.identity().expect("identity");
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    assert_eq!(identity.user_agent(), Some(USER_AGENT));
    let connected = info.connected_at().expect("connectedAt");
    let active = info.last_active_at().expect("lastActiveAt");
    assert!(active.secs() >= connected.secs());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(connected.secs().abs_diff(i64::try_from(now).expect("now")) < 60);

    let too_big = sdk
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new(vec![b'x'; 129 * 1024]))
        .send()
        .await
        .expect_err("over 128 KiB");
    assert!(
        too_big
            .into_service_error()
            .is_payload_too_large_exception()
    );

    sdk.delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("delete");
    assert_eq!(close_frame(&mut ws).await.0, 1000);
    let err = sdk
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("late"))
        .send()
        .await
        .expect_err("closed connection");
    assert!(err.into_service_error().is_gone_exception());
    let err = sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect_err("closed connection");
    assert!(err.into_service_error().is_gone_exception());
    let err = sdk
        .delete_connection()
        .connection_id("L0SM9cOFvHcCIhw=")
        .send()
        .await
        .expect_err("unknown connection");
    assert!(err.into_service_error().is_gone_exception());

    let events = probe
        .wait_for_event("DISCONNECT", |e| event_type(e) == "DISCONNECT")
        .await;
    let disconnect = events
        .iter()
        .find(|e| event_type(e) == "DISCONNECT")
        .expect("DISCONNECT");
    assert_eq!(
        disconnect["requestContext"]["disconnectReason"],
        "Connection deleted"
    );

    // A function can delete its own connection too.
    let mut ws = probe.connect("").await;
    send(&mut ws, json!({"action": "close"})).await;
    assert_eq!(close_frame(&mut ws).await.0, 1000);
    // The close frame can reach the client a moment before the gateway counts the delete.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = probe.gateway.stats();
        if stats["websocket"]["deleted"] == 2 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats["websocket"]["deleted"], 2);
    assert_eq!(stats["websocket"]["posts"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_client_is_dropped_when_its_queue_overflows_and_others_are_unaffected() {
    let probe = Probe::start(&[]);
    let mut reader = probe.connect("").await;
    send(&mut reader, json!({"action": "echo"})).await;
    let reader_id = next_json(&mut reader).await["connectionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let slow = probe.connect("").await;
    let slow_id = last_connection_id(&probe.events());
    assert_ne!(slow_id, reader_id);

    // The slow client never reads: TCP buffers fill, then its queue, then it is dropped.
    let sdk = probe.sdk("");
    let payload = vec![b'z'; 100 * 1024];
    let mut accepted = 0;
    loop {
        let result = sdk
            .post_to_connection()
            .connection_id(&slow_id)
            .data(Blob::new(payload.clone()))
            .send()
            .await;
        match result {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert!(e.into_service_error().is_gone_exception());
                break;
            }
        }
        assert!(accepted < 20_000, "the slow client was never dropped");
    }
    assert!(accepted >= 1024, "the queue holds 1024 frames: {accepted}");
    let stats = probe.gateway.stats();
    assert_eq!(stats["websocket"]["slow_clients_closed"], 1);

    // The other connection is unaffected.
    sdk.post_to_connection()
        .connection_id(&reader_id)
        .data(Blob::new("still here"))
        .send()
        .await
        .expect("post to the reading client");
    match next_frame(&mut reader).await {
        Message::Text(text) => assert_eq!(text.as_str(), "still here"),
        other => panic!("expected text, got {other:?}"),
    }
    let events = probe
        .wait_for_event("DISCONNECT of the slow client", |e| {
            event_type(e) == "DISCONNECT" && connection_of(e) == slow_id
        })
        .await;
    let disconnect = events
        .iter()
        .find(|e| event_type(e) == "DISCONNECT")
        .expect("DISCONNECT");
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1008);
    drop(slow);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_connections_and_runs_disconnect() {
    let probe = Probe::start(&[]);
    let mut ws = probe.connect("").await;
    send(&mut ws, json!({"action": "echo"})).await;
    next_json(&mut ws).await;
    let log = probe.log.clone();
    let status = tokio::task::spawn_blocking(move || probe.gateway.terminate())
        .await
        .expect("join");
    assert!(status.success(), "{status}");
    let (code, _) = close_frame(&mut ws).await;
    assert_eq!(code, 1001);
    let disconnects: Vec<Value> = read_events(&log)
        .into_iter()
        .filter(|e| event_type(e) == "DISCONNECT")
        .collect();
    assert_eq!(
        disconnects.len(),
        1,
        "$disconnect ran before the gateway exited"
    );
    assert_eq!(
        disconnects[0]["requestContext"]["disconnectStatusCode"],
        1001
    );
}
