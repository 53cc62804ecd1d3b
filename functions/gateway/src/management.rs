//! The API Gateway Management API (`@connections`) on the gateway's own port, as
//! `aws-sdk-apigatewaymanagement` calls it when its endpoint is the gateway
//! (`WS_MANAGEMENT_ENDPOINT=http://127.0.0.1:<port>`; a stage path such as `/live` after
//! the port works too):
//!
//! - `POST /@connections/{id}`: the body is sent to the client, as a text frame when it is
//!   UTF-8, else as a binary frame → 200, empty. Payloads over 128 KiB → 413
//!   `PayloadTooLargeException`.
//! - `GET /@connections/{id}` → 200 `{"connectedAt","lastActiveAt","identity":{"sourceIp",
//!   "userAgent"}}`, timestamps in ISO 8601 as the SDK's deserializer expects.
//! - `DELETE /@connections/{id}` → 204; the socket closes and `$disconnect` runs.
//! - An unknown or closed id → 410 with `x-amzn-ErrorType: GoneException`, which the SDK
//!   turns into `GoneException`; that is how fan-out functions learn to prune a connection.
//!
//! The id arrives percent-encoded (`%3D` for `=`); the path extractor decodes it. SigV4
//! headers are ignored: like the rest of the gateway, this is local and unauthenticated.
//! Nothing here invokes a function: this is the fan-out hot path (viewers x events).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use serde_json::json;

use crate::http_api::AppState;
use crate::websocket::PostError;

/// PostToConnection's payload limit on AWS.
pub const MAX_POST_BYTES: usize = 128 * 1024;

/// An error the SDK maps to its modelled exception by the `x-amzn-ErrorType` header.
fn sdk_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({"message": message}))).into_response();
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

fn gone(id: &str) -> Response {
    sdk_error(
        StatusCode::GONE,
        "GoneException",
        &format!("connection {id} is gone"),
    )
}

fn connection_id(params: &HashMap<String, String>) -> &str {
    params.get("id").map_or("", String::as_str)
}

pub(crate) async fn post_to_connection(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let id = connection_id(&params);
    if body.len() > MAX_POST_BYTES {
        return sdk_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "payloads are limited to 128 KiB",
        );
    }
    let Some(hub) = &app.websocket else {
        return gone(id);
    };
    match hub.post(id, body) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(PostError::Gone | PostError::Overflow) => gone(id),
    }
}

pub(crate) async fn get_connection(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    let id = connection_id(&params);
    let Some(conn) = app.websocket.as_ref().and_then(|hub| hub.connection(id)) else {
        return gone(id);
    };
    let iso = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut identity = serde_json::Map::new();
    identity.insert("sourceIp".into(), json!(conn.source_ip()));
    if let Some(ua) = conn.user_agent() {
        identity.insert("userAgent".into(), json!(ua));
    }
    axum::Json(json!({
        "connectedAt": iso(conn.connected_at()),
        "lastActiveAt": iso(conn.last_active_at()),
        "identity": identity,
    }))
    .into_response()
}

pub(crate) async fn delete_connection(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
) -> Response {
    let id = connection_id(&params);
    let Some(hub) = &app.websocket else {
        return gone(id);
    };
    match hub.delete(id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => gone(id),
    }
}
