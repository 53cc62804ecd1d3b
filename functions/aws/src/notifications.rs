//! DynamoDB implementation of [`NotificationStore`]: a user's notifications are items in the
//! user's own partition (`USER#{id}` / `NOTIF#{id}`, key shapes in [`crate::keys`]), newest
//! last by sort key, kept [`RETENTION_DAYS`] (TTL).
//!
//! Notifications sockets (WebSocket connections without a stream, which get each new
//! notification pushed): one string set per user (`USER#{id}` / `SOCKETS`), so the
//! sockets of a page of 100 recipients are one `BatchGetItem`; each socket also has a
//! lookup (`CONN#{connection}` / `USER`) for its `$disconnect`. Ids of sockets that died
//! without a `$disconnect` stay in the set until a push finds them gone (410).
//!
//! Writes are `BatchWriteItem` puts (25 per call): a channel's audience of 10,000 is 400
//! calls. A put of an id that exists replaces it (a redelivered batch), which is also how
//! a notice stays once per user and event.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, ReturnValue, TransactWriteItem, Update, WriteRequest,
};
use serde::{Deserialize, Serialize};

use rill_core::notification::{Notification, RETENTION_DAYS};
use rill_core::store::{NotificationStore, Page, StoreError};
use rill_core::time::Timestamp;

use crate::keys::{self, ItemKey};
use crate::realtime::DAY_SECONDS;
use crate::store::{
    DynamoStore, decode_item_cursor, encode_cursor, from_item, n, s, to_item, unavailable,
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

    async fn open_socket(
        &self,
        user_id: &str,
        connection_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let ttl = n(expires_at.timestamp());
        // One transaction: the socket joins its user's set (whose TTL follows the newest
        // socket) and gets its lookup for `$disconnect`.
        let add = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::user_sockets(user_id).item()))
            .update_expression("ADD ids :id SET #ttl = :ttl, entity = :entity")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":id", AttributeValue::Ss(vec![connection_id.to_owned()]))
            .expression_attribute_values(":ttl", ttl.clone())
            .expression_attribute_values(":entity", s("user-sockets"))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let lookup = keys::socket_lookup(connection_id);
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(lookup.pk))
            .item("sk", s(lookup.sk))
            .item("entity", s("user-socket"))
            .item("userId", s(user_id))
            .item("ttl", ttl)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.transact(
            vec![
                TransactWriteItem::builder().update(add).build(),
                TransactWriteItem::builder().put(put).build(),
            ],
            "open notifications socket",
        )
        .await
        .map_err(|e| {
            e.unwrap_or_else(|| {
                StoreError::Unavailable("open notifications socket: condition".into())
            })
        })
    }

    async fn close_socket(&self, connection_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::socket_lookup(connection_id).item()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable("close notifications socket", e.into_service_error()))?;
        let Some(user_id) = out
            .attributes
            .and_then(|a| a.get("userId").and_then(|v| v.as_s().ok()).cloned())
        else {
            return Ok(None);
        };
        self.forget_socket(&user_id, connection_id).await?;
        Ok(Some(user_id))
    }

    async fn sockets(&self, user_ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let mut found = Vec::new();
        for chunk in user_ids.chunks(100) {
            let wanted = chunk.iter().map(|u| keys::user_sockets(u).item()).collect();
            // Eventually consistent is enough: a socket opened this very second misses
            // one push and finds the notification in the list.
            for item in self.get_many(wanted, "read notifications sockets").await? {
                let ItemKey::UserSockets { user_id } = keys::parse_item(&item) else {
                    continue;
                };
                let user_id = user_id.to_owned();
                if let Some(ids) = item.get("ids").and_then(|v| v.as_ss().ok()) {
                    found.extend(ids.iter().map(|id| (user_id.clone(), id.clone())));
                }
            }
        }
        Ok(found)
    }

    async fn forget_socket(&self, user_id: &str, connection_id: &str) -> Result<(), StoreError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::user_sockets(user_id).item()))
            .update_expression("DELETE ids :id")
            .expression_attribute_values(":id", AttributeValue::Ss(vec![connection_id.to_owned()]))
            .send()
            .await
            .map_err(|e| unavailable("forget notifications socket", e.into_service_error()))?;
        Ok(())
    }
}
