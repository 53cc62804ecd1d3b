//! The AWS side of an ingest node, built once at start: the table (streams, samples,
//! registry, leases), the media bucket, and on ECS the task it runs as and the ECS host
//! (scale-in protection, utilisation metric). The node names none of the SDK's types.

use std::sync::Arc;

use rill_core::fleet::{NoHost, NodeHost};

use crate::AwsSettings;
use crate::ecs::{EcsEnv, EcsError, EcsHost, MetricDimensions, SignedClient, TaskInfo};
use crate::media_bucket::S3MediaBucket;
use crate::store::DynamoStore;

/// What [`connect`] built.
pub struct IngestAdapters {
    pub store: Arc<DynamoStore>,
    pub media: Arc<S3MediaBucket>,
    /// [`EcsHost`] when started by an ECS service, [`NoHost`] elsewhere.
    pub host: Arc<dyn NodeHost>,
    /// The ECS task the node runs as (`None` off ECS).
    pub task: Option<TaskInfo>,
}

impl std::fmt::Debug for IngestAdapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestAdapters")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

/// Builds the clients; on ECS (`ecs.metadata_uri` set) also discovers the task, failing
/// if it cannot: a node that does not know its own addresses cannot serve WebRTC.
pub async fn connect(settings: &AwsSettings, ecs: &EcsEnv) -> Result<IngestAdapters, EcsError> {
    let sdk = crate::sdk_config(settings).await;
    let store = Arc::new(DynamoStore::new(
        crate::dynamodb_client(&sdk),
        settings.table_name.clone(),
    ));
    // One attempt per put (plus the SDK's own retries): the node's upload queue retries
    // failed objects itself, in order, for as long as the bucket is down.
    let media = Arc::new(
        S3MediaBucket::new(crate::s3_client(&sdk), settings.bucket_name.clone())
            .with_retries(1, std::time::Duration::ZERO),
    );
    let mut adapters = IngestAdapters {
        store,
        media,
        host: Arc::new(NoHost),
        task: None,
    };
    if ecs.metadata_uri.is_none() {
        return Ok(adapters);
    }
    let aws = SignedClient::new(&sdk)?;
    let task = crate::ecs::discover_task(ecs, &aws).await?;
    if let (Some(agent), Some(dimensions)) = (
        ecs.agent_uri.clone(),
        task.as_ref().and_then(MetricDimensions::from_task),
    ) {
        adapters.host = Arc::new(EcsHost::new(aws, agent, dimensions));
    } else {
        tracing::warn!(
            "not started by an ECS service: no scale-in protection, no utilisation metric"
        );
    }
    adapters.task = task;
    Ok(adapters)
}
