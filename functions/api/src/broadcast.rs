//! Fan-out of one event to every connection of a stream through the [`Notifier`]
//! (PostToConnection). Deliveries run concurrently with a bound, so a stream with 1,000
//! viewers costs 1,000 calls in flight [`FANOUT_CONCURRENCY`] at a time; a 410 Gone prunes
//! the connection (and counts the viewer out) instead of failing the fan-out.

use futures_util::StreamExt;
use rill_core::event::{Event, EventType};
use rill_core::store::NotifyError;
use rill_core::time;

use crate::{ApiError, App};

/// Management API calls in flight per fan-out.
pub const FANOUT_CONCURRENCY: usize = 64;
/// Longest wait for one `PostToConnection`.
pub const POST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    pub pruned: usize,
    pub failed: usize,
}

/// Sends `event` to `ids` (the stream's connections, read once by the caller for a whole
/// batch of events) except `skip`.
pub async fn broadcast_to(
    app: &App,
    event: &Event,
    ids: &[String],
    skip: Option<&str>,
) -> Result<Delivery, ApiError> {
    let frame = serde_json::to_vec(event).map_err(|e| ApiError::Internal(e.to_string()))?;
    let frame = &frame;
    // Owned ids: the delivery futures must not borrow the caller's list (Send bounds).
    let targets: Vec<String> = ids
        .iter()
        .filter(|id| Some(id.as_str()) != skip)
        .cloned()
        .collect();
    let results: Vec<(String, Result<(), NotifyError>)> = futures_util::stream::iter(targets)
        .map(|id| async move {
            // A slow connection holds its own slot for at most POST_TIMEOUT, never the
            // others' deliveries.
            let post = tokio::time::timeout(POST_TIMEOUT, app.notifier.post(&id, frame));
            let r = post.await.unwrap_or_else(|_| {
                Err(NotifyError::Failed(format!(
                    "no answer within {POST_TIMEOUT:?}"
                )))
            });
            (id, r)
        })
        .buffer_unordered(FANOUT_CONCURRENCY)
        .collect()
        .await;
    let mut d = Delivery::default();
    for (id, r) in results {
        match r {
            Ok(()) => d.delivered += 1,
            Err(NotifyError::Gone) => {
                if prune(app, &id).await {
                    d.pruned += 1;
                }
            }
            Err(NotifyError::Failed(e)) => {
                d.failed += 1;
                tracing::warn!(error = %e, "delivery failed");
            }
        }
    }
    Ok(d)
}

/// A connection still inside its `$connect` is registered but answers 410 until the
/// handshake completes: only connections older than this are pruned on a 410.
const PRUNE_GRACE: chrono::Duration = chrono::Duration::seconds(10);

/// Removes a connection that answered 410, unless it is too young to judge.
async fn prune(app: &App, connection_id: &str) -> bool {
    let now = time::now();
    match app.realtime.connection(connection_id).await {
        Ok(Some(c)) if now - c.connected_at < PRUNE_GRACE => false,
        Ok(Some(_)) => match app.realtime.close_connection(connection_id, now).await {
            Ok(closed) => closed.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "pruning a gone connection failed");
                false
            }
        },
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "pruning a gone connection failed");
            false
        }
    }
}

/// Broadcasts an event born on the socket `sender` (chat, questions): to the stream's
/// connections from the warm cache, and always to the sender itself, which may have
/// connected after the cached list was read.
pub async fn emit(
    app: &App,
    kind: EventType,
    stream_id: &str,
    data: serde_json::Value,
    sender: &str,
) -> Result<Delivery, ApiError> {
    let event = Event::new(kind, stream_id, data, time::now());
    let mut ids = app.connections_cached(stream_id).await?;
    if !ids.iter().any(|id| id == sender) {
        ids.push(sender.to_owned());
    }
    broadcast_to(app, &event, &ids, None).await
}

/// Sends one frame to one connection (replies and error frames). A gone connection is
/// pruned; other failures are logged, since the sender has nobody else to tell.
pub async fn send_to(app: &App, connection_id: &str, frame: &str) {
    match app.notifier.post(connection_id, frame.as_bytes()).await {
        Ok(()) => {}
        Err(NotifyError::Gone) => {
            prune(app, connection_id).await;
        }
        Err(NotifyError::Failed(e)) => tracing::warn!(error = %e, "reply failed"),
    }
}
