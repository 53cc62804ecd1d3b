//! Moderation over REST: bans, moderators, channel membership (for chat modes).

use std::sync::Arc;

use lambda_http::{Body, Request, RequestExt, Response};
use rill_core::Stream;
use rill_core::realtime::MemberRole;
use rill_core::validate;
use serde::Deserialize;
use serde_json::json;

use super::{ensure_owner, load_stream};
use crate::request::{id_param, json, json_body};
use crate::{ApiError, App};

fn user_param(req: &Request) -> Result<String, ApiError> {
    let user = req
        .path_parameters()
        .first("userId")
        .map(str::to_owned)
        .unwrap_or_default();
    validate::user_id(&user)?;
    Ok(user)
}

async fn ensure_moderator(app: &App, stream: &Stream, user_id: &str) -> Result<(), ApiError> {
    if app.realtime.standing(stream, user_id).await?.moderates() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_moderator",
            "only the owner or a moderator may do this",
        ))
    }
}

async fn ban(app: Arc<App>, req: Request, banned: bool) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let target = user_param(&req)?;
    let stream = load_stream(&app, &id).await?;
    ensure_moderator(&app, &stream, &caller.user_id).await?;
    if banned {
        let standing = app.realtime.standing(&stream, &target).await?;
        // Moderators cannot ban the owner or each other; only the owner outranks them.
        if standing.is_owner || (standing.is_moderator && !stream.is_owned_by(&caller.user_id)) {
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
    let stream = load_stream(&app, &id).await?;
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
    load_stream(&app, &id).await?;
    json(200, &json!({"items": app.realtime.moderators(&id).await?}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Membership {
    role: MemberRole,
}

async fn ensure_channel_owner(app: &App, req: &Request, caller: &str) -> Result<String, ApiError> {
    let channel = req
        .path_parameters()
        .first("channelId")
        .map(str::to_owned)
        .unwrap_or_default();
    validate::channel_id(&channel).map_err(|_| ApiError::NotFound("channel"))?;
    match app.realtime.channel_owner(&channel).await? {
        None => Err(ApiError::NotFound("channel")),
        Some(owner) if owner == caller => Ok(channel),
        Some(_) => Err(ApiError::forbidden(
            "not_owner",
            "only the channel's owner may manage its members",
        )),
    }
}

/// `PUT /api/channels/{channelId}/members/{userId}` `{role: follower|subscriber}`
pub async fn set_member(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let channel = ensure_channel_owner(&app, &req, &caller.user_id).await?;
    let target = user_param(&req)?;
    let body: Membership = json_body(&req)?;
    app.realtime
        .set_member(&channel, &target, Some(body.role))
        .await?;
    json(
        200,
        &json!({"channelId": channel, "userId": target, "role": body.role}),
    )
}

/// `DELETE /api/channels/{channelId}/members/{userId}`
pub async fn remove_member(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let caller = app.auth.require(&req).await?;
    let channel = ensure_channel_owner(&app, &req, &caller.user_id).await?;
    let target = user_param(&req)?;
    app.realtime.set_member(&channel, &target, None).await?;
    json(
        200,
        &json!({"channelId": channel, "userId": target, "role": null}),
    )
}
