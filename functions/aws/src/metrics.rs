//! DynamoDB implementation of the metrics store: one quality sample every 5 s per live
//! stream, in the stream's partition sorted by time (key shape in [`crate::keys`]), kept
//! 7 days (`ttl`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use rill_core::store::StoreError;
use rill_core::time::Timestamp;

use crate::keys;
use crate::realtime::DAY_SECONDS;
use crate::store::{DynamoStore, from_item, s, to_item, unavailable};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SampleItem {
    pk: String,
    sk: String,
    entity: String,
    ttl: i64,
    #[serde(flatten)]
    pub(crate) sample: rill_core::quality::QualitySample,
}

impl SampleItem {
    pub(crate) fn new(sample: &rill_core::quality::QualitySample) -> SampleItem {
        let key = keys::metric(&sample.stream_id, &sample.at);
        SampleItem {
            pk: key.pk,
            sk: key.sk,
            entity: "metric".into(),
            ttl: sample.at.timestamp() + 7 * DAY_SECONDS,
            sample: sample.clone(),
        }
    }
}

#[async_trait]
impl rill_core::store::MetricsStore for DynamoStore {
    async fn put_sample(
        &self,
        sample: &rill_core::quality::QualitySample,
    ) -> Result<(), StoreError> {
        let item = to_item(&SampleItem::new(sample))?;
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
            .expression_attribute_values(":pk", s(keys::stream_pk(stream_id)))
            .expression_attribute_values(":from", s(keys::metric(stream_id, &from).sk))
            .expression_attribute_values(":to", s(keys::metric(stream_id, &to).sk))
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
