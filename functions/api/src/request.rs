//! Reading requests and writing responses, the same way in every handler.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest JSON body a REST endpoint accepts. The largest legal body (a create with a full
/// description) is well under this.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a JSON body: 415 unless `application/json`, 413 over [`MAX_BODY_BYTES`], 400 for
/// malformed JSON or the wrong shape.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let is_json = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let value = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ApiError::InvalidJson(e.to_string())
        }
        _ => ApiError::InvalidBody(e.to_string()),
    })?;
    // Every body is an object: serde would also read a struct from an array (`[null]`).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::InvalidBody(
            "the body must be a JSON object".into(),
        ));
    }
    Ok(value)
}

/// A path parameter that must be a ULID; anything else cannot name a stored item, so it is
/// a 404 without a storage call, unless the path is a literal one of the document's with
/// other methods (`PATCH /api/streams/create` reaches `PATCH /api/streams/{id}` on API
/// Gateway too): then 405 with `Allow`.
pub fn id_param(req: &Request, name: &str, what: &'static str) -> Result<String, ApiError> {
    req.path_parameters()
        .first(name)
        .filter(|id| rill_core::ids::is_valid_id(id))
        .map(str::to_owned)
        .ok_or_else(|| {
            match crate::handlers::docs::unmatched(req.method().as_str(), req.uri().path()) {
                e @ ApiError::MethodNotAllowed(_) => e,
                _ => ApiError::NotFound(what),
            }
        })
}

/// The `{userId}` path parameter, checked (422 `validation_failed` when malformed).
pub fn user_param(req: &Request) -> Result<String, ApiError> {
    let user = req
        .path_parameters()
        .first("userId")
        .map(str::to_owned)
        .unwrap_or_default();
    rill_core::validate::user_id(&user)?;
    Ok(user)
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters().first(name).map(str::to_owned)
}

/// A `true`/`false` query flag, `false` when absent; anything else is 400 `invalid_query`.
pub fn bool_param(req: &Request, name: &str) -> Result<bool, ApiError> {
    match query_param(req, name).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::InvalidQuery(format!(
            "{name} must be true or false"
        ))),
    }
}

pub fn json<T: Serialize>(status: u16, value: &T) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_string(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// For responses that carry a secret (a stream key): never cached anywhere.
pub fn json_no_store<T: Serialize>(status: u16, value: &T) -> Result<Response<Body>, ApiError> {
    let mut res = json(status, value)?;
    res.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}
