//! The stream's own item (the `META` item of its partition; key shapes in [`crate::keys`])
//! and [`StreamStore`] on it.
//!
//! The stream item carries its counters, its key hash and the two status indexes' keys,
//! sorted by the status's own time (scheduledAt, startedAt, endedAt). The key hash sits on
//! the item (GSI `byKeyHash`) rather than in an item of its own, so rotating a key is a
//! single conditional write and cannot leave a stale key behind. Listings filter on the
//! stream's `visibility` ([`ListScope`]).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use rill_core::channel::ListScope;
use rill_core::key::KeyHash;
use rill_core::store::{ListQuery, Listing, Page, StoreError, StreamStore};
use rill_core::stream::{
    Command, Settings, Stream, StreamStats, StreamStatus, Transition, Visibility,
};
use rill_core::time::{self, Timestamp, rfc3339_millis};

use crate::bootstrap::{GSI_CHANNEL_STATUS, GSI_KEY_HASH, GSI_STATUS};
use crate::keys::{self, ItemKey};
use crate::store::{
    DynamoStore, decode_cursor, encode_cursor, from_item, n, s, to_item, unavailable,
    unless_condition_failed,
};

/// The META item as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamItem {
    pk: String,
    sk: String,
    entity: String,
    id: String,
    channel_id: String,
    owner_id: String,
    title: String,
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
    status: StreamStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339_millis::option"
    )]
    scheduled_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339_millis::option"
    )]
    started_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339_millis::option"
    )]
    ended_at: Option<Timestamp>,
    #[serde(with = "rfc3339_millis")]
    created_at: Timestamp,
    #[serde(with = "rfc3339_millis")]
    updated_at: Timestamp,
    settings: Settings,
    /// Absent on items written before visibilities existed: public.
    #[serde(default)]
    visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pinned_message_id: Option<String>,
    version: u64,
    #[serde(default)]
    viewer_count: u64,
    #[serde(default)]
    peak_viewers: u64,
    #[serde(default)]
    total_views: u64,
    #[serde(default)]
    message_count: u64,
    #[serde(default)]
    reaction_count: u64,
    key_hash: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
}

/// GSI keys for a stream in its current status.
fn index_keys(stream: &Stream) -> (String, String, String) {
    let at = match stream.status {
        StreamStatus::Scheduled => stream.scheduled_at,
        StreamStatus::Live => stream.started_at,
        StreamStatus::Ended => stream.ended_at,
        StreamStatus::Preparing | StreamStatus::Cancelled => Some(stream.updated_at),
    }
    .unwrap_or(stream.created_at);
    (
        keys::by_channel_status(&stream.channel_id, stream.status),
        keys::by_status(stream.status),
        keys::status_sort(&at, &stream.id),
    )
}

impl StreamItem {
    pub(crate) fn new(stream: &Stream, key: &KeyHash) -> StreamItem {
        let (gsi1pk, gsi2pk, sort) = index_keys(stream);
        let item_key = keys::stream(&stream.id);
        StreamItem {
            pk: item_key.pk,
            sk: item_key.sk,
            entity: "stream".into(),
            id: stream.id.clone(),
            channel_id: stream.channel_id.clone(),
            owner_id: stream.owner_id.clone(),
            title: stream.title.clone(),
            description: stream.description.clone(),
            thumbnail_url: stream.thumbnail_url.clone(),
            status: stream.status,
            scheduled_at: stream.scheduled_at,
            started_at: stream.started_at,
            ended_at: stream.ended_at,
            created_at: stream.created_at,
            updated_at: stream.updated_at,
            settings: stream.settings.clone(),
            visibility: stream.visibility,
            pinned_message_id: stream.pinned_message_id.clone(),
            version: stream.version,
            viewer_count: stream.stats.current_viewers,
            peak_viewers: stream.stats.peak_viewers,
            total_views: stream.stats.total_views,
            message_count: stream.stats.messages,
            reaction_count: stream.stats.reactions,
            key_hash: key.0.clone(),
            gsi1pk,
            gsi1sk: sort.clone(),
            gsi2pk,
            gsi2sk: sort,
        }
    }

    pub(crate) fn into_stream(self) -> Stream {
        Stream {
            id: self.id,
            channel_id: self.channel_id,
            owner_id: self.owner_id,
            title: self.title,
            description: self.description,
            thumbnail_url: self.thumbnail_url,
            status: self.status,
            scheduled_at: self.scheduled_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            settings: self.settings,
            visibility: self.visibility,
            stats: StreamStats {
                current_viewers: self.viewer_count,
                peak_viewers: self.peak_viewers,
                total_views: self.total_views,
                messages: self.message_count,
                reactions: self.reaction_count,
            },
            pinned_message_id: self.pinned_message_id,
            version: self.version,
        }
    }
}

impl DynamoStore {
    pub(crate) async fn get_item(&self, id: &str) -> Result<Option<StreamItem>, StoreError> {
        self.get_consistent(keys::stream(id), "get stream")
            .await?
            .map(from_item)
            .transpose()
    }

    /// After a lost conditional write: tell "gone" from "moved on".
    pub(crate) async fn conflict(&self, id: &str, command: Option<Command>) -> StoreError {
        match self.get_item(id).await {
            Ok(Some(item)) => StoreError::Conflict {
                current: Some(item.status),
                command,
            },
            Ok(None) => StoreError::NotFound,
            Err(e) => e,
        }
    }

    /// A conditional `UpdateItem` of a stream's item for which a failed condition is an
    /// answer, not an error: `Ok(false)` (already applied, not higher, or no such stream).
    pub(crate) async fn update_stream_if(
        &self,
        stream_id: &str,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
        context: &str,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::stream(stream_id).item()))
            .update_expression(update)
            .condition_expression(condition);
        for (name, value) in values {
            req = req.expression_attribute_values(*name, value.clone());
        }
        Ok(unless_condition_failed(req.send().await, context)?.is_some())
    }

    pub(crate) fn counter_update(
        &self,
        stream_id: &str,
        attribute: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::stream(stream_id).item()))
            .update_expression("ADD #c :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#c", attribute)
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl StreamStore for DynamoStore {
    async fn create_stream(&self, stream: &Stream, key: &KeyHash) -> Result<(), StoreError> {
        let item = to_item(&StreamItem::new(stream, key))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        items.extend(self.channel_writes_for(stream).await?);
        match self.transact(items, "create stream").await {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(e),
            // The channel was claimed, or the role revoked, between the read and the write.
            Err(None) => Err(StoreError::Forbidden(
                "streaming in this channel needs the broadcaster role from its owner",
            )),
        }
    }

    async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        Ok(self.get_item(id).await?.map(StreamItem::into_stream))
    }

    async fn apply(
        &self,
        id: &str,
        command: Command,
        now: Timestamp,
    ) -> Result<Stream, StoreError> {
        let current = self
            .get_item(id)
            .await?
            .ok_or(StoreError::NotFound)?
            .into_stream();
        let to = match current.status.next(command) {
            Ok(Transition::Unchanged) => return Ok(current),
            Ok(Transition::To(to)) => to,
            Err(_) => {
                return Err(StoreError::Conflict {
                    current: Some(current.status),
                    command: Some(command),
                });
            }
        };
        let mut next = current.clone();
        next.status = to;
        next.updated_at = now;
        let mut set = vec![
            "#status = :to",
            "updatedAt = :now",
            "gsi1pk = :g1",
            "gsi2pk = :g2",
            "gsi1sk = :gs",
            "gsi2sk = :gs",
        ];
        match command {
            Command::GoLive => {
                next.started_at = Some(now);
                set.push("startedAt = :now");
            }
            Command::End => {
                next.ended_at = Some(now);
                set.push("endedAt = :now");
            }
            Command::Start | Command::Cancel => {}
        }
        let (g1, g2, sort) = index_keys(&next);
        let sources = StreamStatus::sources(command);
        let placeholders: Vec<String> = (0..sources.len()).map(|i| format!(":from{i}")).collect();
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::stream(id).item()))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(format!(
                "attribute_exists(pk) AND #status IN ({})",
                placeholders.join(", ")
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", s(time::format(&now)))
            .expression_attribute_values(":g1", s(g1))
            .expression_attribute_values(":g2", s(g2))
            .expression_attribute_values(":gs", s(sort))
            .return_values(ReturnValue::AllNew);
        for (p, status) in placeholders.iter().zip(&sources) {
            req = req.expression_attribute_values(p, s(status.as_str()));
        }
        let Some(out) = unless_condition_failed(req.send().await, "apply command")? else {
            return Err(self.conflict(id, Some(command)).await);
        };
        let item = out
            .attributes
            .ok_or_else(|| StoreError::Unavailable("update returned no item".into()))?;
        Ok(from_item::<StreamItem>(item)?.into_stream())
    }

    async fn update_stream(&self, updated: &Stream) -> Result<Stream, StoreError> {
        let settings = serde_dynamo::to_attribute_value(&updated.settings)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut expr = "SET title = :title, description = :description, settings = :settings, visibility = :visibility, updatedAt = :now, version = :v".to_owned();
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::stream(&updated.id).item()))
            .expression_attribute_values(":title", s(&updated.title))
            .expression_attribute_values(":description", s(&updated.description))
            .expression_attribute_values(":settings", settings)
            .expression_attribute_values(":visibility", s(updated.visibility.as_str()))
            .expression_attribute_values(":now", s(time::format(&updated.updated_at)))
            .expression_attribute_values(":v", n(updated.version))
            .expression_attribute_values(":prev", n(updated.version.saturating_sub(1)))
            .return_values(ReturnValue::AllNew);
        // A scheduled stream's start time may change (a reschedule): it is also the sort key
        // of both status indexes. Conditional on still being scheduled, so a stream started
        // meanwhile never gets a scheduled sort key (the edit is a conflict instead).
        let mut condition = "attribute_exists(pk) AND version = :prev".to_owned();
        if updated.status == StreamStatus::Scheduled
            && let Some(at) = &updated.scheduled_at
        {
            let (_, _, sort) = index_keys(updated);
            expr.push_str(", scheduledAt = :sat, gsi1sk = :gs, gsi2sk = :gs");
            condition.push_str(" AND #status = :scheduled");
            req = req
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":sat", s(time::format(at)))
                .expression_attribute_values(":gs", s(sort))
                .expression_attribute_values(":scheduled", s(StreamStatus::Scheduled.as_str()));
        }
        match &updated.thumbnail_url {
            Some(url) => {
                expr.push_str(", thumbnailUrl = :thumb");
                req = req.expression_attribute_values(":thumb", s(url));
            }
            None => expr.push_str(" REMOVE thumbnailUrl"),
        }
        let out = req
            .condition_expression(condition)
            .update_expression(expr)
            .send()
            .await;
        let Some(out) = unless_condition_failed(out, "update stream")? else {
            return Err(self.conflict(&updated.id, None).await);
        };
        let item = out
            .attributes
            .ok_or_else(|| StoreError::Unavailable("update returned no item".into()))?;
        Ok(from_item::<StreamItem>(item)?.into_stream())
    }

    async fn rotate_key(&self, id: &str, key: &KeyHash, now: Timestamp) -> Result<(), StoreError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::stream(id).item()))
            .update_expression("SET keyHash = :h, updatedAt = :now")
            .condition_expression("attribute_exists(pk) AND NOT #status IN (:ended, :cancelled)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":h", s(&key.0))
            .expression_attribute_values(":now", s(time::format(&now)))
            .expression_attribute_values(":ended", s(StreamStatus::Ended.as_str()))
            .expression_attribute_values(":cancelled", s(StreamStatus::Cancelled.as_str()))
            .send()
            .await;
        match unless_condition_failed(out, "rotate key")? {
            Some(_) => Ok(()),
            None => Err(self.conflict(id, None).await),
        }
    }

    async fn stream_for_key(&self, key: &KeyHash) -> Result<Option<Stream>, StoreError> {
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(GSI_KEY_HASH)
            .key_condition_expression("keyHash = :h")
            .expression_attribute_values(":h", s(&key.0))
            .limit(2)
            .send()
            .await
            .map_err(|e| unavailable("find key", e.into_service_error()))?;
        let Some(ItemKey::Stream { stream_id: id }) = out.items().first().map(keys::parse_item)
        else {
            return Ok(None);
        };
        // The index is eventually consistent: confirm against the item itself so that a key
        // rotated a moment ago is already refused.
        match self.get_item(id).await? {
            Some(item) if item.key_hash == key.0 => Ok(Some(item.into_stream())),
            _ => Ok(None),
        }
    }

    async fn list_streams(&self, query: &ListQuery) -> Result<Page<Stream>, StoreError> {
        let status = query.listing.status();
        let (index, pk_attr, sk_attr, partition) = match &query.channel_id {
            Some(channel) => (
                GSI_CHANNEL_STATUS,
                "gsi1pk",
                "gsi1sk",
                keys::by_channel_status(channel, status),
            ),
            None => (GSI_STATUS, "gsi2pk", "gsi2sk", keys::by_status(status)),
        };
        let start = query
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, pk_attr, &partition))
            .transpose()?;
        if let Some(start) = &start {
            let expected = ["pk", "sk", pk_attr, sk_attr];
            if start.keys().any(|k| !expected.contains(&k.as_str())) {
                return Err(StoreError::InvalidCursor);
            }
        }
        let (filter, mut names, mut values) = visibility_filter(&query.scope);
        names.insert("#p".into(), pk_attr.into());
        values.insert(":p".into(), s(&partition));
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#p = :p")
            .scan_index_forward(query.listing == Listing::Scheduled)
            .set_filter_expression(filter)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .limit(query.limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable("list streams", e.into_service_error()))?;
        let next_cursor = encode_cursor(out.last_evaluated_key());
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<StreamItem>(i).map(StreamItem::into_stream))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

/// The listing's filter on visibility: public streams (and items from before visibilities,
/// which have none), plus what `scope` opens to the caller.
fn visibility_filter(
    scope: &ListScope,
) -> (
    Option<String>,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
) {
    if scope.all {
        return (None, HashMap::new(), HashMap::new());
    }
    let mut names = HashMap::from([("#vis".to_owned(), "visibility".to_owned())]);
    let mut values = HashMap::from([(":public".to_owned(), s(Visibility::Public.as_str()))]);
    let mut filter = "attribute_not_exists(#vis) OR #vis = :public".to_owned();
    if scope.members {
        filter.push_str(" OR #vis = :members");
        values.insert(":members".into(), s(Visibility::Members.as_str()));
    }
    if scope.unlisted {
        filter.push_str(" OR #vis = :unlisted");
        values.insert(":unlisted".into(), s(Visibility::Unlisted.as_str()));
    }
    if let Some(owner) = &scope.owner_id {
        filter.push_str(" OR #owner = :me");
        names.insert("#owner".into(), "ownerId".into());
        values.insert(":me".into(), s(owner));
    }
    (Some(filter), names, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_follow_the_status_time() {
        let now = time::now();
        let input: rill_core::stream::NewStream =
            serde_json::from_value(serde_json::json!({"channelId":"ch","title":"t"}))
                .expect("shape");
        let mut stream =
            Stream::create("01JDQ0000000000000000000AA".into(), "u".into(), input, now)
                .expect("valid");
        stream.status = StreamStatus::Live;
        stream.started_at = Some(now);
        let (g1, g2, sort) = index_keys(&stream);
        assert_eq!(g1, keys::by_channel_status("ch", StreamStatus::Live));
        assert_eq!(g2, keys::by_status(StreamStatus::Live));
        assert_eq!(sort, keys::status_sort(&now, &stream.id));
    }
}
