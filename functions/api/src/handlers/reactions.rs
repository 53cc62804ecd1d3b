//! Reactions over REST.

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use rill_core::chat::{NewReaction, Reaction};
use rill_core::{StreamStatus, ids, time};

use super::load_stream;
use crate::request::{id_param, json, json_body};
use crate::{ApiError, App};

/// `POST /api/streams/{id}/reactions` `{emoji, positionX?, positionY?}`: live streams only.
pub async fn send(app: Arc<App>, req: Request) -> Result<Response<Body>, ApiError> {
    let user = app.auth.require(&req).await?;
    let id = id_param(&req, "id", "stream")?;
    let input: NewReaction = json_body(&req)?;
    let stream = load_stream(&app, &req, &id).await?;
    if stream.status != StreamStatus::Live {
        return Err(ApiError::conflict(
            "not_live",
            format!("reactions need a live stream; it is {}", stream.status),
        ));
    }
    if !stream.settings.reactions_enabled {
        return Err(ApiError::forbidden(
            "reactions_disabled",
            "reactions are turned off for this stream",
        ));
    }
    let reaction = Reaction::create(ids::new_id(), &id, &user, &input, time::now())?;
    app.chat.add_reaction(&reaction).await?;
    json(201, &reaction)
}
