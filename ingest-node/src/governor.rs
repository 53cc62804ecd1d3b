//! The overload governor: keeps every stream real time whatever the CPU does.
//!
//! Sans-IO: the media thread feeds it [`Observation`]s (how far the stream's output trails
//! its input, how busy the media thread was) with the time, and applies the level it answers
//! at the next segment boundary. No clock, no threads, no FFmpeg here, so the decisions are
//! unit-tested on constructed timelines.
//!
//! Levels (0 = today's encoding, [`MAX_LEVEL`] = cheapest) are ordered by measured CPU cost
//! (`bench-overload --levels`, figures in the README): each step buys the most CPU for the
//! least visible quality first.
//!
//! | level | what changes (encoded rungs only; a passed-through top rung is never touched) |
//! |---|---|
//! | 0 | x264 `veryfast` everywhere (no change) |
//! | 1 | the top rung at `superfast` (it is ~60% of the ladder's work) |
//! | 2 | every rung at `superfast`, fast-bilinear scaling |
//! | 3 | the top rung at `ultrafast` (header-compatible, see below), the others `superfast` |
//! | 4 | every rung `ultrafast`; rungs below the top at half frame rate |
//! | 5 | every rung at half frame rate; when input still queues, frames between segment boundaries are shed before the encoders |
//!
//! Invariants the levels keep:
//! - **the same SPS/PPS at every level**: every level keeps level 0's B-frames, pyramid,
//!   reference count, CABAC, 8x8 transform and weighted prediction, so a rung's init
//!   segment (avcC) never changes mid-stream and players need no new `EXT-X-MAP` or
//!   discontinuity (checked by a transcoder test);
//! - rungs are never added or removed; a level applies from a segment boundary (an IDR on
//!   every rung), so keyframes stay aligned;
//! - the frame rate is only ever divided (frames dropped on an even grid), never raised.
//!
//! Decisions, with hysteresis:
//! - **down** one level when the lag stays at or above [`GovernorConfig::down_lag`] for two
//!   evaluations in a row, or at once when it is 1.5 times that (and the last change had
//!   [`GovernorConfig::settle`] to act); straight to [`MAX_LEVEL`] when it reaches
//!   [`GovernorConfig::panic_lag`] (a stream that falls behind at 0.9 s per second, as a
//!   full ladder does with half the CPU it needs, gets there in under two seconds);
//! - **up** one level when the lag stays at or below [`GovernorConfig::up_lag`] *and* the
//!   busy fraction, scaled by the measured cost of the level above, predicts that level
//!   would still fit ([`GovernorConfig::max_busy`]), for a sustained [`Governor::up_hold`];
//!   a step up that has to be undone within two holds doubles the hold (up to
//!   [`GovernorConfig::max_up_hold`]), so a machine that cannot carry a level is not
//!   asked again every few seconds.

use std::time::{Duration, Instant};

/// The cheapest level.
pub const MAX_LEVEL: u8 = 5;

/// CPU-s per media-s of each level relative to level 0, for a full 1080p ladder from a
/// 1080p30 source on 2 cores (`bench-overload --levels`). Used to predict whether the level
/// above would fit in the headroom seen at the current one.
pub const RELATIVE_COST: [f64; MAX_LEVEL as usize + 1] = [1.0, 0.92, 0.70, 0.64, 0.51, 0.38];

/// Delay a level adds to the availability lag by itself, which is not falling behind:
/// halving the top rung's frame rate doubles the time x264's B-frames and lookahead hold
/// (+0.25 s measured by `bench-overload --levels`). Taken off the stored lag before it is
/// judged, or the cheapest level would read as late and never step back up.
pub fn inherent_delay(level: u8) -> Duration {
    if rung_level(level, 0).fps_divisor > 1 {
        Duration::from_millis(250)
    } else {
        Duration::ZERO
    }
}

/// x264 preset of an encoded rung at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    Veryfast,
    Superfast,
    /// `ultrafast`, with the header-visible tools put back (see [`RungLevel::x264_overrides`]).
    Ultrafast,
}

/// What a level means for one encoded rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RungLevel {
    pub speed: Speed,
    /// Cheaper (fast bilinear) scaling instead of bicubic.
    pub fast_scaler: bool,
    /// The rung's frame rate is divided by this (1 = unchanged).
    pub fps_divisor: u32,
}

impl RungLevel {
    pub fn preset(self) -> &'static str {
        match self.speed {
            Speed::Veryfast => "veryfast",
            Speed::Superfast => "superfast",
            Speed::Ultrafast => "ultrafast",
        }
    }

    /// x264 parameters applied after the preset so that the stream's parameter sets stay
    /// those of `veryfast`: ultrafast switches off B-frames, CABAC, the 8x8 transform and
    /// weighted prediction, each of which is written in the SPS/PPS. Put back, they cost
    /// little next to what ultrafast saves (no motion search refinement, no partitions,
    /// no deblocking, no AQ). `b-adapt=0`: fixed B-frame placement, no lookahead decision.
    pub fn x264_overrides(self) -> &'static str {
        match self.speed {
            Speed::Veryfast | Speed::Superfast => "",
            Speed::Ultrafast => {
                "bframes=3:b-adapt=0:b-pyramid=normal:cabac=1:8x8dct=1:weightp=1:weightb=1"
            }
        }
    }
}

/// The settings of encoded rung `rung` (0 = top) at `level`.
pub fn rung_level(level: u8, rung: usize) -> RungLevel {
    let top = rung == 0;
    let speed = match level {
        0 => Speed::Veryfast,
        1 if top => Speed::Superfast,
        1 => Speed::Veryfast,
        2 => Speed::Superfast,
        3 if top => Speed::Ultrafast,
        3 => Speed::Superfast,
        _ => Speed::Ultrafast,
    };
    let fps_divisor = match level {
        4 if !top => 2,
        5.. => 2,
        _ => 1,
    };
    RungLevel {
        speed,
        fast_scaler: level >= 2,
        fps_divisor,
    }
}

/// Whether frames between segment boundaries may be shed at `level` when input queues.
pub fn sheds_frames(level: u8) -> bool {
    level >= MAX_LEVEL
}

/// Thresholds; the defaults fit 1 s segments, whose normal availability lag is ~0.4-0.5 s
/// (x264 lookahead + B-frames + the upload).
#[derive(Debug, Clone, PartialEq)]
pub struct GovernorConfig {
    pub down_lag: Duration,
    pub panic_lag: Duration,
    pub up_lag: Duration,
    /// How long a change is given to show its effect before the next step down.
    pub settle: Duration,
    /// Predicted busy fraction at the level above must stay below this to step up.
    pub max_busy: f64,
    pub base_up_hold: Duration,
    pub max_up_hold: Duration,
    /// `Some(level)`: the level is fixed (benchmarks, `GOVERNOR=off` = `Some(0)`).
    pub fixed: Option<u8>,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self {
            down_lag: Duration::from_millis(800),
            panic_lag: Duration::from_millis(1600),
            up_lag: Duration::from_millis(600),
            settle: Duration::from_millis(2000),
            max_busy: 0.85,
            base_up_hold: Duration::from_secs(15),
            max_up_hold: Duration::from_secs(120),
            fixed: None,
        }
    }
}

/// What the media thread saw since the last evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The worst of: input queued in front of the media thread, the publisher's media read
    /// later than its timestamps allow, and source-complete -> segment-stored lag.
    pub lag: Duration,
    /// Fraction of the wall time the media thread was not waiting for input (0-1).
    pub busy: f64,
}

/// One stream's governor.
#[derive(Debug)]
pub struct Governor {
    config: GovernorConfig,
    level: u8,
    over: u32,
    last_change: Option<Instant>,
    last_up: Option<Instant>,
    good_since: Option<Instant>,
    up_hold: Duration,
}

impl Governor {
    pub fn new(config: GovernorConfig) -> Self {
        let level = config.fixed.unwrap_or(0).min(MAX_LEVEL);
        let up_hold = config.base_up_hold;
        Self {
            config,
            level,
            over: 0,
            last_change: None,
            last_up: None,
            good_since: None,
            up_hold,
        }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    /// How long good conditions must last before the next step up.
    pub fn up_hold(&self) -> Duration {
        self.up_hold
    }

    /// Takes one observation; returns the new level when it changes.
    pub fn evaluate(&mut self, now: Instant, obs: Observation) -> Option<u8> {
        if self.config.fixed.is_some() {
            return None;
        }
        let settled = self
            .last_change
            .is_none_or(|at| now.duration_since(at) >= self.config.settle);
        if obs.lag >= self.config.down_lag {
            self.good_since = None;
            self.over += 1;
            if self.level == MAX_LEVEL {
                return None;
            }
            let target = if obs.lag >= self.config.panic_lag && settled {
                MAX_LEVEL
            } else if (self.over >= 2 || obs.lag >= self.config.down_lag * 3 / 2) && settled {
                self.level + 1
            } else {
                return None;
            };
            // A step up undone this soon: that level does not fit, wait longer next time.
            if self
                .last_up
                .is_some_and(|up| now.duration_since(up) < self.up_hold * 2)
            {
                self.up_hold = (self.up_hold * 2).min(self.config.max_up_hold);
            }
            self.last_up = None;
            return Some(self.change(now, target));
        }
        self.over = 0;
        // A step up that held for two holds: the machine is fine, relax the hold again.
        if self
            .last_up
            .is_some_and(|up| now.duration_since(up) >= self.up_hold * 2)
        {
            self.up_hold = (self.up_hold / 2).max(self.config.base_up_hold);
            self.last_up = None;
        }
        let level = usize::from(self.level);
        let fits_above = level > 0
            && obs.lag <= self.config.up_lag
            && obs.busy * RELATIVE_COST[level - 1] / RELATIVE_COST[level] <= self.config.max_busy;
        if !fits_above {
            self.good_since = None;
            return None;
        }
        let since = *self.good_since.get_or_insert(now);
        if now.duration_since(since) >= self.up_hold && settled {
            self.last_up = Some(now);
            return Some(self.change(now, self.level - 1));
        }
        None
    }

    fn change(&mut self, now: Instant, level: u8) -> u8 {
        self.level = level;
        self.over = 0;
        self.good_since = None;
        self.last_change = Some(now);
        level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(lag_ms: u64, busy: f64) -> Observation {
        Observation {
            lag: Duration::from_millis(lag_ms),
            busy,
        }
    }

    /// Runs one observation per second; returns the level after each.
    fn run(g: &mut Governor, start: Instant, from_s: u64, seconds: u64, o: Observation) -> Vec<u8> {
        (from_s..from_s + seconds)
            .map(|s| {
                g.evaluate(start + Duration::from_secs(s), o);
                g.level()
            })
            .collect()
    }

    #[test]
    fn without_pressure_the_level_stays_zero() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        let levels = run(&mut g, t, 0, 600, obs(450, 0.8));
        assert!(levels.iter().all(|&l| l == 0));
    }

    #[test]
    fn one_late_segment_does_not_step_down() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        assert_eq!(g.evaluate(t, obs(1000, 1.0)), None);
        assert_eq!(g.evaluate(t + Duration::from_secs(1), obs(400, 0.8)), None);
        assert_eq!(g.level(), 0);
    }

    #[test]
    fn sustained_lag_steps_down_one_level_at_a_time_with_time_to_settle() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        let levels = run(&mut g, t, 0, 10, obs(1000, 1.0));
        // Two late evaluations, then a step every settle period (2 s).
        assert_eq!(levels, vec![0, 1, 1, 2, 2, 3, 3, 4, 4, 5]);
    }

    #[test]
    fn a_clearly_late_stream_steps_down_without_waiting_for_a_second_look() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        let levels = run(&mut g, t, 0, 5, obs(1300, 1.0));
        assert_eq!(levels, vec![1, 1, 2, 2, 3]);
    }

    #[test]
    fn a_large_lag_jumps_to_the_cheapest_level() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        assert_eq!(g.evaluate(t, obs(1700, 1.0)), Some(MAX_LEVEL));
    }

    #[test]
    fn headroom_sustained_for_the_hold_steps_back_up() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        g.evaluate(t, obs(3000, 1.0));
        assert_eq!(g.level(), MAX_LEVEL);
        // Lag low and the media thread mostly idle: one level up per 15 s hold.
        let levels = run(&mut g, t, 1, 100, obs(300, 0.3));
        assert_eq!(levels[14], MAX_LEVEL, "not before the hold");
        assert_eq!(levels[15], MAX_LEVEL - 1);
        assert_eq!(*levels.last().unwrap_or(&9), 0);
    }

    #[test]
    fn no_step_up_when_the_level_above_would_not_fit() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        g.evaluate(t, obs(3000, 1.0));
        // Lag is fine but the thread is 80% busy: level 4 costs 0.51/0.38 as much -> 107%.
        let levels = run(&mut g, t, 1, 200, obs(300, 0.8));
        assert!(levels.iter().all(|&l| l == MAX_LEVEL));
    }

    #[test]
    fn a_step_up_that_fails_doubles_the_hold() {
        let mut g = Governor::new(GovernorConfig::default());
        let t = Instant::now();
        g.evaluate(t, obs(3000, 1.0));
        run(&mut g, t, 1, 16, obs(300, 0.3));
        assert_eq!(g.level(), MAX_LEVEL - 1);
        // The level above is too expensive after all: lag comes back at once.
        run(&mut g, t, 17, 3, obs(1200, 1.0));
        assert_eq!(g.level(), MAX_LEVEL);
        assert_eq!(g.up_hold(), Duration::from_secs(30));
    }

    #[test]
    fn a_fixed_level_never_changes() {
        let mut g = Governor::new(GovernorConfig {
            fixed: Some(0),
            ..GovernorConfig::default()
        });
        let t = Instant::now();
        assert!(
            run(&mut g, t, 0, 60, obs(5000, 1.0))
                .iter()
                .all(|&l| l == 0)
        );
    }

    #[test]
    fn every_level_keeps_the_header_visible_tools_of_level_zero() {
        for level in 0..=MAX_LEVEL {
            for rung in 0..4 {
                let r = rung_level(level, rung);
                if r.speed == Speed::Ultrafast {
                    for tool in ["bframes=3", "cabac=1", "8x8dct=1", "weightp=1", "weightb=1"] {
                        assert!(r.x264_overrides().contains(tool), "{tool} at {level}");
                    }
                }
            }
        }
    }

    #[test]
    fn levels_only_get_cheaper() {
        let rank = |s: Speed| match s {
            Speed::Veryfast => 0,
            Speed::Superfast => 1,
            Speed::Ultrafast => 2,
        };
        for level in 1..=MAX_LEVEL {
            for rung in 0..4 {
                let (a, b) = (rung_level(level - 1, rung), rung_level(level, rung));
                assert!(rank(b.speed) >= rank(a.speed));
                assert!(b.fps_divisor >= a.fps_divisor);
                assert!(b.fast_scaler || !a.fast_scaler);
            }
            assert!(RELATIVE_COST[usize::from(level)] < RELATIVE_COST[usize::from(level) - 1]);
        }
    }
}
