//! The 5 s quality sample: what the publisher sends, how the node keeps up, and the
//! governor's level, stored (by [`super::record`]) for `GET /metrics` and broadcast as
//! `stream:quality-update`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rill_core::quality::{QualitySample, health};

use super::{Counters, PipelineConfig};
use crate::publish::Protocol;

/// Counter values at the previous sample, for rates.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    bytes: u64,
    frames: u64,
    media_ms: u64,
}

pub(super) struct Sampler {
    id: String,
    protocol: Protocol,
    transport: Arc<dyn Fn() -> (Option<f64>, Option<f64>) + Send + Sync>,
    counters: Arc<Counters>,
    last: Mark,
}

impl Sampler {
    pub(super) fn new(config: &PipelineConfig, counters: Arc<Counters>) -> Self {
        Self {
            id: config.stream_id.clone(),
            protocol: config.protocol,
            transport: config.transport.clone(),
            counters,
            last: Mark {
                at: Instant::now(),
                bytes: 0,
                frames: 0,
                media_ms: 0,
            },
        }
    }

    /// A sample when a publisher is connected and media has arrived; always moves the rate
    /// window on.
    pub(super) fn sample(&mut self, publishing: bool, viewers: u64) -> Option<QualitySample> {
        let c = &self.counters;
        let now = Mark {
            at: Instant::now(),
            bytes: c.input_bytes.load(Ordering::Relaxed),
            frames: c.input_frames.load(Ordering::Relaxed),
            media_ms: c.media_ms.load(Ordering::Relaxed),
        };
        let secs = now.at.duration_since(self.last.at).as_secs_f64().max(0.001);
        let fps = now.frames.saturating_sub(self.last.frames) as f64 / secs;
        let speed = now.media_ms.saturating_sub(self.last.media_ms) as f64 / 1000.0 / secs;
        let input_kbps = now.bytes.saturating_sub(self.last.bytes) as f64 * 8.0 / 1000.0 / secs;
        self.last = now;
        if !publishing || now.frames == 0 {
            return None;
        }
        let dropped = c.dropped_frames.load(Ordering::Relaxed);
        let governor_level = c.governor_level.load(Ordering::Relaxed).min(255) as u8;
        let (rtt, loss) = (self.transport)();
        Some(QualitySample {
            stream_id: self.id.clone(),
            at: rill_core::time::now(),
            input_kbps,
            fps,
            width: c.width.load(Ordering::Relaxed) as u32,
            height: c.height.load(Ordering::Relaxed) as u32,
            frames: now.frames,
            dropped_frames: dropped,
            late_frames: c.late_frames.load(Ordering::Relaxed),
            encoder_speed: speed,
            rtt_ms: rtt,
            packet_loss: loss,
            health: health(
                fps,
                30.0,
                speed,
                loss.unwrap_or(0.0),
                dropped,
                now.frames,
                governor_level,
            ),
            viewers,
            protocol: self.protocol.as_str().to_owned(),
            governor_level,
            shed_frames: c.shed_frames.load(Ordering::Relaxed),
        })
    }
}
