//! Notifications to a channel's people (`rill_core::notification`): who is told that a
//! stream went live, and the list each user reads (`GET /api/me/notifications`).
//!
//! "Live now" is written by `notifications-send`, which `webhooks-dispatch` invokes
//! asynchronously when a `stream:start` reaches the feed
//! (the stream's settings say whom: followers, subscribers or nobody; a members-only
//! stream only ever reaches subscribers and up; never its owner). Recipients are the
//! channel's memberships, read a page of 100 at a time; each page's notifications are
//! written in batches of 25.
//!
//! Reminders are written by `notifications-send` when a reminder's one-time schedule
//! fires (see [`send`]).
//!
//! Each written notification is also pushed to its user's open notifications sockets (a
//! WebSocket connection without a stream, `crate::ws::connect`) as a frame
//! `{"type", "streamId", "data": <the notification>, "ts"}`; best effort: the list is
//! what is kept, a failed push is logged, a socket found gone (410) leaves its user's set.
//!
//! Storage budget of one announcement: 1 query per 100 memberships + 1 `BatchWriteItem` per
//! 25 recipients + 1 `BatchGetItem` of sockets per 100 recipients (+ 1 update per gone
//! socket). The list: 1 query; marking read: 1 conditional update per id.

use rill_core::Stream;
use rill_core::notification::{Notification, NotificationKind};
use rill_core::time::Timestamp;

use futures_util::StreamExt;
use rill_core::store::NotifyError;

use crate::{ApiError, App};

/// Memberships read per query.
const MEMBERS_PAGE: u32 = 100;

/// Tells the stream's audience about it (`kind`, at `at`); returns how many were told.
pub async fn announce(
    app: &App,
    stream: &Stream,
    kind: NotificationKind,
    minutes_before: Option<u32>,
    at: Timestamp,
) -> Result<usize, ApiError> {
    let settings = &stream.settings.notifications;
    if kind == NotificationKind::Start && !settings.at_start {
        return Ok(0);
    }
    let note = Notification::new(kind, stream, minutes_before, at);
    let mut told = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = app
            .channels
            .members(&stream.channel_id, MEMBERS_PAGE, cursor.as_deref())
            .await?;
        let notes: Vec<(String, Notification)> = page
            .items
            .iter()
            .filter(|m| settings.audience.reaches(m.role, stream.visibility))
            .filter(|m| !stream.is_owned_by(&m.user_id))
            .map(|m| (m.user_id.clone(), note.clone()))
            .collect();
        if !notes.is_empty() {
            app.notifications.notify(&notes).await?;
            told += notes.len();
            push(app, &notes).await;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    tracing::info!(stream_id = %stream.id, kind = ?kind, told, "notifications written");
    Ok(told)
}

/// Pushes each notification to its user's open notifications sockets. Never fails the
/// announcement: the notifications are stored already.
async fn push(app: &App, notes: &[(String, Notification)]) {
    let users: Vec<String> = notes.iter().map(|(u, _)| u.clone()).collect();
    let sockets = match app.notifications.sockets(&users).await {
        Ok(sockets) => sockets,
        Err(e) => {
            tracing::warn!(error = %e, "notifications sockets not read; nothing pushed");
            return;
        }
    };
    if sockets.is_empty() {
        return;
    }
    let frames: std::collections::HashMap<String, String> =
        notes.iter().map(|(u, n)| (u.clone(), frame(n))).collect();
    let total = sockets.len();
    let sends: Vec<_> = sockets
        .into_iter()
        .map(|(user, connection)| {
            let frame = frames.get(&user).cloned().unwrap_or_default();
            push_one(app, user, connection, frame)
        })
        .collect();
    let results: Vec<bool> = futures_util::stream::iter(sends)
        .buffer_unordered(app.fanout_concurrency)
        .collect()
        .await;
    let pushed = results.into_iter().filter(|ok| *ok).count();
    tracing::info!(sockets = total, pushed, "notifications pushed");
}

/// One frame to one socket; a gone socket leaves its user's set.
async fn push_one(app: &App, user: String, connection: String, frame: String) -> bool {
    match app.notifier.post(&connection, frame.as_bytes()).await {
        Ok(()) => true,
        Err(NotifyError::Gone) => {
            if let Err(e) = app.notifications.forget_socket(&user, &connection).await {
                tracing::warn!(error = %e, "gone notifications socket not forgotten");
            }
            false
        }
        Err(NotifyError::Failed(e)) => {
            tracing::warn!(error = %e, "notification push failed");
            false
        }
    }
}

/// The frame a notifications socket receives: shaped like every server event.
fn frame(n: &Notification) -> String {
    serde_json::json!({
        "type": n.kind,
        "streamId": n.stream_id,
        "data": n,
        "ts": rill_core::time::now().timestamp_millis(),
    })
    .to_string()
}

/// What `notifications-send` is invoked with: a reminder (by its one-time EventBridge
/// Scheduler schedule `remind-{streamId}-{minutes}`) or "live now" (by `webhooks-dispatch`,
/// asynchronously: a channel with a large audience never holds up the dispatcher's shard).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Job {
    #[serde(rename = "stream:scheduled-reminder", rename_all = "camelCase")]
    Reminder { stream_id: String, minutes: u32 },
    #[serde(rename = "stream:start", rename_all = "camelCase")]
    Start { stream_id: String },
}

/// `notifications-send`: runs one [`Job`].
pub async fn send(app: &App, job: &Job) -> Result<serde_json::Value, ApiError> {
    match job {
        Job::Reminder { stream_id, minutes } => remind(app, stream_id, *minutes).await,
        Job::Start { stream_id } => {
            let Some(stream) = app.streams.get_stream(stream_id).await? else {
                return Ok(serde_json::json!({"sent": 0, "why": "no such stream"}));
            };
            let sent = live_now(app, &stream).await?;
            Ok(serde_json::json!({"sent": sent}))
        }
    }
}

/// "Live now" to the channel's people; the same id again on a redelivery.
pub async fn live_now(app: &App, stream: &Stream) -> Result<usize, ApiError> {
    let at = stream.started_at.unwrap_or_else(rill_core::time::now);
    announce(app, stream, NotificationKind::Start, None, at).await
}

/// `notifications-send`: sends the reminder if it is still wanted now
/// (`rill_core::notification::reminder_due`: the stream is still scheduled, at this time,
/// with this reminder and an audience); otherwise nothing (a cancelled, started or moved
/// stream whose schedule was not deleted in time). The notification's id is fixed by the
/// stream, the minutes and the reminder's time, so a retried invocation adds nothing.
async fn remind(app: &App, stream_id: &str, minutes: u32) -> Result<serde_json::Value, ApiError> {
    let Some(stream) = app.streams.get_stream(stream_id).await? else {
        return Ok(serde_json::json!({"sent": 0, "why": "no such stream"}));
    };
    let now = rill_core::time::now();
    if !rill_core::notification::reminder_due(&stream, minutes, now) {
        tracing::info!(stream_id = %stream.id, minutes = minutes, "reminder no longer due; skipped");
        return Ok(serde_json::json!({"sent": 0, "why": "not due"}));
    }
    let start = stream.scheduled_at.unwrap_or(now);
    let at = start - chrono::Duration::minutes(i64::from(minutes));
    let sent = announce(app, &stream, NotificationKind::Reminder, Some(minutes), at).await?;
    Ok(serde_json::json!({"sent": sent}))
}

#[cfg(test)]
mod tests {
    use super::Job;
    use serde_json::json;

    #[test]
    fn a_job_is_what_a_reminder_schedule_or_the_dispatcher_sends() {
        let reminder: Job = serde_json::from_value(
            json!({"type": "stream:scheduled-reminder", "streamId": "s", "minutes": 15}),
        )
        .expect("reminder");
        assert_eq!(
            reminder,
            Job::Reminder {
                stream_id: "s".into(),
                minutes: 15
            }
        );
        let start = Job::Start {
            stream_id: "s".into(),
        };
        assert_eq!(
            serde_json::to_value(&start).expect("json"),
            json!({"type": "stream:start", "streamId": "s"})
        );
        for bad in [
            json!({"streamId": "s", "minutes": 15}),
            json!({"type": "stream:end", "streamId": "s"}),
            json!({"type": "stream:start", "streamId": "s", "extra": 1}),
        ] {
            assert!(serde_json::from_value::<Job>(bad.clone()).is_err(), "{bad}");
        }
    }
}
