//! Quality samples the ingest node writes every few seconds, and the health score.
//!
//! Health is a 0–100 product of four ratios, each clamped to [0, 1], so that any one bad
//! dimension drags the score down on its own:
//!
//! `health = 100 × (fps / expected_fps) × min(1, encoder_speed) × (1 − min(1, 10 × packet_loss)) × (1 − dropped / frames) × (1 − 0.06 × governor_level)`
//!
//! - frame rate against what the publisher declared (or the rung's rate);
//! - encoder speed as a multiple of real time (below 1.0 the node falls behind);
//! - packet loss (WebRTC; 0 for RTMP), where 10 % loss alone gives 0;
//! - frames dropped or late in the pipeline over frames received;
//! - the ingest node's overload governor level (0 = full quality; each level the node
//!   stepped down to stay real time costs 6 points, so the cheapest level, 5, scores 70 %).

use serde::{Deserialize, Serialize};

use crate::time::{Timestamp, rfc3339_millis};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualitySample {
    pub stream_id: String,
    #[serde(with = "rfc3339_millis")]
    pub at: Timestamp,
    pub input_kbps: f64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub dropped_frames: u64,
    pub late_frames: u64,
    /// Transcoding speed as a multiple of real time.
    pub encoder_speed: f64,
    /// WebRTC only.
    pub rtt_ms: Option<f64>,
    /// WebRTC only: fraction of packets lost, 0–1.
    pub packet_loss: Option<f64>,
    pub health: u8,
    pub viewers: u64,
    /// `rtmp` or `webrtc`.
    pub protocol: String,
    /// The node's overload governor level: 0 = full quality; higher = cheaper encoder
    /// settings (and, at the top, fewer frames) so the stream stays real time. Samples
    /// stored before the governor existed read 0.
    #[serde(default)]
    pub governor_level: u8,
    /// Frames the governor kept from the encoders at its last level (cumulative).
    #[serde(default)]
    pub shed_frames: u64,
}

/// The documented health formula.
pub fn health(
    fps: f64,
    expected_fps: f64,
    encoder_speed: f64,
    packet_loss: f64,
    dropped: u64,
    frames: u64,
    governor_level: u8,
) -> u8 {
    let ratio = |v: f64| {
        if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let fps_score = if expected_fps > 0.0 {
        ratio(fps / expected_fps)
    } else {
        1.0
    };
    let speed_score = ratio(encoder_speed);
    let loss_score = 1.0 - ratio(packet_loss * 10.0);
    let drop_score = if frames > 0 {
        1.0 - ratio(dropped as f64 / frames as f64)
    } else {
        1.0
    };
    let governor_score = 1.0 - ratio(0.06 * f64::from(governor_level));
    (100.0 * fps_score * speed_score * loss_score * drop_score * governor_score).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_stream_is_healthy() {
        assert_eq!(health(30.0, 30.0, 1.8, 0.0, 0, 300, 0), 100);
    }

    #[test]
    fn each_dimension_pulls_the_score_down_on_its_own() {
        assert_eq!(health(15.0, 30.0, 2.0, 0.0, 0, 300, 0), 50);
        assert_eq!(health(30.0, 30.0, 0.5, 0.0, 0, 300, 0), 50);
        assert_eq!(health(30.0, 30.0, 2.0, 0.05, 0, 300, 0), 50);
        assert_eq!(health(30.0, 30.0, 2.0, 0.0, 150, 300, 0), 50);
        assert_eq!(health(30.0, 30.0, 2.0, 0.2, 0, 300, 0), 0);
    }

    #[test]
    fn nonsense_inputs_do_not_overflow() {
        assert_eq!(health(f64::NAN, 30.0, f64::INFINITY, -1.0, 500, 10, 0), 0);
        assert_eq!(health(60.0, 0.0, 1.0, 0.0, 0, 0, 0), 100);
    }

    #[test]
    fn each_governor_level_costs_six_points() {
        assert_eq!(health(30.0, 30.0, 1.0, 0.0, 0, 300, 1), 94);
        assert_eq!(health(30.0, 30.0, 1.0, 0.0, 0, 300, 5), 70);
        assert_eq!(health(30.0, 30.0, 1.0, 0.0, 0, 300, 200), 0);
    }
}
