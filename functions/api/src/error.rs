//! The one mapping from failures to HTTP responses.

use lambda_http::{Body, Response};
use rill_core::store::StoreError;
use rill_core::validate::ValidationError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (400 `invalid_json`).
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON of the wrong shape: missing, unknown or mistyped fields (400 `invalid_body`).
    #[error("{0}")]
    InvalidBody(String),
    /// A bad query parameter or cursor (400 `invalid_query`).
    #[error("{0}")]
    InvalidQuery(String),
    /// A path parameter of the wrong shape, refused before any storage call (400
    /// `invalid_path`).
    #[error("{0}")]
    InvalidPath(String),
    /// Well-formed but breaks a rule (422 `validation_failed`).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No credentials or bad credentials (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated but not allowed (403); the code says which rule.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Unknown stream or message (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Illegal transition or a lost race (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A known path with a method it does not take (405 `method_not_allowed`, with
    /// `Allow`).
    #[error("this path accepts {}", .0.join(", "))]
    MethodNotAllowed(Vec<String>),
    /// Body over the limit (413).
    #[error("body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// A body that is not `application/json` (415).
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// A realtime rule refused the action (chat mode, ban, slow mode, rate limit...).
    #[error("{}", .0.message)]
    Refused(rill_core::realtime::Refusal),
    /// Nothing can serve the request now (503 with `Retry-After`), e.g. no ingest node
    /// has capacity.
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_secs: u32,
    },
    /// Anything else (500); the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidBody(_)
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidPath(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::Validation(_) => 422,
            ApiError::Refused(r) => match r.code {
                "unauthorized" => 401,
                "stream_over" | "not_live" => 409,
                "slow_mode" | "rate_limited" => 429,
                _ => 403,
            },
            ApiError::Unavailable { .. } => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::InvalidPath(_) => "invalid_path",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Refused(r) => r.code,
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let ApiError::Validation(v) = &self {
            error["field"] = json!(v.field);
        }
        let mut builder = Response::builder()
            .status(self.status())
            .header("content-type", "application/json");
        if matches!(self, ApiError::Unauthorized(_)) {
            builder = builder.header("www-authenticate", "Bearer");
        }
        if let ApiError::MethodNotAllowed(allowed) = &self {
            builder = builder.header("allow", allowed.join(", "));
        }
        if let ApiError::Unavailable {
            retry_after_secs, ..
        } = &self
        {
            builder = builder.header("retry-after", retry_after_secs.to_string());
        }
        builder
            .body(Body::Text(json!({ "error": error }).to_string()))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

impl From<rill_core::realtime::Refusal> for ApiError {
    fn from(r: rill_core::realtime::Refusal) -> ApiError {
        ApiError::Refused(r)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::Conflict {
                current: Some(status),
                command: Some(command),
            } => ApiError::conflict(
                "invalid_transition",
                format!("cannot {} a stream that is {status}", command_verb(command)),
            ),
            StoreError::Conflict {
                current: Some(status),
                command: None,
            } if status.is_final() => {
                ApiError::conflict("stream_over", format!("the stream is {status}"))
            }
            StoreError::Conflict { .. } => {
                ApiError::conflict("conflict", "changed concurrently; read it again and retry")
            }
            StoreError::Forbidden(why) => ApiError::forbidden("forbidden", why),
            StoreError::AlreadyExists => {
                ApiError::conflict("already_exists", "this id is taken; choose another")
            }
            StoreError::InvalidCursor => {
                ApiError::InvalidQuery("cursor is not valid for this listing".into())
            }
            // Logged where it happened (`rill_aws::store::unavailable`); the client is told
            // to come back, which is what a table that is down or throttled needs.
            StoreError::Unavailable(_) => ApiError::Unavailable {
                code: "storage_unavailable",
                message: "storage is unavailable right now; retry shortly".into(),
                retry_after_secs: 2,
            },
        }
    }
}

pub fn command_verb(command: rill_core::Command) -> &'static str {
    match command {
        rill_core::Command::Start => "start",
        rill_core::Command::GoLive => "go live with",
        rill_core::Command::End => "end",
        rill_core::Command::Cancel => "cancel",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response<Body>) -> serde_json::Value {
        match r.body() {
            Body::Text(t) => serde_json::from_str(t).expect("json"),
            _ => panic!("text body expected"),
        }
    }

    #[test]
    fn errors_have_one_json_shape() {
        let r = ApiError::NotFound("stream").into_response();
        assert_eq!(r.status(), 404);
        assert_eq!(body(&r)["error"]["code"], "not_found");
        assert_eq!(body(&r)["error"]["message"], "stream not found");
        assert_eq!(r.headers()["content-type"], "application/json");
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let r = ApiError::Unavailable {
            code: "no_capacity",
            message: "no ingest node can take this stream now".into(),
            retry_after_secs: 5,
        }
        .into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "5");
        assert_eq!(body(&r)["error"]["code"], "no_capacity");
    }

    #[test]
    fn validation_errors_name_the_field() {
        let v = rill_core::validate::title("").unwrap_err();
        let r = ApiError::from(v).into_response();
        assert_eq!(r.status(), 422);
        assert_eq!(body(&r)["error"]["field"], "title");
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let r = ApiError::Internal("dynamodb said: secret table arn".into()).into_response();
        assert_eq!(r.status(), 500);
        assert!(!body(&r).to_string().contains("arn"));
    }

    #[test]
    fn illegal_transitions_are_409_with_the_reason() {
        let e = ApiError::from(StoreError::Conflict {
            current: Some(rill_core::StreamStatus::Ended),
            command: Some(rill_core::Command::End),
        });
        assert_eq!(e.status(), 409);
        assert_eq!(e.to_string(), "cannot end a stream that is ended");
    }
}
