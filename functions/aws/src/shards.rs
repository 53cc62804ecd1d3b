//! [`LambdaShards`]: `rill-core`'s [`ShardDispatcher`] on AWS Lambda. A shard becomes an
//! asynchronous invocation of the shard worker (`events-fanout-shard`):
//! `POST /2015-03-31/functions/{name}/invocations` with `X-Amz-Invocation-Type: Event`,
//! through [`crate::invoke::AsyncInvoker`].
//!
//! Environment (read by [`LambdaShards::from_lookup`]): `FANOUT_SHARD_FUNCTION`, the
//! worker's name or ARN; unset means sharding is off and every fan-out stays in-process.
//! `AWS_ENDPOINT_URL_LAMBDA` (or `AWS_ENDPOINT_URL`) acts through the `SdkConfig`: locally
//! it is the gateway, which serves the Invoke API for the template's functions.
//!
//! Invariants:
//! - no invocation payload exceeds [`MAX_EVENT_PAYLOAD`]: a larger shard is split by its
//!   connection ids ([`split_to_fit`]) and the parts are invoked one after another; if one
//!   part fails, the whole shard is reported failed (the caller delivers it itself, so a
//!   connection may get a frame twice in that rare case, never zero times);
//! - `Ok` means Lambda queued the event (HTTP 202), not that anything was delivered.

use aws_config::SdkConfig;
use rill_core::fanout::{DispatchError, FanoutShard, ShardDispatcher, split_to_fit};

use crate::invoke::AsyncInvoker;
pub use crate::invoke::MAX_EVENT_PAYLOAD;

/// Asynchronous invocations of the shard worker.
#[derive(Debug, Clone)]
pub struct LambdaShards {
    invoker: AsyncInvoker,
}

impl LambdaShards {
    pub fn new(invoker: AsyncInvoker) -> LambdaShards {
        LambdaShards { invoker }
    }

    /// The dispatcher named by `FANOUT_SHARD_FUNCTION`, `None` when it is unset or empty.
    pub fn from_lookup(
        sdk: &SdkConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<LambdaShards>, String> {
        Ok(AsyncInvoker::from_lookup(sdk, "FANOUT_SHARD_FUNCTION", lookup)?.map(LambdaShards::new))
    }

    pub fn function(&self) -> &str {
        self.invoker.function()
    }
}

#[async_trait::async_trait]
impl ShardDispatcher for LambdaShards {
    async fn dispatch(&self, shard: FanoutShard) -> Result<(), DispatchError> {
        for part in split_to_fit(shard, MAX_EVENT_PAYLOAD)? {
            let payload =
                serde_json::to_vec(&part).map_err(|e| DispatchError::Failed(e.to_string()))?;
            self.invoker
                .invoke(payload)
                .await
                .map_err(DispatchError::Failed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_core::fanout::payload_bytes;
    use serde_json::json;

    /// The largest frame the Management API takes is 128 KiB; chat frames are about 1 KB
    /// and API Gateway connection ids 16 characters.
    #[test]
    fn a_shard_never_exceeds_the_invoke_payload_limit() {
        for (ids, frame_bytes, frames) in [(1_000, 1_000, 3), (20_000, 500, 1), (50, 60_000, 4)] {
            let shard = FanoutShard {
                stream_id: "01JSTREAM".into(),
                frames: (0..frames)
                    .map(|i| json!({"type": "stream:chat-message", "i": i, "data": "x".repeat(frame_bytes)}))
                    .collect(),
                connection_ids: (0..ids).map(|i| format!("Abc{i:012}=")).collect(),
            };
            let parts = split_to_fit(shard.clone(), MAX_EVENT_PAYLOAD).expect("fits");
            assert!(
                parts.iter().all(|p| payload_bytes(p) <= MAX_EVENT_PAYLOAD),
                "{ids} ids x {frames} frames of {frame_bytes} B"
            );
            let ids: Vec<String> = parts.into_iter().flat_map(|p| p.connection_ids).collect();
            assert_eq!(ids, shard.connection_ids);
        }
    }

    #[test]
    fn the_function_comes_from_fanout_shard_function() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let sdk = rt.block_on(crate::sdk_config(&crate::AwsSettings::from_lookup(|_| {
            None
        })));
        assert!(
            LambdaShards::from_lookup(&sdk, |_| None)
                .expect("ok")
                .is_none()
        );
        let on = LambdaShards::from_lookup(&sdk, |n| {
            (n == "FANOUT_SHARD_FUNCTION").then(|| "events-fanout-shard".to_owned())
        })
        .expect("ok")
        .expect("on");
        assert_eq!(on.function(), "events-fanout-shard");
    }
}
