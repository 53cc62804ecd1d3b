//! What a viewer's player reports about its playback: the `heartbeat` frame (every 10 s and
//! on events), the raw signal of the analytics' quality-of-experience metrics (Mux's
//! definitions: startup time from play request to first frame, rebuffering, rendition
//! switches, live latency from `EXT-X-PROGRAM-DATE-TIME`).
//!
//! Invariants: a client is never trusted. A field of the wrong type (a string count, a
//! negative number, a fraction) refuses the whole frame; a number of the right type but
//! beyond what a real player can report in one interval is clamped to its bound
//! ([`HeartbeatFrame::report`]), so a clock jump or a counter glitch cannot poison an
//! aggregate; text is bounded. Counts are per report (since the previous heartbeat), so
//! they add up; the rest are the latest values.

use serde::{Deserialize, Serialize};

/// The longest a heartbeat interval can account for (a background tab's timers are
/// throttled; anything more is a clock jump).
pub const INTERVAL_MS_MAX: u64 = 10 * 60 * 1000;
/// Play request to first frame, at most (a player that took longer is reported as this).
pub const STARTUP_MS_MAX: u64 = 120_000;
/// Behind the live edge, at most.
pub const LATENCY_MS_MAX: u64 = 10 * 60 * 1000;
/// Events of one kind (rebuffers, switches) in one interval, at most.
pub const EVENTS_MAX: u64 = 1_000;
/// Dropped frames in one interval, at most (60 fps for the longest interval).
pub const DROPPED_MAX: u64 = 60 * INTERVAL_MS_MAX / 1000;
/// Bandwidth estimate, at most (10 Gbit/s).
pub const BANDWIDTH_KBPS_MAX: u64 = 10_000_000;
/// Rendition label and fatal error text, at most (characters).
pub const TEXT_MAX: usize = 64;

/// The `heartbeat` frame's fields as a client sends them (camelCase; every field optional,
/// unknown fields refused). `quality` and `buffering` are the original names of the
/// rendition and the rebuffering time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatFrame {
    /// Rendition playing now, e.g. "720p".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    /// Milliseconds spent rebuffering since the previous heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffering: Option<u64>,
    /// Rebuffering events (a stall after playback had started) since the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuffers: Option<u64>,
    /// Play request to first frame, sent once playback started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<u64>,
    /// Rendition switches to a higher / lower bitrate since the previous heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switches_up: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switches_down: Option<u64>,
    /// Now minus the program date-time of the frame shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The player's bandwidth estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_kbps: Option<u64>,
    /// Frames the decoder dropped since the previous heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_frames: Option<u64>,
    /// A fatal playback error since the previous heartbeat (its code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fatal_error: Option<String>,
    /// Whether playback has ever started (a first frame was shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
}

/// A heartbeat with every value within its bounds: what is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaybackReport {
    pub rendition: Option<String>,
    pub rebuffer_ms: u64,
    pub rebuffers: u64,
    pub startup_ms: Option<u64>,
    pub switches_up: u64,
    pub switches_down: u64,
    pub latency_ms: Option<u64>,
    pub bandwidth_kbps: Option<u64>,
    pub dropped_frames: u64,
    pub fatal_error: Option<String>,
    pub started: bool,
}

/// The first `TEXT_MAX` characters, without control characters.
fn bounded_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(TEXT_MAX)
        .collect()
}

impl HeartbeatFrame {
    /// The report to store: numbers clamped to their bounds, text cut to [`TEXT_MAX`]
    /// characters without control characters (an empty text is no text).
    pub fn report(&self) -> PlaybackReport {
        let text = |t: &Option<String>| {
            t.as_deref()
                .map(bounded_text)
                .filter(|t| !t.trim().is_empty())
        };
        PlaybackReport {
            rendition: text(&self.quality),
            rebuffer_ms: self.buffering.unwrap_or(0).min(INTERVAL_MS_MAX),
            rebuffers: self.rebuffers.unwrap_or(0).min(EVENTS_MAX),
            startup_ms: self.startup_ms.map(|v| v.min(STARTUP_MS_MAX)),
            switches_up: self.switches_up.unwrap_or(0).min(EVENTS_MAX),
            switches_down: self.switches_down.unwrap_or(0).min(EVENTS_MAX),
            latency_ms: self.latency_ms.map(|v| v.min(LATENCY_MS_MAX)),
            bandwidth_kbps: self.bandwidth_kbps.map(|v| v.min(BANDWIDTH_KBPS_MAX)),
            dropped_frames: self.dropped_frames.unwrap_or(0).min(DROPPED_MAX),
            fatal_error: text(&self.fatal_error),
            // A startup time says playback started, whatever `started` says.
            started: self.started.unwrap_or(false) || self.startup_ms.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::{ClientFrame, parse_frame};

    fn heartbeat(body: serde_json::Value) -> Result<HeartbeatFrame, crate::realtime::Refusal> {
        let mut body = body;
        body["action"] = "heartbeat".into();
        match parse_frame(&body.to_string())? {
            ClientFrame::Heartbeat(h) => Ok(h),
            other => panic!("not a heartbeat: {other:?}"),
        }
    }

    #[test]
    fn the_original_two_fields_still_make_a_heartbeat() {
        let h = heartbeat(serde_json::json!({"quality": "720p", "buffering": 250})).expect("ok");
        let r = h.report();
        assert_eq!(r.rendition.as_deref(), Some("720p"));
        assert_eq!(r.rebuffer_ms, 250);
        assert!(!r.started);
    }

    #[test]
    fn absurd_numbers_are_clamped_and_text_is_bounded() {
        let h = heartbeat(serde_json::json!({
            "quality": "x".repeat(100), "buffering": 99_999_999_999u64, "rebuffers": 5_000,
            "startupMs": 3_600_000, "switchesUp": 2, "switchesDown": 10_000,
            "latencyMs": 86_400_000, "bandwidthKbps": 99_999_999_999u64,
            "droppedFrames": 1_000_000_000, "fatalError": "net\nError\u{7}", "started": false,
        }))
        .expect("ok");
        let r = h.report();
        assert_eq!(r.rendition.map(|s| s.len()), Some(TEXT_MAX));
        assert_eq!(r.rebuffer_ms, INTERVAL_MS_MAX);
        assert_eq!(r.rebuffers, EVENTS_MAX);
        assert_eq!(r.startup_ms, Some(STARTUP_MS_MAX));
        assert_eq!((r.switches_up, r.switches_down), (2, EVENTS_MAX));
        assert_eq!(r.latency_ms, Some(LATENCY_MS_MAX));
        assert_eq!(r.bandwidth_kbps, Some(BANDWIDTH_KBPS_MAX));
        assert_eq!(r.dropped_frames, DROPPED_MAX);
        assert_eq!(r.fatal_error.as_deref(), Some("netError"));
        assert!(r.started, "a startup time means playback started");
    }

    #[test]
    fn wrong_types_and_unknown_fields_refuse_the_frame() {
        for bad in [
            serde_json::json!({"latencyMs": -5}),
            serde_json::json!({"startupMs": 1.5}),
            serde_json::json!({"rebuffers": "3"}),
            serde_json::json!({"started": "yes"}),
            serde_json::json!({"viewerId": "someone else"}),
        ] {
            let refusal = heartbeat(bad.clone()).expect_err("refused");
            assert_eq!(refusal.code, "invalid_frame", "{bad}");
        }
    }
}
