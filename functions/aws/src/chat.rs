//! DynamoDB implementation of the chat store: one item per message in the stream's
//! partition (soft-deleted; pinned through the stream item) and one per reaction (expiring
//! after a day: only the counters on the stream item and the coalesced frames outlive it).
//! Key shapes in [`crate::keys`].

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use rill_core::chat::{ChatMessage, Reaction};
use rill_core::store::{ChatStore, Origin, Page, StoreError};

use crate::keys::{self, ItemKey, Listed};
use crate::store::*;

/// Reactions are kept a day: long enough for analytics of the stream, bounded storage.
const REACTION_TTL_SECONDS: i64 = 24 * 3600;

/// A chat message as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChatItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(default = "rest_origin")]
    pub(crate) origin: String,
    #[serde(flatten)]
    pub(crate) message: ChatMessage,
}

fn rest_origin() -> String {
    Origin::Rest.as_str().to_owned()
}

impl ChatItem {
    pub(crate) fn new(message: &ChatMessage, origin: Origin) -> ChatItem {
        let key = keys::chat(&message.stream_id, &message.id);
        ChatItem {
            pk: key.pk,
            sk: key.sk,
            entity: "chat".into(),
            origin: origin.as_str().to_owned(),
            message: message.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReactionItem {
    pk: String,
    sk: String,
    entity: String,
    ttl: i64,
    #[serde(flatten)]
    pub(crate) reaction: Reaction,
}

impl ReactionItem {
    pub(crate) fn new(reaction: &Reaction) -> ReactionItem {
        let key = keys::reaction(&reaction.stream_id, &reaction.id);
        ReactionItem {
            pk: key.pk,
            sk: key.sk,
            entity: "reaction".into(),
            ttl: reaction.created_at.timestamp() + REACTION_TTL_SECONDS,
            reaction: reaction.clone(),
        }
    }
}

#[async_trait]
impl ChatStore for DynamoStore {
    async fn post_message(&self, message: &ChatMessage, origin: Origin) -> Result<(), StoreError> {
        let item = to_item(&ChatItem::new(message, origin))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.counter_update(&message.stream_id, "messageCount")?,
        ];
        match self.transact(items, "post message").await {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(e),
            Err(None) => Err(self.conflict(&message.stream_id, None).await),
        }
    }

    async fn list_messages(
        &self,
        stream_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ChatMessage>, StoreError> {
        let pk = keys::stream_pk(stream_id);
        let start = cursor
            .map(|c| decode_item_cursor(c, &pk, |k| matches!(k, ItemKey::Chat { .. })))
            .transpose()?;
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :chat)")
            .filter_expression("deleted = :no")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":chat", s(Listed::Chat.prefix()))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable("list messages", e.into_service_error()))?;
        let next_cursor = encode_cursor(out.last_evaluated_key());
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<ChatItem>(i).map(|c| c.message))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }

    async fn get_message(
        &self,
        stream_id: &str,
        message_id: &str,
    ) -> Result<Option<ChatMessage>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::chat(stream_id, message_id).item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get message", e.into_service_error()))?;
        Ok(out
            .item
            .map(from_item::<ChatItem>)
            .transpose()?
            .map(|c| c.message))
    }

    async fn delete_message(
        &self,
        stream_id: &str,
        message_id: &str,
    ) -> Result<ChatMessage, StoreError> {
        let existing = self.get_message(stream_id, message_id).await?;
        let Some(mut message) = existing.filter(|m| !m.deleted) else {
            return Err(StoreError::NotFound);
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::chat(stream_id, message_id).item()))
            .update_expression("SET deleted = :yes, content = :empty, isPinned = :no")
            .condition_expression("attribute_exists(pk) AND deleted = :no")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":empty", s(""))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if message.is_pinned {
            let unpin = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::stream(stream_id).item()))
                .update_expression("REMOVE pinnedMessageId")
                .condition_expression("pinnedMessageId = :m")
                .expression_attribute_values(":m", s(message_id))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(unpin).build());
        }
        match self.transact(items, "delete message").await {
            Ok(()) => {
                message.deleted = true;
                message.content.clear();
                message.is_pinned = false;
                Ok(message)
            }
            Err(Some(e)) => Err(e),
            // Deleted or re-pinned concurrently: the caller may retry against fresh state.
            Err(None) => Err(StoreError::Conflict {
                current: None,
                command: None,
            }),
        }
    }

    async fn pin_message(
        &self,
        stream_id: &str,
        message_id: &str,
    ) -> Result<ChatMessage, StoreError> {
        let stream = self
            .get_item(stream_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let Some(mut message) = self
            .get_message(stream_id, message_id)
            .await?
            .filter(|m| !m.deleted)
        else {
            return Err(StoreError::NotFound);
        };
        let previous = stream.pinned_message_id.clone();
        if previous.as_deref() == Some(message_id) && message.is_pinned {
            return Ok(message);
        }
        let pin = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::chat(stream_id, message_id).item()))
            .update_expression("SET isPinned = :yes")
            .condition_expression("attribute_exists(pk) AND deleted = :no")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut meta = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::stream(stream_id).item()))
            .update_expression("SET pinnedMessageId = :m")
            .expression_attribute_values(":m", s(message_id));
        meta = match &previous {
            Some(prev) => meta
                .condition_expression("pinnedMessageId = :prev")
                .expression_attribute_values(":prev", s(prev)),
            None => meta.condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(pinnedMessageId)",
            ),
        };
        let mut items = vec![
            TransactWriteItem::builder().update(pin).build(),
            TransactWriteItem::builder()
                .update(
                    meta.build()
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?,
                )
                .build(),
        ];
        if let Some(prev) = previous.filter(|p| p != message_id) {
            let unpin = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::chat(stream_id, &prev).item()))
                .update_expression("SET isPinned = :no")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":no", AttributeValue::Bool(false))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(unpin).build());
        }
        match self.transact(items, "pin message").await {
            Ok(()) => {
                message.is_pinned = true;
                Ok(message)
            }
            Err(Some(e)) => Err(e),
            Err(None) => Err(StoreError::Conflict {
                current: None,
                command: None,
            }),
        }
    }

    async fn add_reaction(&self, reaction: &Reaction) -> Result<(), StoreError> {
        // One put under the stream's partition and nothing on the stream item: at 1,000
        // reactions a second the stream item would be a hot key (and each write a
        // transaction). `events-fanout` counts them per batch (`count_reactions`).
        let item = to_item(&ReactionItem::new(reaction))?;
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("add reaction", e.into_service_error()))?;
        Ok(())
    }

    async fn count_reactions(
        &self,
        stream_id: &str,
        count: u64,
        position: &str,
    ) -> Result<(), StoreError> {
        // Counted already (a redelivered batch), or the stream is gone: nothing to do.
        self.update_stream_if(
            stream_id,
            "ADD reactionCount :n SET reactionsAt = :at",
            "attribute_exists(pk) AND (attribute_not_exists(reactionsAt) OR reactionsAt < :at)",
            &[(":n", n(count)), (":at", s(position))],
            "count reactions",
        )
        .await?;
        Ok(())
    }
}
