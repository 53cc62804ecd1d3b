//! Storage traits the handlers depend on. The DynamoDB implementation lives in `rill-aws`.
//!
//! Contract every implementation keeps:
//! - a status change is one conditional write: of two concurrent commands at most one
//!   moves the stream, the other gets [`StoreError::Conflict`];
//! - a failed call writes nothing (multi-item writes are transactions);
//! - counters change by atomic increments, never read-modify-write;
//! - cursors are opaque to callers and a forged or foreign cursor is
//!   [`StoreError::InvalidCursor`], not a backend error.

use async_trait::async_trait;

use crate::chat::{ChatMessage, Reaction};
use crate::key::KeyHash;
use crate::stream::{Command, Stream, StreamStatus};
use crate::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A conditional write lost: the stream is not (any more) in a status the command
    /// accepts, or it was edited concurrently.
    #[error("conflict: stream is {current:?}")]
    Conflict {
        current: Option<StreamStatus>,
        command: Option<Command>,
    },
    #[error("invalid cursor")]
    InvalidCursor,
    /// The backend failed; the message is for logs, never for clients.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// One page of a listing; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The public listings of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Live now, most recently started first.
    Live,
    /// Scheduled, soonest first.
    Scheduled,
    /// Ended, most recently ended first.
    Past,
}

impl Listing {
    pub fn status(self) -> StreamStatus {
        match self {
            Listing::Live => StreamStatus::Live,
            Listing::Scheduled => StreamStatus::Scheduled,
            Listing::Past => StreamStatus::Ended,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub listing: Listing,
    /// `None`: across all channels.
    pub channel_id: Option<String>,
    pub limit: u32,
    pub cursor: Option<String>,
}

#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Stores a new stream and the hash of its key. Fails with `Conflict` if the id exists.
    async fn create_stream(&self, stream: &Stream, key: &KeyHash) -> Result<(), StoreError>;

    /// Strongly consistent read.
    async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError>;

    /// Applies a status command with a conditional write and returns the stream as stored
    /// afterwards. A no-op command (start on `preparing`) returns the stream unchanged.
    async fn apply(&self, id: &str, command: Command, now: Timestamp)
    -> Result<Stream, StoreError>;

    /// Writes the owner-editable fields of `updated` if the stored version is still
    /// `updated.version - 1`; otherwise `Conflict`.
    async fn update_stream(&self, updated: &Stream) -> Result<Stream, StoreError>;

    /// Replaces the stored key hash: the old key stops working at once.
    async fn rotate_key(&self, id: &str, key: &KeyHash, now: Timestamp) -> Result<(), StoreError>;

    /// The stream whose current key hashes to `key`, if any.
    async fn stream_for_key(&self, key: &KeyHash) -> Result<Option<Stream>, StoreError>;

    async fn list_streams(&self, query: &ListQuery) -> Result<Page<Stream>, StoreError>;
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Stores the message and counts it on the stream, atomically. Fails with `NotFound`
    /// when the stream does not exist.
    async fn post_message(&self, message: &ChatMessage) -> Result<(), StoreError>;

    /// Oldest first; deleted messages are left out.
    async fn list_messages(
        &self,
        stream_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<ChatMessage>, StoreError>;

    async fn get_message(
        &self,
        stream_id: &str,
        message_id: &str,
    ) -> Result<Option<ChatMessage>, StoreError>;

    /// Marks the message deleted and drops its content (and its pin).
    async fn delete_message(
        &self,
        stream_id: &str,
        message_id: &str,
    ) -> Result<ChatMessage, StoreError>;

    /// Pins the message; a previously pinned message of the stream is unpinned in the same
    /// transaction, so a stream has at most one pin.
    async fn pin_message(
        &self,
        stream_id: &str,
        message_id: &str,
    ) -> Result<ChatMessage, StoreError>;

    /// Stores the reaction (with a TTL) and counts it on the stream, atomically.
    async fn add_reaction(&self, reaction: &Reaction) -> Result<(), StoreError>;
}
