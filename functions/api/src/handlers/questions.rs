//! Q&A over REST: list, upvote (once per user), mark answered.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::store::StoreError;
use serde_json::json;

use super::load_stream;
use crate::request::{id_param, json};
use crate::{ApiError, App};

/// `GET /api/streams/{id}/questions`: most upvoted first.
pub async fn list(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let id = id_param(&req, "id", "stream")?;
    load_stream(&app, &req, &id).await?;
    json(
        200,
        &json!({"items": app.questions.list_questions(&id).await?}),
    )
}

/// `POST /api/streams/{id}/questions/{questionId}/upvote`
pub async fn upvote(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let qid = id_param(&req, "questionId", "question")?;
    load_stream(&app, &req, &id).await?;
    let q = app
        .questions
        .upvote(&id, &qid, &user.user_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("question"),
            StoreError::Conflict { .. } => {
                ApiError::conflict("already_voted", "you upvoted this question already")
            }
            other => other.into(),
        })?;
    json(200, &q)
}

/// `POST /api/streams/{id}/questions/{questionId}/answer`: owner or moderator.
pub async fn answer(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let qid = id_param(&req, "questionId", "question")?;
    let stream = load_stream(&app, &req, &id).await?;
    if !app
        .realtime
        .standing(&stream, &user.user_id)
        .await?
        .moderates()
    {
        return Err(ApiError::forbidden(
            "not_moderator",
            "only the owner or a moderator may mark answers",
        ));
    }
    let q = app
        .questions
        .mark_answered(&id, &qid)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("question"),
            other => other.into(),
        })?;
    json(200, &q)
}
