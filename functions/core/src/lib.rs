//! rill-core: the domain of Rill, free of AWS, Lambda and media dependencies.
//!
//! What lives here:
//! - [`stream`]: the stream, its settings and stats, and the status state machine
//!   (`scheduled -> preparing -> live -> ended`, `preparing -> ended`,
//!   `scheduled|preparing -> cancelled`). [`stream::StreamStatus::next`] is the only place
//!   that decides whether a transition is legal; stores enforce the same rule with
//!   conditional writes so that concurrent requests cannot both win.
//! - [`validate`]: every input rule (lengths, ranges, allow-lists). Handlers validate
//!   *before* they touch storage, so a rejected request changes nothing.
//! - [`channel`]: channels and the ranked roles users hold in them (who streams, who
//!   moderates, who grants).
//! - [`chat`]: chat messages and reactions.
//! - [`key`]: stream keys. A key is 256 random bits shown once; only its SHA-256 is kept.
//! - [`event`]: the realtime event envelope and names shared by every producer.
//! - [`store`]: the storage traits the handlers depend on.
//! - [`fanout`]: sharded fan-out: the shard payload and the port that runs a shard
//!   elsewhere, and the split that keeps a shard under a payload limit.
//! - [`fleet`]: the ingest node registry, stream leases and the routing rule.
//! - [`prewarm`]: raising the ingest fleet's minimum before scheduled streams (the one-time
//!   schedule and fleet-minimum ports, the floor rule).
//! - [`media`]: the media bucket port the ingest node writes HLS objects through, and the
//!   Content-Type / Cache-Control rule of every object kind.
//!
//! Invariants: timestamps are UTC and serialise as RFC 3339 with milliseconds (so they sort
//! as strings); ids are ULIDs (sortable by creation time); no type here ever carries a
//! plaintext stream key except [`key::StreamKey`], which never serialises.

pub mod analytics;
pub mod auth;
pub mod channel;
pub mod chat;
pub mod event;
pub mod fanout;
pub mod feed;
pub mod fleet;
#[doc(hidden)]
pub mod fuzz;
pub mod ids;
pub mod json_int;
pub mod key;
pub mod media;
pub mod notification;
pub mod presence;
pub mod prewarm;
pub mod qoe;
pub mod quality;
pub mod realtime;
pub mod store;
pub mod stream;
pub mod time;
pub mod validate;
pub mod webhook;

pub use auth::Principal;
pub use chat::{ChatMessage, Reaction};
pub use stream::{Command, Settings, Stream, StreamStats, StreamStatus};
pub use validate::ValidationError;
