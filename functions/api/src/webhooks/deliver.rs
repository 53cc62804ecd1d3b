//! `webhooks-deliver`: one delivery run for one (webhook, stream).
//!
//! A run leases the cursor (another run holding it means this one has nothing to do: the
//! holder re-reads the feed after it lets go, so what made this run start is sent by it),
//! then reads the feed after the cursor and sends what the webhook wants, in batches of at
//! most [`BATCH_MAX`] events / [`BODY_MAX`] bytes, each only after the previous was
//! answered 2xx. A failed batch is sent again after [`backoff`] (1 s, 2 s, 4 s, ... 20 s),
//! the same bytes with a fresh signature, for the settings' retry window; then the webhook
//! is disabled with the reason, and the cursor stays where the last acknowledged batch
//! ended (marked pending, so re-enabling resumes it). The lease is renewed with every
//! cursor write and before every wait, and is cut short by nothing but its expiry: a run
//! that crashed lets the next one in after [`LEASE`].
//!
//! Invariant: the cursor only moves past events that were acknowledged or that the webhook
//! does not want, so every wanted event is sent at least once, in order.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use aws_lc_rs::hmac;
use bytes::Bytes;
use http_body_util::Full;
use rill_core::feed::SequencedEvent;
use rill_core::webhook::{
    BATCH_MAX, BODY_MAX, DELIVERY_HEADER, SIGNATURE_HEADER, WEBHOOK_HEADER, Webhook, backoff,
    delivery_id,
};
use rill_core::{ids, time};
use serde::Serialize;
use serde_json::{Value, json};

use super::Job;
use super::target::{self, REQUEST_TIMEOUT, TargetPolicy, WebhookClient};
use crate::{ApiError, App};

/// How long a lease lasts without renewal: longer than one attempt plus one wait.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(90);

/// `v1` of the signature header: hex HMAC-SHA256 keyed with `secret` over `"{t}.{body}"`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{t}.").as_bytes());
    ctx.update(body);
    ctx.sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The webhook client of this instance (one per policy; built on first use).
fn client(policy: TargetPolicy) -> Result<&'static WebhookClient, ApiError> {
    static CLIENT: OnceLock<Result<WebhookClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| target::client(policy))
        .as_ref()
        .map_err(|e| ApiError::Internal(format!("webhook client: {e}")))
}

fn lease_until() -> time::Timestamp {
    time::now() + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    channel_id: &'a str,
    stream_id: &'a str,
    events: &'a [&'a SequencedEvent],
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum Stop {
    /// Everything in the feed was handled.
    CaughtUp,
    /// The webhook is disabled (here, after the window, or by its owner) or was deleted.
    Disabled,
    /// Another run holds the cursor now (this one's lease expired).
    LeaseLost,
}

struct Run<'a> {
    app: &'a App,
    client: &'a WebhookClient,
    job: &'a Job,
    owner: &'a str,
    hook: Webhook,
    secret: String,
    last: u64,
    sent: usize,
}

/// Runs delivery for `job`; the answer says what happened (for logs and tests).
pub async fn run(app: &Arc<App>, job: &Job) -> Result<Value, ApiError> {
    let owner = ids::new_id();
    let client = client(app.webhook_settings.policy)?;
    let mut sent = 0;
    loop {
        let Some((hook, secret)) = app
            .webhooks
            .webhook_with_secret(&job.channel_id, &job.webhook_id)
            .await?
        else {
            return Ok(json!({"outcome": "gone", "sent": sent}));
        };
        if !hook.enabled {
            app.webhooks
                .mark_pending(&job.webhook_id, &job.stream_id)
                .await?;
            return Ok(json!({"outcome": "disabled", "sent": sent}));
        }
        let Some(cursor) = app
            .webhooks
            .lease_cursor(&job.webhook_id, &job.stream_id, &owner, lease_until())
            .await?
        else {
            return Ok(json!({"outcome": "busy", "sent": sent}));
        };
        let mut run = Run {
            app,
            client,
            job,
            owner: &owner,
            hook,
            secret,
            last: cursor.last_seq,
            sent: 0,
        };
        let stop = run.deliver_all().await;
        sent += run.sent;
        if run.sent > 0 && run.hook.failures == 0 {
            app.webhooks
                .record_success(&job.channel_id, &job.webhook_id, time::now())
                .await?;
        }
        let stop = match stop {
            Ok(stop) => stop,
            Err(e) => {
                // Keep it resumable; the error fails the invocation, which Lambda retries.
                let _ = app
                    .webhooks
                    .release_cursor(&job.webhook_id, &job.stream_id, &owner, true)
                    .await;
                return Err(e);
            }
        };
        if stop == Stop::LeaseLost {
            return Ok(json!({"outcome": stop, "sent": sent}));
        }
        let pending = stop == Stop::Disabled;
        app.webhooks
            .release_cursor(&job.webhook_id, &job.stream_id, &owner, pending)
            .await?;
        // Events appended while this run held the lease may have had their own run turned
        // away: look once more after letting go.
        if pending || app.feed.last_seq(&job.stream_id).await? <= run.last {
            tracing::info!(webhook_id = %job.webhook_id, stream_id = %job.stream_id, sent, outcome = ?stop, "webhook delivery run ended");
            return Ok(json!({"outcome": stop, "sent": sent, "lastSeq": run.last}));
        }
    }
}

impl Run<'_> {
    async fn deliver_all(&mut self) -> Result<Stop, ApiError> {
        loop {
            let page = self
                .app
                .feed
                .read(&self.job.stream_id, self.last, BATCH_MAX as u32)
                .await?;
            let Some(page_last) = page.last().map(|e| e.seq) else {
                return Ok(Stop::CaughtUp);
            };
            let wanted: Vec<&SequencedEvent> = page
                .iter()
                .filter(|e| self.hook.wants(e.event.kind))
                .collect();
            for batch in batches(&wanted) {
                let stop = self.send(batch).await?;
                if stop != Stop::CaughtUp {
                    return Ok(stop);
                }
                if !self.advance(batch[batch.len() - 1].seq).await? {
                    return Ok(Stop::LeaseLost);
                }
            }
            // Past the page's unwanted tail too.
            if page_last > self.last && !self.advance(page_last).await? {
                return Ok(Stop::LeaseLost);
            }
        }
    }

    async fn advance(&mut self, seq: u64) -> Result<bool, ApiError> {
        let kept = self
            .app
            .webhooks
            .advance_cursor(
                &self.job.webhook_id,
                &self.job.stream_id,
                self.owner,
                seq,
                lease_until(),
            )
            .await?;
        if kept {
            self.last = seq;
        }
        Ok(kept)
    }

    /// Sends one batch until it is acknowledged (`CaughtUp`), the window runs out or the
    /// webhook is disabled or deleted (`Disabled`), or the lease is lost.
    async fn send(&mut self, batch: &[&SequencedEvent]) -> Result<Stop, ApiError> {
        let body = serde_json::to_vec(&Body {
            channel_id: &self.job.channel_id,
            stream_id: &self.job.stream_id,
            events: batch,
        })
        .map_err(|e| ApiError::Internal(format!("encode webhook body: {e}")))?;
        let body = Bytes::from(body);
        let id = delivery_id(
            &self.job.stream_id,
            batch[0].seq,
            batch[batch.len() - 1].seq,
        );
        let window = self.app.webhook_settings.retry_window;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let error = match self.post(&id, body.clone()).await {
                Ok(()) => {
                    if self.hook.failures > 0 {
                        // A failure streak ended: say so at once.
                        self.app
                            .webhooks
                            .record_success(&self.job.channel_id, &self.job.webhook_id, time::now())
                            .await?;
                        self.hook.failures = 0;
                    }
                    self.sent += batch.len();
                    return Ok(Stop::CaughtUp);
                }
                Err(error) => error,
            };
            attempt += 1;
            self.hook.failures += 1;
            let elapsed = started.elapsed();
            let disable = (elapsed >= window).then(|| {
                format!(
                    "disabled after {attempt} failed attempts over {} s (retry window {} s): {error}",
                    elapsed.as_secs(),
                    window.as_secs()
                )
            });
            tracing::warn!(webhook_id = %self.job.webhook_id, stream_id = %self.job.stream_id, attempt, error = %error, disabled = disable.is_some(), "webhook delivery failed");
            self.app
                .webhooks
                .record_failure(
                    &self.job.channel_id,
                    &self.job.webhook_id,
                    &error,
                    disable.as_deref(),
                )
                .await?;
            if disable.is_some() {
                return Ok(Stop::Disabled);
            }
            tokio::time::sleep(backoff(attempt).min(window.saturating_sub(elapsed))).await;
            if !self.advance(self.last).await? {
                return Ok(Stop::LeaseLost);
            }
            // The owner may have changed, paused or removed it meanwhile.
            match self
                .app
                .webhooks
                .webhook_with_secret(&self.job.channel_id, &self.job.webhook_id)
                .await?
            {
                Some((hook, secret)) if hook.enabled => {
                    self.hook = Webhook {
                        failures: self.hook.failures,
                        ..hook
                    };
                    self.secret = secret;
                }
                _ => return Ok(Stop::Disabled),
            }
        }
    }

    /// One attempt; `Err` is the reason, for the owner (never the URL or the secret).
    async fn post(&self, delivery: &str, body: Bytes) -> Result<(), String> {
        let uri = self
            .app
            .webhook_settings
            .policy
            .check_url(&self.hook.url)
            .map_err(|why| format!("url refused: {why}"))?;
        let t = time::now().timestamp();
        let signature = format!("t={t},v1={}", sign(self.secret.as_bytes(), t, &body));
        let request = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "Rill-Webhooks/1")
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, delivery)
            .header(WEBHOOK_HEADER, &self.hook.id)
            .body(Full::new(body))
            .map_err(|e| format!("request not built: {e}"))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request)).await {
            Err(_) => Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
            Ok(Err(e)) => Err(format!("request failed: {}", causes(&e))),
            Ok(Ok(answer)) if answer.status().is_success() => Ok(()),
            Ok(Ok(answer)) => Err(format!("answered {}", answer.status().as_u16())),
        }
    }
}

/// An error and its sources, `: `-joined (hyper's own message alone says only "Connect").
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `events` cut into request bodies: at most [`BATCH_MAX`] events and, past the first
/// event, at most [`BODY_MAX`] bytes of events.
fn batches<'a, 'b>(events: &'b [&'a SequencedEvent]) -> Vec<&'b [&'a SequencedEvent]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, e) in events.iter().enumerate() {
        let size = serde_json::to_vec(e).map_or(0, |v| v.len() + 1);
        if i > start && (i - start >= BATCH_MAX || bytes + size > BODY_MAX) {
            out.push(&events[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_core::event::{Event, EventType};

    fn event(seq: u64, bytes: usize) -> SequencedEvent {
        SequencedEvent {
            seq,
            event: Event {
                kind: EventType::ChatMessage,
                stream_id: "s".into(),
                data: json!({"content": "x".repeat(bytes)}),
                ts: 0,
            },
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed with Python's hmac module:
        // hmac.new(b"whsec_test_0123456789", b'1700000000.{"a":1}', hashlib.sha256)
        assert_eq!(
            sign(b"whsec_test_0123456789", 1_700_000_000, br#"{"a":1}"#),
            "d45143ed412aa9d672e3e06cc6753ced7e0e5a1757b1109ff599ba71790e646d"
        );
    }

    #[test]
    fn batches_hold_at_most_a_hundred_events_and_the_body_limit() {
        let small: Vec<SequencedEvent> = (1..=250).map(|s| event(s, 10)).collect();
        let refs: Vec<&SequencedEvent> = small.iter().collect();
        let sizes: Vec<usize> = batches(&refs).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let large: Vec<SequencedEvent> = (1..=5).map(|s| event(s, 100 * 1024)).collect();
        let refs: Vec<&SequencedEvent> = large.iter().collect();
        let sizes: Vec<usize> = batches(&refs).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        // One event over the limit still goes, alone.
        let huge = [event(1, 300 * 1024)];
        let refs: Vec<&SequencedEvent> = huge.iter().collect();
        assert_eq!(batches(&refs).len(), 1);
        assert!(batches(&[]).is_empty());
    }
}
