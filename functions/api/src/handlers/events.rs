//! The ordered event feed over REST ([`rill_core::feed`]).

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::feed::{PAGE_DEFAULT, PAGE_MAX, SEQ_MAX as FEED_SEQ_MAX};
use serde_json::json;

use super::{ensure_moderator, load_stream};
use crate::request::{id_param, json, query_param};
use crate::{ApiError, App};

/// `GET /api/streams/{id}/events?after=<seq>&limit=<n>`: the stream's events numbered
/// after `after` (default 0: from the first), in order, for its owner and moderators.
/// `next` is the number to ask after next time (the last one returned, or `after` when
/// there was nothing new), so a consumer that keeps it misses nothing and sees nothing
/// twice.
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let after = match query_param(&req, "after") {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= FEED_SEQ_MAX)
            .ok_or_else(|| {
                ApiError::InvalidQuery(
                    "after must be a sequence number: an integer from 0 to 999999999999".into(),
                )
            })?,
    };
    let limit = rill_core::validate::limit(
        query_param(&req, "limit").as_deref(),
        PAGE_DEFAULT,
        PAGE_MAX,
    )
    .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    let stream = load_stream(&app, &req, &id).await?;
    ensure_moderator(&app, &stream, &caller.user_id).await?;
    let items = app.feed.read(&id, after, limit).await?;
    let next = items.last().map_or(after, |e| e.seq);
    json(200, &json!({"items": items, "next": next}))
}
