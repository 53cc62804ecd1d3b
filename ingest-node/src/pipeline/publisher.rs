//! The publisher task: stores what the media thread produces and keeps the stream's record.
//!
//! Order of writes (the invariants of [`super`]): a segment, then the media playlist naming
//! it; once every rendition has a segment, the master playlist and then the go-live
//! conditional write ([`Publisher::go_live`]). Every 2 s it checks the stream's status (the
//! owner may have ended it) and the reconnect window; every `sample_every` it writes a
//! quality sample ([`super::sampler`]). At the end every playlist gets `#EXT-X-ENDLIST`
//! and the stream is marked ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rill_core::store::{MetricsStore, StreamStore};
use rill_core::{Command, StreamStatus};
use tokio::sync::mpsc;

use super::sampler::Sampler;
use super::{Counters, Output, PipelineConfig, Stop};
use crate::media::Rendition;
use crate::package::{
    self, AudioMedia, BitrateStats, MediaPlaylist, PlaylistSegment, Segment, VariantStream, Window,
};
use crate::upload::{ObjectKind, Uploader};

struct Track {
    name: String,
    playlist: MediaPlaylist,
    init_uri: String,
    sizes: Vec<(usize, Duration)>,
    pending_discontinuity: bool,
    /// Object number minus playlist position (non-zero after a takeover skipped names
    /// a dead node had used without listing them).
    object_offset: u64,
}

/// The ladder as the media thread reported it: renditions, codec strings, audio index.
type LadderInfo = (Vec<Rendition>, Vec<String>, usize);

/// One stream's storage side.
pub(super) struct Publisher {
    config: PipelineConfig,
    id: String,
    store: Arc<dyn StreamStore>,
    uploader: Uploader,
    counters: Arc<Counters>,
    sampler: Sampler,
    tracks: BTreeMap<usize, Track>,
    ladder: Option<LadderInfo>,
    live: bool,
    wall_origin: Option<DateTime<Utc>>,
    /// Since when the stream has had no publisher (the reconnect window runs).
    waiting_since: Option<Instant>,
    /// Publishers that came back within the reconnect window.
    reconnects: u32,
    thumbnail_listed: bool,
}

impl Publisher {
    pub(super) fn new(
        config: PipelineConfig,
        store: Arc<dyn StreamStore>,
        metrics: Arc<dyn MetricsStore>,
        uploader: Uploader,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            id: config.stream_id.clone(),
            sampler: Sampler::new(&config, metrics, counters.clone()),
            config,
            store,
            uploader,
            counters,
            tracks: BTreeMap::new(),
            ladder: None,
            live: false,
            wall_origin: None,
            waiting_since: None,
            reconnects: 0,
            thumbnail_listed: false,
        }
    }

    /// Runs until the stream is over, then finalises it.
    pub(super) async fn run(
        mut self,
        mut out: mpsc::Receiver<Output>,
        mut stop: tokio::sync::watch::Receiver<Stop>,
    ) {
        let mut status_check = tokio::time::interval(Duration::from_secs(2));
        let mut sampling = tokio::time::interval(self.config.sample_every);
        let mut viewers = 0u64;
        let reason = loop {
            tokio::select! {
                msg = out.recv() => {
                    let Some(msg) = msg else { break "media thread ended" };
                    if let Some(reason) = self.on_output(msg).await {
                        break reason;
                    }
                }
                _ = status_check.tick() => {
                    if self.waiting_since.is_some_and(|since| since.elapsed() >= self.config.reconnect_window) {
                        break "reconnect window passed";
                    }
                    match self.store.get_stream(&self.id).await {
                        Ok(Some(s)) if s.status.is_final() => break "stream ended by its owner",
                        Ok(Some(s)) => viewers = s.stats.current_viewers,
                        Ok(None) => break "stream deleted",
                        Err(_) => {}
                    }
                }
                _ = sampling.tick() => {
                    self.sampler.sample(self.waiting_since.is_none(), viewers).await;
                }
                _ = stop.changed() => match *stop.borrow() {
                    Stop::Abandon => {
                        tracing::warn!(stream_id = %self.id, "lease lost: the stream is another node's now; stopping without a word to storage");
                        return;
                    }
                    Stop::Finish => break "node shutting down",
                    Stop::Run => {}
                },
            }
        };
        // Drain what the media thread already produced, then close every playlist.
        while let Ok(Output::Segment { .. } | Output::Init { .. }) = out.try_recv() {}
        self.finish(reason).await;
    }

    /// Handles one output of the media thread; `Some(reason)` ends the stream.
    async fn on_output(&mut self, msg: Output) -> Option<&'static str> {
        match msg {
            Output::Init {
                rendition,
                name,
                uri,
                data,
            } => self.on_init(rendition, name, uri, data).await,
            Output::Ladder {
                renditions,
                codecs,
                audio,
            } => {
                for (k, r) in renditions.iter().enumerate() {
                    if let Some(t) = self.tracks.get_mut(&k) {
                        t.name = r.name.clone();
                    }
                }
                self.ladder = Some((renditions, codecs, audio));
            }
            Output::Segment {
                rendition,
                segment,
                discontinuity,
                media_complete_at,
            } => {
                if self
                    .on_segment(rendition, segment, discontinuity, media_complete_at)
                    .await
                    && !self.live
                {
                    self.go_live().await;
                }
            }
            Output::Thumbnail(jpeg) => self.on_thumbnail(jpeg).await,
            Output::PublisherGone => {
                // A returning publisher's timeline starts again at zero: its segments
                // take their wall clock from when they arrive, not from this session.
                self.wall_origin = None;
                self.waiting_since = Some(Instant::now());
                for t in self.tracks.values_mut() {
                    t.pending_discontinuity = true;
                }
                tracing::info!(stream_id = %self.id, window_s = self.config.reconnect_window.as_secs(), "publisher gone; waiting for a reconnect");
            }
            Output::PublisherBack => {
                // The window closes: the stream is not ended one window after the first
                // drop, and samples resume.
                self.waiting_since = None;
                self.reconnects += 1;
            }
            Output::Failed(e) => {
                tracing::error!(stream_id = %self.id, error = %e, "pipeline failed");
                return Some("pipeline failure");
            }
        }
        None
    }

    async fn on_init(&mut self, rendition: usize, object: String, uri: String, data: Bytes) {
        if let Err(e) = self.uploader.put(&object, data, ObjectKind::Init).await {
            tracing::error!(stream_id = %self.id, error = %e, "init upload failed");
        }
        if let Some(t) = self.tracks.get_mut(&rendition) {
            t.init_uri = uri;
            return;
        }
        let name = self
            .ladder
            .as_ref()
            .and_then(|l| l.0.get(rendition))
            .map(|r| r.name.clone())
            .unwrap_or_else(|| format!("r{rendition}"));
        let target = Duration::from_millis(u64::from(self.config.segment_ms));
        // The object name (`{rendition}/init*.mp4`) names the rendition even before the
        // ladder message arrives.
        let dir = object.split('/').next().unwrap_or_default();
        let resumed = self.config.resume.as_ref().and_then(|r| r.track(dir));
        let track = match resumed {
            Some(r) => Track {
                name: r.name.clone(),
                playlist: r.playlist.clone(),
                init_uri: uri,
                sizes: Vec::new(),
                pending_discontinuity: true,
                object_offset: r.object_offset(),
            },
            None => Track {
                name,
                playlist: MediaPlaylist::new(Window::KeepAll, target),
                init_uri: uri,
                sizes: Vec::new(),
                pending_discontinuity: false,
                object_offset: 0,
            },
        };
        self.tracks.insert(rendition, track);
    }

    /// Stores the segment, then the playlist naming it. True when the segment was listed.
    async fn on_segment(
        &mut self,
        rendition: usize,
        segment: Segment,
        discontinuity: bool,
        media_complete_at: Option<Instant>,
    ) -> bool {
        let segment_ms = self.config.segment_ms;
        let origin = *self
            .wall_origin
            .get_or_insert_with(|| wall_clock_origin(&segment, media_complete_at, segment_ms));
        let Some(track) = self.tracks.get_mut(&rendition) else {
            return false;
        };
        let object = package::segment_object_name(&track.name, segment.sequence);
        let size = segment.byte_size();
        if let Err(e) = self
            .uploader
            .put(&object, segment.data.clone(), ObjectKind::Segment)
            .await
        {
            tracing::error!(stream_id = %self.id, error = %e, "segment upload failed; not listed");
            return false;
        }
        let mut entry = PlaylistSegment::from_segment(
            &segment,
            origin + chrono::Duration::milliseconds(segment.start_ms()),
        );
        entry.sequence = segment.sequence - track.object_offset;
        entry.init_uri = track.init_uri.clone();
        entry.discontinuity = discontinuity || std::mem::take(&mut track.pending_discontinuity);
        track.sizes.push((
            size,
            Duration::from_millis(segment.duration_ms().max(1) as u64),
        ));
        if let Err(e) = track.playlist.push(entry) {
            tracing::warn!(stream_id = %self.id, error = %e, "playlist rejected a segment");
            return false;
        }
        let body = Bytes::from(track.playlist.render());
        let name = package::media_playlist_object_name(&track.name);
        match self.uploader.put(&name, body, ObjectKind::Playlist).await {
            Ok(()) => {
                if let Some(at) = media_complete_at {
                    let lag = at.elapsed();
                    self.counters
                        .availability
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .record(lag);
                    self.counters
                        .recent_lag_ms
                        .fetch_max(lag.as_millis() as u64, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::error!(stream_id = %self.id, error = %e, "playlist upload failed");
            }
        }
        true
    }

    /// Once every rendition has a stored segment: the master playlist, then `live`.
    async fn go_live(&mut self) {
        let Some((renditions, codecs, audio)) = &self.ladder else {
            return;
        };
        let all =
            (0..renditions.len()).all(|k| self.tracks.get(&k).is_some_and(|t| !t.sizes.is_empty()));
        if !all {
            return;
        }
        let master = master(renditions, codecs, *audio, &self.tracks);
        if self
            .uploader
            .put(
                package::MASTER_PLAYLIST,
                Bytes::from(master),
                ObjectKind::Playlist,
            )
            .await
            .is_err()
        {
            return;
        }
        self.live = true;
        match self
            .store
            .apply(&self.id, Command::GoLive, rill_core::time::now())
            .await
        {
            Ok(_) => tracing::info!(stream_id = %self.id, "stream is live"),
            // Taken over from another node, which had made it live already.
            Err(rill_core::store::StoreError::Conflict {
                current: Some(StreamStatus::Live),
                ..
            }) if self.config.resume.is_some() => {
                tracing::info!(stream_id = %self.id, "stream continues live on this node");
            }
            Err(e) => tracing::warn!(stream_id = %self.id, error = %e, "go-live refused"),
        }
    }

    async fn on_thumbnail(&mut self, jpeg: Bytes) {
        match self
            .uploader
            .put(package::THUMBNAIL, jpeg, ObjectKind::Thumbnail)
            .await
        {
            Ok(()) if !self.thumbnail_listed => {
                self.thumbnail_listed = true;
                list_thumbnail(self.store.as_ref(), &self.id, &self.config.thumbnail_url).await;
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(stream_id = %self.id, error = %e, "thumbnail upload failed"),
        }
    }

    /// Every playlist gets `#EXT-X-ENDLIST`; the stream is marked ended.
    async fn finish(mut self, reason: &str) {
        for t in self.tracks.values_mut() {
            t.playlist.end();
            let name = package::media_playlist_object_name(&t.name);
            if let Err(e) = self
                .uploader
                .put(
                    &name,
                    Bytes::from(t.playlist.render()),
                    ObjectKind::Playlist,
                )
                .await
            {
                tracing::error!(stream_id = %self.id, error = %e, "final playlist upload failed");
            }
        }
        mark_ended(self.store.as_ref(), &self.id).await;
        tracing::info!(stream_id = %self.id, reason, reconnects = self.reconnects, "stream finished");
    }
}

/// `ended`, unless it already is (or was cancelled).
pub(crate) async fn mark_ended(store: &dyn StreamStore, id: &str) {
    match store.apply(id, Command::End, rill_core::time::now()).await {
        Ok(_) => {}
        Err(rill_core::store::StoreError::Conflict {
            current: Some(StreamStatus::Ended | StreamStatus::Cancelled),
            ..
        }) => {}
        Err(e) => tracing::warn!(stream_id = %id, error = %e, "could not mark the stream ended"),
    }
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
