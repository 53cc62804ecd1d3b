//! The caller's own things: their notification list (`rill_core::notification`).
//!
//! Storage budgets: list 1 query; read 1 conditional update per id.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::notification::{PAGE_DEFAULT, PAGE_MAX, READ_MAX, is_valid_id};
use rill_core::validate::{self, ValidationError};
use serde::Deserialize;
use serde_json::json;

use crate::request::{bool_param, json, json_body, query_param};
use crate::{ApiError, App};

/// `GET /api/me/notifications?limit=&cursor=&unread=`: newest first; `unread=true` for
/// the unread ones only.
pub async fn notifications(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let limit = validate::limit(
        query_param(&req, "limit").as_deref(),
        PAGE_DEFAULT,
        PAGE_MAX,
    )
    .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    let unread_only = bool_param(&req, "unread")?;
    // An empty or forged cursor is the store's to refuse (400), as for every listing.
    let cursor = query_param(&req, "cursor");
    let page = app
        .notifications
        .notifications(&caller.user_id, limit, cursor.as_deref(), unread_only)
        .await?;
    json(
        200,
        &json!({"items": page.items, "nextCursor": page.next_cursor}),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    ids: Vec<String>,
}

/// `POST /api/me/notifications/read` `{"ids": [...]}`: marks them read; ids that are not
/// (or no longer) in the list are skipped. Answers how many were marked.
pub async fn read(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let body: ReadBody = json_body(&req)?;
    if body.ids.is_empty() || body.ids.len() > READ_MAX {
        return Err(ValidationError {
            field: "ids",
            message: format!("must name 1 to {READ_MAX} notifications"),
        }
        .into());
    }
    if let Some(bad) = body.ids.iter().find(|id| !is_valid_id(id)) {
        return Err(ValidationError {
            field: "ids",
            message: format!("{bad:?} is not a notification id"),
        }
        .into());
    }
    let mut ids = body.ids;
    ids.sort();
    ids.dedup();
    let marked = app.notifications.mark_read(&caller.user_id, &ids).await?;
    json(200, &json!({"read": marked}))
}
