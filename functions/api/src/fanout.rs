//! `events-fanout`: table changes (the DynamoDB stream) turned into `stream:*` events.
//!
//! This is the one path for events born outside a WebSocket request: REST chat sends,
//! deletes and pins, stream start and end (from the API or the ingest node), quality
//! samples, Q&A votes, reactions and viewer counts. Records are decoded by
//! `rill_aws::changes` into domain values; this module never sees an item layout. Messages
//! and questions written by socket functions ([`Origin::Socket`]) were delivered already,
//! so they are skipped here. Payloads are the `rill-core` values serialised as the REST
//! API shows them (`stream:start`/`stream:end` carry the public stream, never its key
//! hash), so no list of storage attributes to hide is kept here.
//!
//! Coalescing: within one batch (one poll of the stream: at most 4 a second), all reactions of
//! a stream become one `stream:reaction` frame and all viewer-count changes one
//! `stream:viewer-count` frame carrying the latest count (and the peak, which is raised
//! here: `$connect` only adds to the count). The stream's connection list is read once per
//! batch, whatever the number of events.
//!
//! Presence: joins and leaves of signed-in users (sockets opening and closing) are
//! announced by name only to small audiences: at most [`NAMED_PRESENCE_MAX`] open
//! connections, at most [`NAMED_PER_BATCH`] names each way per batch. Beyond that everyone
//! gets the count only: naming each of N arriving viewers to all N costs N² deliveries.
//! The reaction frame is
//! `{"total": n, "counts": {"🔥": 3, ...}, "samples": [{"emoji","positionX","positionY"}...]}`
//! with at most [`REACTION_SAMPLES`] samples for the overlay.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use rill_aws::changes::{self, Change};
use rill_core::chat::Reaction;
use rill_core::event::{Event, EventType};
use rill_core::realtime::Connection;
use rill_core::store::Origin;
use rill_core::time;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{ApiError, App};

/// Positions sent along with a reaction batch, for the floating overlay.
pub const REACTION_SAMPLES: usize = 20;
/// Largest audience (open connections) that is told joins and leaves by name.
pub const NAMED_PRESENCE_MAX: usize = 50;
/// Names per direction (joined, left) per batch.
pub const NAMED_PER_BATCH: usize = 20;

#[derive(Default)]
struct StreamBatch {
    events: Vec<(EventType, Value)>,
    reactions: Vec<Reaction>,
    /// The latest `(count, peak)`.
    viewer_count: Option<(u64, u64)>,
    /// A count above the stored peak: the peak to raise.
    new_peak: Option<u64>,
    joined: Vec<Value>,
    left: Vec<Value>,
}

/// A domain value as an event payload. Domain types serialise infallibly (plain structs of
/// strings, numbers and timestamps); `null` would only hide a bug, never a secret.
fn payload<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Turns changes into per-stream events, in change order, with the coalesced ones last.
fn plan(changes: Vec<Change>) -> BTreeMap<String, StreamBatch> {
    let mut out: BTreeMap<String, StreamBatch> = BTreeMap::new();
    for change in changes {
        let batch = out.entry(change.stream_id().to_owned()).or_default();
        match change {
            // The public stream, as `GET /api/streams/{id}` shows it (never the key hash).
            Change::StreamStarted(stream) => batch
                .events
                .push((EventType::Start, json!({"stream": payload(&stream)}))),
            Change::StreamEnded(stream) => batch
                .events
                .push((EventType::End, json!({"stream": payload(&stream)}))),
            Change::ViewerCount {
                count, stored_peak, ..
            } => {
                // The peak is raised here, after the count: never report it below the
                // count it belongs to.
                if count > stored_peak {
                    batch.new_peak = Some(batch.new_peak.unwrap_or(0).max(count));
                }
                let peak = stored_peak.max(count).max(batch.new_peak.unwrap_or(0));
                batch.viewer_count = Some((count, peak));
            }
            Change::MessagePinned { message_id, .. } => batch
                .events
                .push((EventType::ChatPinned, json!({"messageId": message_id}))),
            // Socket-born items went out from the socket function already.
            Change::ChatPosted { message, origin } if origin != Origin::Socket => batch
                .events
                .push((EventType::ChatMessage, payload(&message))),
            Change::ChatDeleted { message_id, .. } => batch
                .events
                .push((EventType::ChatDeleted, json!({"messageId": message_id}))),
            Change::ReactionAdded(reaction) => batch.reactions.push(reaction),
            Change::QuestionAsked { question, origin } if origin != Origin::Socket => batch
                .events
                .push((EventType::Question, json!({"question": payload(&question)}))),
            Change::QuestionChanged(question) => batch
                .events
                .push((EventType::Question, json!({"question": payload(&question)}))),
            Change::ViewerJoined(connection) => batch.joined.extend(presence(&connection)),
            Change::ViewerLeft(connection) => batch.left.extend(presence(&connection)),
            Change::QualitySample(sample) => batch
                .events
                .push((EventType::QualityUpdate, payload(&sample))),
            Change::ChatPosted { .. } | Change::QuestionAsked { .. } => {}
        }
    }
    out
}

/// `{userId, displayName}` of a signed-in connection; anonymous ones are not named.
fn presence(connection: &Connection) -> Option<Value> {
    let user = connection.user_id.as_ref()?;
    Some(json!({"userId": user, "displayName": connection.display_name}))
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

/// The Lambda handler: one batch of stream records.
pub async fn handle(app: Arc<App>, event: StreamEvent) -> Result<(), ApiError> {
    let now = time::now();
    for (stream_id, batch) in plan(changes::decode(&event.records)) {
        if let Some(peak) = batch.new_peak {
            app.realtime.raise_peak(&stream_id, peak).await?;
        }
        let mut events: Vec<Event> = batch
            .events
            .into_iter()
            .map(|(kind, data)| Event::new(kind, &stream_id, data, now))
            .collect();
        if !batch.reactions.is_empty() {
            events.push(Event::new(
                EventType::Reaction,
                &stream_id,
                reaction_frame(&batch.reactions),
                now,
            ));
        }
        let named = !batch.joined.is_empty() || !batch.left.is_empty();
        if events.is_empty() && batch.viewer_count.is_none() && !named {
            continue;
        }
        let ids = app.realtime.connections_of(&stream_id).await?;
        if named && ids.len() <= NAMED_PRESENCE_MAX {
            for (kind, people) in [
                (EventType::ViewerJoined, batch.joined),
                (EventType::ViewerLeft, batch.left),
            ] {
                for who in people.into_iter().take(NAMED_PER_BATCH) {
                    events.push(Event::new(kind, &stream_id, who, now));
                }
            }
        }
        if let Some((count, peak)) = batch.viewer_count {
            events.push(Event::new(
                EventType::ViewerCount,
                &stream_id,
                json!({"count": count, "peak": peak}),
                now,
            ));
        }
        crate::shard::fan_out(&app, &stream_id, &events, &ids).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
