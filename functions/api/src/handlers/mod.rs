//! One async function per endpoint: `(Arc<App>, Request) -> Result<Response, ApiError>`.

pub mod analytics;
pub mod channels;
pub mod chat;
pub mod docs;
pub mod events;
pub mod me;
pub mod metrics;
pub mod moderation;
pub mod nodes;
pub mod questions;
pub mod reactions;
pub mod streams;
pub mod webhooks;
pub mod whip;

use lambda_http::Request;
use rill_core::Stream;
use rill_core::realtime::Standing;
use rill_core::stream::Visibility;

use crate::{ApiError, App};

/// Loads a stream the caller may see, or answers 404. A members-only stream is not found
/// for anyone but its owner, its moderators and the channel's members (subscriber and
/// above), on every path, so its existence does not leak. Only members-only streams cost
/// more: the caller's token and one standing read (`BatchGetItem`).
pub(crate) async fn load_stream(app: &App, req: &Request, id: &str) -> Result<Stream, ApiError> {
    let stream = app
        .streams
        .get_stream(id)
        .await?
        .ok_or(ApiError::NotFound("stream"))?;
    if stream.visibility == Visibility::Members {
        let visible = match app.auth.principal(req).await? {
            None => false,
            Some(c) if stream.is_owned_by(&c.user_id) => true,
            Some(c) => app
                .realtime
                .standing(&stream, &c.user_id)
                .await?
                .views(&stream),
        };
        if !visible {
            return Err(ApiError::NotFound("stream"));
        }
    }
    Ok(stream)
}

/// Owner-only actions: anyone else gets 403.
pub(crate) fn ensure_owner(stream: &Stream, user_id: &str) -> Result<(), ApiError> {
    if stream.is_owned_by(user_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not_owner",
            "only the stream's owner may do this",
        ))
    }
}

/// The caller's standing, if they moderate the stream (its owner, its moderators, the
/// channel's moderators and above); otherwise 403.
pub(crate) async fn ensure_moderator(
    app: &App,
    stream: &Stream,
    user_id: &str,
) -> Result<Standing, ApiError> {
    let standing = app.realtime.standing(stream, user_id).await?;
    if standing.moderates() {
        Ok(standing)
    } else {
        Err(ApiError::forbidden(
            "not_moderator",
            "only the owner or a moderator may do this",
        ))
    }
}
