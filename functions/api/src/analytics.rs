//! The table's change stream folded into per-stream minute buckets
//! (`rill_core::analytics`). It runs in `events-presence`, on the same batches, alongside
//! the presence announcements ([`crate::presence::handle`]): a mapping of its own would be
//! a fourth reader of each shard of the table's stream, where DynamoDB Streams advises two
//! (readers share 5 `GetRecords` calls per second per shard, and throttling would delay
//! `events-fanout`, i.e. chat). That mapping is filtered on AWS to the audience's items:
//! `CONN#`, `SESSION#`, `VIEWER#`, `CHAT#`, `REACT#` and `META`.
//!
//! Per batch: decode the facts (`rill_aws::changes::analytics`, user agents parsed here,
//! [`crate::uap`]), fold them into one delta per stream-minute, and add each stream's
//! deltas to its buckets (one conditional `UpdateItem` per bucket, more only for a bucket
//! whose update would pass DynamoDB's expression limit), streams concurrently. The write
//! cost is therefore per stream-minute per batch, whatever the number of viewers and
//! heartbeats: the mapping polls each shard at most 4 times a second, so at most 240
//! bucket writes per stream-minute (14,400 per stream-hour); under a crowd presence's
//! pacing holds batches to about one a second (3,600 per stream-hour). Compare the
//! heartbeats themselves: 10,000 viewers at one per 10 s are 3.6 million writes an hour. A store failure fails the batch, which Lambda
//! retries (bisecting); a batch applied already is skipped bucket by bucket.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use futures_util::future::try_join_all;
use rill_aws::changes::analytics::facts;
use rill_core::analytics::{Minute, fold};

use crate::{ApiError, App};

/// Folds one batch into the buckets. Decoding and folding are CPU work (and a process's
/// first batch compiles the user-agent parsers): they run on a blocking thread, so the
/// presence announcements awaited beside this never wait for them.
pub async fn fold_batch(app: &Arc<App>, event: Arc<StreamEvent>) -> Result<(), ApiError> {
    // Shared with the presence work on the same batch, not copied (up to 5,000 records).
    let (folded, positions) = tokio::task::spawn_blocking(move || {
        let (facts, positions) = facts(&event.records, &crate::uap::classify);
        (fold(facts), positions)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("analytics fold: {e}")))?;
    let mut per_stream: std::collections::BTreeMap<String, Vec<Minute>> = Default::default();
    for ((stream_id, _), minute) in folded {
        per_stream.entry(stream_id).or_default().push(minute);
    }
    let writes = per_stream.iter().map(|(stream_id, minutes)| {
        let position = positions.get(stream_id).cloned().unwrap_or_default();
        let app = app.clone();
        async move {
            app.analytics
                .add_minutes(stream_id, minutes, &position)
                .await
        }
    });
    try_join_all(writes).await?;
    Ok(())
}
