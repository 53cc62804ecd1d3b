//! Lateness of the publisher's media and availability lag quantiles.
//!
//! Both are judged on the node's clock at the moment it read the media from the
//! publisher's connection, before any queue of its own, so a busy node cannot hide its lag.

use std::collections::VecDeque;
use std::time::Duration;

/// Counts frames that arrive late: more than [`Lateness::THRESHOLD_MS`] after the time their
/// timestamp says, judged against the best (smallest) arrival-minus-timestamp offset seen.
/// A publisher whose uplink or CPU stalls delivers a burst of late frames; so does a node
/// too busy to read its connection (TCP pushes back), which the viewers feel the same way. The best offset
/// relaxes by 1 ms per second of media so that a sender clock drifting against ours (well
/// under 1000 ppm in practice) is not counted as lateness.
#[derive(Debug, Default)]
pub struct Lateness {
    best: Option<(i64, i64)>,
    behind_ms: i64,
}

impl Lateness {
    pub const THRESHOLD_MS: i64 = 300;

    /// How far the last observed frame arrived behind the best offset seen: with a
    /// publisher sending in real time, how far the node has fallen behind reading it.
    pub fn behind(&self) -> Duration {
        Duration::from_millis(self.behind_ms.max(0) as u64)
    }

    /// Whether the frame with timestamp `pts_ms`, arriving at `arrival_ms`, is late.
    pub fn observe(&mut self, pts_ms: i64, arrival_ms: i64) -> bool {
        let offset = arrival_ms - pts_ms;
        let best = match self.best {
            Some((best, at_pts)) => best + (pts_ms - at_pts).max(0) / 1000,
            None => offset,
        };
        if offset <= best {
            self.best = Some((offset, pts_ms));
            self.behind_ms = 0;
            return false;
        }
        self.behind_ms = offset - best;
        self.behind_ms > Self::THRESHOLD_MS
    }
}

/// The most recent lags (every rendition), for quantiles.
#[derive(Debug, Default)]
pub struct LagWindow {
    recent: VecDeque<Duration>,
    pub count: u64,
    pub sum: Duration,
}

impl LagWindow {
    const KEPT: usize = 600;

    pub fn record(&mut self, lag: Duration) {
        if self.recent.len() == Self::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(lag);
        self.count += 1;
        self.sum += lag;
    }

    /// The `q` quantile (0–1, nearest rank) of the recent lags.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
        sorted.get(rank - 1).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_publisher_has_no_late_frames_even_with_jitter_and_drift() {
        let mut l = Lateness::default();
        // 30 fps for ten minutes, ±20 ms of jitter, the sender's clock 200 ppm slow.
        let late = (0..18_000)
            .filter(|&i| {
                let pts = i * 33;
                let arrival = 5_000 + pts + pts / 5_000 + [0, 20, 5, 12, 0, 18][(i % 6) as usize];
                l.observe(pts, arrival)
            })
            .count();
        assert_eq!(late, 0);
    }

    #[test]
    fn a_stall_makes_the_frames_behind_it_late() {
        let mut l = Lateness::default();
        let mut late = 0;
        for i in 0..300i64 {
            let pts = i * 33;
            // Frames 100..130 are held up for a second and then arrive in a burst.
            let arrival = if (100..130).contains(&i) {
                130 * 33
            } else {
                pts
            };
            late += usize::from(l.observe(pts, arrival));
        }
        // Held more than 300 ms: frames 100..=120 (the last nine were close enough).
        assert_eq!(late, 21);
        assert_eq!(l.behind(), Duration::ZERO, "caught up after the burst");
    }

    #[test]
    fn lag_quantiles_are_nearest_rank_over_the_recent_window() {
        let mut w = LagWindow::default();
        assert_eq!(w.quantile(0.5), None);
        for ms in 1..=10 {
            w.record(Duration::from_millis(ms * 100));
        }
        assert_eq!(w.quantile(0.5), Some(Duration::from_millis(500)));
        assert_eq!(w.quantile(0.9), Some(Duration::from_millis(900)));
        assert_eq!(w.quantile(1.0), Some(Duration::from_millis(1000)));
        for _ in 0..LagWindow::KEPT {
            w.record(Duration::from_millis(50));
        }
        assert_eq!(w.quantile(0.99), Some(Duration::from_millis(50)));
        assert_eq!(w.count, 10 + LagWindow::KEPT as u64);
    }
}
