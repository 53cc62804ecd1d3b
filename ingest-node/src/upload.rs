//! One stream's view of the media bucket: objects named relative to `live/{streamId}/`.
//!
//! The headers per object kind and the retries belong to the bucket
//! ([`rill_core::media::MediaBucket`], implemented on S3 by `rill-aws`); this wrapper only
//! fixes the stream's prefix, so no caller can write outside its own stream's objects.
//! Callers keep the order that matters — a segment is stored before any playlist that
//! names it — by awaiting segment uploads before playlist uploads.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
pub use rill_core::media::{MediaBucket, MediaBucketError as UploadError, ObjectKind};

/// Puts objects under `live/{streamId}/`.
#[derive(Clone)]
pub struct Uploader {
    bucket: Arc<dyn MediaBucket>,
    prefix: String,
}

impl fmt::Debug for Uploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uploader")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// The uploader of a public or unlisted stream (`live/{streamId}/`).
    pub fn new(bucket: Arc<dyn MediaBucket>, stream_id: &str) -> Uploader {
        Uploader {
            bucket,
            prefix: rill_core::media::live_prefix(stream_id),
        }
    }

    /// The uploader of `stream`: `members/{streamId}/` when it is members-only (served only
    /// with a signed grant), `live/{streamId}/` otherwise.
    pub fn for_stream(bucket: Arc<dyn MediaBucket>, stream: &rill_core::Stream) -> Uploader {
        let members = stream.visibility == rill_core::stream::Visibility::Members;
        Uploader {
            bucket,
            prefix: rill_core::media::media_prefix(&stream.id, members),
        }
    }

    /// `live/{streamId}` or `members/{streamId}`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Stores `name` (relative to the stream's prefix), retried by the bucket on failure.
    pub async fn put(&self, name: &str, body: Bytes, kind: ObjectKind) -> Result<(), UploadError> {
        self.bucket.put(&self.key(name), body, kind).await
    }

    /// `name`'s body, `None` when absent (a takeover reading playlists back).
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, UploadError> {
        self.bucket.get(&self.key(name)).await
    }

    /// Whether `name` is taken.
    pub async fn exists(&self, name: &str) -> Result<bool, UploadError> {
        self.bucket.exists(&self.key(name)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records what was put (pure logic test: the S3 side is tested in rill-aws).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, ObjectKind)>>);

    #[async_trait::async_trait]
    impl MediaBucket for Recorder {
        async fn put(&self, key: &str, _: Bytes, kind: ObjectKind) -> Result<(), UploadError> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((key.to_owned(), kind));
            Ok(())
        }
        async fn get(&self, _: &str) -> Result<Option<Bytes>, UploadError> {
            Ok(None)
        }
        async fn exists(&self, _: &str) -> Result<bool, UploadError> {
            Ok(false)
        }
    }

    #[tokio::test]
    async fn objects_are_stored_under_the_streams_live_prefix() {
        let bucket = Arc::new(Recorder::default());
        let uploader = Uploader::new(bucket.clone(), "s1");
        uploader
            .put("720p/index.m3u8", Bytes::new(), ObjectKind::Playlist)
            .await
            .expect("recorded");
        assert_eq!(
            *bucket.0.lock().expect("not poisoned"),
            vec![("live/s1/720p/index.m3u8".to_owned(), ObjectKind::Playlist)]
        );
    }
}
