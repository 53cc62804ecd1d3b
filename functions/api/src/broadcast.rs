//! Fan-out of events to every connection of a stream through the [`Notifier`]
//! (PostToConnection). Connections are served concurrently with a bound, so a stream with
//! 1,000 viewers costs 1,000 calls in flight [`FANOUT_CONCURRENCY`] at a time; a 410 Gone
//! prunes the connection instead of failing the fan-out.
//! Audiences larger than a shard are split first ([`crate::shard`]); every shard, in this
//! process or in the `events-fanout-shard` worker, is delivered by [`deliver_frames`].
//!
//! Invariants: each connection gets a batch's frames in order, one post after the other;
//! connections never wait for each other (a slow one holds only its own slot, at most
//! [`POST_TIMEOUT`] per frame, and a connection that fails once gets no more frames of the
//! batch).

use futures_util::StreamExt;
use rill_core::event::{Event, EventType};
use rill_core::store::NotifyError;
use rill_core::time;

use crate::{ApiError, App};

/// Connections served at once per fan-out (one Management API call in flight each).
/// PostToConnection answers in ~10-30 ms on AWS, so a fan-out there is bound by how many
/// are in flight, not by CPU: 1,000 posts at 128 in flight take ~160 ms (at 64, ~310 ms,
/// over the 200 ms chat target). Measured locally, where posts are CPU-bound instead
/// (bench-realtime `--concurrency`, 1,000 viewers, chat p50 / p99): 16: 103 / 318 ms,
/// 64: 86 / 302 ms, 128: 80 / 216 ms, 256: 93 / 315 ms.
pub const FANOUT_CONCURRENCY: usize = 128;

/// `FANOUT_CONCURRENCY` when it is a positive number, else [`FANOUT_CONCURRENCY`].
pub fn concurrency_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> usize {
    lookup("FANOUT_CONCURRENCY")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(FANOUT_CONCURRENCY)
}
/// Longest wait for one `PostToConnection`.
pub const POST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// What a fan-out did, counted in frames (a batch of 3 frames to 10 connections is 30).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    pub pruned: usize,
    pub failed: usize,
    /// Connections handed to shard workers (delivered there, not counted above).
    pub sharded: usize,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, o: Delivery) {
        self.delivered += o.delivered;
        self.pruned += o.pruned;
        self.failed += o.failed;
        self.sharded += o.sharded;
    }
}

/// Sends every frame, in order, to every id: the in-process delivery of one shard.
pub async fn deliver_frames(
    app: &App,
    stream_id: &str,
    frames: &[Vec<u8>],
    ids: Vec<String>,
) -> Delivery {
    let results: Vec<Delivery> = futures_util::stream::iter(ids)
        .map(|id| deliver_one(app, stream_id, frames, id))
        .buffer_unordered(app.fanout_concurrency)
        .collect()
        .await;
    let mut total = Delivery::default();
    for d in results {
        total += d;
    }
    total
}

/// One connection's frames, one after the other.
async fn deliver_one(app: &App, stream_id: &str, frames: &[Vec<u8>], id: String) -> Delivery {
    let mut d = Delivery::default();
    for (i, frame) in frames.iter().enumerate() {
        // A slow connection holds its own slot for at most POST_TIMEOUT, never the
        // others' deliveries.
        let post = tokio::time::timeout(POST_TIMEOUT, app.notifier.post(&id, frame));
        match post.await.unwrap_or_else(|_| {
            Err(NotifyError::Failed(format!(
                "no answer within {POST_TIMEOUT:?}"
            )))
        }) {
            Ok(()) => d.delivered += 1,
            Err(NotifyError::Gone) => {
                if prune(app, Some(stream_id), &id).await {
                    d.pruned += 1;
                }
                return d;
            }
            Err(NotifyError::Failed(e)) => {
                // The rest of the batch would likely wait as long again: skip it rather
                // than hold the slot, and count it as failed.
                d.failed += frames.len() - i;
                tracing::warn!(error = %e, "delivery failed");
                return d;
            }
        }
    }
    d
}

/// A connection still inside its `$connect` is registered but answers 410 until the
/// handshake completes: only connections older than this are pruned on a 410.
const PRUNE_GRACE: chrono::Duration = chrono::Duration::seconds(10);

/// Removes a connection that answered 410 (its `$disconnect` never came or failed), unless
/// it is too young to judge; its ended view follows from the removal (`events-presence`).
/// Without a stream (a reply to one socket) there is nothing listed to remove.
async fn prune(app: &App, stream_id: Option<&str>, connection_id: &str) -> bool {
    let Some(stream_id) = stream_id else {
        return false;
    };
    let now = time::now();
    app.realtime
        .prune_connection(stream_id, connection_id, now - PRUNE_GRACE)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "pruning a gone connection failed");
            false
        })
}

/// Broadcasts an event born on the socket `sender` (chat, questions): to the stream's
/// connections from the warm cache, and always to the sender itself, which may have
/// connected after the cached list was read. A list past its 1 s is still used (up to
/// [`crate::cache::CONNECTION_LISTS_STALE_MAX`]) while it is re-read in parallel; the
/// connections only the fresh list names get the event right after.
pub async fn emit(
    app: &App,
    kind: EventType,
    stream_id: &str,
    data: serde_json::Value,
    sender: &str,
) -> Result<Delivery, ApiError> {
    let event = Event::new(kind, stream_id, data, time::now());
    let events = std::slice::from_ref(&event);
    let with_sender = |mut ids: Vec<String>| {
        if !ids.iter().any(|id| id == sender) {
            ids.push(sender.to_owned());
        }
        ids
    };
    let cached = app.caches.connection_lists.get_aged(&stream_id.to_owned());
    match cached {
        Some((ids, age)) if age < crate::cache::CONNECTION_LISTS => {
            crate::shard::fan_out(app, stream_id, events, &with_sender(ids)).await
        }
        Some((stale, age)) if age < crate::cache::CONNECTION_LISTS_STALE_MAX => {
            let known = with_sender(stale);
            let (delivered, fresh) = tokio::join!(
                crate::shard::fan_out(app, stream_id, events, &known),
                read_list(app, stream_id)
            );
            let mut delivered = delivered?;
            let fresh = fresh?;
            let newcomers: Vec<String> =
                fresh.into_iter().filter(|id| !known.contains(id)).collect();
            if !newcomers.is_empty() {
                delivered += crate::shard::fan_out(app, stream_id, events, &newcomers).await?;
            }
            Ok(delivered)
        }
        _ => {
            let ids = read_list(app, stream_id).await?;
            crate::shard::fan_out(app, stream_id, events, &with_sender(ids)).await
        }
    }
}

/// Reads the stream's connection list into the warm cache unless one [`emit`] can use is
/// there. A failed read is left for `emit` to meet and report.
pub async fn prefetch_list(app: &App, stream_id: &str) {
    let usable = app
        .caches
        .connection_lists
        .get_aged(&stream_id.to_owned())
        .is_some_and(|(_, age)| age < crate::cache::CONNECTION_LISTS_STALE_MAX);
    if !usable {
        let _ = read_list(app, stream_id).await;
    }
}

/// Reads a stream's connection list and keeps it in the warm cache.
async fn read_list(app: &App, stream_id: &str) -> Result<Vec<String>, ApiError> {
    let ids = app.realtime.connections_of(stream_id).await?;
    app.caches
        .connection_lists
        .put(stream_id.to_owned(), ids.clone());
    Ok(ids)
}

/// Sends one frame to one connection (replies and error frames). A gone connection is
/// pruned; other failures are logged, since the sender has nobody else to tell.
pub async fn send_to(app: &App, connection_id: &str, frame: &str) {
    match app.notifier.post(connection_id, frame.as_bytes()).await {
        Ok(()) => {}
        Err(NotifyError::Gone) => {
            prune(app, None, connection_id).await;
        }
        Err(NotifyError::Failed(e)) => tracing::warn!(error = %e, "reply failed"),
    }
}
