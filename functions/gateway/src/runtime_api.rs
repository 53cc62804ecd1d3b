//! The Lambda Runtime API (2018-06-01) for one function instance.
//!
//! Endpoints, as `lambda_runtime` uses them:
//! - `GET  /2018-06-01/runtime/invocation/next`: long-polls; answers the event JSON with
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms` (epoch ms), `-Invoked-Function-Arn`,
//!   `-Trace-Id`.
//! - `POST /2018-06-01/runtime/invocation/{id}/response`: 202; buffered, or streamed when
//!   `Lambda-Runtime-Function-Response-Mode: streaming` (JSON prelude, 8 NUL bytes, body).
//! - `POST /2018-06-01/runtime/invocation/{id}/error`: 202; the diagnostic is logged,
//!   never shown to the HTTP client.
//! - `POST /2018-06-01/runtime/init/error`: 202; the instance is killed, as Lambda does.
//!
//! The listener serves exactly one instance, so the handlers need no instance lookup.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::pool::{Instance, Outcome, Pending};

/// Lambda's limit for a buffered (synchronous) response payload.
const BUFFERED_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
/// Lambda's limit for a streamed response.
const STREAMED_RESPONSE_LIMIT: usize = 20 * 1024 * 1024;
const NUL_DELIMITER: &[u8] = &[0; 8];

pub(crate) async fn serve(listener: TcpListener, instance: Arc<Instance>) {
    let name = instance.function.name.clone();
    let app_instance = instance.clone();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(STREAMED_RESPONSE_LIMIT))
        .with_state(instance);
    let stop = instance_exit(&app_instance);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        warn!(function = %name, error = %e, "runtime API server stopped");
    }
}

fn instance_exit(instance: &Arc<Instance>) -> impl Future<Output = ()> + Send + 'static {
    let instance = instance.clone();
    async move { instance.wait_exit().await }
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

async fn next(State(instance): State<Arc<Instance>>) -> Response {
    instance.mark_ready();
    // A runtime that asks for more work has finished the previous invocation; if it never
    // answered it, say so now instead of letting the client wait for the timeout.
    let abandoned = instance
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(p) = abandoned {
        let _ = p.reply.send(Outcome::Error {
            error_type: "Runtime.NoResponse".into(),
            message: "the runtime asked for the next invocation without answering".into(),
        });
    }

    // Selecting on exit matters: the handler holds the instance, and a dead instance's
    // queue never closes.
    let invocation = tokio::select! {
        invocation = async { instance.queue_rx.lock().await.recv().await } => invocation,
        () = instance.wait_exit() => None,
    };
    let Some(invocation) = invocation else {
        return api_error(
            StatusCode::GONE,
            "Runtime.Shutdown",
            "instance is shutting down",
        );
    };

    let mut headers = HeaderMap::new();
    let arn = format!(
        "arn:aws:lambda:us-east-1:000000000000:function:{}",
        instance.function.name
    );
    let trace = format!(
        "Root=1-{:08x}-{};Sampled=0",
        chrono::Utc::now().timestamp(),
        &invocation.request_id.replace('-', "")[..24]
    );
    for (name, value) in [
        (
            "lambda-runtime-aws-request-id",
            invocation.request_id.clone(),
        ),
        (
            "lambda-runtime-deadline-ms",
            invocation.deadline_ms.to_string(),
        ),
        ("lambda-runtime-invoked-function-arn", arn),
        ("lambda-runtime-trace-id", trace),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    debug!(function = %instance.function.name, request_id = %invocation.request_id, "invocation delivered");
    *instance
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Pending {
        request_id: invocation.request_id,
        reply: invocation.reply,
    });
    (StatusCode::OK, headers, invocation.event).into_response()
}

/// Takes the pending invocation if `id` is the one in flight.
fn take_pending(instance: &Instance, id: &str) -> Option<Pending> {
    let mut pending = instance
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pending.as_ref().is_some_and(|p| p.request_id == id) {
        pending.take()
    } else {
        None
    }
}

async fn response(
    State(instance): State<Arc<Instance>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(pending) = take_pending(&instance, &id) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown or finished request id",
        );
    };
    let streamed = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    let outcome = match body {
        Err(rejection) => Outcome::Error {
            error_type: "Function.ResponseSizeTooLarge".into(),
            message: rejection.body_text(),
        },
        Ok(body) if streamed => split_streamed(body),
        Ok(body) if body.len() > BUFFERED_RESPONSE_LIMIT => Outcome::Error {
            error_type: "Function.ResponseSizeTooLarge".into(),
            message: format!("response of {} bytes exceeds the 6 MiB limit", body.len()),
        },
        Ok(body) => Outcome::Response(body),
    };
    let _ = pending.reply.send(outcome);
    accepted()
}

fn split_streamed(body: Bytes) -> Outcome {
    match body
        .windows(NUL_DELIMITER.len())
        .position(|w| w == NUL_DELIMITER)
    {
        Some(at) => Outcome::Streamed {
            prelude: body.slice(..at),
            body: body.slice(at + NUL_DELIMITER.len()..),
        },
        None => Outcome::Error {
            error_type: "Runtime.InvalidStreamingResponse".into(),
            message: "streamed response has no metadata prelude".into(),
        },
    }
}

/// Error type header first, then the diagnostic's own fields.
fn describe_error(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let diagnostic: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error_type = diagnostic["errorType"]
        .as_str()
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("Unhandled")
        .to_owned();
    let message = diagnostic["errorMessage"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(2000).collect());
    (error_type, message)
}

async fn invocation_error(
    State(instance): State<Arc<Instance>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(pending) = take_pending(&instance, &id) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown or finished request id",
        );
    };
    let (error_type, message) = describe_error(&headers, &body);
    warn!(function = %instance.function.name, request_id = %id, %error_type, %message, "function error");
    let _ = pending.reply.send(Outcome::Error {
        error_type,
        message,
    });
    accepted()
}

async fn init_error(
    State(instance): State<Arc<Instance>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, message) = describe_error(&headers, &body);
    instance.record_init_error(format!("{error_type}: {message}"));
    accepted()
}

async fn unknown() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "not a Runtime API endpoint",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_response_splits_at_the_nul_delimiter() {
        let mut raw = br#"{"statusCode":200}"#.to_vec();
        raw.extend_from_slice(&[0; 8]);
        raw.extend_from_slice(b"body\0bytes");
        match split_streamed(Bytes::from(raw)) {
            Outcome::Streamed { prelude, body } => {
                assert_eq!(prelude.as_ref(), br#"{"statusCode":200}"#);
                assert_eq!(body.as_ref(), b"body\0bytes");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_description_prefers_the_diagnostic() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("unhandled"),
        );
        let (t, m) = describe_error(&headers, br#"{"errorType":"&str","errorMessage":"boom"}"#);
        assert_eq!((t.as_str(), m.as_str()), ("&str", "boom"));
        let (t, m) = describe_error(&headers, b"plain");
        assert_eq!((t.as_str(), m.as_str()), ("unhandled", "plain"));
    }
}
