//! Chat over REST: list, send, delete, pin.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::chat::{ChatMessage, NewChatMessage};
use rill_core::realtime::{Refusal, Standing, chat_permission};
use rill_core::store::Origin;
use rill_core::{Principal, Stream, ids, time, validate};
use serde_json::json;

use super::load_stream;
use crate::request::{id_param, json, json_body, query_param};
use crate::{ApiError, App};

/// `GET /api/streams/{id}/chat?limit=&cursor=`: newest first, deleted messages left out.
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    let limit = validate::limit(query_param(&req, "limit").as_deref(), 50, 100)
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    load_stream(&app, &req, &id).await?;
    let page = app
        .chat
        .list_messages(&id, limit, query_param(&req, "cursor").as_deref())
        .await?;
    json(
        200,
        &json!({"items": page.items, "nextCursor": page.next_cursor}),
    )
}

/// The rules every chat message passes, whichever door it came in by (REST or socket):
/// permission (status, sign-in, ban, chat on/off, chat mode), content, then the user's rate
/// limit and slow mode. Only then is it stored.
pub async fn post_chat(
    app: &App,
    stream: &Stream,
    user: Option<&Principal>,
    content: &str,
    origin: Origin,
) -> Result<ChatMessage, ApiError> {
    let standing = match user {
        Some(u) => app.standing_cached(stream, &u.user_id).await?,
        None => Standing::default(),
    };
    chat_permission(stream, user, &standing)?;
    let user = user.ok_or_else(|| Refusal::new("unauthorized", "sign in to chat"))?;
    let input = NewChatMessage {
        content: content.to_owned(),
    };
    let message = ChatMessage::create(ids::new_id(), &stream.id, user, &input, time::now())?;
    if !standing.moderates() {
        let slow_mode = stream.settings.slow_mode_seconds;
        let now_ms = message.created_at.timestamp_millis();
        let key = (stream.id.clone(), user.user_id.clone());
        let known = app.caches.buckets.get(&key);
        let bucket = app
            .realtime
            .take_message_token(
                &stream.id,
                &user.user_id,
                &app.rate_limit,
                slow_mode,
                now_ms,
                known,
            )
            .await??;
        app.caches.buckets.put(key, bucket);
    }
    app.chat.post_message(&message, origin).await?;
    Ok(message)
}

/// `POST /api/streams/{id}/chat` `{content}`
pub async fn send(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let input: NewChatMessage = json_body(&req)?;
    let stream = load_stream(&app, &req, &id).await?;
    let message = post_chat(&app, &stream, Some(&user), &input.content, Origin::Rest).await?;
    json(201, &message)
}

/// `DELETE /api/streams/{id}/chat/{msgId}`: the stream's owner, a moderator or the author.
pub async fn delete(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let msg_id = id_param(&req, "msgId", "message")?;
    let stream = load_stream(&app, &req, &id).await?;
    let message = app
        .chat
        .get_message(&id, &msg_id)
        .await?
        .filter(|m| !m.deleted)
        .ok_or(ApiError::NotFound("message"))?;
    let moderates = app
        .realtime
        .standing(&stream, &user.user_id)
        .await?
        .moderates();
    if !moderates && !message.may_be_deleted_by(&user.user_id, &stream.owner_id) {
        return Err(ApiError::forbidden(
            "not_allowed",
            "only the author or the stream's owner may delete this",
        ));
    }
    let deleted = app.chat.delete_message(&id, &msg_id).await?;
    json(200, &deleted)
}

/// `POST /api/streams/{id}/chat/{msgId}/pin`: owner or moderator; replaces any earlier pin.
pub async fn pin(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let msg_id = id_param(&req, "msgId", "message")?;
    let stream = load_stream(&app, &req, &id).await?;
    if !app
        .realtime
        .standing(&stream, &user.user_id)
        .await?
        .moderates()
    {
        return Err(ApiError::forbidden(
            "not_moderator",
            "only the owner or a moderator may pin",
        ));
    }
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
