//! WHIP ingest (RFC 9725): a browser (or OBS, or any WHIP client) publishes WebRTC to
//! `POST /whip/{streamId}` with `Authorization: Bearer <streamKey>`, and its H.264 + Opus
//! become [`MediaEvent`]s, exactly like an RTMP publish does.
//!
//! Layout (pure logic apart from I/O, like [`crate::rtmp`]):
//! - `offer`: a first look at the offer (does it send H.264 video and Opus audio?).
//! - `frames`: RTP time → ms timeline, H.264 access units, the keyframe gate.
//! - [`server`]: the UDP socket, one str0m `Rtc` per session, the engine task, stats.
//! - [`http`]: the axum routes (POST/DELETE/PATCH/OPTIONS, CORS, error mapping).
//! - `fuzz`: the fuzz harness of offer handling (`scripts/fuzz.sh`).
//!
//! What a sink receives, in order: [`MediaEvent::AudioConfig`] (Opus, 48 kHz, 2 channels,
//! empty config) once ICE + DTLS are up; then [`MediaEvent::Video`] (`NalFraming::AnnexB`,
//! `pts == dts`: browsers send no B-frames), starting with a keyframe that carries its SPS
//! and PPS, interleaved with [`MediaEvent::Audio`] (one Opus packet each); finally exactly
//! one [`MediaEvent::End`]. Timestamps are ms on one timeline for both tracks, starting
//! near 0 at the session's first frame (see `frames.rs` for how they are anchored).
//!
//! Invariants: no datagram of a publisher reaches str0m before the authoriser accepted it
//! (the offer is negotiated first, but the session's `Rtc` joins the UDP engine only after
//! acceptance, so until then its STUN checks go unanswered); a datagram goes only to the
//! session whose `Rtc::accepts` claims it; the stream key is never logged; a refused
//! publish produces no event; a sink that was handed out gets exactly one End, last.
//! Video frames are held back (and a keyframe requested) until a decodable keyframe, at
//! the start and after packets were lost for good; under NACK repair nothing is held.
//!
//! Wiring it in (one authoriser serves RTMP and WHIP: the publish contract of
//! [`crate::publish`] is theirs in common):
//!
//! ```no_run
//! use std::sync::Arc;
//! use rill_ingest::publish::{Authoriser, PublishRequest, PublishSink, Refusal};
//! use rill_ingest::whip::{WhipConfig, WhipServer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let authoriser: Arc<dyn Authoriser> = Arc::new(|req: PublishRequest| async move {
//!     // Look up sha256(req.stream_key.expose()), check it belongs to req.stream_id and
//!     // that the stream accepts ingest, start its pipeline...
//!     if req.stream_key.expose().is_empty() {
//!         return Err(Refusal::BadKey);
//!     }
//!     let (tx, _rx) = tokio::sync::mpsc::channel(256);
//!     Ok(PublishSink::new(tx).with_label(req.stream_id.unwrap_or_default()))
//! });
//! let config = WhipConfig {
//!     bind: "0.0.0.0:8189".parse().unwrap(),
//!     advertise_ip: Some("203.0.113.7".parse().unwrap()),
//!     ..WhipConfig::default()
//! };
//! let server = WhipServer::bind(config, authoriser).await?;
//! let whip = server.handle();
//! let app: axum::Router = axum::Router::new()
//!     .route("/metrics", axum::routing::get(|| async { "..." }))
//!     .merge(whip.router());
//! let (stop, stop_rx) = tokio::sync::watch::channel(false);
//! let engine = tokio::spawn(server.run(stop_rx));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8889").await?;
//! let http = tokio::spawn(async move {
//!     axum::serve(
//!         listener,
//!         app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//!     )
//!     .await
//! });
//! // Every 5 s, for the quality samples:
//! for s in whip.sessions() {
//!     let _ = (s.stream_id, s.rtt_ms, s.packet_loss, s.bitrate_kbps, s.fps);
//! }
//! // ... on SIGTERM:
//! stop.send(true).ok();
//! engine.await.ok();
//! # let _ = http;
//! # Ok(())
//! # }
//! ```
//!
//! [`MediaEvent`]: crate::media::MediaEvent
//! [`MediaEvent::AudioConfig`]: crate::media::MediaEvent::AudioConfig
//! [`MediaEvent::Video`]: crate::media::MediaEvent::Video
//! [`MediaEvent::Audio`]: crate::media::MediaEvent::Audio
//! [`MediaEvent::End`]: crate::media::MediaEvent::End

mod frames;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
mod offer;
pub mod server;
mod session;

#[cfg(test)]
mod tests;

pub use http::router;
pub use server::{SessionStats, WhipConfig, WhipHandle, WhipServer};
