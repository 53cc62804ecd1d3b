//! `events-fanout`: table changes (the DynamoDB stream) turned into `stream:*` events.
//!
//! This is the one path for events born outside a WebSocket request: REST chat sends,
//! deletes and pins, stream start and end (from the API or the ingest node), quality
//! samples, Q&A votes and reactions. Records are decoded by `rill_aws::changes` into
//! domain values; this module never sees an item layout. Messages and questions written by
//! socket functions ([`Origin::Socket`]) were delivered already, so they are skipped here.
//! Payloads are the `rill-core` values serialised as the REST API shows them
//! (`stream:start`/`stream:end` carry the public stream, never its key hash), so no list
//! of storage attributes to hide is kept here. Joins, leaves and viewer counts are not
//! this function's: `events-presence` ([`crate::presence`]) reads the same stream and
//! paces them.
//!
//! Coalescing: within one batch (one poll of the stream: at most 4 a second), all reactions
//! of a stream become one `stream:reaction` frame, and one write adds them to the stream's
//! reaction counter (a reaction itself is one put of its own item: the stream's item is
//! not touched per reaction). The stream's connection list is read once per batch,
//! whatever the number of events.
//!
//! The feed: every event of the batch, socket-born messages and questions included, is
//! appended to the stream's ordered feed ([`rill_core::feed`]) with the position of its
//! change (one read and one transaction per stream per batch), so
//! `GET /api/streams/{id}/events` replays what the sockets saw, numbered.
//!
//! The reaction frame is
//! `{"total": n, "counts": {"🔥": 3, ...}, "samples": [{"emoji","positionX","positionY"}...]}`
//! with at most [`REACTION_SAMPLES`] samples for the overlay.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use rill_aws::changes::{self, Change};
use rill_core::chat::Reaction;
use rill_core::event::{Event, EventType};
use rill_core::feed::FeedEntry;
use rill_core::store::Origin;
use rill_core::time;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{ApiError, App};

/// Positions sent along with a reaction batch, for the floating overlay.
pub const REACTION_SAMPLES: usize = 20;

#[derive(Default)]
struct StreamBatch {
    events: Vec<Planned>,
    reactions: Vec<Reaction>,
    /// Position of the batch's last reaction: the stream's reaction counter is raised once
    /// per batch, idempotently ([`rill_core::store::ChatStore::count_reactions`]).
    reactions_at: Option<String>,
    /// Position of the batch's last change of this stream (the coalesced reaction event's
    /// place in the feed comes after it).
    last_position: String,
}

/// One event of the plan: where its change was, and whether the sockets still need it
/// (socket-born messages and questions went out already, but the feed has not had them).
struct Planned {
    position: String,
    kind: EventType,
    data: Value,
    deliver: bool,
}

impl StreamBatch {
    fn push(&mut self, position: &str, kind: EventType, data: Value, deliver: bool) {
        self.events.push(Planned {
            position: position.to_owned(),
            kind,
            data,
            deliver,
        });
    }
}

/// A domain value as an event payload. Domain types serialise infallibly (plain structs of
/// strings, numbers and timestamps); `null` would only hide a bug, never a secret.
fn payload<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Turns positioned changes into per-stream events, in change order, with the coalesced
/// ones last.
fn plan(changes: Vec<(String, Change)>) -> BTreeMap<String, StreamBatch> {
    let mut out: BTreeMap<String, StreamBatch> = BTreeMap::new();
    for (at, change) in changes {
        let batch = out.entry(change.stream_id().to_owned()).or_default();
        if at > batch.last_position {
            batch.last_position.clone_from(&at);
        }
        match change {
            // The public stream, as `GET /api/streams/{id}` shows it (never the key hash).
            Change::StreamStarted(stream) => batch.push(
                &at,
                EventType::Start,
                json!({"stream": payload(&stream)}),
                true,
            ),
            Change::StreamEnded(stream) => batch.push(
                &at,
                EventType::End,
                json!({"stream": payload(&stream)}),
                true,
            ),
            Change::MessagePinned { message_id, .. } => batch.push(
                &at,
                EventType::ChatPinned,
                json!({"messageId": message_id}),
                true,
            ),
            // Socket-born items went out from the socket function already.
            Change::ChatPosted { message, origin } => batch.push(
                &at,
                EventType::ChatMessage,
                payload(&message),
                origin != Origin::Socket,
            ),
            Change::ChatDeleted { message_id, .. } => batch.push(
                &at,
                EventType::ChatDeleted,
                json!({"messageId": message_id}),
                true,
            ),
            Change::ReactionAdded { reaction, position } => {
                batch.reactions.push(reaction);
                batch.reactions_at = Some(position);
            }
            Change::QuestionAsked { question, origin } => batch.push(
                &at,
                EventType::Question,
                json!({"question": payload(&question)}),
                origin != Origin::Socket,
            ),
            Change::QuestionChanged(question) => batch.push(
                &at,
                EventType::Question,
                json!({"question": payload(&question)}),
                true,
            ),
            Change::QualitySample(sample) => {
                batch.push(&at, EventType::QualityUpdate, payload(&sample), true)
            }
            // Presence is `events-presence`'s.
            Change::ViewerJoined { .. } | Change::ViewerLeft { .. } => {}
        }
    }
    for batch in out.values_mut() {
        if !batch.reactions.is_empty() {
            // After every change of the batch, so the feed's positions keep their order.
            let at = format!("{}~", batch.last_position);
            batch.push(
                &at,
                EventType::Reaction,
                reaction_frame(&batch.reactions),
                true,
            );
        }
    }
    out
}

fn reaction_frame(reactions: &[Reaction]) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for r in reactions {
        *counts.entry(r.emoji.as_str()).or_default() += 1;
    }
    let samples: Vec<Value> = reactions
        .iter()
        .rev()
        .take(REACTION_SAMPLES)
        .map(|r| json!({"emoji": r.emoji, "positionX": r.position_x, "positionY": r.position_y}))
        .collect();
    json!({"total": reactions.len(), "counts": counts, "samples": samples})
}

/// The Lambda handler: one batch of stream records. Per stream: the reaction counter, the
/// feed (before any delivery, so a failed append fails the batch and its redelivery finds
/// the feed as it was), then the fan-out.
pub async fn handle(app: Arc<App>, event: StreamEvent) -> Result<(), ApiError> {
    let now = time::now();
    for (stream_id, batch) in plan(changes::decode_positioned(&event.records)) {
        if let Some(at) = &batch.reactions_at {
            let n = batch.reactions.len() as u64;
            app.chat.count_reactions(&stream_id, n, at).await?;
        }
        if batch.events.is_empty() {
            continue;
        }
        let mut entries = Vec::with_capacity(batch.events.len());
        let mut events = Vec::new();
        for planned in batch.events {
            let event = Event::new(planned.kind, &stream_id, planned.data, now);
            if planned.deliver {
                events.push(event.clone());
            }
            entries.push(FeedEntry {
                position: planned.position,
                event,
            });
        }
        app.feed.append(&stream_id, &entries).await?;
        if events.is_empty() {
            continue;
        }
        let ids = app.realtime.connections_of(&stream_id).await?;
        crate::shard::fan_out(&app, &stream_id, &events, &ids).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
