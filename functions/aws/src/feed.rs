//! DynamoDB implementation of the event feed ([`rill_core::feed`]): a head item per stream
//! (`FEED`: the last sequence number and the change position it came from) and one item
//! per event (`EVENT#{seq}`, TTL [`rill_core::feed::RETENTION_DAYS`] after the event), in
//! the stream's partition (key shapes in [`crate::keys`]).
//!
//! An append reads the head (consistently) and writes up to [`CHUNK`] events and the new
//! head in one transaction, conditional on the head being as read: the numbering has no
//! holes and no number is given twice, even if two appends raced (the loser reads again).
//! The head's position makes a redelivered batch a no-op. A chat message's text is not
//! copied into the feed: reading joins it from the message, so deleting a message
//! deletes its text everywhere. Neither item kind reaches the
//! table-stream consumers (their filters and `rill_aws::changes` skip them).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use std::collections::{BTreeSet, HashMap};

use rill_core::chat::ChatMessage;
use rill_core::event::{Event, EventType};
use rill_core::feed::{FeedEntry, RETENTION_DAYS, SequencedEvent, not_yet_appended};
use rill_core::store::StoreError;

use crate::chat::ChatItem;
use crate::keys;
use crate::realtime::DAY_SECONDS;
use crate::store::{DynamoStore, from_item, n, s, to_item, unavailable};

/// Events per transaction: DynamoDB takes 100 actions, one is the head.
pub const CHUNK: usize = 99;
/// Lost races (another append to the same stream in between) before giving up.
const ATTEMPTS: u32 = 5;

/// How many of `rest` go in the next transaction: at most [`CHUNK`], ending where the
/// position changes, so that the head's position never splits the events of one change (a
/// redelivery after a crash between transactions would skip the rest of that change).
fn chunk_len(rest: &[FeedEntry]) -> usize {
    if rest.len() <= CHUNK {
        return rest.len();
    }
    (1..=CHUNK)
        .rev()
        .find(|&k| rest[k - 1].position != rest[k].position)
        .unwrap_or(CHUNK)
}

#[derive(Debug, Serialize, Deserialize)]
struct HeadItem {
    seq: u64,
    position: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EventItem {
    pk: String,
    sk: String,
    entity: String,
    ttl: i64,
    seq: u64,
    /// The event as JSON text: its `data` is any JSON, kept as sent, except a chat
    /// message's `content` (see [`without_content`]).
    event: String,
    /// A chat message's id: its content is read from the message itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// A chat message event without its text, and the message's id. The text stays in one
/// place, the message's item, so a deleted message's text is gone from storage (the
/// deletion clears it there) and the feed shows it deleted from then on.
fn without_content(event: &Event) -> (Event, Option<String>) {
    if event.kind != EventType::ChatMessage {
        return (event.clone(), None);
    }
    let mut stored = event.clone();
    let Some(id) = stored.data["id"].as_str().map(str::to_owned) else {
        return (stored, None);
    };
    if let Some(data) = stored.data.as_object_mut() {
        data.remove("content");
    }
    (stored, Some(id))
}

impl DynamoStore {
    async fn feed_head(&self, stream_id: &str) -> Result<Option<HeadItem>, StoreError> {
        self.get_consistent(keys::feed_head(stream_id), "read feed head")
            .await?
            .map(from_item::<HeadItem>)
            .transpose()
    }

    /// One transaction: `chunk` numbered from `seq + 1`, and the head moved past them.
    /// `Ok(false)`: the head was not `(seq, position)` any more.
    async fn append_chunk(
        &self,
        stream_id: &str,
        head: Option<&HeadItem>,
        chunk: &[FeedEntry],
    ) -> Result<bool, StoreError> {
        let first = head.map_or(0, |h| h.seq) + 1;
        let last_position = &chunk[chunk.len() - 1].position;
        let mut items = Vec::with_capacity(chunk.len() + 1);
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::feed_head(stream_id).item()))
            .update_expression("SET seq = :new, #p = :position")
            .expression_attribute_names("#p", "position")
            .expression_attribute_values(":new", n(first + chunk.len() as u64 - 1))
            .expression_attribute_values(":position", s(last_position));
        update = match head {
            Some(h) => update
                .condition_expression("seq = :old")
                .expression_attribute_values(":old", n(h.seq)),
            None => update.condition_expression("attribute_not_exists(pk)"),
        };
        items.push(
            TransactWriteItem::builder()
                .update(
                    update
                        .build()
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?,
                )
                .build(),
        );
        for (i, entry) in chunk.iter().enumerate() {
            let seq = first + i as u64;
            let key = keys::feed_event(stream_id, seq);
            let (stored, message) = without_content(&entry.event);
            let item = EventItem {
                pk: key.pk,
                sk: key.sk,
                entity: "event".into(),
                ttl: entry.event.ts / 1000 + RETENTION_DAYS * DAY_SECONDS,
                seq,
                event: serde_json::to_string(&stored)
                    .map_err(|e| StoreError::Unavailable(format!("encode event: {e}")))?,
                message,
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&item)?))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact(items, "append feed events").await {
            Ok(()) => Ok(true),
            Err(None) => Ok(false),
            Err(Some(e)) => Err(e),
        }
    }
}

#[async_trait]
impl rill_core::store::FeedStore for DynamoStore {
    async fn append(&self, stream_id: &str, entries: &[FeedEntry]) -> Result<Vec<u64>, StoreError> {
        let mut given = Vec::new();
        let mut lost = 0;
        let mut head = self.feed_head(stream_id).await?;
        let mut rest = not_yet_appended(entries, head.as_ref().map(|h| h.position.as_str()));
        while !rest.is_empty() {
            let chunk = &rest[..chunk_len(rest)];
            if self.append_chunk(stream_id, head.as_ref(), chunk).await? {
                let first = head.as_ref().map_or(0, |h| h.seq) + 1;
                let last = first + chunk.len() as u64 - 1;
                given.extend(first..=last);
                head = Some(HeadItem {
                    seq: last,
                    position: chunk[chunk.len() - 1].position.clone(),
                });
                rest = &rest[chunk.len()..];
                continue;
            }
            // Another append moved the head: read it again, skip what it covers.
            lost += 1;
            if lost >= ATTEMPTS {
                return Err(StoreError::Unavailable(format!(
                    "append feed events: the head of {stream_id} kept moving"
                )));
            }
            head = self.feed_head(stream_id).await?;
            rest = not_yet_appended(rest, head.as_ref().map(|h| h.position.as_str()));
        }
        Ok(given)
    }

    async fn read(
        &self,
        stream_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        let from = after.saturating_add(1);
        if from > keys::FEED_SEQ_MAX {
            return Ok(Vec::new());
        }
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(keys::stream_pk(stream_id)))
            .expression_attribute_values(":from", s(keys::feed_event(stream_id, from).sk))
            .expression_attribute_values(
                ":to",
                s(keys::feed_event(stream_id, keys::FEED_SEQ_MAX).sk),
            )
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| unavailable("read feed", e.into_service_error()))?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item::<EventItem>)
            .collect::<Result<Vec<_>, _>>()?;
        let messages = self.feed_messages(stream_id, &items).await?;
        items
            .into_iter()
            .map(|item| {
                let mut event: Event = serde_json::from_str(&item.event)
                    .map_err(|e| StoreError::Unavailable(format!("decode feed event: {e}")))?;
                if let Some(id) = &item.message
                    && let Some(data) = event.data.as_object_mut()
                {
                    // As the message is now: its text, or deleted with none.
                    let now = messages.get(id);
                    let deleted = now.is_none_or(|m| m.deleted);
                    let content = now
                        .filter(|m| !m.deleted)
                        .map_or("", |m| m.content.as_str());
                    data.insert("content".into(), content.into());
                    data.insert("deleted".into(), deleted.into());
                }
                Ok(SequencedEvent {
                    seq: item.seq,
                    event,
                })
            })
            .collect()
    }

    async fn last_seq(&self, stream_id: &str) -> Result<u64, StoreError> {
        self.feed_last_seq(stream_id).await
    }
}

impl DynamoStore {
    async fn feed_last_seq(&self, stream_id: &str) -> Result<u64, StoreError> {
        Ok(self.feed_head(stream_id).await?.map_or(0, |h| h.seq))
    }

    /// The chat messages the events name, as they are now, by id.
    async fn feed_messages(
        &self,
        stream_id: &str,
        items: &[EventItem],
    ) -> Result<HashMap<String, ChatMessage>, StoreError> {
        let ids: BTreeSet<&str> = items.iter().filter_map(|i| i.message.as_deref()).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut out = HashMap::new();
        for chunk in ids.chunks(100) {
            let keys = chunk
                .iter()
                .map(|id| keys::chat(stream_id, id).item())
                .collect();
            for item in self.get_many_consistent(keys, "read feed messages").await? {
                let chat = from_item::<ChatItem>(item)?;
                out.insert(chat.message.id.clone(), chat.message);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(positions: &[&str]) -> Vec<FeedEntry> {
        positions
            .iter()
            .map(|p| FeedEntry {
                position: (*p).into(),
                event: Event::new(
                    EventType::ChatMessage,
                    "s",
                    serde_json::json!({}),
                    rill_core::time::now(),
                ),
            })
            .collect()
    }

    #[test]
    fn a_transaction_never_splits_the_events_of_one_change() {
        assert_eq!(chunk_len(&entries(&["1", "2"])), 2);
        let mut positions: Vec<String> = (0..98).map(|i| format!("{i:04}")).collect();
        positions.extend(["0098".into(), "0098".into(), "0099".into()]);
        let refs: Vec<&str> = positions.iter().map(String::as_str).collect();
        // Entries 98 and 99 (0-based) share a position: the chunk stops before them.
        assert_eq!(chunk_len(&entries(&refs)), 98);
        let same = vec!["7"; 150];
        assert_eq!(chunk_len(&entries(&same)), CHUNK);
    }
}
