//! [`FleetStore`] on the single table: the ingest node registry and stream leases.
//!
//! Items (key shapes in [`crate::keys`]):
//! - a node's registry entry: a [`NodeRecord`] in the node registry's partition of the
//!   `byStatus` index (`gsi2sk` = node id), so the whole registry is one query
//!   (eventually consistent: a node that registered a moment ago may be missing for a
//!   fraction of a second), and `ttl` an hour past the heartbeat so dead nodes' entries
//!   are swept eventually.
//! - a stream's lease, in the stream's partition: a [`Lease`] (`nodeId`, `expiresAt` as
//!   RFC 3339 and as epoch milliseconds `expiresAtMs` for the conditions, `version`), with
//!   `ttl` a day past the expiry.
//!
//! Every lease write is conditional (see `rill_core::fleet`): take when absent, expired or
//! already ours; renew and release only the exact lease (holder and version) we hold.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use serde::{Deserialize, Serialize};

use rill_core::fleet::{FleetStore, Lease, LeaseError, NodeRecord};
use rill_core::store::StoreError;
use rill_core::time::{Timestamp, rfc3339_millis};

use crate::bootstrap::GSI_STATUS;
use crate::keys;
use crate::store::{DynamoStore, Item, from_item, n, s, to_item, unavailable};
/// A dead node's entry is swept an hour after its last heartbeat.
const NODE_TTL_SECONDS: i64 = 3600;
/// A lease item outlives its expiry by a day (its history helps after an incident).
const LEASE_TTL_SECONDS: i64 = 24 * 3600;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeItem {
    pk: String,
    sk: String,
    entity: String,
    gsi2pk: String,
    gsi2sk: String,
    ttl: i64,
    #[serde(flatten)]
    node: NodeRecord,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseItem {
    pk: String,
    sk: String,
    entity: String,
    stream_id: String,
    node_id: String,
    #[serde(with = "rfc3339_millis")]
    expires_at: Timestamp,
    expires_at_ms: i64,
    version: u64,
    ttl: i64,
}

impl LeaseItem {
    fn new(stream_id: &str, node_id: &str, expires_at: Timestamp, version: u64) -> Self {
        let key = keys::lease(stream_id);
        LeaseItem {
            pk: key.pk,
            sk: key.sk,
            entity: "lease".into(),
            stream_id: stream_id.into(),
            node_id: node_id.into(),
            expires_at,
            expires_at_ms: expires_at.timestamp_millis(),
            version,
            ttl: expires_at.timestamp() + LEASE_TTL_SECONDS,
        }
    }

    fn lease(self) -> Lease {
        Lease {
            stream_id: self.stream_id,
            node_id: self.node_id,
            expires_at: self.expires_at,
            version: self.version,
        }
    }
}

fn expiry(now: Timestamp, ttl: Duration) -> Timestamp {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(20))
}

/// The lease an item returned by a failed condition describes, as a [`LeaseError`].
fn held_by(item: Option<Item>) -> LeaseError {
    match item.map(from_item::<LeaseItem>) {
        Some(Ok(current)) => LeaseError::Held {
            node_id: current.node_id,
            expires_at: current.expires_at,
        },
        Some(Err(e)) => LeaseError::Store(e),
        None => LeaseError::Lost,
    }
}

/// `Some(current item)` when the put failed on its condition, the store error otherwise.
fn condition_failed(
    e: SdkError<PutItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
    context: &str,
) -> Result<Option<Item>, StoreError> {
    match e.into_service_error() {
        PutItemError::ConditionalCheckFailedException(c) => Ok(c.item),
        other => Err(unavailable(context, other)),
    }
}

#[async_trait]
impl FleetStore for DynamoStore {
    async fn put_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        let key = keys::node(&node.id);
        let item = to_item(&NodeItem {
            pk: key.pk,
            sk: key.sk,
            entity: "node".into(),
            gsi2pk: keys::nodes_partition().into(),
            gsi2sk: node.id.clone(),
            ttl: node.heartbeat_at.timestamp() + NODE_TTL_SECONDS,
            node: node.clone(),
        })?;
        self.put_unconditional(item, "put node").await
    }

    async fn remove_node(&self, node_id: &str) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::node(node_id).item()))
            .send()
            .await
            .map_err(|e| unavailable("remove node", e.into_service_error()))?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .index_name(GSI_STATUS)
                .key_condition_expression("gsi2pk = :p")
                .expression_attribute_values(":p", s(keys::nodes_partition()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("list nodes", e.into_service_error()))?;
            for item in page.items.unwrap_or_default() {
                out.push(from_item::<NodeItem>(item)?.node);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn acquire_lease(
        &self,
        stream_id: &str,
        node_id: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, LeaseError> {
        // The version continues from any earlier lease, so a stale holder's conditional
        // renewal (on its old version) can never match the new one.
        let previous = self.lease(stream_id).await?;
        let version = previous.as_ref().map_or(0, |l| l.version) + 1;
        let item = LeaseItem::new(stream_id, node_id, expiry(now, ttl), version);
        let mut put = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_values(":me", s(node_id))
            .expression_attribute_values(":now", n(now.timestamp_millis()));
        put = match &previous {
            // Exactly the lease we read: another node taking it in between makes this fail.
            Some(p) => put
                .condition_expression("version = :v AND (nodeId = :me OR expiresAtMs <= :now)")
                .expression_attribute_values(":v", n(p.version)),
            None => put.condition_expression(
                "attribute_not_exists(pk) OR nodeId = :me OR expiresAtMs <= :now",
            ),
        };
        match put.send().await {
            Ok(_) => Ok(item.lease()),
            Err(e) => match condition_failed(e, "take lease")? {
                Some(current) => Err(held_by(Some(current))),
                // Lost a race against a release: whoever acted first, try once more on
                // what is there now.
                None => Err(match self.lease(stream_id).await? {
                    Some(l) if !l.is_expired(now) && l.node_id != node_id => LeaseError::Held {
                        node_id: l.node_id,
                        expires_at: l.expires_at,
                    },
                    _ => LeaseError::Lost,
                }),
            },
        }
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, LeaseError> {
        let item = LeaseItem::new(
            &lease.stream_id,
            &lease.node_id,
            expiry(now, ttl),
            lease.version + 1,
        );
        let result = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("nodeId = :me AND version = :v")
            .expression_attribute_values(":me", s(&lease.node_id))
            .expression_attribute_values(":v", n(lease.version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(item.lease()),
            Err(e) => {
                condition_failed(e, "renew lease")?;
                Err(LeaseError::Lost)
            }
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let result = self
            .db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::lease(&lease.stream_id).item()))
            .condition_expression("nodeId = :me AND version = :v")
            .expression_attribute_values(":me", s(&lease.node_id))
            .expression_attribute_values(":v", n(lease.version))
            .send()
            .await;
        match result.map_err(SdkError::into_service_error) {
            Ok(_) => Ok(()),
            // Someone else's now, or already gone: nothing of ours to release.
            Err(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
            Err(e) => Err(unavailable("release lease", e)),
        }
    }

    async fn lease(&self, stream_id: &str) -> Result<Option<Lease>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::lease(stream_id).item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get lease", e.into_service_error()))?;
        out.item
            .map(|item| from_item::<LeaseItem>(item).map(LeaseItem::lease))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    #[test]
    fn lease_items_carry_the_expiry_as_text_and_as_milliseconds() {
        let at = chrono::DateTime::from_timestamp_millis(1_800_000_000_123).expect("valid");
        let item = to_item(&LeaseItem::new("s1", "n1", at, 4)).expect("serialises");
        assert_eq!(
            keys::parse_item(&item),
            keys::ItemKey::Lease { stream_id: "s1" }
        );
        assert_eq!(
            item["expiresAtMs"],
            AttributeValue::N("1800000000123".into())
        );
        assert_eq!(
            item["expiresAt"],
            AttributeValue::S("2027-01-15T08:00:00.123Z".into())
        );
        let back = from_item::<LeaseItem>(item).expect("reads back").lease();
        assert_eq!(back.expires_at, at);
        assert_eq!(back.version, 4);
    }
}
