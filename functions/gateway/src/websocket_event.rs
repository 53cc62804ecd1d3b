//! API Gateway WebSocket API events (`CONNECT`, `MESSAGE`, `DISCONNECT`), shaped like the
//! ones AWS sends to a Lambda proxy integration, so the functions parse them with
//! `aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest` on AWS and locally alike.
//!
//! Checked against the real events of aws-lambda-rust-runtime's fixtures
//! (`example-apigw-websocket-request-*.json`): `requestContext.connectedAt` and
//! `requestTimeEpoch` are required by that type, so every event carries them. As on AWS:
//! - `CONNECT` carries the handshake's headers and query string (the only event that
//!   does: a token in `?token=` is seen by `$connect` and nowhere else);
//! - `MESSAGE` carries `messageId` and the frame as `body`, base64 for binary frames;
//! - `DISCONNECT` carries `disconnectStatusCode` and `disconnectReason`.
//!
//! When the template gives `$connect` a Lambda REQUEST authorizer, its input is
//! [`authorizer_event`] (what `aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest`
//! parses: the handshake's headers and query string, `methodArn`, and the `$connect`
//! event's `requestContext`). The answer of an authorizer that allowed the handshake is
//! [`ConnectionContext::authorizer`], and every event of the connection (`CONNECT`, each
//! `MESSAGE`, `DISCONNECT`) carries it as `requestContext.authorizer`: `principalId`,
//! `integrationLatency` and the answer's `context` keys, flat, as API Gateway sends them
//! (`ApiGatewayWebsocketProxyRequest` reads it into `request_context.authorizer.fields`).
//!
//! Invariant: `requestContext.authorizer` comes from the template's authorizer function
//! and nothing else. Nothing a client sends (headers, query, frames) becomes authorizer
//! context, and without an authorizer the key is absent, as on AWS; the HTTP API side never
//! sets it at all.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::{Map, Value, json};

/// `requestContext.apiId`, the same as the HTTP API's.
const API_ID: &str = "local";

/// The `methodArn` an authorizer of `$connect` gets:
/// `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect` on AWS, with the
/// gateway's API id (`local`), region `local` and the placeholder account.
pub fn connect_method_arn(stage: &str) -> String {
    format!("arn:aws:execute-api:local:000000000000:{API_ID}/{stage}/$connect")
}

/// A fresh id in AWS's format: base64 of random bytes with padding, e.g. `L0SM9cOFvHcCIhw=`.
/// Connection ids contain `=` (and may contain `+` or `/`), so a client that forgets to
/// URL-encode one in `/@connections/{id}` fails here as it would on AWS.
pub fn new_id() -> String {
    let mut bytes = [0_u8; 11];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness is no reason to refuse connections: ids only need to be unique.
        let fallback = u128::from(ulid::Ulid::new()).to_le_bytes();
        bytes.copy_from_slice(&fallback[..11]);
    }
    BASE64.encode(bytes)
}

/// What the events of one connection share; fixed at `$connect`.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub connection_id: String,
    pub connected_at: DateTime<Utc>,
    pub source_ip: String,
    pub user_agent: Option<String>,
    /// The `Host` of the handshake (`127.0.0.1:3000`), as `requestContext.domainName`.
    pub domain_name: String,
    pub stage: String,
    /// `requestContext.authorizer` of every event of the connection: the `$connect`
    /// authorizer's `principalId`, `integrationLatency` (ms) and `context` keys. Set only
    /// from the authorizer function's answer; `None` when `$connect` has no authorizer.
    pub authorizer: Option<Map<String, Value>>,
}

impl ConnectionContext {
    fn request_context(
        &self,
        route_key: &str,
        event_type: &str,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Map<String, Value> {
        let mut identity = Map::new();
        identity.insert("sourceIp".into(), json!(self.source_ip));
        if let Some(ua) = &self.user_agent {
            identity.insert("userAgent".into(), json!(ua));
        }
        let mut ctx = Map::new();
        ctx.insert("routeKey".into(), json!(route_key));
        ctx.insert("eventType".into(), json!(event_type));
        ctx.insert("extendedRequestId".into(), json!(request_id));
        ctx.insert(
            "requestTime".into(),
            json!(now.format("%d/%b/%Y:%H:%M:%S %z").to_string()),
        );
        ctx.insert("messageDirection".into(), json!("IN"));
        ctx.insert("stage".into(), json!(self.stage));
        ctx.insert(
            "connectedAt".into(),
            json!(self.connected_at.timestamp_millis()),
        );
        ctx.insert("requestTimeEpoch".into(), json!(now.timestamp_millis()));
        ctx.insert("identity".into(), Value::Object(identity));
        ctx.insert("requestId".into(), json!(request_id));
        ctx.insert("domainName".into(), json!(self.domain_name));
        ctx.insert("connectionId".into(), json!(self.connection_id));
        ctx.insert("apiId".into(), json!(API_ID));
        if let Some(authorizer) = &self.authorizer {
            ctx.insert("authorizer".into(), Value::Object(authorizer.clone()));
        }
        ctx
    }
}

/// The `$connect` event: the handshake's headers and query string.
pub fn connect_event(
    conn: &ConnectionContext,
    headers: &HeaderMap,
    raw_query: &str,
    local_port: u16,
    request_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut event = handshake_fields(conn, headers, raw_query, local_port);
    event.insert(
        "requestContext".into(),
        Value::Object(conn.request_context("$connect", "CONNECT", request_id, now)),
    );
    event.insert("isBase64Encoded".into(), json!(false));
    Value::Object(event)
}

/// The input of the `$connect` route's Lambda REQUEST authorizer: `type`, `methodArn`, the
/// handshake's headers and query string (as `$connect` gets them), empty `stageVariables`
/// and the `$connect` event's `requestContext` (same connection and request ids). `conn`
/// has no authorizer answer yet, so `requestContext.authorizer` is absent.
pub fn authorizer_event(
    conn: &ConnectionContext,
    headers: &HeaderMap,
    raw_query: &str,
    local_port: u16,
    request_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut event = Map::new();
    event.insert("type".into(), json!("REQUEST"));
    event.insert("methodArn".into(), json!(connect_method_arn(&conn.stage)));
    event.extend(handshake_fields(conn, headers, raw_query, local_port));
    event.insert("stageVariables".into(), json!({}));
    event.insert(
        "requestContext".into(),
        Value::Object(conn.request_context("$connect", "CONNECT", request_id, now)),
    );
    Value::Object(event)
}

/// `headers`, `multiValueHeaders` and, when the query is not empty,
/// `queryStringParameters` and `multiValueQueryStringParameters` of the handshake.
fn handshake_fields(
    conn: &ConnectionContext,
    headers: &HeaderMap,
    raw_query: &str,
    local_port: u16,
) -> Map<String, Value> {
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        multi
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    // Like API Gateway: the client address is appended, the scheme and port are ours.
    let xff = match multi.get("x-forwarded-for").and_then(|v| v.last()) {
        Some(prev) => format!("{prev}, {}", conn.source_ip),
        None => conn.source_ip.clone(),
    };
    multi.insert("x-forwarded-for".into(), vec![xff]);
    multi.insert("x-forwarded-proto".into(), vec!["http".into()]);
    multi.insert("x-forwarded-port".into(), vec![local_port.to_string()]);
    let single: BTreeMap<&String, String> = multi.iter().map(|(k, v)| (k, v.join(","))).collect();

    let mut fields = Map::new();
    fields.insert("headers".into(), json!(single));
    fields.insert("multiValueHeaders".into(), json!(multi));
    let query = query_parameters(raw_query);
    if !query.is_empty() {
        // REST-style (payload 1.0) parameters: the single-value map keeps the last value.
        let last: BTreeMap<&String, &String> = query
            .iter()
            .filter_map(|(k, v)| v.last().map(|last| (k, last)))
            .collect();
        fields.insert("queryStringParameters".into(), json!(last));
        fields.insert("multiValueQueryStringParameters".into(), json!(query));
    }
    fields
}

/// One data frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

impl Frame {
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `MESSAGE` event for `frame` on `route_key`.
pub fn message_event(
    conn: &ConnectionContext,
    route_key: &str,
    frame: &Frame,
    request_id: &str,
    message_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut ctx = conn.request_context(route_key, "MESSAGE", request_id, now);
    ctx.insert("messageId".into(), json!(message_id));
    let (body, is_base64) = match frame {
        Frame::Text(text) => (text.clone(), false),
        Frame::Binary(bytes) => (BASE64.encode(bytes), true),
    };
    json!({
        "requestContext": ctx,
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// The `$disconnect` event. AWS sends the handshake's `Host` and `X-Forwarded-*` headers.
pub fn disconnect_event(
    conn: &ConnectionContext,
    status_code: u16,
    reason: &str,
    local_port: u16,
    request_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let headers = BTreeMap::from([
        ("host", conn.domain_name.clone()),
        ("x-forwarded-for", conn.source_ip.clone()),
        ("x-forwarded-port", local_port.to_string()),
        ("x-forwarded-proto", "http".to_owned()),
    ]);
    let multi: BTreeMap<&str, [&String; 1]> = headers.iter().map(|(k, v)| (*k, [v])).collect();
    let mut ctx = conn.request_context("$disconnect", "DISCONNECT", request_id, now);
    ctx.insert("disconnectStatusCode".into(), json!(status_code));
    ctx.insert("disconnectReason".into(), json!(reason));
    json!({
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": ctx,
        "isBase64Encoded": false,
    })
}

/// Decoded query parameters, every value of repeated keys in order.
pub(crate) fn query_parameters(raw: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(form_decode(k)).or_default().push(form_decode(v));
    }
    out
}

fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    urlencoding::decode(&spaced)
        .map(|d| d.into_owned())
        .unwrap_or(spaced)
}

/// Route selection for `$request.body.<path>`: the string at `path` of a JSON object
/// frame. Anything else (binary, not JSON, not an object, no such string) selects nothing,
/// and the caller falls back to `$default`.
pub fn selection_key(frame: &Frame, path: &[String]) -> Option<String> {
    let Frame::Text(text) = frame else {
        return None;
    };
    let parsed: Value = serde_json::from_str(text).ok()?;
    let mut value = &parsed;
    for key in path {
        value = value.as_object()?.get(key)?;
    }
    value.as_str().map(str::to_owned)
}

/// The frame API Gateway sends a client when a route's integration fails (AWS sends the
/// same text; there is no route response involved).
pub fn internal_error_frame(connection_id: &str, request_id: &str) -> String {
    json!({
        "message": "Internal server error",
        "connectionId": connection_id,
        "requestId": request_id,
    })
    .to_string()
}

/// The frame API Gateway sends when no route matches and there is no `$default` route.
pub fn no_route_frame(connection_id: &str, request_id: &str) -> String {
    json!({
        "message": "Forbidden",
        "connectionId": connection_id,
        "requestId": request_id,
    })
    .to_string()
}

/// Rill's error frame, the shape the functions send too:
/// `{"type":"error","data":{"code":...,"message":...},"ts":<epoch ms>}`.
pub fn error_frame(code: &str, message: &str, now: DateTime<Utc>) -> String {
    json!({
        "type": "error",
        "data": {"code": code, "message": message},
        "ts": now.timestamp_millis(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::apigw::{
        ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayWebsocketProxyRequest,
    };
    use http::HeaderValue;

    use super::*;

    fn context() -> ConnectionContext {
        ConnectionContext {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            connected_at: DateTime::from_timestamp_millis(1_700_000_000_123).expect("time"),
            source_ip: "127.0.0.1".into(),
            user_agent: Some("test-agent".into()),
            domain_name: "127.0.0.1:3000".into(),
            stage: "live".into(),
            authorizer: None,
        }
    }

    /// A connection an authorizer admitted, with the answer's context.
    fn authorized() -> ConnectionContext {
        let answer = json!({
            "principalId": "user-1",
            "integrationLatency": 12,
            "streamId": "s1",
            "counted": true,
            "weight": 2.5,
        });
        ConnectionContext {
            authorizer: answer.as_object().cloned(),
            ..context()
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_005_000).expect("time")
    }

    fn parse(event: &Value) -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_value(event.clone())
            .unwrap_or_else(|e| panic!("not an ApiGatewayWebsocketProxyRequest ({e}): {event}"))
    }

    #[test]
    fn connect_event_parses_as_a_websocket_proxy_request() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        headers.insert("user-agent", HeaderValue::from_static("test-agent"));
        headers.insert("sec-websocket-key", HeaderValue::from_static("abc=="));
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        let event = connect_event(
            &context(),
            &headers,
            "streamId=s%201&token=a.b.c&x=1&x=2",
            3000,
            "req1=",
            now(),
        );
        let req = parse(&event);
        let ctx = &req.request_context;
        assert_eq!(ctx.route_key.as_deref(), Some("$connect"));
        assert_eq!(ctx.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(ctx.connection_id.as_deref(), Some("L0SM9cOFvHcCIhw="));
        assert_eq!(ctx.connected_at, 1_700_000_000_123);
        assert_eq!(ctx.request_time_epoch, 1_700_000_005_000);
        assert_eq!(ctx.stage.as_deref(), Some("live"));
        assert_eq!(ctx.message_direction.as_deref(), Some("IN"));
        assert_eq!(ctx.domain_name.as_deref(), Some("127.0.0.1:3000"));
        assert_eq!(ctx.apiid.as_deref(), Some("local"));
        assert_eq!(ctx.identity.source_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(ctx.identity.user_agent.as_deref(), Some("test-agent"));
        assert_eq!(
            ctx.request_time.as_deref(),
            Some("14/Nov/2023:22:13:25 +0000")
        );
        assert!(ctx.authorizer.fields.is_empty());
        assert_eq!(req.query_string_parameters.first("streamId"), Some("s 1"));
        assert_eq!(req.query_string_parameters.first("token"), Some("a.b.c"));
        assert_eq!(
            req.query_string_parameters.first("x"),
            Some("2"),
            "last value"
        );
        assert_eq!(
            req.multi_value_query_string_parameters.all("x"),
            Some(vec!["1", "2"])
        );
        assert_eq!(req.headers["sec-websocket-key"], "abc==");
        assert_eq!(req.headers["x-forwarded-for"], "127.0.0.1");
        let multi: Vec<_> = req.multi_value_headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
        assert!(!req.is_base64_encoded);
        assert!(req.body.is_none());
    }

    #[test]
    fn connect_event_without_query_omits_the_parameters() {
        let event = connect_event(&context(), &HeaderMap::new(), "", 3000, "r=", now());
        assert!(event.get("queryStringParameters").is_none());
        assert!(event.get("multiValueQueryStringParameters").is_none());
        parse(&event);
    }

    #[test]
    fn message_events_carry_text_or_base64_bodies() {
        let text = Frame::Text(r#"{"action":"chat","content":"hi"}"#.into());
        let req = parse(&message_event(
            &context(),
            "chat",
            &text,
            "r=",
            "m1=",
            now(),
        ));
        let ctx = &req.request_context;
        assert_eq!(ctx.event_type.as_deref(), Some("MESSAGE"));
        assert_eq!(ctx.route_key.as_deref(), Some("chat"));
        assert_eq!(ctx.message_id.as_deref(), Some("m1="));
        assert_eq!(ctx.connected_at, 1_700_000_000_123);
        assert_eq!(
            req.body.as_deref(),
            Some(r#"{"action":"chat","content":"hi"}"#)
        );
        assert!(!req.is_base64_encoded);

        let binary = Frame::Binary(vec![0xff, 0, 1]);
        let req = parse(&message_event(
            &context(),
            "$default",
            &binary,
            "r=",
            "m2=",
            now(),
        ));
        assert!(req.is_base64_encoded);
        assert_eq!(req.body.as_deref(), Some("/wAB"));
    }

    #[test]
    fn disconnect_event_carries_status_and_reason() {
        let event = disconnect_event(&context(), 1001, "Going away", 3000, "r=", now());
        let req = parse(&event);
        let ctx = &req.request_context;
        assert_eq!(ctx.route_key.as_deref(), Some("$disconnect"));
        assert_eq!(ctx.event_type.as_deref(), Some("DISCONNECT"));
        assert_eq!(ctx.disconnect_status_code, Some(1001));
        assert_eq!(ctx.disconnect_reason.as_deref(), Some("Going away"));
        assert_eq!(req.headers["host"], "127.0.0.1:3000");
    }

    #[test]
    fn authorizer_event_parses_as_a_request_authorizer_input() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        headers.insert("sec-websocket-key", HeaderValue::from_static("abc=="));
        let event = authorizer_event(
            &context(),
            &headers,
            "streamId=s%201&token=a.b.c&x=1&x=2",
            3000,
            "req1=",
            now(),
        );
        let req: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(event.clone()).unwrap_or_else(|e| {
                panic!("not an ApiGatewayCustomAuthorizerRequestTypeRequest ({e}): {event}")
            });
        assert_eq!(req.type_.as_deref(), Some("REQUEST"));
        assert_eq!(
            req.method_arn.as_deref(),
            Some("arn:aws:execute-api:local:000000000000:local/live/$connect")
        );
        assert_eq!(req.headers["host"], "127.0.0.1:3000");
        assert_eq!(req.headers["sec-websocket-key"], "abc==");
        assert_eq!(req.headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(req.query_string_parameters.first("streamId"), Some("s 1"));
        assert_eq!(req.query_string_parameters.first("token"), Some("a.b.c"));
        assert_eq!(
            req.multi_value_query_string_parameters.all("x"),
            Some(vec!["1", "2"])
        );
        assert!(req.stage_variables.is_empty());
        assert_eq!(req.request_context.request_id.as_deref(), Some("req1="));
        assert_eq!(req.request_context.stage.as_deref(), Some("live"));
        assert_eq!(req.request_context.apiid.as_deref(), Some("local"));

        // The same requestContext as the `$connect` event of the same handshake.
        let connect = connect_event(&context(), &headers, "streamId=s%201", 3000, "req1=", now());
        assert_eq!(event["requestContext"], connect["requestContext"]);
        assert_eq!(event["requestContext"]["connectionId"], "L0SM9cOFvHcCIhw=");
        assert_eq!(event["requestContext"]["eventType"], "CONNECT");
        assert!(event["requestContext"].get("authorizer").is_none());
    }

    #[test]
    fn every_event_of_an_authorized_connection_carries_the_authorizer_context() {
        let conn = authorized();
        let events = [
            connect_event(&conn, &HeaderMap::new(), "", 3000, "r=", now()),
            message_event(&conn, "chat", &Frame::Text("{}".into()), "r=", "m=", now()),
            disconnect_event(&conn, 1000, "bye", 3000, "r=", now()),
        ];
        for event in &events {
            assert_eq!(
                event["requestContext"]["authorizer"],
                json!({"principalId": "user-1", "integrationLatency": 12, "streamId": "s1",
                       "counted": true, "weight": 2.5})
            );
            let fields = parse(event).request_context.authorizer.fields;
            assert_eq!(fields["principalId"], "user-1");
            assert_eq!(fields["integrationLatency"], 12);
            assert_eq!(fields["streamId"], "s1");
            assert_eq!(fields["counted"], true);
            assert_eq!(fields["weight"], 2.5);
        }
        // Without an authorizer there is no `authorizer` key at all.
        let plain = message_event(
            &context(),
            "chat",
            &Frame::Text("{}".into()),
            "r=",
            "m=",
            now(),
        );
        assert!(plain["requestContext"].get("authorizer").is_none());
    }

    #[test]
    fn ids_look_like_aws_connection_ids() {
        let id = new_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert_eq!(BASE64.decode(&id).map(|b| b.len()).ok(), Some(11));
        assert_ne!(id, new_id());
    }

    #[test]
    fn route_selection_reads_the_action_string_only() {
        let path = vec!["action".to_owned()];
        let key = |frame: Frame| selection_key(&frame, &path);
        assert_eq!(
            key(Frame::Text(r#"{"action":"chat"}"#.into())).as_deref(),
            Some("chat")
        );
        assert_eq!(key(Frame::Text(r#"{"action":1}"#.into())), None);
        assert_eq!(key(Frame::Text(r#"["action"]"#.into())), None);
        assert_eq!(key(Frame::Text("not json".into())), None);
        assert_eq!(key(Frame::Text("{}".into())), None);
        assert_eq!(key(Frame::Binary(br#"{"action":"chat"}"#.to_vec())), None);
        let nested = vec!["meta".to_owned(), "kind".to_owned()];
        let frame = Frame::Text(r#"{"meta":{"kind":"x"}}"#.into());
        assert_eq!(selection_key(&frame, &nested).as_deref(), Some("x"));
    }

    #[test]
    fn error_frame_has_the_product_shape() {
        let frame: Value = serde_json::from_str(&error_frame(
            "frame_too_large",
            "frames are limited to 32 KiB",
            now(),
        ))
        .expect("json");
        assert_eq!(
            frame,
            json!({"type": "error", "data": {"code": "frame_too_large", "message": "frames are limited to 32 KiB"}, "ts": 1_700_000_005_000_i64})
        );
    }
}
