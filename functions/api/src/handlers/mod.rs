//! One async function per endpoint: `(Arc<App>, Request) -> Result<Response, ApiError>`.

pub mod channels;
pub mod chat;
pub mod docs;
pub mod metrics;
pub mod moderation;
pub mod nodes;
pub mod questions;
pub mod reactions;
pub mod streams;
pub mod whip;

use rill_core::Stream;

use crate::{ApiError, App};

/// Loads a stream or answers 404.
pub(crate) async fn load_stream(app: &App, id: &str) -> Result<Stream, ApiError> {
    app.streams
        .get_stream(id)
        .await?
        .ok_or(ApiError::NotFound("stream"))
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
