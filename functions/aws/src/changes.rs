//! Table changes: DynamoDB Streams records (in the shape Lambda delivers them) decoded into
//! domain terms, so that consumers such as `events-fanout` never read item layouts.
//!
//! [`decode`] turns one batch of records into [`Change`]s, in record order. A record may
//! mean several things (one write to a stream item can change its status, its viewer count
//! and its pinned message at once) or nothing a consumer cares about (leases, node
//! heartbeats, rate buckets, viewer sessions, votes): those decode to no change at all.
//!
//! Invariants:
//! - every value handed out is a `rill-core` type read through the same item structs the
//!   store writes; storage attributes (keys, GSI keys, `entity`, `ttl`, `origin`) and
//!   secrets (`keyHash`) are not part of any of them, so nothing built from a [`Change`]
//!   can leak them;
//! - a record whose image does not decode is skipped with a warning, never turned into a
//!   half-filled value;
//! - where an item was written (`origin`) is kept as [`Origin`], so consumers can skip what
//!   socket functions delivered already.

use aws_lambda_events::event::dynamodb::EventRecord;
use serde::de::DeserializeOwned;
use serde_dynamo::{AttributeValue, Item};

use rill_core::chat::{ChatMessage, Reaction};
use rill_core::quality::QualitySample;
use rill_core::realtime::{Connection, Question};
use rill_core::store::Origin;
use rill_core::stream::{Stream, StreamStatus};

use crate::chat::{ChatItem, ReactionItem};
use crate::keys::{self, ItemKey};
use crate::metrics::SampleItem;
use crate::questions::QuestionItem;
use crate::realtime::ConnectionItem;
use crate::streams::StreamItem;

pub mod analytics;

/// Something that happened in the table, in domain terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The stream went live.
    StreamStarted(Stream),
    /// The stream ended or was cancelled.
    StreamEnded(Stream),
    /// A message was pinned (a new pin, or another message than before).
    MessagePinned {
        stream_id: String,
        message_id: String,
    },
    ChatPosted {
        message: ChatMessage,
        origin: Origin,
    },
    ChatDeleted {
        stream_id: String,
        message_id: String,
    },
    /// A reaction was stored; `position` as for joins.
    ReactionAdded {
        reaction: Reaction,
        position: String,
    },
    QuestionAsked {
        question: Question,
        origin: Origin,
    },
    /// Votes or the answered flag changed.
    QuestionChanged(Question),
    /// A socket opened on the stream (signed in or anonymous). `position` orders it in
    /// the change stream ([`position`]).
    ViewerJoined {
        connection: Connection,
        position: String,
    },
    /// A socket closed (`$disconnect`, a prune, or the TTL sweeping it).
    ViewerLeft {
        connection: Connection,
        position: String,
    },
    QualitySample(QualitySample),
}

impl Change {
    /// The stream the change belongs to.
    pub fn stream_id(&self) -> &str {
        match self {
            Change::StreamStarted(s) | Change::StreamEnded(s) => &s.id,
            Change::MessagePinned { stream_id, .. } | Change::ChatDeleted { stream_id, .. } => {
                stream_id
            }
            Change::ChatPosted { message, .. } => &message.stream_id,
            Change::ReactionAdded { reaction, .. } => &reaction.stream_id,
            Change::QuestionAsked { question, .. } | Change::QuestionChanged(question) => {
                &question.stream_id
            }
            Change::ViewerJoined { connection, .. } | Change::ViewerLeft { connection, .. } => {
                &connection.stream_id
            }
            Change::QualitySample(s) => &s.stream_id,
        }
    }
}

/// An event appended to a stream's feed (`rill_core::feed`), as the table stream reports
/// it: what webhooks and the event bus are fed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedAppend {
    pub stream_id: String,
    pub seq: u64,
    pub kind: rill_core::event::EventType,
}

/// The feed appends among `records`, in record order (a stream's in sequence order: one
/// partition, one shard). Everything else is skipped.
pub fn feed_appends(records: &[EventRecord]) -> Vec<FeedAppend> {
    #[derive(serde::Deserialize)]
    struct Appended {
        seq: u64,
        event: String,
    }
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: rill_core::event::EventType,
    }
    let mut out = Vec::new();
    for record in records {
        let change = &record.change;
        let (Some(pk), Some(sk)) = (string(&change.keys, "pk"), string(&change.keys, "sk")) else {
            continue;
        };
        let ItemKey::FeedEvent { stream_id } = keys::parse(pk, sk) else {
            continue;
        };
        if record.event_name != "INSERT" {
            continue;
        }
        let Some(item) = image::<Appended>(&change.new_image, record) else {
            continue;
        };
        match serde_json::from_str::<Kind>(&item.event) {
            Ok(k) => out.push(FeedAppend {
                stream_id: stream_id.to_owned(),
                seq: item.seq,
                kind: k.kind,
            }),
            Err(e) => {
                tracing::warn!(event_id = %record.event_id, error = %e, "undecodable feed event; skipped");
            }
        }
    }
    out
}

/// Every change a batch of records carries, in record order.
pub fn decode(records: &[EventRecord]) -> Vec<Change> {
    let mut out = Vec::new();
    for record in records {
        decode_record(record, &mut out);
    }
    out
}

/// [`decode`], each change with the [`position`] of the record it came from (for the
/// event feed, which must know what it appended already).
pub fn decode_positioned(records: &[EventRecord]) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    let mut one = Vec::new();
    for record in records {
        decode_record(record, &mut one);
        let at = position(record);
        out.extend(one.drain(..).map(|c| (at.clone(), c)));
    }
    out
}

/// The image as `T`; `None` when absent (an INSERT has no old image) or malformed.
fn image<T: DeserializeOwned>(item: &Item, record: &EventRecord) -> Option<T> {
    if item.is_empty() {
        return None;
    }
    match serde_dynamo::from_item(item.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(event_id = %record.event_id, error = %e, "undecodable stream record image; skipped");
            None
        }
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// Width positions are padded to: DynamoDB Streams sequence numbers have 21 to 40 digits.
const POSITION_WIDTH: usize = 40;

/// The record's place in its shard as a string that compares like the sequence number
/// (zero-padded to one width), so a store can keep "the last position applied" and refuse
/// older ones with a plain string condition.
pub fn position(record: &EventRecord) -> String {
    let seq = record.change.sequence_number.as_deref().unwrap_or("");
    format!("{seq:0>POSITION_WIDTH$}")
}

/// Items written before `origin` existed came from REST (the store's own default).
fn origin(raw: &str) -> Origin {
    if raw == Origin::Socket.as_str() {
        Origin::Socket
    } else {
        Origin::Rest
    }
}

fn decode_record(record: &EventRecord, out: &mut Vec<Change>) {
    let change = &record.change;
    let (Some(pk), Some(sk)) = (string(&change.keys, "pk"), string(&change.keys, "sk")) else {
        return;
    };
    let new = &change.new_image;
    let old = &change.old_image;
    match (record.event_name.as_str(), keys::parse(pk, sk)) {
        ("MODIFY", ItemKey::Stream { .. }) => {
            let (Some(n), Some(o)) = (
                image::<StreamItem>(new, record),
                image::<StreamItem>(old, record),
            ) else {
                return;
            };
            stream_modified(n.into_stream(), o.into_stream(), out);
        }
        ("INSERT", ItemKey::Chat { .. }) => {
            if let Some(item) = image::<ChatItem>(new, record) {
                out.push(Change::ChatPosted {
                    origin: origin(&item.origin),
                    message: item.message,
                });
            }
        }
        ("MODIFY", ItemKey::Chat { .. }) => {
            let (Some(n), Some(o)) = (
                image::<ChatItem>(new, record),
                image::<ChatItem>(old, record),
            ) else {
                return;
            };
            if n.message.deleted && !o.message.deleted {
                out.push(Change::ChatDeleted {
                    stream_id: n.message.stream_id,
                    message_id: n.message.id,
                });
            }
        }
        ("INSERT", ItemKey::Reaction { .. }) => {
            if let Some(item) = image::<ReactionItem>(new, record) {
                out.push(Change::ReactionAdded {
                    reaction: item.reaction,
                    position: position(record),
                });
            }
        }
        ("INSERT", ItemKey::Question { .. }) => {
            if let Some(item) = image::<QuestionItem>(new, record) {
                out.push(Change::QuestionAsked {
                    origin: origin(&item.origin),
                    question: item.question,
                });
            }
        }
        ("MODIFY", ItemKey::Question { .. }) => {
            if let Some(item) = image::<QuestionItem>(new, record) {
                out.push(Change::QuestionChanged(item.question));
            }
        }
        ("INSERT", ItemKey::Connection { .. }) => {
            if let Some(item) = image::<ConnectionItem>(new, record) {
                out.push(Change::ViewerJoined {
                    connection: item.connection,
                    position: position(record),
                });
            }
        }
        ("REMOVE", ItemKey::Connection { .. }) => {
            if let Some(item) = image::<ConnectionItem>(old, record) {
                out.push(Change::ViewerLeft {
                    connection: item.connection,
                    position: position(record),
                });
            }
        }
        ("INSERT", ItemKey::Metric { .. }) => {
            if let Some(item) = image::<SampleItem>(new, record) {
                out.push(Change::QualitySample(item.sample));
            }
        }
        _ => {}
    }
}

/// What one write to a stream item means: status first, then the pin. Its viewer count is
/// written by the presence function, which sends it itself: no change here.
fn stream_modified(new: Stream, old: Stream, out: &mut Vec<Change>) {
    let pinned = new
        .pinned_message_id
        .clone()
        .filter(|p| old.pinned_message_id.as_ref() != Some(p));
    let stream_id = new.id.clone();
    if new.status != old.status {
        match new.status {
            StreamStatus::Live => out.push(Change::StreamStarted(new)),
            StreamStatus::Ended | StreamStatus::Cancelled => out.push(Change::StreamEnded(new)),
            StreamStatus::Scheduled | StreamStatus::Preparing => {}
        }
    }
    if let Some(message_id) = pinned {
        out.push(Change::MessagePinned {
            stream_id,
            message_id,
        });
    }
}

#[cfg(test)]
mod tests;
