//! RTMP ingest for publishers such as OBS ("Custom" service) and ffmpeg:
//! `rtmp://{host}:1935/live/{streamKey}` becomes a stream of [`MediaEvent`]s.
//!
//! Layout (str0m style, one concern per module, no I/O below `server`):
//! - [`handshake`]: C0/C1/C2 ↔ S0/S1/S2 (simple handshake).
//! - [`chunk`]: chunk stream demuxing/muxing and protocol control messages.
//! - [`amf0`]: command and metadata encoding.
//! - [`flv`]: audio/video message bodies → `MediaEvent`s (H.264 + AAC only).
//! - [`session`]: the protocol state machine; bytes in, bytes and events out.
//! - [`server`]: tokio listener, per-connection tasks, authorisation, sink, timeouts.
//!
//! The stream key, the refusals, the publish request, the sink and the authoriser are the
//! protocol-neutral contract of [`crate::publish`], shared with WHIP.
//!
//! Invariants kept across the modules: nothing here panics on peer input; every limit
//! (chunk size, message size, chunk streams, AMF depth, pending bytes) is enforced before
//! memory is committed; no media leaves before the stream key was accepted; the stream key
//! is never logged.
//!
//! Wiring it in (the authoriser of [`crate::publish`] looks the key up and hands back the
//! stream's pipeline):
//!
//! ```no_run
//! use std::sync::Arc;
//! use rill_ingest::publish::{Authoriser, PublishRequest, PublishSink, Refusal};
//! use rill_ingest::rtmp::RtmpServer;
//!
//! # async fn run() -> std::io::Result<()> {
//! let authoriser: Arc<dyn Authoriser> = Arc::new(|req: PublishRequest| async move {
//!     if req.app.as_deref() != Some("live") || req.stream_key.expose().is_empty() {
//!         return Err(Refusal::BadKey);
//!     }
//!     // Look up sha256(key), check the stream's state, start its pipeline...
//!     let (tx, _rx) = tokio::sync::mpsc::channel(256);
//!     Ok(PublishSink::new(tx).with_label("stream-id"))
//! });
//! let (server, addr) = RtmpServer::bind("0.0.0.0:1935", authoriser).await?;
//! let (stop, stop_rx) = tokio::sync::watch::channel(false);
//! let task = tokio::spawn(server.run(stop_rx));
//! // ... on SIGTERM:
//! stop.send(true).ok();
//! task.await.ok();
//! # let _ = addr;
//! # Ok(())
//! # }
//! ```
//!
//! [`MediaEvent`]: crate::media::MediaEvent

pub mod amf0;
pub mod chunk;
pub mod flv;
#[doc(hidden)]
pub mod fuzz;
pub mod handshake;
pub mod server;
pub mod session;

#[cfg(test)]
mod ffmpeg_tests;
#[cfg(test)]
mod testing;

pub use server::{RtmpServer, ServerConfig};
pub use session::{Session, SessionConfig, SessionError, SessionEvent};
