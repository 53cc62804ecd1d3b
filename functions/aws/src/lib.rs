//! rill-aws: Rill's adapters to AWS.
//!
//! - [`config`]: settings from the environment (`TABLE_NAME`, `BUCKET_NAME`,
//!   `AWS_ENDPOINT_URL` for moto or LocalStack) and SDK clients built from them once.
//! - [`keys`]: every pk/sk and GSI key shape of the single table, and their parsing: the
//!   only place item prefixes are written down.
//! - [`store`]: [`store::DynamoStore`], the single-table DynamoDB implementation of
//!   `rill-core`'s storage traits (with [`streams`], [`channels`], [`chat`], [`questions`], [`metrics`],
//!   [`realtime`] and [`fleet`]).
//! - [`changes`]: table-stream records (Lambda's DynamoDB event) decoded into domain
//!   [`changes::Change`]s for `events-fanout`.
//! - [`table_stream`]: reading the table's stream shard by shard as Lambda's event source
//!   mapping does, for the local gateway.
//! - [`bootstrap`]: idempotent creation of the table and bucket for local stacks and tests
//!   (on AWS the SAM template creates them).
//! - [`objects`]: reading media objects from S3 (the local CDN stand-in).
//! - [`media_bucket`]: [`media_bucket::S3MediaBucket`], the S3 implementation of
//!   `rill-core`'s media bucket port (headers per object kind, retries).
//! - [`fleet`]: the ingest node registry and stream leases on the same table.
//! - [`ingest`]: every AWS adapter of an ingest node, built once at start.
//! - [`ecs`]: the ingest node's ECS task: discovery (task id, cluster, service, private and
//!   public IPv4) and [`ecs::EcsHost`] (scale-in protection, the utilisation metric), with
//!   SigV4-signed plain HTTP instead of more SDK crates.
//! - [`prewarm`]: pre-warming the ingest fleet before scheduled streams: EventBridge
//!   Scheduler one-time schedules and the ingest service's minimum (Application Auto
//!   Scaling), over the same signed plain HTTP as [`ecs`].
//! - [`schedules`]: EventBridge Scheduler one-time schedules (what [`prewarm`] and
//!   [`reminders`] write); [`reminders`]: a scheduled stream's reminders.
//! - [`realtime`]: connections, moderation, rate limits and Q&A on the same table.
//! - [`notify`]: frames to WebSocket connections through the Management API.
//! - [`shards`]: large fan-outs split into shards run by asynchronous Lambda invocations of
//!   `events-fanout-shard` (the same signed plain HTTP as [`ecs`]).
//!
//! Invariants: every status change is a conditional write; multi-item changes are
//! transactions; no stream key, only its SHA-256, is ever written; backend error details go
//! to logs, never into values a client could see.

pub mod analytics;
pub mod bootstrap;
pub mod changes;
pub mod channels;
pub mod chat;
pub mod config;
pub mod ecs;
pub mod event_bus;
pub mod feed;
pub mod fleet;
pub mod ingest;
pub mod invoke;
pub mod keys;
pub mod media_bucket;
pub mod media_signing;
pub mod metrics;
pub mod notifications;
pub mod notify;
pub mod objects;
pub mod prewarm;
pub mod questions;
pub mod realtime;
pub mod reminders;
pub mod schedules;
pub mod shards;
pub mod store;
pub mod streams;
pub mod table_stream;
pub mod webhooks;

pub use aws_config::SdkConfig;
pub use config::{AwsSettings, dynamodb_client, s3_client, sdk_config};

/// Failure of an AWS call outside the store traits (bootstrap, objects).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AwsError(pub String);

impl AwsError {
    pub(crate) fn from_sdk<E: std::error::Error + 'static>(context: &str, e: E) -> AwsError {
        AwsError(format!(
            "{context}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        ))
    }
}
