//! Notifications to the people of a channel: a stream's notification settings (whom, and
//! when), and the notifications users find in their list (`GET /api/me/notifications`).
//!
//! Invariants:
//! - only the channel's people are ever notified, each at most once per (stream, kind):
//!   a notification's id is derived from the stream, the kind and when it happened, so a
//!   redelivered batch writes the same item again instead of a second one;
//! - a members-only stream is never announced to anyone below `subscriber` (they cannot
//!   see it), whatever its audience says ([`Audience::reaches`]);
//! - the stream's owner is not notified of their own stream.

use serde::{Deserialize, Serialize};

use crate::channel::ChannelRole;
use crate::stream::Visibility;
use crate::time::{Timestamp, rfc3339_millis};
use crate::validate::ValidationError;

/// Reminders per stream, at most.
pub const REMINDERS_MAX: usize = 3;
/// The earliest reminder: a week before.
pub const REMINDER_MINUTES_MAX: u32 = 10_080;
/// Notifications kept per user (TTL from when they happened).
pub const RETENTION_DAYS: i64 = 30;
/// Page size of the list by default, and at most.
pub const PAGE_DEFAULT: u32 = 20;
pub const PAGE_MAX: u32 = 100;
/// Ids per "mark read" request, at most.
pub const READ_MAX: usize = 100;

/// Whom a stream's notifications go to, among the channel's people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// Everyone holding a role in the channel (followers and up).
    #[default]
    Followers,
    /// Subscribers and up (members).
    Subscribers,
    Nobody,
}

impl Audience {
    /// Whether someone holding `role` is notified of a stream with `visibility`.
    pub fn reaches(self, role: ChannelRole, visibility: Visibility) -> bool {
        let least = match self {
            Audience::Nobody => return false,
            Audience::Followers => ChannelRole::Follower,
            Audience::Subscribers => ChannelRole::Subscriber,
        };
        let least = if visibility == Visibility::Members {
            least.max(ChannelRole::Subscriber)
        } else {
            least
        };
        role >= least
    }
}

/// A stream's notification settings (`settings.notifications`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NotificationSettings {
    pub audience: Audience,
    /// Tell the audience when the stream goes live.
    pub at_start: bool,
    /// Minutes before `scheduledAt` to remind the audience (distinct, 1..=10080, at most 3;
    /// kept sorted, largest first).
    #[serde(deserialize_with = "crate::json_int::vec_u32")]
    pub reminders: Vec<u32>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            audience: Audience::Followers,
            at_start: true,
            reminders: Vec::new(),
        }
    }
}

impl NotificationSettings {
    /// Checks the reminders and puts them in order (largest first, duplicates removed).
    pub fn normalised(mut self) -> Result<NotificationSettings, ValidationError> {
        let field = "settings.notifications.reminders";
        if let Some(bad) = self
            .reminders
            .iter()
            .find(|m| !(1..=REMINDER_MINUTES_MAX).contains(*m))
        {
            return Err(ValidationError {
                field,
                message: format!(
                    "{bad} is not a number of minutes from 1 to {REMINDER_MINUTES_MAX}"
                ),
            });
        }
        self.reminders.sort_unstable_by(|a, b| b.cmp(a));
        self.reminders.dedup();
        if self.reminders.len() > REMINDERS_MAX {
            return Err(ValidationError {
                field,
                message: format!("at most {REMINDERS_MAX} reminders"),
            });
        }
        Ok(self)
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationKind {
    /// The stream went live.
    #[serde(rename = "stream:start")]
    Start,
    /// The stream starts in `minutesBefore` minutes.
    #[serde(rename = "stream:scheduled-reminder")]
    Reminder,
}

/// One notification in a user's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Sorts by when it happened (newest last); the same for a redelivery.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    pub stream_id: String,
    pub channel_id: String,
    /// The stream's title when it was sent.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes_before: Option<u32>,
    #[serde(with = "rfc3339_millis")]
    pub created_at: Timestamp,
    pub read: bool,
}

impl Notification {
    /// The notification of `kind` for a stream at `at` (ids: 13-digit milliseconds, the
    /// stream and the kind, so they sort by time and repeat for the same event).
    pub fn new(
        kind: NotificationKind,
        stream: &crate::Stream,
        minutes_before: Option<u32>,
        at: Timestamp,
    ) -> Notification {
        let tag = match (kind, minutes_before) {
            (NotificationKind::Start, _) => "start".to_owned(),
            (NotificationKind::Reminder, m) => format!("remind{}", m.unwrap_or(0)),
        };
        Notification {
            id: format!("{:013}-{}-{tag}", at.timestamp_millis().max(0), stream.id),
            kind,
            stream_id: stream.id.clone(),
            channel_id: stream.channel_id.clone(),
            title: stream.title.clone(),
            minutes_before,
            created_at: at,
            read: false,
        }
    }
}

/// A notification id as clients send it back: the shape [`Notification::new`] makes.
pub fn is_valid_id(id: &str) -> bool {
    let mut parts = id.splitn(3, '-');
    let (Some(ms), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    ms.len() == 13
        && ms.bytes().all(|b| b.is_ascii_digit())
        && crate::ids::is_valid_id(stream)
        && (tag == "start"
            || tag.strip_prefix("remind").is_some_and(|m| {
                !m.is_empty() && m.len() <= 5 && m.bytes().all(|b| b.is_ascii_digit())
            }))
}

/// How late a reminder may still be sent (a schedule that fired late, a retry).
pub const REMINDER_LATE_MAX_SECS: i64 = 5 * 60;

/// The reminders a stream should have scheduled now: `(minutes, when)` for each of its
/// settings' reminders whose time is still ahead, while it is scheduled with a start and
/// an audience. Anything else (started, cancelled, no `scheduledAt`, audience nobody) has
/// none.
pub fn reminders_due_later(stream: &crate::Stream, now: Timestamp) -> Vec<(u32, Timestamp)> {
    let n = &stream.settings.notifications;
    let (Some(start), true, false) = (
        stream.scheduled_at,
        stream.status == crate::stream::StreamStatus::Scheduled,
        n.audience == Audience::Nobody,
    ) else {
        return Vec::new();
    };
    n.reminders
        .iter()
        .map(|m| (*m, start - chrono::Duration::minutes(i64::from(*m))))
        .filter(|(_, at)| *at > now)
        .collect()
}

/// What to change in the schedules after a stream changed from `before` (`None`: it was
/// just created) to `after`: `(upserts, deletes)`. Every reminder `after` should have is
/// upserted (an unchanged one too: upserting is idempotent and cheap, and it repairs a lost
/// one); every reminder `before` had that `after` has not is deleted.
pub fn reminder_changes(
    before: Option<&crate::Stream>,
    after: &crate::Stream,
    now: Timestamp,
) -> (Vec<(u32, Timestamp)>, Vec<u32>) {
    let upserts = reminders_due_later(after, now);
    let deletes = before
        .map(|b| {
            b.settings
                .notifications
                .reminders
                .iter()
                .copied()
                .filter(|m| !upserts.iter().any(|(k, _)| k == m))
                .collect()
        })
        .unwrap_or_default();
    (upserts, deletes)
}

/// Whether the reminder `minutes` before the start, firing at `now`, is still wanted: the
/// stream is scheduled, still has that reminder and an audience, and `now` is that
/// reminder's time (up to a minute early, [`REMINDER_LATE_MAX_SECS`] late). A reminder of a
/// cancelled, started or moved stream (its schedule not deleted in time) is refused here.
pub fn reminder_due(stream: &crate::Stream, minutes: u32, now: Timestamp) -> bool {
    let n = &stream.settings.notifications;
    let Some(start) = stream.scheduled_at else {
        return false;
    };
    if stream.status != crate::stream::StreamStatus::Scheduled
        || n.audience == Audience::Nobody
        || !n.reminders.contains(&minutes)
    {
        return false;
    }
    let at = start - chrono::Duration::minutes(i64::from(minutes));
    let early = (at - now).num_seconds();
    let late = (now - at).num_seconds();
    early <= 60 && late <= REMINDER_LATE_MAX_SECS
}

/// The one-time schedule of a stream's reminder `minutes` before its start (EventBridge
/// Scheduler on AWS): `remind-{streamId}-{minutes}`, at most 7 + 26 + 1 + 5 characters,
/// within Scheduler's 64.
pub fn reminder_schedule_name(stream_id: &str, minutes: u32) -> String {
    format!("remind-{stream_id}-{minutes}")
}

/// Why a reminder's schedule could not be written or deleted. The text is for logs only.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

/// One-time schedules that invoke the reminder function at a reminder's time. A schedule
/// is only ever a wake-up call: what fires re-checks [`reminder_due`], so a schedule left
/// behind (a delete that failed) sends nothing.
#[async_trait::async_trait]
pub trait ReminderSchedule: Send + Sync {
    /// Creates the reminder's schedule at `at`, or moves it there if it exists.
    async fn upsert(
        &self,
        stream_id: &str,
        minutes: u32,
        at: Timestamp,
    ) -> Result<(), ScheduleError>;
    /// Removes it; one that does not exist (never made, fired and gone) is `Ok`.
    async fn delete(&self, stream_id: &str, minutes: u32) -> Result<(), ScheduleError>;
}

/// Reminders switched off (no scheduler configured): nothing is ever scheduled.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReminders;

#[async_trait::async_trait]
impl ReminderSchedule for NoReminders {
    async fn upsert(&self, _: &str, _: u32, _: Timestamp) -> Result<(), ScheduleError> {
        Ok(())
    }
    async fn delete(&self, _: &str, _: u32) -> Result<(), ScheduleError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelRole::*;

    #[test]
    fn audiences_reach_roles_and_members_only_streams_only_members() {
        use Visibility::*;
        assert!(Audience::Followers.reaches(Follower, Public));
        assert!(!Audience::Subscribers.reaches(Follower, Public));
        assert!(Audience::Subscribers.reaches(Moderator, Unlisted));
        assert!(!Audience::Nobody.reaches(Broadcaster, Public));
        assert!(!Audience::Followers.reaches(Follower, Members));
        assert!(Audience::Followers.reaches(Subscriber, Members));
    }

    #[test]
    fn reminders_are_checked_sorted_and_deduplicated() {
        let s = NotificationSettings {
            reminders: vec![15, 60, 15],
            ..Default::default()
        };
        assert_eq!(s.normalised().expect("ok").reminders, vec![60, 15]);
        for bad in [vec![0], vec![10_081], vec![1, 2, 3, 4]] {
            let s = NotificationSettings {
                reminders: bad.clone(),
                ..Default::default()
            };
            let e = s.normalised().expect_err("refused");
            assert_eq!(e.field, "settings.notifications.reminders", "{bad:?}");
        }
    }

    #[test]
    fn settings_default_to_followers_at_start_and_refuse_unknown_fields() {
        let s: NotificationSettings = serde_json::from_str("{}").expect("defaults");
        assert_eq!(s, NotificationSettings::default());
        let s: NotificationSettings =
            serde_json::from_str(r#"{"audience":"nobody"}"#).expect("partial");
        assert!(s.at_start && s.audience == Audience::Nobody);
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"when":1}"#).is_err());
        // JSON Schema's integers: 60.0 is 60; 1.5 is not an integer.
        let s: NotificationSettings =
            serde_json::from_str(r#"{"reminders":[60.0, 15]}"#).expect("integral floats");
        assert_eq!(s.reminders, vec![60, 15]);
        assert!(serde_json::from_str::<NotificationSettings>(r#"{"reminders":[1.5]}"#).is_err());
    }

    #[test]
    fn ids_repeat_for_the_same_event_and_read_back() {
        let input: crate::stream::NewStream =
            serde_json::from_value(serde_json::json!({"channelId": "c", "title": "Hi"}))
                .expect("input");
        let stream =
            crate::Stream::create(crate::ids::new_id(), "o".into(), input, crate::time::now())
                .expect("stream");
        let at = crate::time::now();
        let a = Notification::new(NotificationKind::Start, &stream, None, at);
        let b = Notification::new(NotificationKind::Start, &stream, None, at);
        assert_eq!(a.id, b.id);
        assert!(is_valid_id(&a.id), "{}", a.id);
        let r = Notification::new(NotificationKind::Reminder, &stream, Some(15), at);
        assert!(is_valid_id(&r.id) && r.id.ends_with("remind15"), "{}", r.id);
        for bad in ["", "x", "123-abc-start", &format!("{}#", a.id)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["type"], "stream:start");
        assert!(json.get("minutesBefore").is_none());
    }

    fn scheduled(minutes: &[u32], in_minutes: i64) -> crate::Stream {
        let at = crate::time::now() + chrono::Duration::minutes(in_minutes);
        let input: crate::stream::NewStream = serde_json::from_value(serde_json::json!({
            "channelId": "c", "title": "Later",
            "scheduledAt": crate::time::format(&at),
            "settings": {"notifications": {"reminders": minutes}},
        }))
        .expect("input");
        crate::Stream::create(crate::ids::new_id(), "o".into(), input, crate::time::now())
            .expect("stream")
    }

    #[test]
    fn reminder_schedule_names_are_valid_for_eventbridge_scheduler() {
        let name = reminder_schedule_name(&crate::ids::new_id(), REMINDER_MINUTES_MAX);
        assert!(name.len() <= 64, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        );
    }

    #[test]
    fn a_scheduled_stream_has_the_reminders_still_ahead() {
        let s = scheduled(&[60, 15], 30);
        assert_eq!(s.status, crate::stream::StreamStatus::Scheduled);
        let now = crate::time::now();
        let later = reminders_due_later(&s, now);
        assert_eq!(
            later.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
            vec![15],
            "60 min before is past"
        );
        assert_eq!(
            later[0].1,
            s.scheduled_at.expect("at") - chrono::Duration::minutes(15)
        );
        let mut quiet = s.clone();
        quiet.settings.notifications.audience = Audience::Nobody;
        assert!(reminders_due_later(&quiet, now).is_empty());
        let mut live = s.clone();
        live.status = crate::stream::StreamStatus::Live;
        assert!(reminders_due_later(&live, now).is_empty());
    }

    #[test]
    fn changes_delete_what_a_cancelled_started_or_edited_stream_no_longer_has() {
        let now = crate::time::now();
        let before = scheduled(&[60, 15], 120);
        let (up, del) = reminder_changes(None, &before, now);
        assert_eq!((up.len(), del.len()), (2, 0));
        let mut cancelled = before.clone();
        cancelled.status = crate::stream::StreamStatus::Cancelled;
        assert_eq!(
            reminder_changes(Some(&before), &cancelled, now),
            (vec![], vec![60, 15])
        );
        let mut edited = before.clone();
        edited.settings.notifications.reminders = vec![15];
        let (up, del) = reminder_changes(Some(&before), &edited, now);
        assert_eq!(
            (up.iter().map(|(m, _)| *m).collect::<Vec<_>>(), del),
            (vec![15], vec![60])
        );
    }

    #[test]
    fn a_reminder_fires_only_at_its_time_for_a_stream_still_scheduled() {
        let s = scheduled(&[15], 15);
        let at = s.scheduled_at.expect("at") - chrono::Duration::minutes(15);
        assert!(reminder_due(&s, 15, at));
        assert!(reminder_due(
            &s,
            15,
            at + chrono::Duration::seconds(REMINDER_LATE_MAX_SECS)
        ));
        assert!(!reminder_due(
            &s,
            15,
            at + chrono::Duration::seconds(REMINDER_LATE_MAX_SECS + 1)
        ));
        assert!(
            !reminder_due(&s, 15, at - chrono::Duration::minutes(2)),
            "moved later"
        );
        assert!(!reminder_due(&s, 60, at), "not one of its reminders");
        let mut started = s.clone();
        started.status = crate::stream::StreamStatus::Live;
        assert!(!reminder_due(&started, 15, at), "started early");
        let mut cancelled = s;
        cancelled.status = crate::stream::StreamStatus::Cancelled;
        assert!(!reminder_due(&cancelled, 15, at));
    }
}
