//! Pre-warming the ingest fleet before scheduled streams.
//!
//! A scheduled stream should find a node with room when its broadcaster goes live, but a
//! new Fargate task takes minutes to start and target tracking only reacts to streams that
//! are already running. So the fleet's *minimum* is raised ahead of time:
//!
//! - creating or rescheduling a scheduled stream upserts a one-time schedule
//!   ([`PrewarmSchedule`], EventBridge Scheduler on AWS) named [`schedule_name`] at
//!   [`prewarm_at`] = start − [`PREWARM_LEAD`]; starting or cancelling the stream deletes it;
//! - whatever fires (that schedule, or a fixed-rate reconciliation) runs the same
//!   reconciler: it counts the scheduled streams starting soon ([`is_upcoming`]) and sets the
//!   minimum ([`IngestFloor`]) to [`floor`]. The same run lowers the minimum again once those
//!   streams have started: live streams are then carried by target tracking.
//!
//! Invariants:
//! - the reconciler is the source of truth: a schedule that was never created (a failed
//!   call, a stream scheduled less than [`PREWARM_LEAD`] ahead) or never deleted (the
//!   stream started from the ingest node) only changes *when* the minimum is recomputed,
//!   never what it is;
//! - both ports are idempotent: upserting an existing schedule replaces it, deleting a
//!   missing one is `Ok`, setting the same minimum twice changes nothing;
//! - the floor never goes below the configured base minimum nor above the maximum.

use std::time::Duration;

use async_trait::async_trait;

use crate::stream::{Stream, StreamStatus};
use crate::time::Timestamp;

/// How long before a scheduled start the minimum is raised: enough for Fargate to pull the
/// image and start a task (typically 1–3 min) with room to spare.
pub const PREWARM_LEAD: Duration = Duration::from_secs(10 * 60);

/// The reconciler counts scheduled streams starting within this window. Longer than
/// [`PREWARM_LEAD`] plus the reconciliation period (5 min), so a stream whose own schedule
/// was never created is still counted at least [`PREWARM_LEAD`] ahead.
pub const HORIZON: Duration = Duration::from_secs(15 * 60);

/// A scheduled stream whose start time has passed keeps counting this long (the owner is
/// probably about to start it); after that it is a stream that will never happen and no
/// longer holds capacity.
pub const OVERDUE_GRACE: Duration = Duration::from_secs(30 * 60);

/// The one-time schedule of a stream. Schedule names allow `[0-9a-zA-Z-_.]`, up to 64
/// characters; a stream id is a 26-character ULID, so the name is 34.
pub fn schedule_name(stream_id: &str) -> String {
    format!("prewarm-{stream_id}")
}

/// When the stream's one-time schedule should fire: `None` when the stream is not
/// `scheduled`, has no start time, or starts less than [`PREWARM_LEAD`] from `now` (the
/// reconciler's next run covers it).
pub fn prewarm_at(stream: &Stream, now: Timestamp) -> Option<Timestamp> {
    if stream.status != StreamStatus::Scheduled {
        return None;
    }
    let at = stream.scheduled_at? - lead();
    (at > now).then_some(at)
}

/// The scheduled stream counts towards the floor at `now`: it starts within [`HORIZON`],
/// or started less than [`OVERDUE_GRACE`] ago and is still waiting for its broadcaster.
pub fn is_upcoming(scheduled_at: Timestamp, now: Timestamp) -> bool {
    let horizon = chrono::Duration::from_std(HORIZON).unwrap_or(chrono::Duration::MAX);
    let grace = chrono::Duration::from_std(OVERDUE_GRACE).unwrap_or(chrono::Duration::MAX);
    scheduled_at <= now + horizon && scheduled_at >= now - grace
}

/// A scheduled listing sorted soonest first can stop at the first stream starting after
/// this.
pub fn is_past_horizon(scheduled_at: Timestamp, now: Timestamp) -> bool {
    let horizon = chrono::Duration::from_std(HORIZON).unwrap_or(chrono::Duration::MAX);
    scheduled_at > now + horizon
}

fn lead() -> chrono::Duration {
    chrono::Duration::from_std(PREWARM_LEAD).unwrap_or(chrono::Duration::zero())
}

/// The fleet's sizing rules, from the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloorRule {
    /// The minimum with nothing scheduled (`IngestMinTasks`).
    pub base_min: u32,
    /// The scaling maximum (`IngestMaxTasks`): a minimum above it would be refused.
    pub max: u32,
    /// Streams one task carries ([`crate::fleet::capacity_for`] its vCPUs): at least 1.
    pub streams_per_task: u32,
}

/// The minimum task count for `upcoming` scheduled streams:
/// `max(base_min, ceil(upcoming / streams_per_task))`, capped at `max` (a base above the
/// maximum is configured, so it wins); `streams_per_task` 0 counts as 1.
pub fn floor(rule: &FloorRule, upcoming: u32) -> u32 {
    let per_task = rule.streams_per_task.max(1);
    let needed = upcoming.div_ceil(per_task);
    needed.max(rule.base_min).min(rule.max.max(rule.base_min))
}

/// Why a schedule or the minimum could not be changed. The text is for logs only.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PrewarmError(pub String);

/// One-time schedules that run the reconciler shortly before a stream starts.
#[async_trait]
pub trait PrewarmSchedule: Send + Sync {
    /// Creates the stream's schedule at `at`, or moves it there if it exists.
    async fn upsert(&self, stream_id: &str, at: Timestamp) -> Result<(), PrewarmError>;
    /// Removes the stream's schedule; a schedule that does not exist (never made, already
    /// fired and deleted itself) is `Ok`.
    async fn delete(&self, stream_id: &str) -> Result<(), PrewarmError>;
}

/// The ingest service's minimum task count (the scalable target's `MinCapacity` on AWS).
#[async_trait]
pub trait IngestFloor: Send + Sync {
    async fn set_min(&self, min: u32) -> Result<(), PrewarmError>;
}

/// Pre-warming switched off (local runs, no ingest tier): nothing is ever scheduled.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrewarm;

#[async_trait]
impl PrewarmSchedule for NoPrewarm {
    async fn upsert(&self, _: &str, _: Timestamp) -> Result<(), PrewarmError> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<(), PrewarmError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::NewStream;

    fn at(min: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000 + min * 60, 0).expect("valid")
    }

    fn scheduled(start_min: i64, now: Timestamp) -> Stream {
        let input: NewStream = serde_json::from_value(serde_json::json!({
            "channelId": "c",
            "title": "t",
            "scheduledAt": crate::time::format(&at(start_min)),
        }))
        .expect("input");
        Stream::create("01J0000000000000000000000".into(), "u".into(), input, now).expect("ok")
    }

    #[test]
    fn a_stream_two_hours_ahead_is_prewarmed_ten_minutes_before_its_start() {
        let s = scheduled(120, at(0));
        assert_eq!(prewarm_at(&s, at(0)), Some(at(110)));
    }

    #[test]
    fn a_stream_starting_within_the_lead_gets_no_schedule() {
        let s = scheduled(10, at(0));
        assert_eq!(prewarm_at(&s, at(0)), None, "exactly the lead");
        let s = scheduled(5, at(0));
        assert_eq!(prewarm_at(&s, at(0)), None);
        assert_eq!(prewarm_at(&scheduled(11, at(0)), at(0)), Some(at(1)));
    }

    #[test]
    fn only_scheduled_streams_are_prewarmed() {
        let mut s = scheduled(120, at(0));
        s.status = StreamStatus::Preparing;
        assert_eq!(prewarm_at(&s, at(0)), None);
        s.status = StreamStatus::Cancelled;
        assert_eq!(prewarm_at(&s, at(0)), None);
    }

    #[test]
    fn upcoming_means_within_the_horizon_or_recently_overdue() {
        let now = at(100);
        assert!(is_upcoming(at(115), now), "at the horizon");
        assert!(!is_upcoming(at(116), now));
        assert!(is_upcoming(at(100), now));
        assert!(is_upcoming(at(70), now), "overdue within the grace");
        assert!(!is_upcoming(at(69), now), "abandoned");
        assert!(is_past_horizon(at(116), now));
        assert!(!is_past_horizon(at(115), now));
    }

    #[test]
    fn the_floor_is_enough_tasks_for_the_upcoming_streams_but_never_below_the_base() {
        let rule = FloorRule {
            base_min: 1,
            max: 10,
            streams_per_task: 2,
        };
        assert_eq!(floor(&rule, 0), 1);
        assert_eq!(floor(&rule, 1), 1);
        assert_eq!(floor(&rule, 2), 1);
        assert_eq!(floor(&rule, 3), 2, "rounds up");
        assert_eq!(floor(&rule, 8), 4);
        let base3 = FloorRule {
            base_min: 3,
            ..rule
        };
        assert_eq!(floor(&base3, 4), 3);
    }

    #[test]
    fn the_floor_never_exceeds_the_maximum() {
        let rule = FloorRule {
            base_min: 1,
            max: 4,
            streams_per_task: 1,
        };
        assert_eq!(floor(&rule, 50), 4);
        let odd = FloorRule {
            base_min: 5,
            max: 2,
            streams_per_task: 1,
        };
        assert_eq!(
            floor(&odd, 0),
            5,
            "a base above the maximum wins: it is configured"
        );
    }

    #[test]
    fn one_stream_per_task_and_a_zero_capacity_both_mean_a_task_per_stream() {
        let rule = FloorRule {
            base_min: 1,
            max: 10,
            streams_per_task: 1,
        };
        assert_eq!(floor(&rule, 2), 2);
        let zero = FloorRule {
            streams_per_task: 0,
            ..rule
        };
        assert_eq!(floor(&zero, 3), 3);
    }

    #[test]
    fn schedule_names_are_valid_for_eventbridge_scheduler() {
        let name = schedule_name(&crate::ids::new_id());
        assert!(name.len() <= 64);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        );
    }
}
