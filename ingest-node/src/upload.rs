//! Uploads to S3 with the headers a CDN needs, retried with backoff.
//!
//! Playlists are fresh for browsers (`max-age=0`: a player polling every second must not be
//! handed its own cached copy) and cached for a second by the CDN (`s-maxage=1`, which
//! CloudFront prefers, so a crowd of viewers costs the bucket one GET a second); segments and init
//! segments never change once written (`immutable`). Callers keep the order that matters —
//! a segment is stored before any playlist that names it — by awaiting segment uploads
//! before playlist uploads.

use std::time::Duration;

use bytes::Bytes;

/// What an object is, which decides its Content-Type and Cache-Control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Playlist,
    Init,
    Segment,
    Thumbnail,
}

impl ObjectKind {
    pub fn content_type(self) -> &'static str {
        match self {
            ObjectKind::Playlist => "application/vnd.apple.mpegurl",
            ObjectKind::Init => "video/mp4",
            ObjectKind::Segment => "video/iso.segment",
            ObjectKind::Thumbnail => "image/jpeg",
        }
    }

    pub fn cache_control(self) -> &'static str {
        match self {
            ObjectKind::Playlist => "max-age=0, s-maxage=1",
            ObjectKind::Init | ObjectKind::Segment => "max-age=31536000, immutable",
            ObjectKind::Thumbnail => "max-age=5",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("upload of {key} failed after {attempts} attempts: {last}")]
pub struct UploadError {
    pub key: String,
    pub attempts: u32,
    pub last: String,
}

/// Puts objects under `live/{streamId}/`.
#[derive(Debug, Clone)]
pub struct Uploader {
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    attempts: u32,
}

impl Uploader {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>, stream_id: &str) -> Uploader {
        Uploader {
            s3,
            bucket: bucket.into(),
            prefix: format!("live/{stream_id}"),
            attempts: 5,
        }
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Stores `name` (relative to the stream's prefix); retries 100 ms, 200 ms, ... on failure.
    pub async fn put(&self, name: &str, body: Bytes, kind: ObjectKind) -> Result<(), UploadError> {
        let key = self.key(name);
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            let result = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type(kind.content_type())
                .cache_control(kind.cache_control())
                .body(body.clone().into())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) => {
                    last = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                    tracing::warn!(%key, attempt, error = %last, "upload failed; retrying");
                    if attempt < self.attempts {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        Err(UploadError {
            key,
            attempts: self.attempts,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_are_short_lived_and_segments_immutable() {
        assert_eq!(
            ObjectKind::Playlist.cache_control(),
            "max-age=0, s-maxage=1"
        );
        assert!(ObjectKind::Segment.cache_control().contains("immutable"));
        assert!(ObjectKind::Init.cache_control().contains("immutable"));
        assert_eq!(
            ObjectKind::Playlist.content_type(),
            "application/vnd.apple.mpegurl"
        );
    }
}
