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

use crate::channel::{Channel, ChannelRole, ListScope, Membership};
use crate::chat::{ChatMessage, Reaction};
use crate::key::KeyHash;
use crate::realtime::{Bucket, Connection, EndedView, Question, RateLimit, Refusal, Standing};
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
    /// A create whose id is taken (a channel id someone already holds).
    #[error("already exists")]
    AlreadyExists,
    /// The write is not allowed for this caller (e.g. a channel owned by someone else).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
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
    /// Which non-public streams the caller may see listed (a filter: a page may hold fewer
    /// than `limit` items and still have a next one).
    pub scope: ListScope,
}

#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Stores a new stream and the hash of its key and counts it on its channel, if its
    /// owner may stream there (`crate::channel::may_stream`). A channel id nobody holds
    /// yet becomes a channel owned by the stream's owner ([`Channel::implicit`]), in the
    /// same transaction. `Forbidden` when the owner holds no broadcasting role in an
    /// existing channel (also when it was revoked or the channel claimed concurrently).
    async fn create_stream(&self, stream: &Stream, key: &KeyHash) -> Result<(), StoreError>;

    /// Strongly consistent read.
    async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError>;

    /// Applies a status command with a conditional write and returns the stream as stored
    /// afterwards. A no-op command (start on `preparing`) returns the stream unchanged.
    async fn apply(&self, id: &str, command: Command, now: Timestamp)
    -> Result<Stream, StoreError>;

    /// Writes the owner-editable fields of `updated` if the stored version is still
    /// `updated.version - 1`; otherwise `Conflict`. For a `scheduled` stream that includes
    /// its start time (and its place in the scheduled listings), and the write is also
    /// conditional on the stream still being `scheduled`.
    async fn update_stream(&self, updated: &Stream) -> Result<Stream, StoreError>;

    /// Replaces the stored key hash: the old key stops working at once.
    async fn rotate_key(&self, id: &str, key: &KeyHash, now: Timestamp) -> Result<(), StoreError>;

    /// The stream whose current key hashes to `key`, if any.
    async fn stream_for_key(&self, key: &KeyHash) -> Result<Option<Stream>, StoreError>;

    async fn list_streams(&self, query: &ListQuery) -> Result<Page<Stream>, StoreError>;
}

/// Channels and memberships (`crate::channel` holds the rules; this port only stores).
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Stores a new channel owned by `channel.owner_id`; `AlreadyExists` if the id is taken.
    async fn create_channel(&self, channel: &Channel) -> Result<(), StoreError>;

    /// Strongly consistent read.
    async fn get_channel(&self, id: &str) -> Result<Option<Channel>, StoreError>;

    /// The channel and the user's role in it (`Owner` for its owner), in one read; `None`
    /// when nobody holds the id.
    async fn channel_with_role(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<(Channel, Option<ChannelRole>)>, StoreError>;

    /// The user's role in the channel; `None` also when there is no such channel.
    async fn channel_role(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<ChannelRole>, StoreError> {
        Ok(self
            .channel_with_role(channel_id, user_id)
            .await?
            .and_then(|(_, role)| role))
    }

    /// Sets (or with `None` removes) a user's role. Never touches the owner: the write is
    /// conditional on the channel existing (`NotFound`) and `user_id` not being its owner
    /// (`Forbidden`).
    async fn set_member(
        &self,
        channel_id: &str,
        user_id: &str,
        role: Option<ChannelRole>,
    ) -> Result<(), StoreError>;

    /// Members holding a granted role (the owner is on the channel itself), by user id.
    async fn members(
        &self,
        channel_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Membership>, StoreError>;
}

/// The ordered event feed of each stream ([`crate::feed`]).
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Appends the entries (in order, positions not decreasing) that come after the last
    /// appended position, numbering them on from the stream's last sequence number; what
    /// was appended before (a redelivered batch) is skipped. Returns the numbers given.
    async fn append(
        &self,
        stream_id: &str,
        entries: &[crate::feed::FeedEntry],
    ) -> Result<Vec<u64>, StoreError>;

    /// Events numbered after `after`, in order, at most `limit`.
    async fn read(
        &self,
        stream_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<crate::feed::SequencedEvent>, StoreError>;

    /// The stream's last sequence number (0: nothing appended yet).
    async fn last_seq(&self, stream_id: &str) -> Result<u64, StoreError>;
}

/// Users' notification lists ([`crate::notification`]).
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Adds each notification to its user's list (the same id again replaces it).
    async fn notify(
        &self,
        notes: &[(String, crate::notification::Notification)],
    ) -> Result<(), StoreError>;

    /// The user's notifications, newest first; only unread ones with `unread_only`.
    async fn notifications(
        &self,
        user_id: &str,
        limit: u32,
        cursor: Option<&str>,
        unread_only: bool,
    ) -> Result<Page<crate::notification::Notification>, StoreError>;

    /// Marks the user's notifications with these ids read; returns how many it found.
    async fn mark_read(&self, user_id: &str, ids: &[String]) -> Result<u32, StoreError>;

    /// Registers an open notifications socket of the user (a WebSocket connection
    /// without a stream), kept until it closes or `expires_at`.
    async fn open_socket(
        &self,
        user_id: &str,
        connection_id: &str,
        expires_at: crate::time::Timestamp,
    ) -> Result<(), StoreError>;

    /// Forgets a notifications socket by its id; its user, or `None` when it was not one
    /// (or is gone already).
    async fn close_socket(&self, connection_id: &str) -> Result<Option<String>, StoreError>;

    /// The open notifications sockets of these users, as `(user, connection)`.
    async fn sockets(&self, user_ids: &[String]) -> Result<Vec<(String, String)>, StoreError>;

    /// Drops one socket from a user's set (the connection is gone: a 410 on a push).
    async fn forget_socket(&self, user_id: &str, connection_id: &str) -> Result<(), StoreError>;
}

/// A channel's webhooks and what each still owes each stream ([`crate::webhook`]).
///
/// A cursor is leased: one delivery at a time per (webhook, stream), which is what keeps
/// a stream's batches in order. A lease is held by an `owner` (an opaque id of one
/// delivery run) until a time; an expired lease may be taken by anyone.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds the webhook, counting it on its channel: `Conflict` when the channel holds
    /// [`crate::webhook::MAX_PER_CHANNEL`] already, `NotFound` when there is no channel.
    async fn create_webhook(
        &self,
        webhook: &crate::webhook::Webhook,
        secret: &str,
    ) -> Result<(), StoreError>;

    async fn webhooks(&self, channel_id: &str) -> Result<Vec<crate::webhook::Webhook>, StoreError>;

    /// The webhook with its secret (delivery only: never for an answer).
    async fn webhook_with_secret(
        &self,
        channel_id: &str,
        webhook_id: &str,
    ) -> Result<Option<(crate::webhook::Webhook, String)>, StoreError>;

    /// Replaces url, events, enabled state, reason and failures (and the secret when
    /// given); `NotFound` when it is gone.
    async fn update_webhook(
        &self,
        webhook: &crate::webhook::Webhook,
        secret: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Removes it and its count on the channel; `NotFound` when it was not there.
    async fn delete_webhook(&self, channel_id: &str, webhook_id: &str) -> Result<(), StoreError>;

    /// One failed attempt; with `disable`, the webhook is disabled with that reason.
    async fn record_failure(
        &self,
        channel_id: &str,
        webhook_id: &str,
        error: &str,
        disable: Option<&str>,
    ) -> Result<(), StoreError>;

    /// A batch was acknowledged at `at`: failures back to 0, the last error cleared.
    async fn record_success(
        &self,
        channel_id: &str,
        webhook_id: &str,
        at: crate::time::Timestamp,
    ) -> Result<(), StoreError>;

    /// Takes the (webhook, stream) cursor until `until` unless another owner holds it
    /// unexpired; the cursor (a new one starts at 0) or `None` when it is held.
    async fn lease_cursor(
        &self,
        webhook_id: &str,
        stream_id: &str,
        owner: &str,
        until: crate::time::Timestamp,
    ) -> Result<Option<crate::webhook::Cursor>, StoreError>;

    /// Moves the cursor to `last_seq` and the lease to `until`, if `owner` still holds it
    /// (`false`: the lease was lost, stop).
    async fn advance_cursor(
        &self,
        webhook_id: &str,
        stream_id: &str,
        owner: &str,
        last_seq: u64,
        until: crate::time::Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up, marking whether events were left undelivered.
    async fn release_cursor(
        &self,
        webhook_id: &str,
        stream_id: &str,
        owner: &str,
        pending: bool,
    ) -> Result<(), StoreError>;

    /// Notes that the stream has events the webhook has not been sent (it is disabled).
    async fn mark_pending(&self, webhook_id: &str, stream_id: &str) -> Result<(), StoreError>;

    /// Streams with events left for the webhook (to resume them when it is re-enabled).
    async fn pending_streams(&self, webhook_id: &str) -> Result<Vec<String>, StoreError>;
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Stores the message and counts it on the stream, atomically. Fails with `NotFound`
    /// when the stream does not exist. `origin` tells the fan-out whether the message was
    /// already delivered by the socket function that took it.
    async fn post_message(&self, message: &ChatMessage, origin: Origin) -> Result<(), StoreError>;

    /// Newest first; deleted messages are left out.
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

    /// Stores the reaction (with a TTL): one write, the stream item untouched.
    async fn add_reaction(&self, reaction: &Reaction) -> Result<(), StoreError>;

    /// Adds `count` reactions to the stream's counter, once per `position` (see
    /// [`RealtimeStore::record_presence`]): a redelivered batch is not counted twice.
    async fn count_reactions(
        &self,
        stream_id: &str,
        count: u64,
        position: &str,
    ) -> Result<(), StoreError>;
}

/// Where a write came from. Socket functions fan their own events out at once; everything
/// else reaches viewers through the table's stream, so the fan-out skips socket-born items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Rest,
    Socket,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Rest => "rest",
            Origin::Socket => "ws",
        }
    }
}

/// A stream's open connections, as the fan-out and the presence count read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    pub connection_ids: Vec<String>,
    /// Connections that count as viewers (not the broadcaster's own page).
    pub viewers: u64,
}

/// What one presence batch writes on a stream ([`RealtimeStore::record_presence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceUpdate {
    /// The exact count, from the connection list.
    pub viewers: u64,
    /// Counted joins in the batch (each is one view).
    pub new_views: u64,
    /// Position of the batch's last change of this stream; compares as a string.
    pub position: String,
}

/// Connections, viewer counters, moderation state and per-user rate limits.
#[async_trait]
pub trait RealtimeStore: Send + Sync {
    /// Registers a connection: one write of its item under the stream, nothing else. The
    /// stream's viewer count is not touched here: it is set from the connection list by the
    /// presence function ([`RealtimeStore::record_presence`]), which keeps `$connect` off
    /// the stream's hot item. Socket events find the connection in the context its
    /// `$connect` was admitted with, never by reading it back.
    async fn open_connection(
        &self,
        connection: &Connection,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Removes a connection's listing: one write, idempotent (a repeated `$disconnect`, or
    /// one racing a prune, removes nothing more). Its ended view is not written here but
    /// from the listing's removal in the table stream ([`RealtimeStore::record_ended_views`],
    /// by `events-presence`), so a crowd leaving costs the store one write per socket and
    /// the count is exact as soon as the listings are gone.
    async fn close_connection(&self, connection: &Connection) -> Result<(), StoreError>;

    /// Removes a stream's listing of a connection that answered 410 (its `$disconnect`
    /// never came or failed), if it was registered before `registered_before`: a
    /// connection still inside its `$connect` answers 410 too and is never removed. `true`
    /// when it was removed. Its ended view follows from the removal, as for a close.
    async fn prune_connection(
        &self,
        stream_id: &str,
        connection_id: &str,
        registered_before: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Writes ended views (`SESSION#`, watch time), batched. Idempotent: a view written
    /// again (a redelivered batch) is the same item, which analytics counts once (only its
    /// first write is a new item).
    async fn record_ended_views(&self, views: &[EndedView]) -> Result<(), StoreError>;

    /// Ids of every open connection of a stream, read eventually consistently: a socket
    /// registered a moment ago may be missing, as it may from the fan-outs' 1 s cache.
    async fn connections_of(&self, stream_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.audience_of(stream_id, false).await?.connection_ids)
    }

    /// Every open connection of a stream and how many of them are counted viewers. With
    /// `consistent`, a connection registered or removed before the call is reflected (what
    /// an exact count needs; twice the read units on AWS).
    async fn audience_of(&self, stream_id: &str, consistent: bool) -> Result<Audience, StoreError>;

    /// Sets the stream's viewer count to what the connection list says, adds `new_views`
    /// to its total views and raises its peak. Idempotent per `position` (the position in
    /// the table's change stream of the last change this count reflects): a position at
    /// or before the one stored already changes nothing, so a redelivered batch never
    /// counts a view twice. Returns the stored `(count, peak)` afterwards, or `None` when
    /// the stream is gone.
    async fn record_presence(
        &self,
        stream_id: &str,
        presence: &PresenceUpdate,
    ) -> Result<Option<(u64, u64)>, StoreError>;

    /// Ban, moderator and channel-role state of a user, in one read.
    async fn standing(&self, stream: &Stream, user_id: &str) -> Result<Standing, StoreError>;

    async fn set_banned(
        &self,
        stream_id: &str,
        user_id: &str,
        banned: bool,
    ) -> Result<(), StoreError>;

    async fn set_moderator(
        &self,
        stream_id: &str,
        user_id: &str,
        moderator: bool,
    ) -> Result<(), StoreError>;

    async fn moderators(&self, stream_id: &str) -> Result<Vec<String>, StoreError>;

    /// Spends one message token for the user (rate limit and slow mode). `Ok(Err(_))` is a
    /// refusal for the user; `Err(_)` a storage failure. `known` is the bucket as this
    /// instance last wrote it, if it did: then the spend is one conditional write on it
    /// (no read), and only when another instance wrote since is the bucket read again.
    async fn take_message_token(
        &self,
        stream_id: &str,
        user_id: &str,
        limit: &RateLimit,
        slow_mode_seconds: u32,
        now_ms: i64,
        known: Option<Bucket>,
    ) -> Result<Result<Bucket, Refusal>, StoreError>;

    /// Records a viewer's playback report on its viewer session: counts add up, the rest
    /// is the latest value (the startup time: the first one), in one write. The session
    /// also keeps the connection's country and user agent (for where rebuffering
    /// concentrates, `crate::analytics::cause`).
    async fn record_heartbeat(
        &self,
        connection: &Connection,
        report: &crate::qoe::PlaybackReport,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}

/// Q&A questions.
#[async_trait]
pub trait QuestionStore: Send + Sync {
    async fn put_question(&self, question: &Question, origin: Origin) -> Result<(), StoreError>;

    /// Most upvoted first, then oldest.
    async fn list_questions(&self, stream_id: &str) -> Result<Vec<Question>, StoreError>;

    /// One vote per user: a second vote is `Conflict`.
    async fn upvote(
        &self,
        stream_id: &str,
        question_id: &str,
        user_id: &str,
    ) -> Result<Question, StoreError>;

    async fn mark_answered(
        &self,
        stream_id: &str,
        question_id: &str,
    ) -> Result<Question, StoreError>;
}

/// Analytics minute buckets and per-view rows of a stream (`crate::analytics`).
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Adds one batch's deltas (`crate::analytics::fold`) to the stream's buckets.
    /// `position` is the batch's last change position for the stream: a bucket that has
    /// taken a batch at or after it already skips it, so a redelivered batch adds nothing.
    async fn add_minutes(
        &self,
        stream_id: &str,
        minutes: &[crate::analytics::Minute],
        position: &str,
    ) -> Result<(), StoreError>;

    /// Buckets with `from <= start <= to`, oldest first.
    async fn minutes(
        &self,
        stream_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::analytics::Minute>, StoreError>;

    /// The last viewer count set before `before` (looking back at most an hour; 0 if none).
    async fn count_before(&self, stream_id: &str, before: Timestamp) -> Result<u64, StoreError>;

    /// Every view of the stream still kept: open ones (watch time to `now`) and ended ones,
    /// each with its playback report while that is kept.
    async fn views(
        &self,
        stream_id: &str,
        now: Timestamp,
    ) -> Result<Vec<crate::analytics::metrics::View>, StoreError>;
}

/// Quality samples of a stream (kept a week through `ttl`).
#[async_trait]
pub trait MetricsStore: Send + Sync {
    async fn put_sample(&self, sample: &crate::quality::QualitySample) -> Result<(), StoreError>;

    /// Samples with `from <= at <= to`, oldest first, at most `limit`.
    async fn samples(
        &self,
        stream_id: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::quality::QualitySample>, StoreError>;
}

/// A time-limited permission to store one object, handed to a browser (an S3 presigned
/// `PUT` on AWS). The URL is bound to the key, the content type and the exact length, so
/// the holder cannot store anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpload {
    pub url: String,
    /// Headers the upload must carry exactly as given.
    pub headers: Vec<(String, String)>,
    pub expires_at: Timestamp,
}

/// Signs uploads into the media bucket.
#[async_trait]
pub trait UploadSigner: Send + Sync {
    async fn sign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        valid_for: std::time::Duration,
    ) -> Result<SignedUpload, StoreError>;
}

/// Delivery of one frame to one connection (the API Gateway Management API on AWS).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn post(&self, connection_id: &str, frame: &[u8]) -> Result<(), NotifyError>;
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The connection no longer exists (HTTP 410): prune it.
    #[error("connection gone")]
    Gone,
    #[error("delivery failed: {0}")]
    Failed(String),
}
