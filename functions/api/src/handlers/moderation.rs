//! Moderation over REST: bans and stream moderators. Channel roles (which also make
//! moderators of every stream in the channel) are in `channels.rs`.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::{ensure_moderator, ensure_owner, load_stream};
use crate::request::{id_param, json, user_param};
use crate::{ApiError, App};

async fn ban(app: Arc<App>, req: Request, banned: bool) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let target = user_param(&req)?;
    let stream = load_stream(&app, &req, &id).await?;
    let mine = ensure_moderator(&app, &stream, &caller.user_id).await?;
    if banned {
        let theirs = app.realtime.standing(&stream, &target).await?;
        // Bans go down the ranks only: the channel's owner, then the stream's owner, then
        // moderators (who cannot ban each other).
        if !mine.may_ban(&theirs) {
            return Err(ApiError::forbidden(
                "not_allowed",
                "this user cannot be banned by you",
            ));
        }
    }
    app.realtime.set_banned(&id, &target, banned).await?;
    tracing::info!(stream_id = %id, banned, "ban changed");
    json(200, &json!({"userId": target, "banned": banned}))
}

/// `PUT /api/streams/{id}/bans/{userId}`: owner or moderator.
pub async fn ban_user(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    ban(app, req, true).await
}

/// `DELETE /api/streams/{id}/bans/{userId}`: owner or moderator.
pub async fn unban_user(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    ban(app, req, false).await
}

async fn moderator(app: Arc<App>, req: Request, on: bool) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let target = user_param(&req)?;
    let stream = load_stream(&app, &req, &id).await?;
    ensure_owner(&stream, &caller.user_id)?;
    app.realtime.set_moderator(&id, &target, on).await?;
    json(200, &json!({"userId": target, "moderator": on}))
}

/// `PUT /api/streams/{id}/moderators/{userId}`: owner only.
pub async fn add_moderator(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    moderator(app, req, true).await
}

/// `DELETE /api/streams/{id}/moderators/{userId}`: owner only.
pub async fn remove_moderator(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    moderator(app, req, false).await
}

/// `GET /api/streams/{id}/moderators`
pub async fn list_moderators(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    load_stream(&app, &req, &id).await?;
    json(200, &json!({"items": app.realtime.moderators(&id).await?}))
}
