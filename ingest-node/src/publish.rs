//! The publish contract shared by every ingest protocol (RTMP in [`crate::rtmp`], WHIP in
//! [`crate::whip`]): a publisher presents a [`StreamKey`] in a [`PublishRequest`]; one
//! [`Authoriser`] (the node) answers with a [`PublishSink`] where the media goes, or a
//! [`Refusal`] that each protocol maps to its own wire answer.
//!
//! Invariants every protocol keeps:
//! - the stream key only exists inside [`StreamKey`], whose `Debug` is redacted and which is
//!   not `Display`: it is never logged and never part of an error message;
//! - no media reaches a sink before the authoriser handed it out, and a refused publish
//!   produces no event at all;
//! - a sink that was handed out receives exactly one [`MediaEvent::End`], last, however the
//!   publish ends (as long as its receiver is alive and takes it within the protocol's end
//!   timeout).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::sync::mpsc;

use crate::media::MediaEvent;

/// How a publisher reaches the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RTMP (OBS "Custom", ffmpeg): `rtmp://{host}:1935/live/{streamKey}`.
    Rtmp,
    /// WebRTC through WHIP (a browser): `POST /whip/{streamId}`.
    WebRtc,
}

impl Protocol {
    /// The name quality samples store (`rtmp`, `webrtc`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::WebRtc => "webrtc",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A publisher's stream key. Deliberately not `Display`, and `Debug` prints no secret, so
/// it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl StreamKey {
    pub fn new(key: impl Into<String>) -> Self {
        StreamKey(key.into())
    }

    /// The key itself, for hashing and comparing. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamKey(<redacted, {} bytes>)", self.0.len())
    }
}

/// Why a publish was refused. What the publisher sees:
///
/// | refusal | RTMP `onStatus` (level `error`) | WHIP |
/// |---|---|---|
/// | `BadKey` | `NetStream.Publish.BadName` | 401 |
/// | `AlreadyPublishing` | `NetStream.Publish.BadName` | 409 |
/// | `NotAllowed(why)` | `NetStream.Publish.Unauthorized`, `why` as description | 403, `why` as message |
/// | `HeldElsewhere` | `NetStream.Publish.BadName` | 409 |
/// | `NodeFull` | `NetStream.Publish.Failed` | 503 + `Retry-After` |
/// | `Unavailable` | `NetStream.Publish.Failed` | 503 + `Retry-After` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown or wrong key (or a key that does not open the stream named).
    BadKey,
    /// The stream is already being published from another connection.
    AlreadyPublishing,
    /// The key is valid but publishing is not allowed now (stream ended or cancelled, wrong
    /// RTMP app); the text says why.
    NotAllowed(String),
    /// Another ingest node holds the stream's lease (it is being published there).
    HeldElsewhere,
    /// This node takes no new streams (at capacity, or draining): another node may.
    NodeFull,
    /// The node cannot take the stream (storage down, the authoriser too slow); the
    /// publisher may retry.
    Unavailable,
}

/// A publisher asking to go live. Build it with [`PublishRequest::rtmp`] or
/// [`PublishRequest::whip`]: `app` is set exactly for RTMP and `stream_id` exactly for WHIP.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub protocol: Protocol,
    pub stream_key: StreamKey,
    /// The stream the publisher names besides its key: WHIP's `{streamId}` path segment
    /// (validated to be 1-128 characters of `[A-Za-z0-9_-]`). RTMP names a stream by its
    /// key alone.
    pub stream_id: Option<String>,
    /// The RTMP app from `connect` (`live` for `rtmp://host/live/<key>`).
    pub app: Option<String>,
    /// The publisher's address (for WHIP, when the HTTP server was started with connect
    /// info: `into_make_service_with_connect_info::<SocketAddr>()`).
    pub peer: Option<SocketAddr>,
}

impl PublishRequest {
    pub fn rtmp(app: impl Into<String>, stream_key: StreamKey, peer: SocketAddr) -> Self {
        PublishRequest {
            protocol: Protocol::Rtmp,
            stream_key,
            stream_id: None,
            app: Some(app.into()),
            peer: Some(peer),
        }
    }

    pub fn whip(
        stream_id: impl Into<String>,
        stream_key: StreamKey,
        peer: Option<SocketAddr>,
    ) -> Self {
        PublishRequest {
            protocol: Protocol::WebRtc,
            stream_key,
            stream_id: Some(stream_id.into()),
            app: None,
            peer,
        }
    }
}

/// Where an accepted publish's media goes: a bounded channel, whose capacity is how far the
/// pipeline may lag before the protocol pushes back (RTMP stops reading, so TCP pushes back
/// on the publisher; WHIP's per-session queue starts to fill, then drops frames).
#[derive(Debug, Clone)]
pub struct PublishSink {
    pub(crate) events: mpsc::Sender<MediaEvent>,
    pub(crate) label: Option<String>,
}

impl PublishSink {
    pub fn new(events: mpsc::Sender<MediaEvent>) -> Self {
        PublishSink {
            events,
            label: None,
        }
    }

    /// A name for logs (e.g. the stream id; never the key).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// End for a sink that nothing will feed (the protocol stopped in between).
    pub(crate) async fn send_end(&self) -> bool {
        self.events.send(MediaEvent::End).await.is_ok()
    }
}

pub type AuthoriseFuture = Pin<Box<dyn Future<Output = Result<PublishSink, Refusal>> + Send>>;

/// Decides whether a publish may go ahead, and where its media goes; one authoriser serves
/// every protocol. Implemented for every
/// `Fn(PublishRequest) -> impl Future<Output = Result<PublishSink, Refusal>>`.
pub trait Authoriser: Send + Sync + 'static {
    fn authorise(&self, request: PublishRequest) -> AuthoriseFuture;
}

impl<F, Fut> Authoriser for F
where
    F: Fn(PublishRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<PublishSink, Refusal>> + Send + 'static,
{
    fn authorise(&self, request: PublishRequest) -> AuthoriseFuture {
        Box::pin(self(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named_as_quality_samples_store_them() {
        assert_eq!(Protocol::Rtmp.as_str(), "rtmp");
        assert_eq!(Protocol::WebRtc.as_str(), "webrtc");
        assert_eq!(Protocol::WebRtc.to_string(), "webrtc");
    }

    #[test]
    fn a_stream_key_never_shows_in_debug_output() {
        let key = StreamKey::new("sk_live_secret");
        let request = PublishRequest::whip("s1", key, None);
        let printed = format!("{request:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("redacted"));
    }
}
