//! One stream's pipeline: publisher media in, HLS in S3 out, status and samples in DynamoDB.
//!
//! ```text
//! publisher (RTMP/WHIP) --MediaEvent--> media thread: transcode (decode once, ladder)
//!                                        -> packagers (fMP4 per rendition)
//!                                        --Output--> upload task: S3 (segments, then
//!                                                    playlists), go-live, samples, end
//! ```
//!
//! Invariants:
//! - a playlist is uploaded only after every segment it names is stored;
//! - the stream becomes `live` (conditional write) once the first segment of every
//!   rendition is stored and the master playlist names them all;
//! - a publisher that drops keeps the stream live for the reconnect window; a publisher
//!   that returns continues the playlists after `#EXT-X-DISCONTINUITY` with new sequence
//!   numbers; when the window passes (or the owner ends the stream, or the node shuts down)
//!   every playlist gets `#EXT-X-ENDLIST` and the recording stays playable from the same
//!   objects (keep-all playlists, `EVENT` while live);
//! - the media thread never blocks the runtime: it is a plain thread fed by a channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rill_core::quality::{QualitySample, health};
use rill_core::store::{MetricsStore, StreamStore};
use rill_core::{Command, StreamStatus};
use tokio::sync::mpsc;

use crate::media::{MediaEvent, Rendition};
use crate::package::{
    self, AudioMedia, BitrateStats, MediaPlaylist, Packager, PackagerOptions, PlaylistSegment,
    Segment, TrackConfig, TrackKind, VariantStream, Window,
};
use crate::publish::Protocol;
use crate::transcode::{
    Ladder, QualityPreset, SourceInfo, SourceMeter, StreamConfig, TranscodeOptions, Transcoder,
};

/// How much of a source that could be the top rung as it is gets measured (rate, frame
/// rate, two keyframes at the 2 s limit) before the ladder is planned. It delays the first
/// segment by as much, only for such sources.
const PASSTHROUGH_PROBE_MS: i64 = 2100;
use crate::upload::{ObjectKind, Uploader};

/// What the pipeline needs to know about the stream.
#[derive(Clone)]
pub struct PipelineConfig {
    pub stream_id: String,
    pub preset: QualityPreset,
    pub max_bitrate_kbps: Option<u32>,
    pub segment_ms: u32,
    pub reconnect_window: Duration,
    pub sample_every: Duration,
    /// How the publisher arrived, for samples.
    pub protocol: Protocol,
    /// Public URL of the live thumbnail, set on the stream when it has none.
    pub thumbnail_url: String,
    /// Whether a source that already fits the top rung (H.264 at its size, frame rate and
    /// bitrate, keyframes at least every 2 s) is forwarded instead of re-encoded.
    pub passthrough: bool,
    /// Extra x264 parameters for every encoded rung (`X264_PARAMS`, `key=value:...`).
    pub x264_params: Option<String>,
    /// Transport RTT (ms) and packet loss (0–1) for WebRTC publishers.
    pub transport: Arc<dyn Fn() -> (Option<f64>, Option<f64>) + Send + Sync>,
}

impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("stream_id", &self.stream_id)
            .field("preset", &self.preset)
            .field("segment_ms", &self.segment_ms)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// Counters the media thread updates and the sampler reads.
#[derive(Debug, Default)]
pub struct Counters {
    pub input_bytes: AtomicU64,
    pub input_frames: AtomicU64,
    pub dropped_frames: AtomicU64,
    /// Video frames that arrived later than their timestamps allow ([`Lateness`]).
    pub late_frames: AtomicU64,
    /// Media time transcoded (ms of the top rung).
    pub media_ms: AtomicU64,
    pub width: AtomicU64,
    pub height: AtomicU64,
    /// Segment availability lag: source media complete -> segment and playlist stored.
    pub availability: std::sync::Mutex<LagWindow>,
}

/// Counts frames that arrive late: more than [`Lateness::THRESHOLD_MS`] after the time their
/// timestamp says, judged against the best (smallest) arrival-minus-timestamp offset seen.
/// A publisher whose uplink or CPU stalls delivers a burst of late frames; so does a node
/// too busy to read its connection (TCP pushes back), which the viewers feel the same way. The best offset
/// relaxes by 1 ms per second of media so that a sender clock drifting against ours (well
/// under 1000 ppm in practice) is not counted as lateness.
#[derive(Debug, Default)]
pub struct Lateness {
    best: Option<(i64, i64)>,
}

impl Lateness {
    pub const THRESHOLD_MS: i64 = 300;

    /// Whether the frame with timestamp `pts_ms`, arriving at `arrival_ms`, is late.
    pub fn observe(&mut self, pts_ms: i64, arrival_ms: i64) -> bool {
        let offset = arrival_ms - pts_ms;
        let best = match self.best {
            Some((best, at_pts)) => best + (pts_ms - at_pts).max(0) / 1000,
            None => offset,
        };
        if offset <= best {
            self.best = Some((offset, pts_ms));
            return false;
        }
        offset - best > Self::THRESHOLD_MS
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

/// From the media thread to the upload task.
#[derive(Debug)]
enum Output {
    /// A rendition's init segment (new generation after a reconnect if it changed).
    Init {
        rendition: usize,
        name: String,
        uri: String,
        data: Bytes,
    },
    Segment {
        rendition: usize,
        segment: Segment,
        discontinuity: bool,
        /// When the node had all of the segment's source media (for availability lag).
        media_complete_at: Option<Instant>,
    },
    /// The ladder as transcoded (names, sizes, codec strings), once known.
    Ladder {
        renditions: Vec<Rendition>,
        codecs: Vec<String>,
        audio: usize,
    },
    /// A new JPEG of the source.
    Thumbnail(Bytes),
    /// The current publisher is gone (its media is flushed).
    PublisherGone,
    /// The media thread failed; the stream cannot continue.
    Failed(String),
}

/// Into the media thread.
#[derive(Debug)]
pub enum Input {
    /// An event and when the node took it from the publisher's connection (before the
    /// media thread's queue, so a busy media thread does not move arrival times).
    Media(MediaEvent, Instant),
    /// A new publisher took over after a drop: start a new generation.
    Reconnected,
}

/// Handle the node keeps for a running pipeline.
#[derive(Debug)]
pub struct PipelineHandle {
    pub input: std::sync::mpsc::SyncSender<Input>,
    pub counters: Arc<Counters>,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the media thread and the upload task. `publisher_gone` tells the node when the
/// reconnect window opens and closes (true: waiting for a publisher).
pub fn start(
    config: PipelineConfig,
    store: Arc<dyn StreamStore>,
    metrics: Arc<dyn MetricsStore>,
    uploader: Uploader,
    on_finished: impl FnOnce() + Send + 'static,
) -> PipelineHandle {
    let (input_tx, input_rx) = std::sync::mpsc::sync_channel::<Input>(512);
    let (out_tx, out_rx) = mpsc::channel::<Output>(256);
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let media_config = config.clone();
    let media_counters = counters.clone();
    std::thread::Builder::new()
        .name(format!(
            "media-{}",
            &config.stream_id[..8.min(config.stream_id.len())]
        ))
        .spawn(move || media_thread(media_config, input_rx, out_tx, media_counters))
        .map_err(|e| tracing::error!(error = %e, "cannot start the media thread"))
        .ok();
    let task_counters = counters.clone();
    let task = tokio::spawn(async move {
        upload_task(
            config,
            store,
            metrics,
            uploader,
            out_rx,
            stop_rx,
            task_counters,
        )
        .await;
        on_finished();
    });
    PipelineHandle {
        input: input_tx,
        counters,
        stop: stop_tx,
        task,
    }
}

// ------------------------------------------------------------------ media thread

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

fn media_thread(
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
    while let Ok(msg) = input.recv() {
        let (event, received) = match msg {
            Input::Reconnected => {
                carried.discontinuity = true;
                continue;
            }
            Input::Media(e, received) => (e, received),
        };
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
                Ok(t) => t,
                Err(e) => {
                    send(Output::Failed(format!("transcoder: {e}")));
                    return;
                }
            };
            let n = transcoder.renditions().len();
            carried.resize(n);
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

// ------------------------------------------------------------------ upload task

struct Track {
    name: String,
    playlist: MediaPlaylist,
    init_uri: String,
    sizes: Vec<(usize, Duration)>,
    pending_discontinuity: bool,
}

async fn upload_task(
    config: PipelineConfig,
    store: Arc<dyn StreamStore>,
    metrics: Arc<dyn MetricsStore>,
    uploader: Uploader,
    mut out: mpsc::Receiver<Output>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let id = config.stream_id.clone();
    let target = Duration::from_millis(u64::from(config.segment_ms));
    let mut tracks: BTreeMap<usize, Track> = BTreeMap::new();
    let mut ladder: Option<(Vec<Rendition>, Vec<String>, usize)> = None;
    let mut live = false;
    let mut wall_origin: Option<DateTime<Utc>> = None;
    let mut waiting_since: Option<Instant> = None;
    let mut status_check = tokio::time::interval(Duration::from_secs(2));
    let mut sampler = tokio::time::interval(config.sample_every);
    let mut last_sample = (Instant::now(), 0u64, 0u64, 0u64);
    let mut gone_generations = 0u32;
    let mut thumbnail_listed = false;
    let reason;
    loop {
        tokio::select! {
            msg = out.recv() => {
                let Some(msg) = msg else { reason = "media thread ended"; break };
                match msg {
                    Output::Init { rendition, name, uri, data } => {
                        if let Err(e) = uploader.put(&name, data, ObjectKind::Init).await {
                            tracing::error!(stream_id = %id, error = %e, "init upload failed");
                        }
                        if let Some(t) = tracks.get_mut(&rendition) {
                            t.init_uri = uri;
                        } else {
                            let name = ladder.as_ref().and_then(|l| l.0.get(rendition)).map(|r| r.name.clone()).unwrap_or_else(|| format!("r{rendition}"));
                            tracks.insert(rendition, Track { name, playlist: MediaPlaylist::new(Window::KeepAll, target), init_uri: uri, sizes: Vec::new(), pending_discontinuity: false });
                        }
                    }
                    Output::Ladder { renditions, codecs, audio } => {
                        for (k, r) in renditions.iter().enumerate() {
                            if let Some(t) = tracks.get_mut(&k) { t.name = r.name.clone(); }
                        }
                        ladder = Some((renditions, codecs, audio));
                    }
                    Output::Segment { rendition, segment, discontinuity, media_complete_at } => {
                        let origin = *wall_origin.get_or_insert_with(|| wall_clock_origin(&segment, media_complete_at, config.segment_ms));
                        let Some(track) = tracks.get_mut(&rendition) else { continue };
                        let object = package::segment_object_name(&track.name, segment.sequence);
                        let size = segment.byte_size();
                        if let Err(e) = uploader.put(&object, segment.data.clone(), ObjectKind::Segment).await {
                            tracing::error!(stream_id = %id, error = %e, "segment upload failed; not listed");
                            continue;
                        }
                        let mut entry = PlaylistSegment::from_segment(&segment, origin + chrono::Duration::milliseconds(segment.start_ms()));
                        entry.init_uri = track.init_uri.clone();
                        entry.discontinuity = discontinuity || std::mem::take(&mut track.pending_discontinuity);
                        track.sizes.push((size, Duration::from_millis(segment.duration_ms().max(1) as u64)));
                        if let Err(e) = track.playlist.push(entry) {
                            tracing::warn!(stream_id = %id, error = %e, "playlist rejected a segment");
                            continue;
                        }
                        let body = Bytes::from(track.playlist.render());
                        let name = package::media_playlist_object_name(&track.name);
                        match uploader.put(&name, body, ObjectKind::Playlist).await {
                            Ok(()) => if let Some(at) = media_complete_at {
                                counters.availability.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(at.elapsed());
                            },
                            Err(e) => tracing::error!(stream_id = %id, error = %e, "playlist upload failed"),
                        }
                        if !live
                            && let Some((renditions, codecs, audio)) = &ladder
                        {
                            {
                                let all = (0..renditions.len()).all(|k| tracks.get(&k).is_some_and(|t| !t.sizes.is_empty()));
                                if all {
                                    let master = master(renditions, codecs, *audio, &tracks);
                                    if uploader.put(package::MASTER_PLAYLIST, Bytes::from(master), ObjectKind::Playlist).await.is_ok() {
                                        match store.apply(&id, Command::GoLive, rill_core::time::now()).await {
                                            Ok(_) => tracing::info!(stream_id = %id, "stream is live"),
                                            Err(e) => tracing::warn!(stream_id = %id, error = %e, "go-live refused"),
                                        }
                                        live = true;
                                    }
                                }
                            }
                        }
                    }
                    Output::Thumbnail(jpeg) => {
                        match uploader.put(package::THUMBNAIL, jpeg, ObjectKind::Thumbnail).await {
                            Ok(()) if !thumbnail_listed => {
                                thumbnail_listed = true;
                                list_thumbnail(store.as_ref(), &id, &config.thumbnail_url).await;
                            }
                            Ok(()) => {}
                            Err(e) => tracing::warn!(stream_id = %id, error = %e, "thumbnail upload failed"),
                        }
                    }
                    Output::PublisherGone => {
                        gone_generations += 1;
                        // A returning publisher's timeline starts again at zero: its segments
                        // take their wall clock from when they arrive, not from this session.
                        wall_origin = None;
                        waiting_since = Some(Instant::now());
                        for t in tracks.values_mut() { t.pending_discontinuity = true; }
                        tracing::info!(stream_id = %id, window_s = config.reconnect_window.as_secs(), "publisher gone; waiting for a reconnect");
                    }
                    Output::Failed(e) => {
                        tracing::error!(stream_id = %id, error = %e, "pipeline failed");
                        reason = "pipeline failure";
                        break;
                    }
                }
            }
            _ = status_check.tick() => {
                if waiting_since.is_some_and(|since| since.elapsed() >= config.reconnect_window) {
                    reason = "reconnect window passed";
                    break;
                }
                match store.get_stream(&id).await {
                    Ok(Some(s)) if s.status.is_final() => { reason = "stream ended by its owner"; break; }
                    Ok(None) => { reason = "stream deleted"; break; }
                    _ => {}
                }
            }
            _ = sampler.tick() => {
                let now = Instant::now();
                let bytes = counters.input_bytes.load(Ordering::Relaxed);
                let frames = counters.input_frames.load(Ordering::Relaxed);
                let media = counters.media_ms.load(Ordering::Relaxed);
                let secs = now.duration_since(last_sample.0).as_secs_f64().max(0.001);
                let fps = (frames - last_sample.2) as f64 / secs;
                let speed = (media.saturating_sub(last_sample.3)) as f64 / 1000.0 / secs;
                let dropped = counters.dropped_frames.load(Ordering::Relaxed);
                let viewers = store.get_stream(&id).await.ok().flatten().map(|s| s.stats.current_viewers).unwrap_or(0);
                let (rtt, loss) = (config.transport)();
                if waiting_since.is_none() && frames > 0 {
                    let sample = QualitySample {
                        stream_id: id.clone(),
                        at: rill_core::time::now(),
                        input_kbps: (bytes - last_sample.1) as f64 * 8.0 / 1000.0 / secs,
                        fps,
                        width: counters.width.load(Ordering::Relaxed) as u32,
                        height: counters.height.load(Ordering::Relaxed) as u32,
                        frames,
                        dropped_frames: dropped,
                        late_frames: counters.late_frames.load(Ordering::Relaxed),
                        encoder_speed: speed,
                        rtt_ms: rtt,
                        packet_loss: loss,
                        health: health(fps, 30.0, speed, loss.unwrap_or(0.0), dropped, frames),
                        viewers,
                        protocol: config.protocol.as_str().to_owned(),
                    };
                    if let Err(e) = metrics.put_sample(&sample).await {
                        tracing::warn!(stream_id = %id, error = %e, "sample not stored");
                    }
                }
                last_sample = (now, bytes, frames, media);
            }
            _ = stop.changed() => { reason = "node shutting down"; break; }
        }
    }
    // Drain what the media thread already produced, then close every playlist.
    while let Ok(Output::Segment { .. }) | Ok(Output::Init { .. }) = out.try_recv() {}
    for t in tracks.values_mut() {
        t.playlist.end();
        let name = package::media_playlist_object_name(&t.name);
        if let Err(e) = uploader
            .put(
                &name,
                Bytes::from(t.playlist.render()),
                ObjectKind::Playlist,
            )
            .await
        {
            tracing::error!(stream_id = %id, error = %e, "final playlist upload failed");
        }
    }
    match store.apply(&id, Command::End, rill_core::time::now()).await {
        Ok(_) => {}
        Err(rill_core::store::StoreError::Conflict {
            current: Some(StreamStatus::Ended | StreamStatus::Cancelled),
            ..
        }) => {}
        Err(e) => tracing::warn!(stream_id = %id, error = %e, "could not mark the stream ended"),
    }
    tracing::info!(stream_id = %id, reason, reconnects = gone_generations.saturating_sub(1), "stream finished");
}

/// The wall-clock time of media time zero, for `#EXT-X-PROGRAM-DATE-TIME`. Anchored on when
/// the node received the media (the arrival of the frame that completed `segment`), not on
/// when the segment came out of the encoder: players measure their latency against these
/// times, so the encoder's and packager's delay must count, not hide.
fn wall_clock_origin(
    segment: &Segment,
    media_complete_at: Option<Instant>,
    segment_ms: u32,
) -> DateTime<Utc> {
    let end_ms = match media_complete_at {
        Some(_) => segment.start_ms() + segment.duration_ms(),
        None => segment.start_ms() + i64::from(segment_ms),
    };
    let since_complete = media_complete_at.map_or(Duration::ZERO, |at| at.elapsed());
    Utc::now()
        - chrono::Duration::from_std(since_complete).unwrap_or_default()
        - chrono::Duration::milliseconds(end_ms)
}

/// Points the stream's `thumbnailUrl` at the live thumbnail unless the owner chose one. A
/// conditional write: an owner edit in between wins and this one is dropped.
async fn list_thumbnail(store: &dyn StreamStore, id: &str, url: &str) {
    let stream = match store.get_stream(id).await {
        Ok(Some(s)) if s.thumbnail_url.is_none() => s,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(stream_id = %id, error = %e, "thumbnail URL not set");
            return;
        }
    };
    let patch = rill_core::stream::StreamPatch {
        thumbnail_url: Some(Some(url.to_owned())),
        ..Default::default()
    };
    let result = match stream.patched(&patch, rill_core::time::now()) {
        Ok(updated) => store.update_stream(&updated).await.map(|_| ()),
        Err(e) => {
            tracing::warn!(stream_id = %id, error = %e, "thumbnail URL rejected");
            return;
        }
    };
    if let Err(e) = result {
        tracing::info!(stream_id = %id, error = %e, "thumbnail URL not set (stream edited meanwhile)");
    }
}

fn master(
    renditions: &[Rendition],
    codecs: &[String],
    audio: usize,
    tracks: &BTreeMap<usize, Track>,
) -> String {
    let stats = |k: usize| {
        tracks
            .get(&k)
            .map(|t| BitrateStats::from_segments(t.sizes.iter().copied()))
            .unwrap_or_default()
    };
    let variants: Vec<VariantStream> = renditions
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != audio)
        .map(|(k, r)| {
            let s = stats(k);
            let target = u64::from(r.video_kbps) * 1000;
            VariantStream {
                uri: format!("{}/index.m3u8", r.name),
                bandwidth: s.peak_bps.max(target),
                average_bandwidth: s.average_bps.max(1),
                width: r.width,
                height: r.height,
                codecs: codecs.get(k).cloned().unwrap_or_default(),
                frame_rate: f64::from(r.fps),
            }
        })
        .collect();
    let a = stats(audio);
    let audio_media = AudioMedia {
        group_id: "aac".into(),
        name: "audio".into(),
        uri: format!(
            "{}/index.m3u8",
            renditions
                .get(audio)
                .map(|r| r.name.as_str())
                .unwrap_or("audio")
        ),
        codecs: codecs
            .get(audio)
            .cloned()
            .unwrap_or_else(|| "mp4a.40.2".into()),
        channels: Some(2),
        bandwidth: a.peak_bps.max(128_000),
        average_bandwidth: a.average_bps.max(1),
    };
    package::master_playlist(&variants, Some(&audio_media))
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
