//! [`DynamoStore`]: the single-table implementation of `rill-core`'s storage traits, and
//! what every item kind shares: consistent reads, transactions, batches, item codecs,
//! cursors and the one place a backend failure becomes [`StoreError::Unavailable`]. Each
//! kind's own items and trait impl live beside it (`streams`, `chat`, `channels`, ...).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use rill_core::store::StoreError;

use crate::keys;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) db: Client,
    pub(crate) table: String,
}

impl DynamoStore {
    pub fn new(db: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            db,
            table: table.into(),
        }
    }

    /// An unconditional put (last writer wins: samples, registry heartbeats); `what` names
    /// it in the error.
    pub(crate) async fn put_unconditional(&self, item: Item, what: &str) -> Result<(), StoreError> {
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable(what, e.into_service_error()))?;
        Ok(())
    }

    /// A strongly consistent `GetItem`; `what` names it in the error.
    pub(crate) async fn get_consistent(
        &self,
        key: keys::Key,
        what: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(what, e.into_service_error()))?;
        Ok(out.item)
    }

    /// Strongly consistent reads of up to 100 keys (one `BatchGetItem`, see
    /// [`DynamoStore::get_many`]).
    pub(crate) async fn get_many_consistent(
        &self,
        keys: Vec<Item>,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.batch_get(keys, true, what).await
    }

    /// Eventually consistent reads of up to 100 keys in one `BatchGetItem`: the items that
    /// exist, in no order. Keys DynamoDB leaves unprocessed (throttling) are asked again a
    /// few times with backoff, then the call fails: a key is never silently taken as
    /// absent (a ban flag read as "none" would let a banned user in).
    pub(crate) async fn get_many(
        &self,
        keys: Vec<Item>,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.batch_get(keys, false, what).await
    }

    async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut pending = keys;
        for attempt in 0..4u32 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            let wanted = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(consistent)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let out = self
                .db
                .batch_get_item()
                .request_items(&self.table, wanted)
                .send()
                .await
                .map_err(|e| unavailable(what, e.into_service_error()))?;
            found.extend(
                out.responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "{what}: {} keys left unprocessed",
                pending.len()
            )));
        }
        Ok(found)
    }

    /// Every item of one kind under a stream (`listed`), all pages; `projection` limits the
    /// attributes read, `what` names it in the error.
    pub(crate) async fn query_listed(
        &self,
        stream_id: &str,
        listed: crate::keys::Listed,
        projection: Option<&str>,
        consistent: bool,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :kind)")
                .expression_attribute_values(":pk", s(crate::keys::stream_pk(stream_id)))
                .expression_attribute_values(":kind", s(listed.prefix()))
                .set_projection_expression(projection.map(str::to_owned))
                .consistent_read(consistent)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable(what, e.into_service_error()))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(items),
            }
        }
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A conditional write's output, or `None` when its condition failed (an answer the caller
/// gives meaning: a conflict, not found, already applied); any other failure is
/// [`unavailable`].
pub(crate) fn unless_condition_failed<O, E>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, HttpResponse>>,
    context: &str,
) -> Result<Option<O>, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(unavailable(context, e)),
    }
}

pub(crate) fn unavailable<E: std::error::Error + 'static>(context: &str, e: E) -> StoreError {
    let detail = format!("{context}: {}", DisplayErrorContext(&e));
    tracing::error!(error = %detail, "dynamodb call failed");
    StoreError::Unavailable(detail)
}

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Unavailable(format!("malformed item: {e}")))
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Unavailable(format!("unserialisable item: {e}")))
}

/// Cursors are the `LastEvaluatedKey` (all string attributes) as base64url JSON. On the way
/// back in, the partition key must be the one being queried: a cursor from another listing
/// or stream is refused instead of being passed to DynamoDB.
pub(crate) fn encode_cursor(key: Option<&Item>) -> Option<String> {
    let key = key?;
    let flat: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str())))
        .collect();
    let json = serde_json::to_vec(&flat).ok()?;
    Some(URL_SAFE_NO_PAD.encode(json))
}

pub(crate) fn decode_cursor(
    raw: &str,
    partition_attr: &str,
    partition: &str,
) -> Result<Item, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| StoreError::InvalidCursor)?;
    let flat: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
    if flat.get(partition_attr).map(String::as_str) != Some(partition) || flat.len() > 4 {
        return Err(StoreError::InvalidCursor);
    }
    Ok(flat.into_iter().map(|(k, v)| (k, s(v))).collect())
}

impl DynamoStore {
    /// Runs a transaction; a cancellation for a failed condition becomes `Err(None)` so the
    /// caller can work out which condition it was.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        context: &str,
    ) -> Result<(), Option<StoreError>> {
        match self
            .db
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                // The SDK gives each call one idempotency token and keeps it across its own
                // retries, so the token can only have been seen by an earlier attempt of this
                // very call: one that reached the table (and was applied) but whose answer was
                // lost. DynamoDB Local answers such a retry with this exception instead of the
                // documented silent success; it means "already applied".
                if let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::IdempotentParameterMismatchException(_) = &e {
                    tracing::warn!(context, "transaction retry found its token already applied");
                    return Ok(());
                }
                if let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) = &e {
                    let condition_failed = c
                        .cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed"));
                    if condition_failed {
                        return Err(None);
                    }
                }
                Err(Some(unavailable(context, e)))
            }
        }
    }

    /// Writes `requests` (at most 25) with one `BatchWriteItem`, retrying what DynamoDB
    /// leaves unprocessed (throttling) a few times with backoff. Not atomic: a caller whose
    /// items must stay consistent says what a partial write leaves behind and who cleans
    /// it up. Half the write units of a transaction on AWS, and about twice its rate on
    /// DynamoDB Local.
    pub(crate) async fn batch_write(
        &self,
        requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
        context: &str,
    ) -> Result<(), StoreError> {
        const ATTEMPTS: u32 = 4;
        let mut pending = requests;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let out = self
                .db
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| unavailable(context, e.into_service_error()))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "{context}: {} writes unprocessed after {ATTEMPTS} attempts",
            pending.len()
        )))
    }
}

/// [`decode_cursor`] for a listing of one kind of item under `partition` (`pk`): the key
/// must be that partition's and name one item `of_kind` (`pk` and `sk`, nothing else).
pub(crate) fn decode_item_cursor(
    raw: &str,
    partition: &str,
    of_kind: impl Fn(keys::ItemKey<'_>) -> bool,
) -> Result<Item, StoreError> {
    let start = decode_cursor(raw, "pk", partition)?;
    if start.len() == 2 && of_kind(keys::parse_item(&start)) {
        Ok(start)
    } else {
        Err(StoreError::InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_roundtrip_only_for_their_own_partition() {
        let key = keys::chat("a", "b").item();
        let (own, other) = (keys::stream_pk("a"), keys::stream_pk("other"));
        let c = encode_cursor(Some(&key)).expect("cursor");
        assert_eq!(decode_cursor(&c, "pk", &own).expect("valid"), key);
        assert!(matches!(
            decode_cursor(&c, "pk", &other),
            Err(StoreError::InvalidCursor)
        ));
        assert!(matches!(
            decode_cursor("not base64!", "pk", &own),
            Err(StoreError::InvalidCursor)
        ));
        assert!(matches!(
            decode_cursor(&URL_SAFE_NO_PAD.encode("[1]"), "pk", &own),
            Err(StoreError::InvalidCursor)
        ));
    }
}
