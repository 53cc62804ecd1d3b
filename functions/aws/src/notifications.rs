//! DynamoDB implementation of [`NotificationStore`]: a user's notifications are items in the
//! user's own partition (`USER#{id}` / `NOTIF#{id}`, key shapes in [`crate::keys`]), newest
//! last by sort key, kept [`RETENTION_DAYS`] (TTL).
//!
//! Writes are `BatchWriteItem` puts (25 per call): a channel's audience of 10,000 is 400
//! calls. A put of an id that exists replaces it (a redelivered batch), which is also how
//! a notice stays once per user and event.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use rill_core::notification::{Notification, RETENTION_DAYS};
use rill_core::store::{NotificationStore, Page, StoreError};

use crate::keys::{self, ItemKey};
use crate::realtime::DAY_SECONDS;
use crate::store::{
    DynamoStore, decode_item_cursor, encode_cursor, from_item, s, to_item, unavailable,
    unless_condition_failed,
};

#[derive(Debug, Serialize, Deserialize)]
struct NotificationItem {
    pk: String,
    sk: String,
    entity: String,
    ttl: i64,
    #[serde(flatten)]
    notification: Notification,
}

#[async_trait]
impl NotificationStore for DynamoStore {
    async fn notify(&self, notes: &[(String, Notification)]) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(notes.len());
        for (user_id, n) in notes {
            let key = keys::notification(user_id, &n.id);
            let item = NotificationItem {
                pk: key.pk,
                sk: key.sk,
                entity: "notification".into(),
                ttl: n.created_at.timestamp() + RETENTION_DAYS * DAY_SECONDS,
                notification: n.clone(),
            };
            let put = PutRequest::builder()
                .set_item(Some(to_item(&item)?))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(25) {
            self.batch_write(chunk.to_vec(), "write notifications")
                .await?;
        }
        Ok(())
    }

    async fn notifications(
        &self,
        user_id: &str,
        limit: u32,
        cursor: Option<&str>,
        unread_only: bool,
    ) -> Result<Page<Notification>, StoreError> {
        let pk = keys::user_pk(user_id);
        let start = cursor
            .map(|c| decode_item_cursor(c, &pk, |k| matches!(k, ItemKey::Notification { .. })))
            .transpose()?;
        let mut query = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :kind)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":kind", s(keys::notifications_prefix()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        if unread_only {
            query = query
                .filter_expression("#read = :no")
                .expression_attribute_names("#read", "read")
                .expression_attribute_values(":no", AttributeValue::Bool(false));
        }
        let out = query
            .send()
            .await
            .map_err(|e| unavailable("list notifications", e.into_service_error()))?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<NotificationItem>(i).map(|n| n.notification))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: encode_cursor(out.last_evaluated_key.as_ref()),
        })
    }

    async fn mark_read(&self, user_id: &str, ids: &[String]) -> Result<u32, StoreError> {
        let mut found = 0;
        for id in ids {
            let out = self
                .db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(keys::notification(user_id, id).item()))
                .condition_expression("attribute_exists(pk)")
                .update_expression("SET #read = :yes")
                .expression_attribute_names("#read", "read")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .send()
                .await;
            if unless_condition_failed(out, "mark notification read")?.is_some() {
                found += 1;
            }
        }
        Ok(found)
    }
}
