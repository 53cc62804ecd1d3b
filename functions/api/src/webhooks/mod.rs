//! Webhooks off the ordered event feed (`rill_core::webhook` has the contract).
//!
//! Path of an event: `events-fanout` appends it to the stream's feed (`EVENT#{seq}` items)
//! -> the table stream -> `webhooks-dispatch` ([`dispatch`]), which puts it on the
//! EventBridge bus when the stack has one ([`bus`], on AWS) and finds the channel's
//! webhooks that want one of the batch's event types and queues one delivery job per
//! (webhook, stream): an asynchronous invocation of `webhooks-deliver`
//! (`WEBHOOK_DELIVER_FUNCTION`), or delivery in the same process when that is unset.
//! `webhooks-deliver` ([`deliver`]) leases the (webhook, stream) cursor and sends
//! everything after it, in order, batch by batch, retrying with backoff.
//!
//! Why a separate delivery function: a slow or dead receiver then holds only its own
//! invocation, never the table-stream shard the dispatcher reads (other streams, other
//! channels) nor another webhook.
//!
//! Storage budget: dispatch, per stream per batch, the stream (cached 2 s) and the
//! channel's webhooks (cached [`crate::cache::SHORT`]); one invocation per interested
//! webhook; a disabled webhook costs one write (marked pending) instead. Delivery: one
//! lease write, one feed read per 100 events, one cursor write per batch sent, one
//! release write and one feed-head read per run; the webhook's item is written only when
//! an attempt fails, when a failure streak ends and once at the end of a run.

pub mod bus;
pub mod deliver;
pub mod target;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use rill_aws::changes;
use rill_aws::invoke::AsyncInvoker;
use rill_core::event::EventType;
use rill_core::webhook::{RETRY_WINDOW_DEFAULT, Webhook};
use serde::{Deserialize, Serialize};

use crate::{ApiError, App};
use target::TargetPolicy;

/// One delivery run to start: what `webhooks-deliver` is invoked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub channel_id: String,
    pub webhook_id: String,
    pub stream_id: String,
}

/// Where delivery jobs go.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn enqueue(&self, job: &Job) -> Result<(), String>;
}

#[async_trait]
impl DeliveryQueue for AsyncInvoker {
    async fn enqueue(&self, job: &Job) -> Result<(), String> {
        let payload = serde_json::to_vec(job).map_err(|e| e.to_string())?;
        self.invoke(payload).await
    }
}

/// Webhook settings, read and checked once per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `WEBHOOK_ALLOW_LOCAL` (`true`/`false`, default `false`): see [`target`].
    pub policy: TargetPolicy,
    /// `WEBHOOK_RETRY_WINDOW_SECONDS` (1..=3600, default 300): how long a batch is
    /// retried before its webhook is disabled.
    pub retry_window: Duration,
}

impl WebhookSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let allow_local = match lookup("WEBHOOK_ALLOW_LOCAL").as_deref().map(str::trim) {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(format!(
                    "WEBHOOK_ALLOW_LOCAL must be true or false, not {other:?}"
                ));
            }
        };
        let retry_window = match lookup("WEBHOOK_RETRY_WINDOW_SECONDS")
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => RETRY_WINDOW_DEFAULT,
            Some(v) => match v.parse::<u64>() {
                Ok(s @ 1..=3600) => Duration::from_secs(s),
                _ => {
                    return Err(format!(
                        "WEBHOOK_RETRY_WINDOW_SECONDS must be 1 to 3600, not {v:?}"
                    ));
                }
            },
        };
        Ok(WebhookSettings {
            policy: TargetPolicy { allow_local },
            retry_window,
        })
    }
}

impl App {
    /// The channel's webhooks, at most [`crate::cache::SHORT`] old (a new or changed
    /// webhook is used by the dispatcher within that long).
    pub async fn webhooks_cached(&self, channel_id: &str) -> Result<Vec<Webhook>, ApiError> {
        let key = channel_id.to_owned();
        if let Some(hooks) = self.caches.webhooks.get(&key) {
            return Ok(hooks);
        }
        let hooks = self.webhooks.webhooks(channel_id).await?;
        self.caches.webhooks.put(key, hooks.clone());
        Ok(hooks)
    }

    /// Starts delivery of `job`: queued, or run here when there is no queue.
    pub async fn start_delivery(self: &Arc<Self>, job: Job) -> Result<(), ApiError> {
        match &self.deliveries {
            Some(queue) => queue
                .enqueue(&job)
                .await
                .map_err(|e| ApiError::Internal(format!("queue webhook delivery: {e}"))),
            None => deliver::run(self, &job).await.map(|_| ()),
        }
    }
}

/// What one batch appended to one stream's feed.
struct Appended {
    kinds: Vec<EventType>,
    first: u64,
    last: u64,
}

/// `webhooks-dispatch`: feed appends from the table stream to the event bus (when there is
/// one), to "live now" notifications (`stream:start`) and to delivery jobs. A job that
/// cannot be queued fails the batch, which Lambda then retries (a job queued twice is
/// harmless: the cursor's lease makes the second run a no-op or a continuation).
pub async fn dispatch(app: Arc<App>, event: StreamEvent) -> Result<(), ApiError> {
    let mut by_stream: BTreeMap<String, Appended> = BTreeMap::new();
    for append in changes::feed_appends(&event.records) {
        let batch = by_stream.entry(append.stream_id).or_insert(Appended {
            kinds: Vec::new(),
            first: append.seq,
            last: append.seq,
        });
        if !batch.kinds.contains(&append.kind) {
            batch.kinds.push(append.kind);
        }
        batch.first = batch.first.min(append.seq);
        batch.last = batch.last.max(append.seq);
    }
    for (stream_id, Appended { kinds, first, last }) in by_stream {
        let Some(stream) = app.stream_cached(&stream_id).await? else {
            continue;
        };
        if let Some(sink) = &app.event_bus {
            bus::publish(
                &app,
                sink.as_ref(),
                &stream.channel_id,
                &stream_id,
                first,
                last,
            )
            .await?;
        }
        if kinds.contains(&EventType::Start) {
            // "Live now" to the channel's people, in its own invocation when there is a
            // function for it (on AWS, and on the local gateway): a large audience's writes
            // and pushes never hold up this shard. Without one, here.
            match &app.notify_queue {
                Some(queue) => queue
                    .invoke(
                        serde_json::to_vec(&crate::notifications::Job::Start {
                            stream_id: stream_id.clone(),
                        })
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                    )
                    .await
                    .map_err(|e| {
                        ApiError::Internal(format!("queue live-now notifications: {e}"))
                    })?,
                None => {
                    crate::notifications::live_now(&app, &stream).await?;
                }
            }
        }
        for hook in app.webhooks_cached(&stream.channel_id).await? {
            if !kinds.iter().any(|k| hook.wants(*k)) {
                continue;
            }
            if !hook.enabled {
                // Re-enabling resumes from the cursor: nothing is skipped.
                app.webhooks.mark_pending(&hook.id, &stream_id).await?;
                continue;
            }
            app.start_delivery(Job {
                channel_id: stream.channel_id.clone(),
                webhook_id: hook.id.clone(),
                stream_id: stream_id.clone(),
            })
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<WebhookSettings, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        WebhookSettings::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn settings_default_to_public_targets_and_a_five_minute_window() {
        let s = settings(&[]).expect("defaults");
        assert!(!s.policy.allow_local);
        assert_eq!(s.retry_window, Duration::from_secs(300));
        let s = settings(&[
            ("WEBHOOK_ALLOW_LOCAL", "true"),
            ("WEBHOOK_RETRY_WINDOW_SECONDS", "3"),
        ])
        .expect("set");
        assert!(s.policy.allow_local);
        assert_eq!(s.retry_window, Duration::from_secs(3));
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let e = settings(&[("WEBHOOK_ALLOW_LOCAL", "yes")]).expect_err("bad");
        assert!(e.contains("WEBHOOK_ALLOW_LOCAL"), "{e}");
        for v in ["0", "3601", "ten"] {
            let e = settings(&[("WEBHOOK_RETRY_WINDOW_SECONDS", v)]).expect_err(v);
            assert!(e.contains("WEBHOOK_RETRY_WINDOW_SECONDS"), "{e}");
        }
    }
}
