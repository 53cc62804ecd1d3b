//! Cause on the timeline: each minute where viewers' quality of experience dropped is
//! labelled with its likely cause, from data only Rill has on one timeline (the ingest
//! node's samples and the players' reports).
//!
//! A minute's QoE *dropped* when, among its reports, rebuffering was at least
//! [`REBUFFER_PERCENT_DROP`] % of at least [`WATCHED_MS_MIN`] of watch time, or a view
//! failed (a fatal playback error), or the median startup time passed
//! [`STARTUP_MS_DROP`]. Its cause is the first of, in this order:
//!
//! 1. **ingest**: the encoder fell behind (lowest speed below 1.0× real time), frames were
//!    dropped or late in the pipeline, the overload governor stepped down (a level above
//!    the previous minute's), or the input bitrate collapsed (below
//!    [`INPUT_COLLAPSE_RATIO`] of the previous minute's);
//! 2. **viewer network**: at least half of the minute's bandwidth estimates were at most
//!    [`LOW_BANDWIDTH_KBPS`] kbit/s (below what the second-lowest rung needs);
//! 3. **delivery**: ingest healthy and viewers' bandwidth adequate, yet they stalled: the
//!    CDN or the origin. When one country or device type holds at least
//!    [`CONCENTRATION_SHARE`] of the minute's rebuffering time with at most half of its
//!    watch time (and at least two were watching), the label says where: a regional edge
//!    or one client's player, rather than the origin.

use serde::Serialize;

use super::metrics::IngestMinute;
use super::{BANDWIDTH_BINS_KBPS, Minute, STARTUP_BINS_MS};

/// Rebuffering share of watch time from which a minute counts as degraded.
pub const REBUFFER_PERCENT_DROP: f64 = 2.0;
/// Watch time a minute needs before its rebuffering share means anything.
pub const WATCHED_MS_MIN: u64 = 10_000;
/// Median startup time from which a minute counts as degraded.
pub const STARTUP_MS_DROP: u64 = 5_000;
/// Input bitrate below this share of the previous minute's is a collapse.
pub const INPUT_COLLAPSE_RATIO: f64 = 0.5;
/// Bandwidth estimates at or below this are a poor viewer network.
pub const LOW_BANDWIDTH_KBPS: u64 = 1_000;
/// Share of a minute's rebuffering time from which it concentrates in one country or
/// device type.
pub const CONCENTRATION_SHARE: f64 = 2.0 / 3.0;

/// Why a minute's QoE dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    pub kind: CauseKind,
    /// The evidence, in words ("encoder speed 0.82×").
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CauseKind {
    Ingest,
    ViewerNetwork,
    Delivery,
}

impl CauseKind {
    /// The name the API uses (`ingest`, `viewerNetwork`, `delivery`).
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::Ingest => "ingest",
            CauseKind::ViewerNetwork => "viewerNetwork",
            CauseKind::Delivery => "delivery",
        }
    }
}

/// Whether the minute's QoE dropped, and in words why it counts as dropped.
fn dropped(m: &Minute) -> Option<String> {
    if m.failures > 0 {
        return Some(format!("{} playback failure(s)", m.failures));
    }
    if m.watched_ms >= WATCHED_MS_MIN {
        let share = 100.0 * m.rebuffer_ms as f64 / m.watched_ms as f64;
        if share >= REBUFFER_PERCENT_DROP {
            return Some(format!("rebuffering {share:.1} %"));
        }
    }
    match m.startup.quantile(STARTUP_BINS_MS, 0.5) {
        Some(p50) if p50 > STARTUP_MS_DROP => Some(format!("startup p50 {p50} ms")),
        _ => None,
    }
}

fn ingest_trouble(now: &IngestMinute, before: Option<&IngestMinute>) -> Option<String> {
    if now.encoder_speed_min < 1.0 {
        return Some(format!("encoder speed {:.2}×", now.encoder_speed_min));
    }
    let lost = now.dropped_frames + now.late_frames;
    if lost > 0 {
        return Some(format!("{lost} frames dropped or late at ingest"));
    }
    let level_before = before.map_or(0, |b| b.governor_level_max);
    if now.governor_level_max > level_before {
        return Some(format!(
            "governor stepped down to level {}",
            now.governor_level_max
        ));
    }
    if let Some(b) = before
        && b.input_kbps > 0.0
        && now.input_kbps < INPUT_COLLAPSE_RATIO * b.input_kbps
    {
        return Some(format!(
            "input bitrate fell from {:.0} to {:.0} kbit/s",
            b.input_kbps, now.input_kbps
        ));
    }
    None
}

fn low_bandwidth(m: &Minute) -> Option<String> {
    let total = m.bandwidth.total();
    let low_bins = BANDWIDTH_BINS_KBPS
        .iter()
        .take_while(|b| **b <= LOW_BANDWIDTH_KBPS)
        .count();
    let low: u64 = m.bandwidth.counts.iter().take(low_bins).sum();
    (total > 0 && 2 * low >= total).then(|| {
        format!("{low} of {total} bandwidth estimates at or below {LOW_BANDWIDTH_KBPS} kbit/s")
    })
}

/// Where the minute's rebuffering concentrated, if it did.
fn concentration(m: &Minute) -> Option<String> {
    let dimensions = [
        ("country", &m.watched_by_country, &m.rebuffer_by_country),
        ("device", &m.watched_by_device, &m.rebuffer_by_device),
    ];
    for (what, watched, rebuffer) in dimensions {
        let total_rebuffer: u64 = rebuffer.values().sum();
        let total_watched: u64 = watched.values().sum();
        if total_rebuffer == 0 || watched.len() < 2 {
            continue;
        }
        for (label, r) in rebuffer {
            let w = watched.get(label).copied().unwrap_or(0);
            let share = *r as f64 / total_rebuffer as f64;
            let watch_share = w as f64 / total_watched.max(1) as f64;
            if share >= CONCENTRATION_SHARE && watch_share <= 0.5 {
                return Some(format!(
                    "concentrated in {what} {label} ({:.0} % of the rebuffering, {:.0} % of the watch time)",
                    100.0 * share,
                    100.0 * watch_share
                ));
            }
        }
    }
    None
}

/// The minute's cause label, or `None` when its QoE did not drop.
pub fn label(
    m: &Minute,
    ingest: Option<&IngestMinute>,
    before: Option<&IngestMinute>,
) -> Option<Cause> {
    let symptom = dropped(m)?;
    let (kind, evidence) = if let Some(e) = ingest.and_then(|i| ingest_trouble(i, before)) {
        (CauseKind::Ingest, e)
    } else if let Some(e) = low_bandwidth(m) {
        (CauseKind::ViewerNetwork, e)
    } else if let Some(e) = concentration(m) {
        (CauseKind::Delivery, e)
    } else {
        (
            CauseKind::Delivery,
            "ingest healthy and viewers' bandwidth adequate".to_owned(),
        )
    };
    Some(Cause {
        kind,
        detail: format!("{symptom}: {evidence}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degraded() -> Minute {
        Minute {
            watched_ms: 60_000,
            rebuffer_ms: 3_000,
            ..Minute::default()
        }
    }

    fn healthy_ingest() -> IngestMinute {
        IngestMinute {
            samples: 12,
            input_kbps: 3_000.0,
            fps: 30.0,
            dropped_frames: 0,
            late_frames: 0,
            encoder_speed_min: 1.3,
            governor_level_max: 0,
            health_min: 100,
        }
    }

    #[test]
    fn a_minute_whose_viewers_played_smoothly_has_no_cause() {
        let smooth = Minute {
            watched_ms: 60_000,
            rebuffer_ms: 600,
            ..Minute::default()
        };
        assert_eq!(label(&smooth, None, None), None);
        // Too little watch time to judge a share.
        let brief = Minute {
            watched_ms: 5_000,
            rebuffer_ms: 2_000,
            ..Minute::default()
        };
        assert_eq!(label(&brief, None, None), None);
    }

    #[test]
    fn a_slow_encoder_is_the_cause_before_anything_else() {
        let mut slow = healthy_ingest();
        slow.encoder_speed_min = 0.82;
        let mut m = degraded();
        m.bandwidth.add(BANDWIDTH_BINS_KBPS, 400);
        let c = label(&m, Some(&slow), Some(&healthy_ingest())).expect("a cause");
        assert_eq!(c.kind, CauseKind::Ingest);
        assert_eq!(c.detail, "rebuffering 5.0 %: encoder speed 0.82×");
    }

    #[test]
    fn dropped_frames_a_governor_step_or_an_input_collapse_are_ingest() {
        let mut lost = healthy_ingest();
        lost.late_frames = 7;
        let mut stepped = healthy_ingest();
        stepped.governor_level_max = 2;
        let mut collapsed = healthy_ingest();
        collapsed.input_kbps = 900.0;
        for (now, evidence) in [
            (lost, "7 frames dropped or late at ingest"),
            (stepped, "governor stepped down to level 2"),
            (collapsed, "input bitrate fell from 3000 to 900 kbit/s"),
        ] {
            let c = label(&degraded(), Some(&now), Some(&healthy_ingest())).expect("a cause");
            assert_eq!(c.kind, CauseKind::Ingest);
            assert!(c.detail.ends_with(evidence), "{}", c.detail);
        }
        // A governor that was already at level 2 the minute before did not just step down.
        let mut still = healthy_ingest();
        still.governor_level_max = 2;
        let c = label(&degraded(), Some(&still), Some(&still)).expect("a cause");
        assert_eq!(c.kind, CauseKind::Delivery);
    }

    #[test]
    fn low_bandwidth_estimates_with_healthy_ingest_are_the_viewers_network() {
        let mut m = degraded();
        for kbps in [400, 900, 5_000] {
            m.bandwidth.add(BANDWIDTH_BINS_KBPS, kbps);
        }
        let c = label(&m, Some(&healthy_ingest()), Some(&healthy_ingest())).expect("a cause");
        assert_eq!(c.kind, CauseKind::ViewerNetwork);
        assert_eq!(
            c.detail,
            "rebuffering 5.0 %: 2 of 3 bandwidth estimates at or below 1000 kbit/s"
        );
    }

    #[test]
    fn stalls_with_healthy_ingest_and_good_bandwidth_are_delivery() {
        let mut m = degraded();
        m.bandwidth.add(BANDWIDTH_BINS_KBPS, 6_000);
        let c = label(&m, Some(&healthy_ingest()), None).expect("a cause");
        assert_eq!(c.kind, CauseKind::Delivery);
    }

    #[test]
    fn stalls_concentrated_in_one_country_say_where() {
        let mut m = degraded();
        m.watched_by_country = [("DE".to_owned(), 20_000), ("US".to_owned(), 40_000)].into();
        m.rebuffer_by_country = [("DE".to_owned(), 2_700), ("US".to_owned(), 300)].into();
        let c = label(&m, Some(&healthy_ingest()), None).expect("a cause");
        assert_eq!(c.kind, CauseKind::Delivery);
        assert_eq!(
            c.detail,
            "rebuffering 5.0 %: concentrated in country DE (90 % of the rebuffering, 33 % of the watch time)"
        );
        // Spread evenly: no place to name.
        m.rebuffer_by_country = [("DE".to_owned(), 1_000), ("US".to_owned(), 2_000)].into();
        let c = label(&m, Some(&healthy_ingest()), None).expect("a cause");
        assert!(
            c.detail.ends_with("viewers' bandwidth adequate"),
            "{}",
            c.detail
        );
        // One country alone is not a concentration.
        m.watched_by_country = [("DE".to_owned(), 60_000)].into();
        m.rebuffer_by_country = [("DE".to_owned(), 3_000)].into();
        let c = label(&m, Some(&healthy_ingest()), None).expect("a cause");
        assert!(!c.detail.contains("concentrated"), "{}", c.detail);
    }

    #[test]
    fn stalls_of_one_device_type_with_a_minority_of_watch_time_say_which() {
        let mut m = degraded();
        m.watched_by_device = [("desktop".to_owned(), 45_000), ("tv".to_owned(), 15_000)].into();
        m.rebuffer_by_device = [("tv".to_owned(), 3_000)].into();
        let c = label(&m, Some(&healthy_ingest()), None).expect("a cause");
        assert!(
            c.detail.contains("concentrated in device tv"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn failures_and_slow_starts_count_as_drops_too() {
        let failed = Minute {
            failures: 1,
            ..Minute::default()
        };
        let c = label(&failed, None, None).expect("a cause");
        assert!(
            c.detail.starts_with("1 playback failure(s)"),
            "{}",
            c.detail
        );
        let mut slow_start = Minute::default();
        slow_start.startup.add(STARTUP_BINS_MS, 9_000);
        let c = label(&slow_start, None, None).expect("a cause");
        assert!(c.detail.starts_with("startup p50 10000 ms"), "{}", c.detail);
    }

    #[test]
    fn a_kinds_name_is_what_the_api_serialises() {
        for k in [
            CauseKind::Ingest,
            CauseKind::ViewerNetwork,
            CauseKind::Delivery,
        ] {
            assert_eq!(serde_json::to_value(k).expect("json"), k.as_str());
        }
    }
}
