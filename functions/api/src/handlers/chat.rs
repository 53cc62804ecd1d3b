//! Chat over REST: list, send, delete, pin.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::chat::{ChatMessage, NewChatMessage};
use rill_core::stream::ChatMode;
use rill_core::{ids, time, validate};
use serde_json::json;

use super::{ensure_owner, load_stream};
use crate::request::{id_param, json, json_body, query_param};
use crate::{ApiError, App};

/// `GET /api/streams/{id}/chat?limit=&cursor=`: newest first, deleted messages left out.
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    let limit = validate::limit(query_param(&req, "limit").as_deref(), 50, 100)
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    load_stream(&app, &id).await?;
    let page = app
        .chat
        .list_messages(&id, limit, query_param(&req, "cursor").as_deref())
        .await?;
    json(
        200,
        &json!({"items": page.items, "nextCursor": page.next_cursor}),
    )
}

/// `POST /api/streams/{id}/chat` `{content}`
pub async fn send(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let input: NewChatMessage = json_body(&req)?;
    let stream = load_stream(&app, &id).await?;
    if stream.status.is_final() {
        return Err(ApiError::conflict(
            "stream_over",
            format!("chat is closed: the stream is {}", stream.status),
        ));
    }
    if !stream.settings.chat_enabled {
        return Err(ApiError::forbidden(
            "chat_disabled",
            "chat is turned off for this stream",
        ));
    }
    // Follower and subscriber lists arrive with the realtime work; until then only the
    // owner may post in a restricted chat rather than everyone.
    if stream.settings.chat_mode != ChatMode::Open && !stream.is_owned_by(&user.user_id) {
        return Err(ApiError::forbidden(
            "chat_restricted",
            "chat is limited to followers or subscribers",
        ));
    }
    let message = ChatMessage::create(ids::new_id(), &id, &user, &input, time::now())?;
    app.chat.post_message(&message).await?;
    json(201, &message)
}

/// `DELETE /api/streams/{id}/chat/{msgId}`: the stream's owner or the message's author.
pub async fn delete(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let msg_id = id_param(&req, "msgId", "message")?;
    let stream = load_stream(&app, &id).await?;
    let message = app
        .chat
        .get_message(&id, &msg_id)
        .await?
        .filter(|m| !m.deleted)
        .ok_or(ApiError::NotFound("message"))?;
    if !message.may_be_deleted_by(&user.user_id, &stream.owner_id) {
        return Err(ApiError::forbidden(
            "not_allowed",
            "only the author or the stream's owner may delete this",
        ));
    }
    let deleted = app.chat.delete_message(&id, &msg_id).await?;
    json(200, &deleted)
}

/// `POST /api/streams/{id}/chat/{msgId}/pin`: owner only; replaces any earlier pin.
pub async fn pin(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req)?;
    let id = id_param(&req, "id", "stream")?;
    let msg_id = id_param(&req, "msgId", "message")?;
    let stream = load_stream(&app, &id).await?;
    ensure_owner(&stream, &user.user_id)?;
    let pinned = app
        .chat
        .pin_message(&id, &msg_id)
        .await
        .map_err(|e| match e {
            rill_core::store::StoreError::NotFound => ApiError::NotFound("message"),
            other => other.into(),
        })?;
    json(200, &pinned)
}
