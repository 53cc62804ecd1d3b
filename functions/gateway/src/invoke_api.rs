//! Lambda's Invoke API on the gateway's own port, for the template's functions, as a
//! signed client calls it when its Lambda endpoint is the gateway
//! (`AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:<port>`, which the gateway gives every
//! function): `POST /2015-03-31/functions/{name}/invocations`.
//!
//! - `X-Amz-Invocation-Type: Event` → 202 with an empty body; the invocation runs in the
//!   background through the function's pool (queued on AWS; here it waits for a free
//!   instance like any other request). Payloads over 256 KiB → 413.
//! - `RequestResponse` (the default) → 200 with the function's result; a function error,
//!   a timeout or a crash is a 200 with `X-Amz-Function-Error: Unhandled` and
//!   `{"errorType","errorMessage"}`, as Lambda answers. Payloads over 6 MB → 413.
//! - `DryRun` → 204.
//! - An unknown function → 404 `ResourceNotFoundException` (JSON, `x-amzn-ErrorType`).
//!
//! `{name}` is a function name, or an ARN (`...:function:{name}[:qualifier]`), of which the
//! name is used. SigV4 headers are ignored: the gateway is local and unauthenticated.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{info, warn};

use crate::http_api::AppState;
use crate::pool::{InvokeError, Outcome};

/// Payload limit of an asynchronous (`Event`) invocation.
pub const MAX_EVENT_PAYLOAD: usize = 256 * 1024;
/// Payload limit of a synchronous invocation.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;

/// An error as Lambda's REST-JSON protocol sends it.
fn lambda_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"Type": "User", "message": message})),
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    response
}

/// The function name in `{name}`: a plain name, or the name inside an ARN.
pub fn function_name(raw: &str) -> &str {
    match raw.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => raw,
    }
}

/// A function's failure, as Lambda reports it to a synchronous caller.
fn function_error(error_type: &str, message: &str) -> Response {
    let mut response = (
        StatusCode::OK,
        axum::Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response();
    response.headers_mut().insert(
        "x-amz-function-error",
        HeaderValue::from_static("Unhandled"),
    );
    response
}

pub(crate) async fn invoke(
    State(app): State<Arc<AppState>>,
    Path(raw_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let name = function_name(&raw_name).to_owned();
    let Some(pool) = app.pool.function(&name).cloned() else {
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    };
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    let limit = match kind {
        "Event" => MAX_EVENT_PAYLOAD,
        "RequestResponse" => MAX_SYNC_PAYLOAD,
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        other => {
            return lambda_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("unknown invocation type {other:?}"),
            );
        }
    };
    if body.len() > limit {
        return lambda_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!("request payload of {} bytes exceeds {limit}", body.len()),
        );
    }
    // A task of its own either way: the invocation runs to its end even if the caller
    // goes away, so its instance returns to the pool.
    let task = tokio::spawn(async move { pool.invoke(body).await });
    if kind == "Event" {
        tokio::spawn(async move {
            match task.await {
                Ok(Ok(Outcome::Error {
                    error_type,
                    message,
                })) => {
                    warn!(function = %name, %error_type, %message, "asynchronous invocation failed");
                }
                Ok(Ok(_)) => info!(function = %name, "asynchronous invocation done"),
                Ok(Err(e)) => {
                    warn!(function = %name, error = %e, "asynchronous invocation failed");
                }
                Err(join) => warn!(function = %name, error = %join, "invocation task failed"),
            }
        });
        return StatusCode::ACCEPTED.into_response();
    }
    match task.await {
        Ok(Ok(Outcome::Response(payload))) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            payload,
        )
            .into_response(),
        Ok(Ok(Outcome::Streamed { body, .. })) => (StatusCode::OK, body).into_response(),
        Ok(Ok(Outcome::Error {
            error_type,
            message,
        })) => function_error(&error_type, &message),
        Ok(Err(InvokeError::Throttled(_))) => lambda_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate Exceeded.",
        ),
        Ok(Err(e @ (InvokeError::SpawnFailed(_) | InvokeError::ShuttingDown))) => lambda_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            &e.to_string(),
        ),
        Ok(Err(e)) => function_error("Runtime.ExitError", &e.to_string()),
        Err(join) => lambda_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            &join.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_named_by_its_name_or_its_arn() {
        assert_eq!(function_name("events-fanout-shard"), "events-fanout-shard");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:events-fanout-shard"),
            "events-fanout-shard"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"),
            "f"
        );
    }
}
