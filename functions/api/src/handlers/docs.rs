//! The OpenAPI document of the REST API.

use std::sync::Arc;

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
