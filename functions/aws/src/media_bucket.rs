//! [`S3MediaBucket`]: the S3 implementation of `rill-core`'s media bucket port.
//!
//! Reads (`get`, `exists`) are for a node taking over a stream: they are not retried here,
//! the caller decides (a takeover that cannot read the playlists refuses the publish).
//!
//! Every object gets its kind's Content-Type and Cache-Control (the rules live in
//! [`rill_core::media::ObjectKind`], not here). A failed `PutObject` is retried after
//! 100 ms, 200 ms, 400 ms, ... (five attempts by default) on top of the SDK's own retries;
//! a caller with a retrying queue of its own (the ingest node's outbox, which keeps the
//! order of a stream's objects through an outage) asks for one attempt
//! ([`S3MediaBucket::with_retries`]).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rill_core::media::{MediaBucket, MediaBucketError, ObjectKind};

/// Writes media objects into one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3MediaBucket {
    s3: aws_sdk_s3::Client,
    bucket: String,
    attempts: u32,
    first_delay: Duration,
}

impl S3MediaBucket {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3MediaBucket {
        S3MediaBucket {
            s3,
            bucket: bucket.into(),
            attempts: 5,
            first_delay: Duration::from_millis(100),
        }
    }

    /// Overrides the retry schedule: `attempts` tries in all (at least one), waiting
    /// `first_delay` after the first failure and twice as long after each further one.
    pub fn with_retries(mut self, attempts: u32, first_delay: Duration) -> S3MediaBucket {
        self.attempts = attempts.max(1);
        self.first_delay = first_delay;
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl MediaBucket for S3MediaBucket {
    async fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> Result<(), MediaBucketError> {
        let mut delay = self.first_delay;
        let mut reason = String::new();
        for attempt in 1..=self.attempts {
            let result = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(kind.content_type())
                .cache_control(kind.cache_control())
                // Bytes: each attempt shares the buffer instead of copying it.
                .body(body.clone().into())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) => {
                    reason = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                    if attempt < self.attempts {
                        tracing::warn!(%key, attempt, error = %reason, "upload failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        Err(MediaBucketError {
            key: key.to_owned(),
            attempts: self.attempts,
            reason,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, MediaBucketError> {
        let failed = |reason: String| MediaBucketError {
            key: key.to_owned(),
            attempts: 1,
            reason,
        };
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out
                .body
                .collect()
                .await
                .map(|b| Some(b.into_bytes()))
                .map_err(|e| failed(e.to_string())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(failed(
                aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            )),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, MediaBucketError> {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(MediaBucketError {
                key: key.to_owned(),
                attempts: 1,
                reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client for an endpoint where nothing listens, without the SDK's own retries, so
    /// every attempt counted is one of ours.
    fn unreachable_client() -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:1")
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    #[tokio::test]
    async fn a_put_that_keeps_failing_reports_the_key_after_every_attempt() {
        let bucket = S3MediaBucket::new(unreachable_client(), "media")
            .with_retries(3, Duration::from_millis(1));
        let err = bucket
            .put(
                "live/s1/720p/seg-000001.m4s",
                Bytes::from_static(b"x"),
                ObjectKind::Segment,
            )
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(err.key, "live/s1/720p/seg-000001.m4s");
        assert_eq!(err.attempts, 3);
        assert!(!err.reason.is_empty());
    }
}
