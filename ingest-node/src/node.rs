//! The node: publish authorisation, one supervised pipeline per stream, shutdown.
//!
//! Invariants:
//! - a key is checked against the stream store (SHA-256 lookup, then the item itself)
//!   before any media is accepted; the key is never logged;
//! - the node depends on `rill-core` ports only ([`Ports`]); which backend sits behind them
//!   is decided in one place, [`crate::run()`];
//! - one publisher per stream at a time; a publisher arriving while the stream waits in its
//!   reconnect window continues the same pipeline;
//! - one node per stream ([`crate::fleet`]): a new pipeline starts only after the node took
//!   the stream's lease; a stream another node was writing continues its playlists
//!   ([`crate::pipeline::takeover`]); a lost lease stops the pipeline without a write;
//! - a failing pipeline ends its own stream only; `shutdown` finalises every stream (ENDLIST,
//!   status) before it returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_core::fleet::{FleetStore, NodeHost};
use rill_core::key::StreamKey as CoreKey;
use rill_core::media::MediaBucket;
use rill_core::store::{MetricsStore, StreamStore};
use rill_core::stream::QualityPreset as CorePreset;
use rill_core::{Command, StreamStatus};
use tokio::sync::mpsc;

use crate::fleet::Membership;
use crate::governor::GovernorConfig;
use crate::media::MediaEvent;
use crate::pipeline::{self, Input, PipelineConfig, PipelineHandle, Stop};
use crate::publish::{Protocol, PublishRequest, PublishSink, Refusal};
use crate::transcode::QualityPreset;
use crate::upload::Uploader;

/// x264 parameters for WebRTC publishers unless `X264_PARAMS` says otherwise.
pub const WEBRTC_X264_PARAMS: &str = "bframes=0:rc-lookahead=0";

/// Stream-level settings of the node (read from the environment by [`crate::config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Segment length (`SEGMENT_MS`, 500..=6000).
    pub segment_ms: u32,
    /// How long a dropped publisher may take to come back (`RECONNECT_WINDOW_SECONDS`).
    pub reconnect_window: Duration,
    /// Quality sample interval (`SAMPLE_SECONDS`).
    pub sample_every: Duration,
    /// How many bytes of one stream's media may wait for the bucket (`UPLOAD_BACKLOG_MB`)
    /// before the oldest unsent segments are dropped as gaps.
    pub upload_backlog_bytes: usize,
    /// CDN base of the bucket, for the thumbnail URL set on streams (no trailing slash).
    pub hls_base_url: String,
    /// `PASSTHROUGH` (default on): RTMP sources that fit the top rung are not re-encoded.
    pub passthrough: bool,
    /// `X264_PARAMS`: extra x264 parameters (`key=value:...`) for every stream, e.g.
    /// `bframes=0:rc-lookahead=0` to trade compression for less encoder delay. Unset: none
    /// for RTMP, [`WEBRTC_X264_PARAMS`] for WebRTC.
    pub x264_params: Option<String>,
    /// `GOVERNOR`: `on` (default), `off` (level 0 always: today's encoding whatever the
    /// load, the benchmark's anchor) or a fixed level `0`-`5`.
    pub governor: GovernorConfig,
    /// `RILL_FAULT_HOOKS=1`: `POST /_fault/panic/{streamId}` makes that stream's media
    /// thread panic (supervision tests). Never set in production.
    pub fault_hooks: bool,
}

/// What the node talks to, as `rill-core` ports; the composition root ([`crate::run()`])
/// plugs in the AWS adapters.
#[derive(Clone)]
pub struct Ports {
    /// Stream lookup by key hash, status commands, thumbnail URL.
    pub streams: Arc<dyn StreamStore>,
    /// Quality samples.
    pub metrics: Arc<dyn MetricsStore>,
    /// Segments, playlists and thumbnails.
    pub media: Arc<dyn MediaBucket>,
    /// Registry and stream leases.
    pub fleet: Arc<dyn FleetStore>,
    /// The platform under the node (ECS scale-in protection, utilisation metric).
    pub host: Arc<dyn NodeHost>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Active {
    handle: PipelineHandle,
    publishing: bool,
}

/// Shared state of the node.
#[derive(Clone)]
pub struct Node {
    ports: Ports,
    config: NodeConfig,
    streams: Arc<Mutex<HashMap<String, Active>>>,
    /// WebRTC transport statistics (RTT, loss) for quality samples, once WHIP runs.
    whip: Arc<std::sync::OnceLock<crate::whip::WhipHandle>>,
    /// The node's fleet membership, once its addresses are known ([`Node::join`]).
    fleet: Arc<std::sync::OnceLock<Membership>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .field("streams", &self.lock().len())
            .finish_non_exhaustive()
    }
}

fn preset(p: CorePreset) -> QualityPreset {
    match p {
        CorePreset::P1080 => QualityPreset::P1080,
        CorePreset::P720 => QualityPreset::P720,
        CorePreset::P480 => QualityPreset::P480,
        CorePreset::P360 => QualityPreset::P360,
    }
}

impl Node {
    pub fn new(ports: Ports, config: NodeConfig) -> Node {
        Node {
            ports,
            config,
            streams: Arc::new(Mutex::new(HashMap::new())),
            whip: Arc::new(std::sync::OnceLock::new()),
            fleet: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Joins the fleet: from now on every new pipeline needs its stream's lease.
    pub fn join(&self, membership: Membership) {
        let _ = self.fleet.set(membership);
    }

    pub fn membership(&self) -> Option<&Membership> {
        self.fleet.get()
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Streams with a pipeline on this node.
    pub fn carried(&self) -> u32 {
        self.lock().len() as u32
    }

    /// Stops the streams whose lease is lost, without a write (another node may own them).
    pub fn abandon(&self, stream_ids: &[String]) {
        let mut streams = self.lock();
        for id in stream_ids {
            if let Some(a) = streams.remove(id) {
                let _ = a.handle.stop.send(Stop::Abandon);
            }
        }
    }

    /// Lets quality samples of WebRTC streams carry RTT and packet loss.
    pub fn set_whip(&self, handle: crate::whip::WhipHandle) {
        let _ = self.whip.set(handle);
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ids of the streams with a pipeline, and whether a publisher is attached.
    pub fn active(&self) -> Vec<(String, bool, Arc<pipeline::Counters>)> {
        self.lock()
            .iter()
            .map(|(id, a)| (id.clone(), a.publishing, a.handle.counters.clone()))
            .collect()
    }

    /// Authorises a publish (RTMP or WHIP) by its key and returns where its media goes.
    /// The key must be the current key of a stream, and of the stream the publisher names
    /// if it names one (WHIP's path); RTMP publishes must use the `live` app.
    pub async fn authorise(&self, request: PublishRequest) -> Result<PublishSink, Refusal> {
        if request.app.as_deref().is_some_and(|app| app != "live") {
            return Err(Refusal::NotAllowed(
                "publish to rtmp://host/live/<streamKey>".into(),
            ));
        }
        let key = CoreKey::parse(request.stream_key.expose()).ok_or(Refusal::BadKey)?;
        let named = request.stream_id.as_deref();
        let stream = match self.ports.streams.stream_for_key(&key.hash()).await {
            Ok(Some(s)) if named.is_none_or(|id| id == s.id) => s,
            Ok(_) => {
                // Never the key: the protocol, the peer and the stream named are enough.
                tracing::info!(
                    protocol = %request.protocol,
                    peer = ?request.peer,
                    stream_id = ?named,
                    "publish refused: the key does not open this stream"
                );
                return Err(Refusal::BadKey);
            }
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                return Err(Refusal::Unavailable);
            }
        };
        let tx = self.attach(&stream, request.protocol).await?;
        Ok(PublishSink::new(tx).with_label(stream.id))
    }

    /// Checks the stream's status, starts it if scheduled, and connects a publisher to its
    /// (new or waiting) pipeline. Returns the sender the protocol feeds.
    pub async fn attach(
        &self,
        stream: &rill_core::Stream,
        protocol: Protocol,
    ) -> Result<mpsc::Sender<MediaEvent>, Refusal> {
        if !stream.status.accepts_ingest() {
            tracing::info!(stream_id = %stream.id, status = %stream.status, "publish refused: stream is over");
            return Err(Refusal::NotAllowed(format!(
                "the stream is {}",
                stream.status
            )));
        }
        if stream.status == StreamStatus::Scheduled {
            // An early publisher starts a scheduled stream, as the owner's `start` would.
            if let Err(e) = self
                .ports
                .streams
                .apply(&stream.id, Command::Start, rill_core::time::now())
                .await
            {
                tracing::warn!(stream_id = %stream.id, error = %e, "could not start the scheduled stream");
            }
        }
        // A new pipeline here needs the stream's lease first, and the state another node left.
        let is_new = !self.lock().contains_key(&stream.id);
        let resume = if is_new {
            self.take_stream(stream).await?
        } else {
            None
        };
        let (tx, rx) = mpsc::channel::<MediaEvent>(256);
        let mut reconnected = false;
        let input = {
            let mut streams = self.lock();
            match streams.get_mut(&stream.id) {
                Some(a) if a.publishing => return Err(Refusal::AlreadyPublishing),
                Some(a) => {
                    a.publishing = true;
                    reconnected = true;
                    tracing::info!(stream_id = %stream.id, "publisher reconnected");
                    a.handle.input.clone()
                }
                None => {
                    let config = PipelineConfig {
                        stream_id: stream.id.clone(),
                        preset: preset(stream.settings.quality),
                        max_bitrate_kbps: stream.settings.max_bitrate_kbps,
                        segment_ms: self.config.segment_ms,
                        reconnect_window: self.config.reconnect_window,
                        sample_every: self.config.sample_every,
                        upload_backlog_bytes: self.config.upload_backlog_bytes,
                        protocol,
                        // Browsers send keyframes only when asked: a WebRTC source's GOP
                        // cannot be vouched for, so it is always re-encoded.
                        passthrough: self.config.passthrough && protocol == Protocol::Rtmp,
                        x264_params: self.config.x264_params.clone().or_else(|| {
                            // Someone publishing from a browser is usually talking to the
                            // audience: no B-frames or lookahead, ~0.2 s less delay, for
                            // 0.3-0.6 dB (bench-ladder). OBS/RTMP stays quality-first.
                            (protocol == Protocol::WebRtc).then(|| WEBRTC_X264_PARAMS.to_owned())
                        }),
                        thumbnail_url: format!(
                            "{}/{}/{}",
                            self.config.hls_base_url,
                            Uploader::for_stream(self.ports.media.clone(), stream).prefix(),
                            crate::package::THUMBNAIL
                        ),
                        governor: self.config.governor.clone(),
                        resume: resume.clone(),
                        transport: {
                            let whip = self.whip.clone();
                            let id = stream.id.clone();
                            Arc::new(move || {
                                whip.get()
                                    .and_then(|h| h.stream_stats(&id))
                                    .map(|s| (s.rtt_ms, s.packet_loss))
                                    .unwrap_or((None, None))
                            })
                        },
                    };
                    let uploader = Uploader::for_stream(self.ports.media.clone(), stream);
                    let registry = self.streams.clone();
                    let id = stream.id.clone();
                    let membership = self.fleet.get().cloned();
                    let handle = pipeline::start(
                        config,
                        self.ports.streams.clone(),
                        self.ports.metrics.clone(),
                        uploader,
                        move || {
                            registry
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .remove(&id);
                            if let Some(m) = membership {
                                tokio::spawn(async move { m.release(&id).await });
                            }
                        },
                    );
                    let input = handle.input.clone();
                    streams.insert(
                        stream.id.clone(),
                        Active {
                            handle,
                            publishing: true,
                        },
                    );
                    tracing::info!(stream_id = %stream.id, %protocol, "publisher accepted");
                    input
                }
            }
        };
        // The protocol's channel feeds the pipeline's thread; End marks the publisher gone.
        let streams = self.streams.clone();
        let id = stream.id.clone();
        tokio::task::spawn_blocking(move || {
            let mut rx = rx;
            // Ahead of the new publisher's media and never dropped: a queue still full of
            // the old publisher's frames only delays it (a lost `Reconnected` would leave
            // out the discontinuity and let the reconnect window end the stream).
            let mut open = !reconnected || input.send(Input::Reconnected).is_ok();
            while open && let Some(event) = rx.blocking_recv() {
                let end = matches!(event, MediaEvent::End);
                let received = std::time::Instant::now();
                open = input.send(Input::Media(event, received)).is_ok() && !end;
            }
            if let Some(a) = streams
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_mut(&id)
            {
                a.publishing = false;
            }
        });
        Ok(tx)
    }

    /// Takes the stream's lease for a new pipeline on this node and reads back what another
    /// node wrote of it (`None`: nothing, start fresh).
    async fn take_stream(
        &self,
        stream: &rill_core::Stream,
    ) -> Result<Option<Arc<crate::package::resume::Resume>>, Refusal> {
        let Some(membership) = self.fleet.get() else {
            return Ok(None);
        };
        let carried = self.lock().len();
        membership.claim(&stream.id, carried).await?;
        let uploader = Uploader::for_stream(self.ports.media.clone(), stream);
        match pipeline::takeover::load(&uploader).await {
            Ok(None) => Ok(None),
            Ok(Some(resume)) => {
                tracing::info!(stream_id = %stream.id, renditions = resume.tracks.len(), "continuing the stream's playlists");
                Ok(Some(Arc::new(resume)))
            }
            Err(e) => {
                tracing::error!(stream_id = %stream.id, error = %e, "cannot read the stream's playlists back; refusing rather than overwriting");
                membership.release(&stream.id).await;
                Err(Refusal::Unavailable)
            }
        }
    }

    /// Fault hook: makes the stream's media thread panic at its next event. False when
    /// hooks are off or the stream has no pipeline here.
    pub fn inject_panic(&self, stream_id: &str) -> bool {
        if !self.config.fault_hooks {
            return false;
        }
        self.lock().get(stream_id).is_some_and(|a| {
            a.handle
                .counters
                .inject_panic
                .store(true, std::sync::atomic::Ordering::Relaxed);
            true
        })
    }

    /// Finalises every stream: playlists closed with ENDLIST, status ended.
    pub async fn shutdown(&self, grace: Duration) {
        let handles: Vec<(String, PipelineHandle)> =
            self.lock().drain().map(|(id, a)| (id, a.handle)).collect();
        for (id, h) in handles {
            let _ = h.stop.send(Stop::Finish);
            drop(h.input);
            match tokio::time::timeout(grace, h.task).await {
                Ok(_) => tracing::info!(stream_id = %id, "stream finalised"),
                Err(_) => tracing::error!(stream_id = %id, "stream did not finalise in time"),
            }
            if let Some(m) = self.fleet.get() {
                m.release(&id).await;
            }
        }
    }
}
