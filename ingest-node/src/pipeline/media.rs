//! The media thread: publisher events in, segments out, with the overload governor.
//!
//! Decodes once and transcodes the ladder ([`Transcoder`]), packages each rendition, and
//! hands inits and segments to the publisher task. Once a second it turns what it saw
//! (queue wait in front of it, its own idle time, the publisher task's availability lag,
//! how late the publisher's media is being read) into a governor observation, and applies
//! the level the governor answers at the next segment boundary.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Counters, Input, Lateness, Output, PASSTHROUGH_PROBE_MS, PipelineConfig};
use crate::governor::{self, Governor, GovernorConfig, Observation};
use crate::media::MediaEvent;
use crate::package::{self, Packager, PackagerOptions, Segment, TrackConfig, TrackKind};
use crate::transcode::{
    Ladder, SourceInfo, SourceMeter, StreamConfig, TranscodeOptions, Transcoder,
};

/// Backlog (queue wait, or media read behind its timestamps) after which frames are shed
/// at the cheapest level.
const SHED_WHEN_QUEUED: Duration = Duration::from_millis(500);

/// How often the governor looks at the stream.
const EVALUATE_EVERY: Duration = Duration::from_secs(1);

/// The media thread's view of its own pressure, turned into governor observations.
struct Pressure {
    governor: Governor,
    since: Instant,
    /// Time spent waiting for input since `since`.
    idle: Duration,
    /// The longest an event waited in the queue in front of the media thread.
    max_queued: Duration,
}

impl Pressure {
    fn new(config: GovernorConfig) -> Self {
        Self {
            governor: Governor::new(config),
            since: Instant::now(),
            idle: Duration::ZERO,
            max_queued: Duration::ZERO,
        }
    }

    fn queued(&mut self, wait: Duration) {
        self.max_queued = self.max_queued.max(wait);
    }

    /// Once a second: the worst of the queue wait, the availability lag the publisher task
    /// measured, and — only while this thread had no idle time, so that a publisher's own
    /// uplink stalls do not cost the viewers quality — how far behind its timestamps the
    /// publisher's media is being read.
    fn evaluate(&mut self, counters: &Counters, lateness: &Lateness) -> Option<u8> {
        let now = Instant::now();
        let window = now.duration_since(self.since);
        if window < EVALUATE_EVERY {
            return None;
        }
        let busy = 1.0 - (self.idle.as_secs_f64() / window.as_secs_f64()).clamp(0.0, 1.0);
        let stored = Duration::from_millis(counters.recent_lag_ms.swap(0, Ordering::Relaxed))
            .saturating_sub(governor::inherent_delay(self.governor.level()));
        let behind = if busy > 0.9 {
            lateness.behind()
        } else {
            Duration::ZERO
        };
        let lag = self.max_queued.max(stored).max(behind);
        self.since = now;
        self.idle = Duration::ZERO;
        self.max_queued = Duration::ZERO;
        let changed = self.governor.evaluate(now, Observation { lag, busy });
        if let Some(level) = changed {
            tracing::info!(
                level,
                lag_ms = lag.as_millis() as u64,
                busy = format!("{busy:.2}"),
                "governor: new level"
            );
        }
        changed
    }
}

struct Generation {
    transcoder: Transcoder,
    packagers: Vec<Option<Packager>>,
    init_sent: Vec<Option<Bytes>>,
    /// When recent source video frames arrived, by source pts (ms).
    arrivals: VecDeque<(i64, Instant)>,
}

/// Source frames remembered for availability lag: ~17 s at 60 fps, longer than any segment.
const ARRIVALS_KEPT: usize = 1024;

impl Generation {
    /// When the segment's media was complete: the arrival of the first source frame at or
    /// after its end (until then the packager could not have cut it).
    fn media_complete_at(&self, segment: &Segment) -> Option<Instant> {
        let end = self.transcoder.origin_ms()? + segment.start_ms() + segment.duration_ms();
        self.arrivals
            .iter()
            .find(|(pts, _)| *pts >= end - 1)
            .map(|(_, at)| *at)
    }
}

/// Per rendition, what outlives a publisher's generation: the next sequence number, the
/// init segment's generation and bytes (a changed init gets a new object), and whether the
/// next segments follow a reconnect.
#[derive(Debug, Default)]
struct Carried {
    next_seq: Vec<u64>,
    init_gen: Vec<u32>,
    last_init: Vec<Option<Bytes>>,
    discontinuity: bool,
}

impl Carried {
    fn resize(&mut self, renditions: usize) {
        self.next_seq.resize(renditions, 0);
        self.init_gen.resize(renditions, 0);
        self.last_init.resize(renditions, None);
    }
}

pub(super) fn run(
    config: PipelineConfig,
    input: std::sync::mpsc::Receiver<Input>,
    out: mpsc::Sender<Output>,
    counters: Arc<Counters>,
) {
    let send = |o: Output| out.blocking_send(o).is_ok();
    let mut pending: Vec<MediaEvent> = Vec::new();
    let mut current: Option<Generation> = None;
    let mut meter = SourceMeter::default();
    let mut configured: Option<SourceInfo> = None;
    // What the publisher says of itself (RTMP metadata): frame rate, video kbit/s.
    let mut declared: (Option<f64>, Option<f64>) = (None, None);
    // Arrivals before the ladder is planned; then the generation keeps them.
    let mut arrivals: VecDeque<(i64, Instant)> = VecDeque::new();
    let started = Instant::now();
    let mut lateness = Lateness::default();
    let mut carried = Carried::default();
    let mut pressure = Pressure::new(config.governor.clone());
    let mut resume = config.resume.clone();
    counters
        .governor_level
        .store(u64::from(pressure.governor.level()), Ordering::Relaxed);
    loop {
        let waiting = Instant::now();
        let Ok(msg) = input.recv() else { break };
        pressure.idle += waiting.elapsed();
        let (event, received) = match msg {
            Input::Reconnected => {
                carried.discontinuity = true;
                if !send(Output::PublisherBack) {
                    return;
                }
                continue;
            }
            Input::Media(e, received) => (e, received),
        };
        if counters.inject_panic.load(Ordering::Relaxed) {
            panic!("fault hook: injected panic in the media thread");
        }
        pressure.queued(received.elapsed());
        if let Some(level) = pressure.evaluate(&counters, &lateness) {
            counters
                .governor_level
                .store(u64::from(level), Ordering::Relaxed);
            if let Some(g) = current.as_mut() {
                g.transcoder.set_level(level);
            }
        }
        if let Some(g) = current.as_mut() {
            // The last resort: when input still queues at the cheapest level, frames between
            // boundaries skip the encoders until it has caught up.
            // The backlog may sit in the queue in front of this thread or, once that is
            // full, in the publisher's connection (media read later than its timestamps).
            g.transcoder
                .set_shedding(received.elapsed().max(lateness.behind()) > SHED_WHEN_QUEUED);
            counters
                .shed_frames
                .fetch_add(g.transcoder.take_shed_frames(), Ordering::Relaxed);
        }
        if let MediaEvent::Video { data, pts_ms, .. } = &event {
            let arrivals = current.as_mut().map_or(&mut arrivals, |g| &mut g.arrivals);
            if arrivals.len() == ARRIVALS_KEPT {
                arrivals.pop_front();
            }
            arrivals.push_back((*pts_ms, received));
            let arrival_ms = received.saturating_duration_since(started).as_millis() as i64;
            if lateness.observe(*pts_ms, arrival_ms) {
                counters.late_frames.fetch_add(1, Ordering::Relaxed);
            }
            counters.input_frames.fetch_add(1, Ordering::Relaxed);
            counters
                .input_bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        } else if let MediaEvent::Audio { data, .. } = &event {
            counters
                .input_bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        let is_end = matches!(event, MediaEvent::End);
        if current.is_none() && !is_end {
            // Wait for the video configuration to plan the ladder, and when the source could
            // be the top rung as it is, for a couple of seconds of it to measure.
            meter.observe(&event);
            match &event {
                MediaEvent::VideoConfig { avcc } => configured = SourceInfo::from_avcc(avcc),
                MediaEvent::Metadata {
                    fps, video_kbps, ..
                } => declared = (*fps, *video_kbps),
                _ => {}
            }
            pending.push(event);
            let Some(source) = configured.or_else(|| meter.source()) else {
                if pending.len() > 2000 {
                    send(Output::Failed(
                        "no H.264 configuration from the publisher".into(),
                    ));
                    return;
                }
                continue;
            };
            let plan = Ladder::plan(
                source.width,
                source.height,
                config.preset,
                config.max_bitrate_kbps,
            );
            // A publisher that declares (RTMP onMetaData) a rate above the top rung's is
            // re-encoded without the probe and the delay it costs.
            let candidate = config.passthrough
                && source.h264
                && plan.rungs().first().is_some_and(|top| {
                    (top.width, top.height) == (source.width, source.height)
                        && declared.0.is_none_or(|f| f <= f64::from(top.fps) + 0.1)
                        && declared.1.is_none_or(|k| k <= f64::from(top.video_kbps))
                });
            if candidate && meter.observed_ms() < PASSTHROUGH_PROBE_MS && pending.len() < 2000 {
                continue;
            }
            let passthrough = candidate && plan.passthrough_eligible(&meter.info());
            counters
                .width
                .store(u64::from(source.width), Ordering::Relaxed);
            counters
                .height
                .store(u64::from(source.height), Ordering::Relaxed);
            if candidate {
                let info = meter.info();
                tracing::info!(
                    stream_id = %config.stream_id,
                    passthrough,
                    kbps = info.video_kbps.unwrap_or(0.0),
                    fps = info.fps.unwrap_or(0.0),
                    keyframe_interval_ms = info.max_keyframe_interval_ms.unwrap_or(0),
                    "top rung: source measured"
                );
            }
            let ladder = plan.with_passthrough(passthrough);
            let options = TranscodeOptions {
                x264_params: config.x264_params.clone(),
                ..TranscodeOptions::default()
            };
            let transcoder = match Transcoder::with_options(ladder, config.segment_ms, options) {
                Ok(mut t) => {
                    t.set_level(pressure.governor.level());
                    t
                }
                Err(e) => {
                    send(Output::Failed(format!("transcoder: {e}")));
                    return;
                }
            };
            let n = transcoder.renditions().len();
            carried.resize(n);
            if let Some(resume) = resume.take() {
                // Taken over from another node: new objects start at names nobody used,
                // and the first segments follow a discontinuity.
                for (k, r) in transcoder.renditions().iter().enumerate() {
                    if let Some(t) = resume.track(&r.name) {
                        carried.next_seq[k] = t.next_object;
                        carried.init_gen[k] = t.next_init;
                    }
                }
                carried.discontinuity = true;
            }
            current = Some(Generation {
                transcoder,
                packagers: (0..n).map(|_| None).collect(),
                init_sent: vec![None; n],
                arrivals: std::mem::take(&mut arrivals),
            });
            let replay: Vec<MediaEvent> = std::mem::take(&mut pending);
            for e in replay {
                if !push(
                    &config,
                    current.as_mut().map(|g| g as &mut Generation),
                    e,
                    &send,
                    &mut carried,
                    &counters,
                ) {
                    return;
                }
            }
            continue;
        }
        if is_end {
            // The publisher is gone: flush its generation (the transcoder's and packagers'
            // last segments), forget what was held before the ladder was planned, and tell
            // the publisher task, which starts the reconnect window.
            if let Some(mut g) = current.take() {
                let packets = g.transcoder.finish().unwrap_or_default();
                if !route(&config, &mut g, packets, &send, &mut carried, &counters) {
                    return;
                }
                for (k, p) in g.packagers.iter_mut().enumerate() {
                    if let Some(p) = p {
                        for segment in p.finish().unwrap_or_default() {
                            carried.next_seq[k] = segment.sequence + 1;
                            send(Output::Segment {
                                rendition: k,
                                segment,
                                discontinuity: false,
                                media_complete_at: None,
                            });
                        }
                    }
                }
            }
            pending.clear();
            meter = SourceMeter::default();
            configured = None;
            declared = (None, None);
            arrivals.clear();
            // A returning publisher's timestamps start over.
            lateness = Lateness::default();
            if !send(Output::PublisherGone) {
                return;
            }
            continue;
        }
        if !push(
            &config,
            current.as_mut(),
            event,
            &send,
            &mut carried,
            &counters,
        ) {
            return;
        }
    }
}

fn push(
    config: &PipelineConfig,
    generation: Option<&mut Generation>,
    event: MediaEvent,
    send: &dyn Fn(Output) -> bool,
    carried: &mut Carried,
    counters: &Counters,
) -> bool {
    let Some(g) = generation else { return true };
    match g.transcoder.push(event) {
        Ok(packets) => {
            if let Some(jpeg) = g.transcoder.take_thumbnail()
                && !send(Output::Thumbnail(jpeg))
            {
                return false;
            }
            route(config, g, packets, send, carried, counters)
        }
        Err(e) => {
            send(Output::Failed(format!("transcode: {e}")));
            false
        }
    }
}

/// Packets to packagers, segments and inits to the upload task.
fn route(
    config: &PipelineConfig,
    g: &mut Generation,
    packets: Vec<crate::media::EncodedPacket>,
    send: &dyn Fn(Output) -> bool,
    carried: &mut Carried,
    counters: &Counters,
) -> bool {
    for packet in packets {
        let k = packet.rendition;
        if k == 0 {
            counters
                .media_ms
                .store(packet.pts_ms.max(0) as u64, Ordering::Relaxed);
        }
        if g.packagers[k].is_none() {
            let Some(params) = g.transcoder.codec_params(k).cloned() else {
                continue;
            };
            let track = match &params.config {
                StreamConfig::Video {
                    width,
                    height,
                    avcc,
                } => TrackConfig {
                    kind: TrackKind::Video,
                    codec_string: params.codec.clone(),
                    extradata: avcc.clone(),
                    width: *width,
                    height: *height,
                    sample_rate: 0,
                    channels: 0,
                    time_base_den: 90_000,
                },
                StreamConfig::Audio {
                    sample_rate,
                    channels,
                    asc,
                    ..
                } => TrackConfig {
                    kind: TrackKind::Audio,
                    codec_string: params.codec.clone(),
                    extradata: asc.clone(),
                    width: 0,
                    height: 0,
                    sample_rate: *sample_rate,
                    channels: u32::from(*channels),
                    time_base_den: *sample_rate,
                },
            };
            let options = PackagerOptions {
                segment_ms: config.segment_ms,
                first_sequence: carried.next_seq[k],
            };
            match Packager::new(&track, options) {
                Ok(p) => g.packagers[k] = Some(p),
                Err(e) => {
                    send(Output::Failed(format!("packager: {e}")));
                    return false;
                }
            }
            // Every rendition known: tell the upload task the ladder (for the master).
            if g.packagers.iter().all(Option::is_some)
                || g.transcoder
                    .renditions()
                    .iter()
                    .enumerate()
                    .all(|(i, _)| g.transcoder.codec_params(i).is_some())
            {
                let renditions = g.transcoder.renditions().to_vec();
                let codecs = (0..renditions.len())
                    .map(|i| {
                        g.transcoder
                            .codec_params(i)
                            .map(|p| p.codec.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                send(Output::Ladder {
                    renditions,
                    codecs,
                    audio: g.transcoder.audio_index(),
                });
            }
        }
        let Some(packager) = g.packagers[k].as_mut() else {
            continue;
        };
        let segments = match packager.push(&packet) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(stream_id = %config.stream_id, rendition = k, error = %e, "packet not packaged");
                counters.dropped_frames.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if g.init_sent[k].is_none()
            && let Some(init) = packager.init_segment().cloned()
        {
            {
                if carried.last_init[k]
                    .as_ref()
                    .is_some_and(|prev| *prev != init)
                {
                    carried.init_gen[k] += 1;
                }
                carried.last_init[k] = Some(init.clone());
                let name = g.transcoder.renditions()[k].name.clone();
                let object = package::init_object_name(&name, carried.init_gen[k]);
                if !send(Output::Init {
                    rendition: k,
                    name: object,
                    uri: package::init_uri(carried.init_gen[k]),
                    data: init.clone(),
                }) {
                    return false;
                }
                g.init_sent[k] = Some(init);
            }
        }
        for segment in segments {
            carried.next_seq[k] = segment.sequence + 1;
            let first_after_reconnect = carried.discontinuity;
            let media_complete_at = g.media_complete_at(&segment);
            if !send(Output::Segment {
                rendition: k,
                segment,
                discontinuity: first_after_reconnect,
                media_complete_at,
            }) {
                return false;
            }
        }
        // The discontinuity flag applies to the first segment of every rendition.
        if carried.discontinuity && g.packagers.iter().flatten().all(|p| p.next_sequence() > 0) {
            carried.discontinuity = false;
        }
    }
    true
}
