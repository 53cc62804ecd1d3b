//! Presence pacing: when a stream's viewer count may go out again.
//!
//! A crowd arriving changes the count hundreds of times a second; sending each change to
//! every viewer costs N² deliveries. The presence function therefore sends a stream's
//! count at most once per [`INTERVAL`], and never drops the last change: a batch that
//! comes too soon after the previous send waits out the rest of the interval and then
//! sends the count as it is *then* (a trailing send), so the final count of a burst always
//! goes out, at most one interval late.
//!
//! The pacer is what one warm instance remembers; it holds no I/O and takes the clock as an
//! argument. Invariants: two sends of one stream recorded by the same pacer are at least
//! [`INTERVAL`] apart when the caller waits what [`Pacer::wait`] says; memory is bounded
//! (entries older than the interval carry no information and are dropped past
//! [`MAX_STREAMS`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most one viewer-count frame per stream per interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Streams remembered before stale entries are swept.
pub const MAX_STREAMS: usize = 10_000;

#[derive(Debug, Default)]
pub struct Pacer {
    last_sent: HashMap<String, Instant>,
}

impl Pacer {
    /// How long to wait before sending `stream_id`'s count at `now` (zero: send now).
    pub fn wait(&self, stream_id: &str, now: Instant) -> Duration {
        self.last_sent
            .get(stream_id)
            .map(|at| (*at + INTERVAL).saturating_duration_since(now))
            .unwrap_or_default()
    }

    /// Records a send of `stream_id`'s count at `at`.
    pub fn sent(&mut self, stream_id: &str, at: Instant) {
        if self.last_sent.len() >= MAX_STREAMS && !self.last_sent.contains_key(stream_id) {
            self.last_sent
                .retain(|_, sent| at.saturating_duration_since(*sent) < INTERVAL);
        }
        let entry = self.last_sent.entry(stream_id.to_owned()).or_insert(at);
        *entry = (*entry).max(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_never_sent_goes_out_at_once() {
        let p = Pacer::default();
        assert_eq!(p.wait("a", Instant::now()), Duration::ZERO);
    }

    #[test]
    fn a_send_within_the_interval_waits_for_the_rest_of_it() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        p.sent("a", t0);
        assert_eq!(
            p.wait("a", t0 + Duration::from_millis(300)),
            Duration::from_millis(700)
        );
        assert_eq!(p.wait("a", t0 + INTERVAL), Duration::ZERO);
        assert_eq!(p.wait("a", t0 + Duration::from_secs(5)), Duration::ZERO);
    }

    #[test]
    fn streams_are_paced_independently() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        p.sent("a", t0);
        assert_eq!(p.wait("b", t0), Duration::ZERO);
    }

    #[test]
    fn an_older_send_never_moves_the_mark_back() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        p.sent("a", t0 + Duration::from_millis(500));
        p.sent("a", t0);
        assert_eq!(p.wait("a", t0 + Duration::from_millis(500)), INTERVAL);
    }

    #[test]
    fn memory_stays_bounded_and_recent_sends_survive_the_sweep() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        for i in 0..MAX_STREAMS {
            p.sent(&format!("old{i}"), t0);
        }
        let later = t0 + Duration::from_secs(2);
        p.sent("recent", later - Duration::from_millis(100));
        p.sent("new", later);
        assert!(p.last_sent.len() <= 3, "stale entries swept");
        assert!(p.wait("recent", later) > Duration::ZERO);
    }
}
