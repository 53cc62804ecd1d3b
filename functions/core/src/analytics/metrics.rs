//! The analytics metrics, computed from minute buckets, per-view rows and ingest samples.
//! Definitions (Mux Data's where one exists) are written next to each field and in
//! `docs/architecture.md`; every one is unit-tested on constructed data.
//!
//! - *View*: one counted viewer socket (the owner's own page is not one). *Unique viewers*:
//!   distinct signed-in users plus anonymous views (each anonymous view counts as one).
//! - *Watch time* of a view: connected time (`$connect` to `$disconnect`; to now while open).
//! - *Concurrent viewers*: the count `events-presence` sets (exact within 2 s); a minute's
//!   average is the time-weighted mean of that step function, its maximum the highest
//!   count set in it or carried into it; *viewer-minutes* its integral.
//! - *Startup time*: play request to first frame, one per view; percentiles from the
//!   histogram, interpolated inside a bin.
//! - *Rebuffer percentage*: rebuffering time / reported watch time of playing views;
//!   *rebuffer frequency*: rebuffer events per minute of reported watch time.
//! - *Quality switches per viewer-minute*: up / down switches per minute of reported watch
//!   time. *Time per rendition*: reported watch time by the rendition playing.
//! - *Live latency*: now minus `EXT-X-PROGRAM-DATE-TIME` of the frame shown, one value per
//!   report; p50 / p95 over all reports.
//! - *Exits before video start*: ended views that never showed a frame and had no fatal
//!   error, over views. *Playback failure*: views with a fatal error, over views. Both need
//!   the views' reports, kept 24 h: when a view of the range ended before
//!   [`Inputs::reports_since`], both are `null`.
//! - *Ingest health* per minute: averages of the node's samples in it, the worst encoder
//!   speed, governor level and health; dropped and late frames are what the cumulative
//!   counters grew by from the previous sample of the range to each sample in the minute
//!   (a reset counts from 0), so frames dropped across a minute boundary count once.
//! - The range is `[from, to)`: the series has a row per minute that starts before `to`.
//! - *Chat*: messages per minute of the series; *chatted*: unique chatters over unique
//!   viewers. *Reactions per 100 viewer-minutes*, by emoji.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{BANDWIDTH_BINS_KBPS, Histogram, LATENCY_BINS_MS, MINUTE_MS, Minute, STARTUP_BINS_MS};
use crate::quality::QualitySample;
use crate::time::Timestamp;

/// The most minutes one answer covers (a day).
pub const SERIES_MINUTES_MAX: i64 = 24 * 60;

/// One view, as the per-view rows report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    pub view_id: String,
    /// Signed-in viewer; `None` for anonymous ones.
    pub user_id: Option<String>,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub started_at: Timestamp,
    /// `None` while the view is open.
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub ended_at: Option<Timestamp>,
    /// Connected time (to now while open).
    pub watch_ms: u64,
    /// The view's playback report, while it is kept (24 h).
    pub report: Option<ViewReport>,
}

/// The running totals of one view's reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewReport {
    pub started: bool,
    pub startup_ms: Option<u64>,
    pub rebuffer_ms: u64,
    pub rebuffers: u64,
    pub switches_up: u64,
    pub switches_down: u64,
    pub dropped_frames: u64,
    pub rendition: Option<String>,
    pub latency_ms: Option<u64>,
    pub bandwidth_kbps: Option<u64>,
    pub fatal_error: Option<String>,
}

/// Ingest health in one minute, from the node's 5 s samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestMinute {
    pub samples: u64,
    pub input_kbps: f64,
    pub fps: f64,
    /// Frames dropped / late in the pipeline during the minute.
    pub dropped_frames: u64,
    pub late_frames: u64,
    /// The lowest encoder speed (multiple of real time) sampled.
    pub encoder_speed_min: f64,
    /// The highest overload-governor level sampled.
    pub governor_level_max: u8,
    pub health_min: u8,
}

/// One row of the per-minute series.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MinuteRow {
    #[serde(with = "crate::time::rfc3339_millis")]
    pub minute: Timestamp,
    pub viewers_max: u64,
    pub viewers_avg: f64,
    pub viewer_seconds: u64,
    pub views_started: u64,
    pub views_ended: u64,
    pub playback_starts: u64,
    pub failures: u64,
    pub startup_p50_ms: Option<u64>,
    pub rebuffer_percent: Option<f64>,
    pub rebuffers: u64,
    pub switches_up: u64,
    pub switches_down: u64,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub chat_messages: u64,
    pub chatters: u64,
    pub reactions: u64,
    pub ingest: Option<IngestMinute>,
    /// Why viewers' QoE dropped in this minute, if it did ([`super::cause`]).
    pub cause: Option<super::cause::Cause>,
}

/// A histogram as answered: each bin's upper bound (`None`: open) and count.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bin {
    pub up_to: Option<u64>,
    pub count: u64,
}

fn bins(h: &Histogram, bounds: &[u64]) -> Vec<Bin> {
    (0..=bounds.len())
        .map(|i| Bin {
            up_to: bounds.get(i).copied(),
            count: h.counts.get(i).copied().unwrap_or(0),
        })
        .collect()
}

/// The whole range's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub concurrent_now: u64,
    pub peak_viewers: u64,
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub peak_at: Option<Timestamp>,
    pub views: u64,
    pub unique_viewers: u64,
    pub viewer_minutes: f64,
    pub avg_watch_ms: Option<u64>,
    pub median_watch_ms: Option<u64>,
    pub startup_p50_ms: Option<u64>,
    pub startup_p95_ms: Option<u64>,
    pub exits_before_start_percent: Option<f64>,
    pub playback_failure_percent: Option<f64>,
    pub rebuffer_percent: Option<f64>,
    pub rebuffers_per_minute: Option<f64>,
    pub switches_up_per_viewer_minute: Option<f64>,
    pub switches_down_per_viewer_minute: Option<f64>,
    /// Percent of reported watch time per rendition.
    pub rendition_percent: BTreeMap<String, f64>,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub chat_messages: u64,
    pub chat_messages_per_minute: f64,
    pub chatters: u64,
    pub chatted_percent: Option<f64>,
    pub reactions: BTreeMap<String, u64>,
    pub reactions_per_100_viewer_minutes: BTreeMap<String, f64>,
    pub countries: BTreeMap<String, u64>,
    pub browsers: BTreeMap<String, u64>,
    pub oses: BTreeMap<String, u64>,
    pub devices: BTreeMap<String, u64>,
    pub startup_histogram: Vec<Bin>,
    pub latency_histogram: Vec<Bin>,
    pub bandwidth_histogram: Vec<Bin>,
}

/// What the metrics are computed from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// Buckets in the range, any order.
    pub minutes: &'a [Minute],
    /// The viewer count carried into the range (the last one set before `from`).
    pub count_before: u64,
    /// Views that overlap the range (`None`: not read; the view-based numbers come from
    /// the buckets or are `null`).
    pub views: Option<&'a [View]>,
    pub samples: &'a [QualitySample],
    pub from: Timestamp,
    /// The range's end (now, for a live stream).
    pub to: Timestamp,
    /// The stream's viewer count now (0 unless live).
    pub concurrent_now: u64,
    /// Views that ended before this have lost their reports (now minus 24 h).
    pub reports_since: Timestamp,
}

fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| round2((100.0 * part / whole).min(100.0)))
}

fn per(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| round2(part / whole))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn ms(t: &Timestamp) -> i64 {
    t.timestamp_millis()
}

fn at_ms(v: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(v).unwrap_or_default()
}

/// The per-minute series from `from` to `to` (every minute, empty ones included, at most
/// [`SERIES_MINUTES_MAX`]), and the summary of the range.
pub fn compute(input: &Inputs<'_>) -> (Summary, Vec<MinuteRow>) {
    let by_start: BTreeMap<i64, &Minute> =
        input.minutes.iter().map(|m| (ms(&m.start), m)).collect();
    let first = ms(&super::minute_of(input.from));
    let end = ms(&input.to).max(first);
    let mut rows = Vec::new();
    let mut total = Minute::default();
    let mut count = input.count_before;
    let (mut peak, mut peak_at) = (0u64, None);
    let mut viewer_ms: u128 = 0;
    let mut start = first;
    let grown = growth_by_sample(input.samples);
    while start < end && rows.len() < SERIES_MINUTES_MAX as usize {
        let minute_end = (start + MINUTE_MS).min(end.max(start));
        let empty = Minute::default();
        let m = by_start.get(&start).copied().unwrap_or(&empty);
        // The step function over this minute: the carried count, then each one set.
        let mut max = count;
        let mut area: u128 = 0;
        let mut t = start;
        if count > peak {
            // Carried in: it held from the range's start, not before.
            (peak, peak_at) = (count, Some(at_ms(start.max(ms(&input.from)))));
        }
        for (&second, &c) in &m.viewer_counts {
            let at = (start + i64::from(second) * 1000).min(minute_end);
            area += u128::from(count) * (at - t).max(0) as u128;
            (t, count) = (at, c);
            max = max.max(c);
            if c > peak {
                (peak, peak_at) = (c, Some(at_ms(at)));
            }
        }
        area += u128::from(count) * (minute_end - t).max(0) as u128;
        viewer_ms += area;
        let span = (minute_end - start).max(1) as f64;
        let samples: Vec<(&QualitySample, (u64, u64))> = input
            .samples
            .iter()
            .zip(grown.iter().copied())
            .filter(|(s, _)| ms(&s.at) >= start && ms(&s.at) < start + MINUTE_MS)
            .collect();
        let ingest = ingest_minute(&samples);
        rows.push(MinuteRow {
            minute: at_ms(start),
            viewers_max: max,
            viewers_avg: round2(area as f64 / span),
            viewer_seconds: (area / 1000) as u64,
            views_started: m.views_started,
            views_ended: m.views_ended,
            playback_starts: m.playback_starts,
            failures: m.failures,
            startup_p50_ms: m.startup.quantile(STARTUP_BINS_MS, 0.5),
            rebuffer_percent: percent(m.rebuffer_ms as f64, m.watched_ms as f64),
            rebuffers: m.rebuffers,
            switches_up: m.switches_up,
            switches_down: m.switches_down,
            latency_p50_ms: m.latency.quantile(LATENCY_BINS_MS, 0.5),
            latency_p95_ms: m.latency.quantile(LATENCY_BINS_MS, 0.95),
            chat_messages: m.chat_messages,
            chatters: m.chatters.len() as u64,
            reactions: m.reactions.values().sum(),
            cause: super::cause::label(
                m,
                ingest.as_ref(),
                rows.last().and_then(|r: &MinuteRow| r.ingest.as_ref()),
            ),
            ingest,
        });
        total.merge(m);
        start += MINUTE_MS;
    }
    let summary = summarise(input, &total, (peak, peak_at), viewer_ms, rows.len());
    (summary, rows)
}

fn ingest_minute(with_growth: &[(&QualitySample, (u64, u64))]) -> Option<IngestMinute> {
    if with_growth.is_empty() {
        return None;
    }
    let samples: Vec<&QualitySample> = with_growth.iter().map(|(s, _)| *s).collect();
    let n = samples.len() as f64;
    Some(IngestMinute {
        samples: samples.len() as u64,
        input_kbps: round2(samples.iter().map(|s| s.input_kbps).sum::<f64>() / n),
        fps: round2(samples.iter().map(|s| s.fps).sum::<f64>() / n),
        dropped_frames: with_growth.iter().map(|(_, g)| g.0).sum(),
        late_frames: with_growth.iter().map(|(_, g)| g.1).sum(),
        encoder_speed_min: round2(
            samples
                .iter()
                .map(|s| s.encoder_speed)
                .fold(f64::INFINITY, f64::min),
        ),
        governor_level_max: samples.iter().map(|s| s.governor_level).max().unwrap_or(0),
        health_min: samples.iter().map(|s| s.health).min().unwrap_or(0),
    })
}

/// For each sample (in time order), how much its cumulative dropped and late counters grew
/// since the previous sample of the range: 0 for the first, the value itself after a reset.
fn growth_by_sample(samples: &[QualitySample]) -> Vec<(u64, u64)> {
    let step = |prev: u64, v: u64| if v >= prev { v - prev } else { v };
    let mut out = Vec::with_capacity(samples.len());
    let mut prev: Option<&QualitySample> = None;
    for s in samples {
        out.push(prev.map_or((0, 0), |p| {
            (
                step(p.dropped_frames, s.dropped_frames),
                step(p.late_frames, s.late_frames),
            )
        }));
        prev = Some(s);
    }
    out
}

fn summarise(
    input: &Inputs<'_>,
    m: &Minute,
    (peak, peak_at): (u64, Option<Timestamp>),
    viewer_ms: u128,
    minutes: usize,
) -> Summary {
    let viewer_minutes = viewer_ms as f64 / MINUTE_MS as f64;
    let watched_minutes = m.watched_ms as f64 / MINUTE_MS as f64;
    let views_in_range = input.views.map(|views| {
        views
            .iter()
            .filter(|v| v.started_at <= input.to && v.ended_at.is_none_or(|e| e >= input.from))
            .collect::<Vec<_>>()
    });
    let (views, unique, avg_watch, median_watch, exits, failures) = match &views_in_range {
        Some(vs) if !vs.is_empty() => {
            let n = vs.len() as u64;
            let signed_in: BTreeSet<&str> =
                vs.iter().filter_map(|v| v.user_id.as_deref()).collect();
            let anonymous = vs.iter().filter(|v| v.user_id.is_none()).count() as u64;
            let mut watch: Vec<u64> = vs.iter().map(|v| v.watch_ms).collect();
            watch.sort_unstable();
            let median = if watch.len() % 2 == 1 {
                watch[watch.len() / 2]
            } else {
                (watch[watch.len() / 2 - 1] + watch[watch.len() / 2]) / 2
            };
            let reported: Vec<&ViewReport> = vs.iter().filter_map(|v| v.report.as_ref()).collect();
            let kept = vs.iter().all(|v| {
                v.ended_at.is_none_or(|e| e >= input.reports_since)
                    && (v.report.is_some() || v.ended_at.is_some())
            });
            let (exits, failures) = if kept {
                let exited = vs
                    .iter()
                    .filter(|v| {
                        v.ended_at.is_some()
                            && v.report
                                .as_ref()
                                .is_none_or(|r| !r.started && r.fatal_error.is_none())
                    })
                    .count();
                let failed = reported.iter().filter(|r| r.fatal_error.is_some()).count();
                (
                    percent(exited as f64, n as f64),
                    percent(failed as f64, n as f64),
                )
            } else {
                (None, None)
            };
            (
                n,
                signed_in.len() as u64 + anonymous,
                Some(watch.iter().sum::<u64>() / n),
                Some(median),
                exits,
                failures,
            )
        }
        _ => (
            m.views_started,
            m.views_started,
            (m.views_ended > 0).then(|| m.ended_watch_ms / m.views_ended),
            None,
            None,
            percent(m.failures as f64, m.views_started as f64),
        ),
    };
    let renditions: u64 = m.rendition_ms.values().sum();
    Summary {
        concurrent_now: input.concurrent_now,
        peak_viewers: peak,
        peak_at,
        views,
        unique_viewers: unique,
        viewer_minutes: round2(viewer_minutes),
        avg_watch_ms: avg_watch,
        median_watch_ms: median_watch,
        startup_p50_ms: m.startup.quantile(STARTUP_BINS_MS, 0.5),
        startup_p95_ms: m.startup.quantile(STARTUP_BINS_MS, 0.95),
        exits_before_start_percent: exits,
        playback_failure_percent: failures,
        rebuffer_percent: percent(m.rebuffer_ms as f64, m.watched_ms as f64),
        rebuffers_per_minute: per(m.rebuffers as f64, watched_minutes),
        switches_up_per_viewer_minute: per(m.switches_up as f64, watched_minutes),
        switches_down_per_viewer_minute: per(m.switches_down as f64, watched_minutes),
        rendition_percent: m
            .rendition_ms
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), percent(*v as f64, renditions as f64)?)))
            .collect(),
        latency_p50_ms: m.latency.quantile(LATENCY_BINS_MS, 0.5),
        latency_p95_ms: m.latency.quantile(LATENCY_BINS_MS, 0.95),
        chat_messages: m.chat_messages,
        chat_messages_per_minute: per(m.chat_messages as f64, minutes as f64).unwrap_or(0.0),
        chatters: m.chatters.len() as u64,
        chatted_percent: percent(m.chatters.len() as f64, unique as f64),
        reactions: m.reactions.clone(),
        reactions_per_100_viewer_minutes: m
            .reactions
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), per(100.0 * *v as f64, viewer_minutes)?)))
            .collect(),
        countries: m.countries.clone(),
        browsers: m.browsers.clone(),
        oses: m.oses.clone(),
        devices: m.devices.clone(),
        startup_histogram: bins(&m.startup, STARTUP_BINS_MS),
        latency_histogram: bins(&m.latency, LATENCY_BINS_MS),
        bandwidth_histogram: bins(&m.bandwidth, BANDWIDTH_BINS_KBPS),
    }
}

#[cfg(test)]
mod tests;
