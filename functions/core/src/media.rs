//! The media bucket port: where the ingest node writes HLS objects, and the header rules
//! every object kind follows. The S3 implementation lives in `rill-aws`.
//!
//! Object layout (DESIGN.md, "S3"): `live/{streamId}/master.m3u8`,
//! `live/{streamId}/{rendition}/index.m3u8`, its init and media segments, and
//! `live/{streamId}/thumb.jpg`. No stream key ever appears in an object key.
//!
//! Header rules ([`ObjectKind`]): playlists are fresh for browsers (`max-age=0`: a player
//! polling every second must not be handed its own cached copy) and cached for a second by
//! the CDN (`s-maxage=1`, which CloudFront prefers, so a crowd of viewers costs the bucket one
//! GET a second); init and media segments never change once written (`immutable`).
//!
//! Contract every implementation keeps:
//! - `put` stores the whole body under the key with the kind's Content-Type and
//!   Cache-Control, replacing any earlier object;
//! - transient failures are retried inside `put`; an error means the object may be missing
//!   and the caller decides what that costs (a lost segment, a playlist that is rewritten
//!   on the next segment anyway);
//! - `put` returns only once the object is readable, so a caller that awaits a segment's
//!   `put` before its playlist's never publishes a playlist naming a missing segment.

use async_trait::async_trait;
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
            // Refreshed every few seconds while live; a stale one for a moment is harmless.
            ObjectKind::Thumbnail => "max-age=5",
        }
    }
}

/// The key prefix of a stream's live objects: `live/{streamId}`.
pub fn live_prefix(stream_id: &str) -> String {
    format!("live/{stream_id}")
}

/// The key prefix of a members-only stream's objects: `members/{streamId}`. The CDN serves
/// this prefix only with a signed grant (cookie or query) for the one stream.
pub fn members_prefix(stream_id: &str) -> String {
    format!("members/{stream_id}")
}

/// Where a stream's media lives: [`members_prefix`] for members-only streams, else
/// [`live_prefix`]. Fixed once the stream has media (a visibility change across the
/// members line is refused from then on), so the objects never move.
pub fn media_prefix(stream_id: &str, members_only: bool) -> String {
    if members_only {
        members_prefix(stream_id)
    } else {
        live_prefix(stream_id)
    }
}

/// A `put` that still failed after the implementation's retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upload of {key} failed after {attempts} attempts: {reason}")]
pub struct MediaBucketError {
    pub key: String,
    pub attempts: u32,
    /// The last failure, for logs (backend details; never shown to a client).
    pub reason: String,
}

/// Writes media objects (see the module docs for the contract), and reads back what a
/// node taking over a stream needs (its playlists; whether a name is taken).
#[async_trait]
pub trait MediaBucket: Send + Sync {
    async fn put(&self, key: &str, body: Bytes, kind: ObjectKind) -> Result<(), MediaBucketError>;
    /// The object's body; `None` when there is no such object.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, MediaBucketError>;
    /// Whether an object exists under `key` (without reading it).
    async fn exists(&self, key: &str) -> Result<bool, MediaBucketError>;
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

    #[test]
    fn live_objects_sit_under_the_stream_id() {
        assert_eq!(live_prefix("01J0ABC"), "live/01J0ABC");
    }
}
