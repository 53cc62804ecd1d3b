//! One WebSocket connection as the hub holds it: its context, its outbound queue, and
//! why it ends ([`CloseCause`]). The first close cause wins; after it, posts answer Gone.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::OUTBOUND_QUEUE;
use crate::websocket_event::ConnectionContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CloseKind {
    /// The client sent a close frame: answer it and end.
    ByClient,
    /// We close: send what was queued before, then a close frame, then wait for the reply.
    Graceful,
    /// Drop the TCP connection now (overflow, broken connection).
    Abrupt,
}

/// Why a connection ends; becomes `disconnectStatusCode` / `disconnectReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCause {
    pub code: u16,
    pub reason: String,
    pub(super) kind: CloseKind,
}

impl CloseCause {
    pub(super) fn new(kind: CloseKind, code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            kind,
        }
    }

    pub(super) fn by_client(frame: Option<CloseFrame>) -> Self {
        match frame {
            Some(f) => Self::new(CloseKind::ByClient, f.code, f.reason.as_str()),
            None => Self::new(
                CloseKind::ByClient,
                1005,
                "Client-side close frame status not set",
            ),
        }
    }

    /// `DELETE /@connections/{id}`.
    pub fn deleted() -> Self {
        Self::new(CloseKind::Graceful, 1000, "Connection deleted")
    }

    /// The connection ended without a close handshake (dropped TCP, a client gone during
    /// `$connect`): what API Gateway reports as 1006.
    pub(super) fn abnormal() -> Self {
        Self::new(CloseKind::Abrupt, 1006, "Connection closed abnormally")
    }

    pub(super) fn shutdown() -> Self {
        Self::new(
            CloseKind::Graceful,
            1001,
            "Going away: gateway shutting down",
        )
    }
}

/// Why a `PostToConnection` could not be queued. Both answer 410 Gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostError {
    /// Unknown, closing or closed connection.
    Gone,
    /// The client's queue was full: it is being dropped.
    Overflow,
}

/// One open (or opening) connection.
#[derive(Debug)]
pub struct Connection {
    pub(super) ctx: ConnectionContext,
    pub(super) last_active_ms: AtomicI64,
    pub(super) outbound: mpsc::Sender<Message>,
    pub(super) close: watch::Sender<Option<CloseCause>>,
}

impl Connection {
    pub fn id(&self) -> &str {
        &self.ctx.connection_id
    }

    pub fn connected_at(&self) -> DateTime<Utc> {
        self.ctx.connected_at
    }

    /// The last data frame from the client (`connectedAt` before the first one).
    pub fn last_active_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_active_ms.load(Ordering::Relaxed))
            .unwrap_or(self.ctx.connected_at)
    }

    pub fn source_ip(&self) -> &str {
        &self.ctx.source_ip
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.ctx.user_agent.as_deref()
    }

    /// Queues `data` for the client: a text frame if it is UTF-8, else a binary frame.
    /// Never waits: a client whose queue is full is dropped, so the caller (the fan-out
    /// hot path) is never held up by one slow reader.
    pub fn post(&self, data: Bytes) -> Result<(), PostError> {
        if self.close.borrow().is_some() {
            return Err(PostError::Gone);
        }
        let message = match Utf8Bytes::try_from(data.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(data),
        };
        match self.outbound.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(
                    connection_id = %self.id(),
                    queued = OUTBOUND_QUEUE,
                    "client is not reading its frames; closing the connection"
                );
                self.request_close(CloseCause::new(
                    CloseKind::Abrupt,
                    1008,
                    "Outbound queue overflow: client too slow",
                ));
                Err(PostError::Overflow)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PostError::Gone),
        }
    }

    /// Asks the connection to end; the first cause wins. Returns whether this one did.
    pub fn request_close(&self, cause: CloseCause) -> bool {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(cause);
                true
            } else {
                false
            }
        })
    }

    pub(super) fn cause(&self) -> Option<CloseCause> {
        self.close.borrow().clone()
    }

    pub(super) fn touch(&self, now: DateTime<Utc>) {
        self.last_active_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
    }

    /// Gateway-made frames (error frames): best effort, never closes the connection.
    pub(super) fn send_frame(&self, text: String) {
        if self.outbound.try_send(Message::Text(text.into())).is_err() {
            debug!(connection_id = %self.id(), "outbound queue full or closed; frame dropped");
        }
    }
}
