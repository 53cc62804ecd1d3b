//! Channels and the roles users hold in them (rules in `rill_core::channel`).
//!
//! Storage budgets: create 1 conditional put; get 1 read (with the caller's role in the same
//! `BatchGetItem`); members list 1 role read + 1 query; a role change 2 reads (caller,
//! target; 1 when the same user) + 1 transaction that re-checks the channel and never
//! touches its owner.

use std::sync::Arc;

use lambda_http::{Body, Request, RequestExt, Response};
use rill_core::channel::{self, Channel, ChannelRole, Denial, NewChannel};
use rill_core::{ids, time, validate};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::request::{json, json_body, query_param, user_param};
use crate::{ApiError, App};

/// A channel with the caller's role in it (`null`: none, or not signed in).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelView<'a> {
    #[serde(flatten)]
    channel: &'a Channel,
    your_role: Option<ChannelRole>,
}

pub(crate) fn channel_param(req: &Request) -> Result<String, ApiError> {
    let id = req
        .path_parameters()
        .first("channelId")
        .map(str::to_owned)
        .unwrap_or_default();
    // An id that could not have been created names nothing.
    validate::channel_id(&id).map_err(|_| ApiError::NotFound("channel"))?;
    Ok(id)
}

/// `POST /api/channels` `{id?, name, description?}`: the caller becomes the owner.
pub async fn create(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let input: NewChannel = json_body(&req)?;
    let channel = Channel::create(ids::new_id(), user.user_id, input, time::now())?;
    app.channels.create_channel(&channel).await?;
    tracing::info!(channel_id = %channel.id, "channel created");
    json(
        201,
        &ChannelView {
            channel: &channel,
            your_role: Some(ChannelRole::Owner),
        },
    )
}

/// `GET /api/channels/{channelId}`: public; a signed-in caller also learns their role.
pub async fn get(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = channel_param(&req)?;
    let caller = app.auth.principal(&req).await?;
    let (channel, your_role) = match &caller {
        Some(c) => app.channels.channel_with_role(&id, &c.user_id).await?,
        None => app.channels.get_channel(&id).await?.map(|c| (c, None)),
    }
    .ok_or(ApiError::NotFound("channel"))?;
    json(
        200,
        &ChannelView {
            channel: &channel,
            your_role,
        },
    )
}

/// The caller's role in an existing channel; 404 when there is no such channel.
pub(crate) async fn role_in(
    app: &App,
    channel_id: &str,
    user_id: &str,
) -> Result<Option<ChannelRole>, ApiError> {
    app.channels
        .channel_with_role(channel_id, user_id)
        .await?
        .map(|(_, role)| role)
        .ok_or(ApiError::NotFound("channel"))
}

/// `GET /api/channels/{channelId}/members?limit=&cursor=`: the owner and the channel's
/// moderators (and broadcasters).
pub async fn members(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = channel_param(&req)?;
    let caller = app.auth.require(&req).await?;
    let limit = validate::limit(query_param(&req, "limit").as_deref(), 50, 100)
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    let cursor = query_param(&req, "cursor");
    if !channel::sees_members(role_in(&app, &id, &caller.user_id).await?) {
        return Err(ApiError::forbidden(
            "not_moderator",
            "only the channel's owner and moderators see its members",
        ));
    }
    let page = app.channels.members(&id, limit, cursor.as_deref()).await?;
    json(
        200,
        &json!({"items": page.items, "nextCursor": page.next_cursor}),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: ChannelRole,
}

async fn change_role(
    app: Arc<App>,
    req: Request,
    new: Option<ChannelRole>,
) -> Result<Response<Body>, ApiError> {
    let id = channel_param(&req)?;
    let caller = app.auth.require(&req).await?;
    let target = user_param(&req)?;
    let caller_role = role_in(&app, &id, &caller.user_id).await?;
    let target_role = if target == caller.user_id {
        caller_role
    } else {
        app.channels.channel_role(&id, &target).await?
    };
    channel::authorize_membership(&caller.user_id, caller_role, &target, target_role, new)
        .map_err(|d| match d {
            Denial::NotAllowed(why) => ApiError::forbidden("not_owner", why),
            Denial::OwnerRole => {
                ApiError::conflict("owner_role", "the channel's owner keeps the owner role")
            }
            Denial::NotGrantable => validate::ValidationError {
                field: "role",
                message: "must be follower, subscriber, moderator or broadcaster".into(),
            }
            .into(),
        })?;
    app.channels.set_member(&id, &target, new).await?;
    tracing::info!(channel_id = %id, role = ?new, "channel role changed");
    json(
        200,
        &json!({"channelId": id, "userId": target, "role": new}),
    )
}

/// `PUT /api/channels/{channelId}/members/{userId}` `{role}`: the owner grants any role
/// but ownership; a user may make themselves a follower.
pub async fn set_member(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let body: RoleBody = json_body(&req)?;
    change_role(app, req, Some(body.role)).await
}

/// `DELETE /api/channels/{channelId}/members/{userId}`: the owner revokes; a user leaves.
pub async fn remove_member(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    change_role(app, req, None).await
}
