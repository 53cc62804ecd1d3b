//! Webhooks: a channel's owner registers an endpoint (URL + secret + the event types it
//! wants), and every event of the channel's streams' feeds ([`crate::feed`]) is POSTed to it
//! in per-stream order, at least once.
//!
//! The delivery contract (what a receiver relies on; also in `docs/architecture.md`):
//! - a request carries events of **one** stream, in feed order, as
//!   `{"channelId", "streamId", "events": [{seq, type, streamId, data, ts}, ...]}`; events
//!   of one stream are never sent out of order: batch `n + 1` is sent only after batch `n`
//!   was answered 2xx;
//! - delivery is at least once: a batch that was not answered 2xx (or whose answer was
//!   lost) is sent again, so receivers de-duplicate by `(streamId, seq)`;
//! - every request is signed: header [`SIGNATURE_HEADER`] is `t=<unix seconds>,v1=<hex>`,
//!   `v1` = HMAC-SHA256 keyed with the secret over `"{t}.{body}"` (the exact bytes of the
//!   body); receivers refuse a `t` further than [`REPLAY_WINDOW_SECONDS`] from their clock;
//! - failures are retried with exponential backoff ([`backoff`]) for a retry window; a
//!   webhook whose batch still fails at the end of the window is disabled with the reason
//!   visible to the owner. Nothing is skipped: re-enabling resumes every stream where its
//!   last acknowledged batch ended.
//!
//! This module holds the rules (validation, backoff, what a webhook wants); the HTTP side
//! (URL policy, address checks, signing) is `rill-api`'s.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::time::{Timestamp, rfc3339_millis};
use crate::validate::ValidationError;

/// Webhooks per channel.
pub const MAX_PER_CHANNEL: u32 = 10;
/// Bounds of a secret (bytes of printable ASCII).
pub const SECRET_MIN: usize = 16;
pub const SECRET_MAX: usize = 256;
/// Events per request, at most (and fewer when the body would pass [`BODY_MAX`]).
pub const BATCH_MAX: usize = 100;
/// A request body, at most (bytes); a single larger event is sent alone.
pub const BODY_MAX: usize = 256 * 1024;
/// `Rill-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "rill-signature";
/// `Rill-Delivery: {streamId}:{firstSeq}-{lastSeq}`: the same value on every retry.
pub const DELIVERY_HEADER: &str = "rill-delivery";
/// `Rill-Webhook: {webhookId}`.
pub const WEBHOOK_HEADER: &str = "rill-webhook";
/// How far a receiver should let `t` be from its own clock.
pub const REPLAY_WINDOW_SECONDS: i64 = 300;
/// The first retry waits this long; each next one twice as long, up to [`BACKOFF_CAP`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(20);
/// How long a batch is retried before the webhook is disabled, by default.
pub const RETRY_WINDOW_DEFAULT: Duration = Duration::from_secs(300);

/// The event types a webhook may ask for: what the feed holds (joins, leaves and viewer
/// counts are not in it).
pub const FEED_EVENTS: [EventType; 8] = [
    EventType::Start,
    EventType::End,
    EventType::ChatMessage,
    EventType::ChatDeleted,
    EventType::ChatPinned,
    EventType::Reaction,
    EventType::Question,
    EventType::QualityUpdate,
];

/// A registered endpoint, as its owner sees it (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub channel_id: String,
    pub url: String,
    /// What it receives, in [`FEED_EVENTS`] order, never empty.
    pub events: Vec<EventType>,
    pub enabled: bool,
    /// Why delivery stopped (set when it was disabled after failing).
    pub disabled_reason: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// The last failure, e.g. `answered 503` or `no connection: ...`.
    pub last_error: Option<String>,
    /// When a batch was last acknowledged.
    #[serde(with = "rfc3339_millis::option", default)]
    pub last_delivery_at: Option<Timestamp>,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
}

impl Webhook {
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.contains(&kind)
    }
}

/// `POST /api/channels/{id}/webhooks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    /// Generated (and shown once, in the creation's answer) when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Every feed event when absent.
    #[serde(default)]
    pub events: Option<Vec<EventType>>,
}

/// `PATCH /api/channels/{id}/webhooks/{webhookId}`: what is present changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<EventType>>,
    /// `true` re-enables a disabled webhook (clearing its failures); `false` pauses it.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

/// A secret is 16..=256 bytes of printable ASCII (no spaces at either end).
pub fn check_secret(secret: &str) -> Result<(), ValidationError> {
    if !(SECRET_MIN..=SECRET_MAX).contains(&secret.len()) {
        return Err(invalid(
            "secret",
            format!("must be {SECRET_MIN} to {SECRET_MAX} characters"),
        ));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("secret", "must be printable ASCII without spaces"));
    }
    Ok(())
}

/// The event list, de-duplicated, in [`FEED_EVENTS`] order; `None` means all of them.
pub fn check_events(events: Option<&[EventType]>) -> Result<Vec<EventType>, ValidationError> {
    let Some(events) = events else {
        return Ok(FEED_EVENTS.to_vec());
    };
    if events.is_empty() {
        return Err(invalid("events", "must name at least one event type"));
    }
    if let Some(bad) = events.iter().find(|e| !FEED_EVENTS.contains(e)) {
        let name = serde_json::to_value(bad)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(invalid(
            "events",
            format!("{name} is not a feed event (joins, leaves and counts are not sent)"),
        ));
    }
    Ok(FEED_EVENTS
        .iter()
        .copied()
        .filter(|e| events.contains(e))
        .collect())
}

/// The wait before retry number `attempt` (1 = the first retry): 1 s, 2 s, 4 s, ... up to
/// [`BACKOFF_CAP`].
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP)
}

/// A fresh secret: `whsec_` and 32 bytes from the operating system's CSPRNG (base64url).
pub fn generate_secret() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The request's delivery id: the same on every retry of the batch.
pub fn delivery_id(stream_id: &str, first_seq: u64, last_seq: u64) -> String {
    format!("{stream_id}:{first_seq}-{last_seq}")
}

/// What a webhook still owes a stream: the last sequence number acknowledged, and whether
/// delivery stopped with events left (a disabled webhook, a window that ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub last_seq: u64,
    pub pending: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 20, 20, 20]);
        assert_eq!(backoff(0), BACKOFF_FIRST);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn events_default_to_every_feed_event_and_keep_feed_order() {
        assert_eq!(check_events(None).expect("all"), FEED_EVENTS.to_vec());
        let asked = [EventType::End, EventType::Start, EventType::End];
        assert_eq!(
            check_events(Some(&asked)).expect("ok"),
            vec![EventType::Start, EventType::End]
        );
    }

    #[test]
    fn events_outside_the_feed_or_none_at_all_are_refused() {
        let err = check_events(Some(&[EventType::ViewerCount])).expect_err("not in feed");
        assert_eq!(err.field, "events");
        assert!(
            err.message.contains("stream:viewer-count"),
            "{}",
            err.message
        );
        assert!(check_events(Some(&[])).is_err());
    }

    #[test]
    fn secrets_are_long_printable_and_unpadded() {
        assert!(check_secret("0123456789abcdef").is_ok());
        assert!(check_secret("short").is_err());
        assert!(check_secret(&"x".repeat(SECRET_MAX + 1)).is_err());
        assert!(check_secret("0123456789 abcdef").is_err());
        assert!(check_secret("0123456789abcdeé").is_err());
        let made = generate_secret().expect("random");
        assert!(
            check_secret(&made).is_ok() && made.starts_with("whsec_"),
            "{made}"
        );
        assert_ne!(made, generate_secret().expect("random"));
    }

    #[test]
    fn a_webhook_serialises_without_any_secret() {
        let hook = Webhook {
            id: "w1".into(),
            channel_id: "c1".into(),
            url: "https://example.com/hook".into(),
            events: vec![EventType::Start],
            enabled: true,
            disabled_reason: None,
            failures: 0,
            last_error: None,
            last_delivery_at: None,
            created_at: crate::time::now(),
        };
        let json = serde_json::to_value(&hook).expect("json");
        assert_eq!(json["events"], serde_json::json!(["stream:start"]));
        assert!(json.get("secret").is_none());
        assert_eq!(delivery_id("s1", 3, 7), "s1:3-7");
    }
}
