//! One stream's pipeline: publisher media in, HLS in S3 out, status and samples in DynamoDB.
//!
//! ```text
//! publisher (RTMP/WHIP) --Input--> media thread (media.rs): governor, transcode (decode once,
//!                                   ladder), packagers (fMP4 per rendition)
//!                                   --Output--> publisher task (publisher.rs): S3 through
//!                                               the outbox (segments, then playlists),
//!                                               go-live, samples (sampler.rs) and status
//!                                               through the record task, the end
//! ```
//!
//! Invariants:
//! - a playlist is uploaded only after every segment it names is stored (or marks it
//!   `#EXT-X-GAP`: dropped from a full upload backlog during a long bucket outage);
//! - storage never holds the media up: objects wait, in order and bounded, in the stream's
//!   [`outbox`], table writes in its [`record`] task; both retry until storage is back;
//! - the stream becomes `live` (conditional write) once the first segment of every
//!   rendition is stored and the master playlist names them all;
//! - a publisher that drops keeps the stream live for the reconnect window; a publisher
//!   that returns continues the playlists after `#EXT-X-DISCONTINUITY` with new sequence
//!   numbers; when the window passes (or the owner ends the stream, or the node shuts down)
//!   every playlist gets `#EXT-X-ENDLIST` and the recording stays playable from the same
//!   objects (keep-all playlists, `EVENT` while live);
//! - the media thread never blocks the runtime: it is a plain thread fed by a channel, and
//!   every queue in front of it is bounded (the publisher's connection is read no faster
//!   than the node keeps up; the governor keeps it keeping up);
//! - supervision: a panic in one stream's media thread, rung threads or publisher task ends
//!   that stream only, finalised (ENDLIST as far as known, status `ended`); the node and
//!   every other stream carry on;
//! - a pipeline that lost its stream's lease ([`Stop::Abandon`]) writes nothing more, not
//!   even ENDLIST: the stream belongs to another node now;
//! - a stream taken over from another node ([`PipelineConfig::resume`]) continues its
//!   playlists after `#EXT-X-DISCONTINUITY`: positions and PDT go on, new objects get
//!   names no object has yet.

mod lag;
mod media;
mod outbox;
mod publisher;
mod record;
mod sampler;
pub mod takeover;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_core::store::{MetricsStore, StreamStore};
use tokio::sync::mpsc;

pub use lag::{LagWindow, Lateness};

use crate::governor::GovernorConfig;
use crate::media::{MediaEvent, Rendition};
use crate::package::Segment;
use crate::package::resume::Resume;
use crate::publish::Protocol;
use crate::transcode::QualityPreset;
use crate::upload::Uploader;

/// How much of a source that could be the top rung as it is gets measured (rate, frame
/// rate, two keyframes at the 2 s limit) before the ladder is planned. It delays the first
/// segment by as much, only for such sources.
const PASSTHROUGH_PROBE_MS: i64 = 2100;

/// What the pipeline needs to know about the stream.
#[derive(Clone)]
pub struct PipelineConfig {
    pub stream_id: String,
    pub preset: QualityPreset,
    pub max_bitrate_kbps: Option<u32>,
    pub segment_ms: u32,
    pub reconnect_window: Duration,
    pub sample_every: Duration,
    /// Media waiting for the bucket at most, in bytes ([`outbox`]).
    pub upload_backlog_bytes: usize,
    /// `rtmp` or `webrtc`, for samples.
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
    /// The overload governor's thresholds (or a fixed level).
    pub governor: GovernorConfig,
    /// Another node was writing this stream ([`takeover`]): continue its playlists.
    pub resume: Option<Arc<Resume>>,
}

/// How the node asks a pipeline to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Run,
    /// Close the playlists (ENDLIST) and end the stream (node shutdown).
    Finish,
    /// Stop writing at once and touch nothing more: the stream's lease is lost and another
    /// node may own it now.
    Abandon,
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
    /// The worst availability lag (ms) since the governor last looked.
    pub recent_lag_ms: AtomicU64,
    /// The overload governor's level ([`crate::governor`]).
    pub governor_level: AtomicU64,
    /// Decoded frames the governor's last level kept from the encoders.
    pub shed_frames: AtomicU64,
    /// Segments the upload backlog gave up on during a long bucket outage (`#EXT-X-GAP`).
    pub dropped_segments: AtomicU64,
    /// Upload attempts that failed (each is retried).
    pub upload_failures: AtomicU64,
    /// Bytes waiting for the bucket now.
    pub upload_backlog_bytes: AtomicU64,
    /// Test-only fault hook (`RILL_FAULT_HOOKS=1`): the media thread panics when set.
    pub inject_panic: AtomicBool,
}

/// From the media thread to the upload task.
#[derive(Debug)]
pub(super) enum Output {
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
    /// The current publisher is gone: what its generation had taken in is flushed (segments
    /// sent before this); media still waiting for the ladder to be planned is dropped.
    PublisherGone,
    /// A publisher came back within the reconnect window.
    PublisherBack,
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
    pub stop: tokio::sync::watch::Sender<Stop>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the media thread and the publisher task, supervised: whatever happens to them,
/// `on_finished` runs once the stream is over.
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let media_config = config.clone();
    let media_counters = counters.clone();
    let id = config.stream_id.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("media-{}", &id[..8.min(id.len())]))
        .spawn(move || {
            let failed = out_tx.clone();
            // A panic here (or in a rung thread, surfacing as an error) ends this stream only:
            // the publisher task hears of it and finalises.
            let run = std::panic::AssertUnwindSafe(|| {
                media::run(media_config, input_rx, out_tx, media_counters)
            });
            if let Err(panic) = std::panic::catch_unwind(run) {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                let _ =
                    failed.blocking_send(Output::Failed(format!("media thread panicked: {what}")));
            }
        });
    if let Err(e) = spawned {
        tracing::error!(stream_id = %id, error = %e, "cannot start the media thread");
    }
    let task_counters = counters.clone();
    let task = tokio::spawn(async move {
        let publisher =
            publisher::Publisher::new(config, store.clone(), metrics, uploader, task_counters);
        let inner = tokio::spawn(publisher.run(out_rx, stop_rx));
        if let Err(e) = inner.await {
            // The task's state (playlists) is lost with it; at least the stream is not left
            // `live` with nobody publishing it.
            tracing::error!(stream_id = %id, error = %e, "publisher task failed; ending the stream");
            publisher::mark_ended(store.as_ref(), &id).await;
        }
        on_finished();
    });
    PipelineHandle {
        input: input_tx,
        counters,
        stop: stop_tx,
        task,
    }
}
