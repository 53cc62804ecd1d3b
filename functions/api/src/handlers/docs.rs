//! The OpenAPI document of the REST API, and the 405 for a literal path that reaches an
//! `{id}` function.
//!
//! `PATCH /api/streams/create` matches the route `PATCH /api/streams/{id}` on API Gateway,
//! so `streams-update` sees it: the document says that path takes only POST, and
//! [`unmatched`] answers 405 with `Allow` from the document itself, so the answer cannot
//! drift from it. A method no route takes at all (`TRACE`) is API Gateway's own 404: a
//! `$default` route could answer 405, but it would also take the CORS preflights API
//! Gateway answers itself when no route matches `OPTIONS` (tests/deploy checks there is
//! none).

use std::sync::{Arc, OnceLock};

use lambda_http::{Body, Request, Response};

use crate::{ApiError, App};

/// The document, checked against infra/template.yaml's routes by a test.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// `GET /api/openapi.json`
pub async fn openapi(_app: Arc<App>, _req: Request) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "max-age=300")
        .body(Body::Text(OPENAPI_JSON.to_owned()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// (path template split in segments, methods) of every operation in the document.
fn operations() -> &'static [(Vec<String>, Vec<String>)] {
    static OPS: OnceLock<Vec<(Vec<String>, Vec<String>)>> = OnceLock::new();
    OPS.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap_or_default();
        doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, item)| {
                let segments = path.trim_start_matches('/').split('/').map(str::to_owned);
                let methods = item
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, op)| op.get("responses").is_some())
                    .map(|(m, _)| m.to_ascii_uppercase());
                (segments.collect(), methods.collect())
            })
            .collect()
    })
}

/// 405 with the methods the document lists for a known path, else 404. Where templates
/// overlap (`/api/streams/create` and `/api/streams/{id}`), the one with the most literal
/// segments is the path, as API Gateway routes it.
pub(crate) fn unmatched(method: &str, path: &str) -> ApiError {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let matching: Vec<(usize, &Vec<String>)> = operations()
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .map(|(template, methods)| {
            let literals = template.iter().filter(|t| !t.starts_with('{')).count();
            (literals, methods)
        })
        .collect();
    let most = matching.iter().map(|(l, _)| *l).max().unwrap_or(0);
    let mut allowed: Vec<String> = matching
        .into_iter()
        .filter(|(l, _)| *l == most)
        .flat_map(|(_, methods)| methods.iter().cloned())
        .collect();
    allowed.sort();
    allowed.dedup();
    if allowed.is_empty() || allowed.iter().any(|m| m == method) {
        ApiError::NotFound("route")
    } else {
        ApiError::MethodNotAllowed(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_with_another_method_is_405_naming_its_methods() {
        match unmatched("TRACE", "/api/streams/create") {
            ApiError::MethodNotAllowed(allowed) => assert_eq!(allowed, ["POST"]),
            other => panic!("{other:?}"),
        }
        match unmatched("DELETE", "/api/streams/01JD8ZQ5M3V0Q7W9X2Y4Z6A8BC") {
            ApiError::MethodNotAllowed(allowed) => assert_eq!(allowed, ["GET", "PATCH"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_path_is_404() {
        assert!(matches!(
            unmatched("GET", "/api/nothing/here"),
            ApiError::NotFound(_)
        ));
        assert!(matches!(
            unmatched("GET", "/api/streams//hls"),
            ApiError::NotFound(_)
        ));
    }
}
