//! Stream analytics: what the table's changes say about viewers, folded into per-stream
//! minute buckets, and the metrics computed from those buckets ([`metrics`]).
//!
//! The aggregation is built off the table's change stream (`events-analytics`), never in
//! the request path: a heartbeat stays one write to its own view's item, and the buckets
//! are written once per stream-minute per batch. So the write cost per stream-hour depends
//! on how often batches arrive (at most one per batching window), not on viewers ×
//! heartbeat rate.
//!
//! Invariants:
//! - every number in a [`Minute`] is a sum that can be added to a stored bucket (`ADD`), or
//!   the viewer count at a second of the minute (a `SET` that a later one overwrites with
//!   the same or newer count), so folding a batch twice is the only way to count twice,
//!   and the store refuses a batch it has applied (by change position);
//! - a view's report deltas are differences of the view's own running totals, so a lost
//!   record loses its interval, never corrupts the next one;
//! - the time a report accounts for is capped at [`REPORT_GAP_MAX_MS`] (a player that went
//!   silent, then came back, did not watch in between);
//! - text that becomes a bucket's attribute name (rendition, emoji, country, browser, OS,
//!   device) is bounded and free of control characters.

use std::collections::{BTreeMap, BTreeSet};

use crate::time::Timestamp;

pub mod cause;
pub mod metrics;

/// One minute.
pub const MINUTE_MS: i64 = 60_000;
/// The longest interval one playback report can account for: three of the web client's
/// heartbeat intervals (10 s), so a lost report or two is still watch time, a silent tab
/// is not.
pub const REPORT_GAP_MAX_MS: u64 = 30_000;
/// Longest label kept (rendition, emoji, country, browser, OS, device).
pub const LABEL_MAX: usize = 32;

/// Upper bounds (inclusive) of the startup-time histogram's bins, ms; the last bin is open.
pub const STARTUP_BINS_MS: &[u64] = &[250, 500, 1000, 2000, 3000, 5000, 10_000, 20_000];
/// Upper bounds of the live-latency histogram's bins, ms.
pub const LATENCY_BINS_MS: &[u64] = &[1000, 2000, 3000, 4000, 5000, 7500, 10_000, 15_000, 30_000];
/// Upper bounds of the bandwidth-estimate histogram's bins, kbit/s.
pub const BANDWIDTH_BINS_KBPS: &[u64] = &[500, 1000, 2000, 3000, 5000, 8000, 15_000, 30_000];

/// What a viewer's client is, as parsed from its user agent (`unknown` where not known).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientKind {
    pub browser: String,
    pub os: String,
    /// `desktop`, `mobile`, `tablet`, `tv`, `bot` or `unknown`.
    pub device: String,
}

/// Something the table says happened to a stream's audience, at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub stream_id: String,
    pub at: Timestamp,
    pub kind: FactKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FactKind {
    /// A counted viewer's socket opened: a view began.
    ViewStarted {
        /// ISO 3166 alpha-2 from CloudFront's `CloudFront-Viewer-Country`; `None` when the
        /// request did not come through CloudFront.
        country: Option<String>,
        client: ClientKind,
    },
    /// A counted view ended after `watch_ms` connected.
    ViewEnded {
        watch_ms: u64,
    },
    /// One playback report of a view, as the difference to its previous one.
    Report(ReportDelta),
    /// The stream's viewer count (set by `events-presence`) became `count`.
    ViewerCount(u64),
    /// A chat message (`user_id`: its author).
    Chat {
        user_id: String,
    },
    Reaction {
        emoji: String,
    },
}

/// What one heartbeat added to a view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportDelta {
    /// Wall time since the view's previous report (0 for its first), capped at
    /// [`REPORT_GAP_MAX_MS`].
    pub watched_ms: u64,
    /// The rendition the interval is accounted to (the one reported before it, else now).
    pub rendition: Option<String>,
    pub rebuffer_ms: u64,
    pub rebuffers: u64,
    pub switches_up: u64,
    pub switches_down: u64,
    pub dropped_frames: u64,
    /// The view's startup time, the first time it is reported.
    pub startup_ms: Option<u64>,
    /// The live latency reported now.
    pub latency_ms: Option<u64>,
    pub bandwidth_kbps: Option<u64>,
    /// Playback started with this report (the view's first frame).
    pub started: bool,
    /// A fatal error was reported for the first time (or a different one).
    pub failed: bool,
    /// Where the view is (the connection's country) and what it runs on, when known:
    /// for where rebuffering concentrates.
    pub country: Option<String>,
    pub client: Option<ClientKind>,
}

/// Counts per bin of a histogram with fixed upper bounds (see the `*_BINS_*` constants):
/// `counts[i]` holds values `<= bounds[i]` (and above the previous bound); the one extra
/// last count holds the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Histogram {
    pub counts: Vec<u64>,
}

impl Histogram {
    /// The bin `value` falls in.
    pub fn bin(bounds: &[u64], value: u64) -> usize {
        bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(bounds.len())
    }

    pub fn add(&mut self, bounds: &[u64], value: u64) {
        self.add_count(bounds, Self::bin(bounds, value), 1);
    }

    pub fn add_count(&mut self, bounds: &[u64], bin: usize, count: u64) {
        if self.counts.len() < bounds.len() + 1 {
            self.counts.resize(bounds.len() + 1, 0);
        }
        if let Some(c) = self.counts.get_mut(bin) {
            *c += count;
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1), interpolated linearly inside its bin (values spread evenly
    /// between the bin's bounds; the first bin starts at 0). A quantile in the open last
    /// bin is its lower bound: "at least". `None` without values.
    pub fn quantile(&self, bounds: &[u64], q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (below + c) as f64 >= rank {
                let lower = if i == 0 { 0 } else { bounds[i - 1] };
                let Some(&upper) = bounds.get(i) else {
                    return Some(lower);
                };
                let within = (rank - below as f64) / c as f64;
                return Some(lower + ((upper - lower) as f64 * within).round() as u64);
            }
            below += c;
        }
        bounds.last().copied()
    }
}

/// One stream's activity in one minute: what a bucket holds, and what one batch adds to it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Minute {
    /// The minute's start (whole minute, UTC).
    pub start: Timestamp,
    /// Viewer count by second of the minute, as `events-presence` set it.
    pub viewer_counts: BTreeMap<u8, u64>,
    pub views_started: u64,
    pub views_ended: u64,
    /// Connected time of the views that ended in this minute.
    pub ended_watch_ms: u64,
    pub reports: u64,
    /// Reported wall time of playing views (the denominator of rebuffering).
    pub watched_ms: u64,
    pub rebuffer_ms: u64,
    pub rebuffers: u64,
    pub switches_up: u64,
    pub switches_down: u64,
    pub dropped_frames: u64,
    pub playback_starts: u64,
    pub failures: u64,
    pub startup: Histogram,
    pub latency: Histogram,
    pub bandwidth: Histogram,
    pub rendition_ms: BTreeMap<String, u64>,
    pub chat_messages: u64,
    pub chatters: BTreeSet<String>,
    pub reactions: BTreeMap<String, u64>,
    pub countries: BTreeMap<String, u64>,
    pub browsers: BTreeMap<String, u64>,
    pub oses: BTreeMap<String, u64>,
    pub devices: BTreeMap<String, u64>,
    /// Reported watch time and rebuffering time by the views' country and device type.
    pub watched_by_country: BTreeMap<String, u64>,
    pub rebuffer_by_country: BTreeMap<String, u64>,
    pub watched_by_device: BTreeMap<String, u64>,
    pub rebuffer_by_device: BTreeMap<String, u64>,
}

/// The start of the minute `at` falls in.
pub fn minute_of(at: Timestamp) -> Timestamp {
    let ms = at.timestamp_millis();
    let start = ms - ms.rem_euclid(MINUTE_MS);
    chrono::DateTime::from_timestamp_millis(start).unwrap_or(at)
}

/// `text` as a label: trimmed, without control characters, at most [`LABEL_MAX`]
/// characters; empty becomes `unknown`.
pub fn label(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    let t: String = clean.trim().chars().take(LABEL_MAX).collect();
    let t = t.trim_end();
    if t.is_empty() {
        "unknown".into()
    } else {
        t.to_owned()
    }
}

/// A country code as stored: two ASCII letters, upper case; anything else is `unknown`.
pub fn country(code: Option<&str>) -> String {
    match code.map(str::trim) {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        _ => "unknown".into(),
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: String, by: u64) {
    *map.entry(key).or_default() += by;
}

impl Minute {
    fn empty(start: Timestamp) -> Self {
        Minute {
            start,
            ..Minute::default()
        }
    }

    fn apply(&mut self, at: Timestamp, kind: FactKind) {
        match kind {
            FactKind::ViewStarted { country: c, client } => {
                self.views_started += 1;
                bump(&mut self.countries, country(c.as_deref()), 1);
                bump(&mut self.browsers, label(&client.browser), 1);
                bump(&mut self.oses, label(&client.os), 1);
                bump(&mut self.devices, label(&client.device), 1);
            }
            FactKind::ViewEnded { watch_ms } => {
                self.views_ended += 1;
                self.ended_watch_ms += watch_ms;
            }
            FactKind::Report(r) => {
                self.reports += 1;
                let watched = r.watched_ms.min(REPORT_GAP_MAX_MS);
                self.watched_ms += watched;
                let rebuffer = r.rebuffer_ms.min(REPORT_GAP_MAX_MS);
                self.rebuffer_ms += rebuffer;
                if r.country.is_some() || r.client.is_some() {
                    let c = country(r.country.as_deref());
                    let d = label(r.client.as_ref().map_or("", |k| k.device.as_str()));
                    bump(&mut self.watched_by_country, c.clone(), watched);
                    bump(&mut self.rebuffer_by_country, c, rebuffer);
                    bump(&mut self.watched_by_device, d.clone(), watched);
                    bump(&mut self.rebuffer_by_device, d, rebuffer);
                }
                self.rebuffers += r.rebuffers;
                self.switches_up += r.switches_up;
                self.switches_down += r.switches_down;
                self.dropped_frames += r.dropped_frames;
                self.playback_starts += u64::from(r.started);
                self.failures += u64::from(r.failed);
                if let Some(v) = r.startup_ms {
                    self.startup.add(STARTUP_BINS_MS, v);
                }
                if let Some(v) = r.latency_ms {
                    self.latency.add(LATENCY_BINS_MS, v);
                }
                if let Some(v) = r.bandwidth_kbps {
                    self.bandwidth.add(BANDWIDTH_BINS_KBPS, v);
                }
                if watched > 0
                    && let Some(q) = r.rendition
                {
                    bump(&mut self.rendition_ms, label(&q), watched);
                }
            }
            FactKind::ViewerCount(count) => {
                let second = ((at.timestamp_millis() - self.start.timestamp_millis()) / 1000)
                    .clamp(0, 59) as u8;
                self.viewer_counts.insert(second, count);
            }
            FactKind::Chat { user_id } => {
                self.chat_messages += 1;
                self.chatters.insert(user_id);
            }
            FactKind::Reaction { emoji } => bump(&mut self.reactions, label(&emoji), 1),
        }
    }

    /// Adds a stored bucket or a batch's delta of the same minute to this one. Viewer
    /// counts of the same second: the other's wins (it is newer).
    pub fn merge(&mut self, other: &Minute) {
        self.viewer_counts
            .extend(other.viewer_counts.iter().map(|(k, v)| (*k, *v)));
        self.views_started += other.views_started;
        self.views_ended += other.views_ended;
        self.ended_watch_ms += other.ended_watch_ms;
        self.reports += other.reports;
        self.watched_ms += other.watched_ms;
        self.rebuffer_ms += other.rebuffer_ms;
        self.rebuffers += other.rebuffers;
        self.switches_up += other.switches_up;
        self.switches_down += other.switches_down;
        self.dropped_frames += other.dropped_frames;
        self.playback_starts += other.playback_starts;
        self.failures += other.failures;
        self.startup.merge(&other.startup);
        self.latency.merge(&other.latency);
        self.bandwidth.merge(&other.bandwidth);
        for (map, from) in [
            (&mut self.rendition_ms, &other.rendition_ms),
            (&mut self.reactions, &other.reactions),
            (&mut self.countries, &other.countries),
            (&mut self.browsers, &other.browsers),
            (&mut self.oses, &other.oses),
            (&mut self.devices, &other.devices),
            (&mut self.watched_by_country, &other.watched_by_country),
            (&mut self.rebuffer_by_country, &other.rebuffer_by_country),
            (&mut self.watched_by_device, &other.watched_by_device),
            (&mut self.rebuffer_by_device, &other.rebuffer_by_device),
        ] {
            for (k, v) in from {
                bump(map, k.clone(), *v);
            }
        }
        self.chat_messages += other.chat_messages;
        self.chatters.extend(other.chatters.iter().cloned());
    }
}

/// Folds a batch's facts into one delta per (stream, minute), in stream then minute order.
pub fn fold(facts: impl IntoIterator<Item = Fact>) -> BTreeMap<(String, Timestamp), Minute> {
    let mut out: BTreeMap<(String, Timestamp), Minute> = BTreeMap::new();
    for fact in facts {
        let start = minute_of(fact.at);
        out.entry((fact.stream_id, start))
            .or_insert_with(|| Minute::empty(start))
            .apply(fact.at, fact.kind);
    }
    out
}

#[cfg(test)]
mod tests;
