//! The ordered event feed of a stream: every lifecycle and activity event that goes out
//! on the stream's sockets (`stream:start`, `stream:end`, chat messages, deletions and
//! pins, questions, coalesced reaction batches, quality updates), each with a per-stream
//! sequence number, kept so that a consumer that was away catches up exactly
//! (`GET /api/streams/{id}/events?after=<seq>`).
//!
//! Invariants (kept by every [`crate::store::FeedStore`]):
//! - sequence numbers start at 1 and have no holes: event `n + 1` was appended after `n`;
//! - appends are idempotent by change position: an entry whose position is not after the
//!   last appended one (a redelivered batch) is not appended again;
//! - an entry is never changed once appended; it expires [`RETENTION_DAYS`] after it
//!   happened.
//!
//! Not in the feed: joins, leaves and viewer counts (`events-presence`'s, paced and
//! read from `GET /api/streams/{id}/viewers`), and `pong` replies.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// How long an appended event is kept (the item's TTL counts from the event's time).
pub const RETENTION_DAYS: i64 = 30;
/// Events per page of `GET /events` by default, and at most.
pub const PAGE_DEFAULT: u32 = 100;
pub const PAGE_MAX: u32 = 500;
/// The largest sequence number (twelve digits: a thousand events a second for 31 years).
pub const SEQ_MAX: u64 = 999_999_999_999;

/// An event to append, with the position of the change it came from (for a coalesced
/// reaction batch, its last reaction's). Positions of one stream compare as strings in the
/// order the changes happened.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub position: String,
    pub event: Event,
}

/// An event as the feed keeps and serves it: `{"seq": 7, "type": ..., "streamId": ...,
/// "data": ..., "ts": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequencedEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The entries of `entries` that come after `last` (the feed's last appended position),
/// in order: what an append still has to write.
pub fn not_yet_appended<'a>(entries: &'a [FeedEntry], last: Option<&str>) -> &'a [FeedEntry] {
    let start = match last {
        Some(last) => entries
            .iter()
            .position(|e| e.position.as_str() > last)
            .unwrap_or(entries.len()),
        None => 0,
    };
    &entries[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn entry(position: &str) -> FeedEntry {
        FeedEntry {
            position: position.into(),
            event: Event::new(
                EventType::ChatMessage,
                "s1",
                serde_json::json!({}),
                crate::time::now(),
            ),
        }
    }

    #[test]
    fn a_redelivered_batch_appends_only_what_came_after_the_last_position() {
        let entries = [entry("0001"), entry("0002"), entry("0002"), entry("0005")];
        assert_eq!(not_yet_appended(&entries, None).len(), 4);
        assert_eq!(not_yet_appended(&entries, Some("0001")).len(), 3);
        // Two events of one change (same position) go together.
        assert_eq!(not_yet_appended(&entries, Some("0002")), &entries[3..]);
        assert!(not_yet_appended(&entries, Some("0005")).is_empty());
        assert!(not_yet_appended(&entries, Some("0009")).is_empty());
    }

    #[test]
    fn a_sequenced_event_is_the_socket_envelope_plus_its_number() {
        let e = SequencedEvent {
            seq: 7,
            event: Event {
                kind: EventType::End,
                stream_id: "s1".into(),
                data: serde_json::json!({"x": 1}),
                ts: 1_800_000_000_000,
            },
        };
        assert_eq!(
            serde_json::to_value(&e).expect("json"),
            serde_json::json!({"seq": 7, "type": "stream:end", "streamId": "s1",
                               "data": {"x": 1}, "ts": 1_800_000_000_000_i64})
        );
    }
}
