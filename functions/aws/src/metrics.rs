//! DynamoDB implementation of the metrics store: `STREAM#{id}` / `METRIC#{ts}`, one
//! quality sample every 5 s per live stream, kept 7 days (`ttl`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use rill_core::store::StoreError;
use rill_core::time::{self, Timestamp};

use crate::realtime::DAY_SECONDS;
use crate::store::{DynamoStore, from_item, s, stream_pk, to_item, unavailable};

impl DynamoStore {
    /// True when a key exists; used for presence checks that need no attributes.
    pub async fn has_item(&self, pk: &str, sk: &str) -> Result<bool, StoreError> {
        self.exists(pk.to_owned(), sk.to_owned()).await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SampleItem {
    pk: String,
    sk: String,
    entity: String,
    ttl: i64,
    #[serde(flatten)]
    sample: rill_core::quality::QualitySample,
}

#[async_trait]
impl rill_core::store::MetricsStore for DynamoStore {
    async fn put_sample(
        &self,
        sample: &rill_core::quality::QualitySample,
    ) -> Result<(), StoreError> {
        let item = to_item(&SampleItem {
            pk: stream_pk(&sample.stream_id),
            sk: format!("METRIC#{}", time::format(&sample.at)),
            entity: "metric".into(),
            ttl: sample.at.timestamp() + 7 * DAY_SECONDS,
            sample: sample.clone(),
        })?;
        self.put_unconditional(item, "put sample").await
    }

    async fn samples(
        &self,
        stream_id: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<rill_core::quality::QualitySample>, StoreError> {
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(stream_pk(stream_id)))
            .expression_attribute_values(":from", s(format!("METRIC#{}", time::format(&from))))
            .expression_attribute_values(":to", s(format!("METRIC#{}", time::format(&to))))
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| unavailable("query samples", e.into_service_error()))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<SampleItem>(i).map(|s| s.sample))
            .collect()
    }
}
