//! Quality samples over REST.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::time;
use serde_json::json;

use super::load_stream;
use crate::request::{id_param, json, query_param};
use crate::{ApiError, App};

/// An RFC 3339 query value (`from`, `to`); empty or malformed is a 400.
pub(crate) fn instant(
    name: &str,
    raw: Option<String>,
) -> Result<Option<time::Timestamp>, ApiError> {
    raw.map(|r| {
        chrono::DateTime::parse_from_rfc3339(&r)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| ApiError::InvalidQuery(format!("{name} must be an RFC 3339 time")))
    })
    .transpose()
}

/// `GET /api/streams/{id}/metrics?from=&to=&limit=`: samples oldest first; the default
/// range is the last hour.
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    let to = instant("to", query_param(&req, "to"))?.unwrap_or_else(time::now);
    let from =
        instant("from", query_param(&req, "from"))?.unwrap_or(to - chrono::Duration::hours(1));
    let limit = rill_core::validate::limit(query_param(&req, "limit").as_deref(), 720, 2000)
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    load_stream(&app, &req, &id).await?;
    // `from` after `to` is an empty window, not a malformed request: no samples.
    let items = if from > to {
        Vec::new()
    } else {
        app.metrics.samples(&id, from, to, limit).await?
    };
    json(
        200,
        &json!({"items": items, "from": time::format(&from), "to": time::format(&to)}),
    )
}
