//! The event bus side of `webhooks-dispatch`: on AWS every feed event also goes to the
//! stack's EventBridge bus (`EVENT_BUS_NAME`; see `rill_aws::event_bus` for the entry
//! shape and ordering), read back from the feed so that a chat message carries its text
//! as the feed shows it.
//!
//! Storage budget: one feed read per stream per batch (its appended range).

use async_trait::async_trait;
use rill_aws::event_bus::{BusEntry, EventBridgeBus};
use rill_core::feed::SequencedEvent;
use serde_json::json;

use crate::{ApiError, App};

/// Where feed events are published besides webhooks.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes the entries in order; `Err` means some may not have been.
    async fn publish(&self, entries: &[BusEntry]) -> Result<(), String>;
}

#[async_trait]
impl EventSink for EventBridgeBus {
    async fn publish(&self, entries: &[BusEntry]) -> Result<(), String> {
        self.put(entries).await
    }
}

/// The bus entry of one feed event of a stream in `channel_id`.
pub fn entry(channel_id: &str, event: &SequencedEvent) -> Result<BusEntry, ApiError> {
    let kind = serde_json::to_value(event.event.kind)
        .map_err(|e| ApiError::Internal(format!("event type: {e}")))?;
    Ok(BusEntry {
        detail_type: kind.as_str().unwrap_or_default().to_owned(),
        detail: json!({
            "channelId": channel_id,
            "streamId": event.event.stream_id,
            "seq": event.seq,
            "type": kind,
            "data": event.event.data,
            "ts": event.event.ts,
        }),
    })
}

/// Publishes the stream's events numbered `first..=last` (one batch's appends).
pub async fn publish(
    app: &App,
    sink: &dyn EventSink,
    channel_id: &str,
    stream_id: &str,
    first: u64,
    last: u64,
) -> Result<(), ApiError> {
    let mut after = first.saturating_sub(1);
    while after < last {
        let limit = u32::try_from((last - after).min(500)).unwrap_or(500);
        let events = app.feed.read(stream_id, after, limit).await?;
        let Some(end) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        let entries = events
            .iter()
            .filter(|e| e.seq <= last)
            .map(|e| entry(channel_id, e))
            .collect::<Result<Vec<_>, _>>()?;
        sink.publish(&entries)
            .await
            .map_err(|e| ApiError::Internal(format!("publish to the event bus: {e}")))?;
        after = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_core::event::{Event, EventType};

    #[test]
    fn an_entry_is_the_feed_event_with_its_channel_typed_by_event_type() {
        let e = SequencedEvent {
            seq: 7,
            event: Event {
                kind: EventType::Start,
                stream_id: "s1".into(),
                data: json!({"title": "t"}),
                ts: 1_800_000_000_000,
            },
        };
        let entry = entry("c1", &e).expect("entry");
        assert_eq!(entry.detail_type, "stream:start");
        assert_eq!(
            entry.detail,
            json!({"channelId": "c1", "streamId": "s1", "seq": 7, "type": "stream:start",
                   "data": {"title": "t"}, "ts": 1_800_000_000_000_i64})
        );
    }
}
