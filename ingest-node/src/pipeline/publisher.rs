//! The publisher task: stores what the media thread produces and keeps the stream's record.
//!
//! Order of writes (the invariants of [`super`]): a segment, then the media playlist naming
//! it; once every rendition has a segment, the master playlist and then the go-live
//! conditional write ([`Publisher::go_live`]). Every 2 s it looks at the stream's status
//! (the owner may have ended it) and the reconnect window; every `sample_every` it takes a
//! quality sample ([`super::sampler`]). At the end every playlist gets `#EXT-X-ENDLIST`
//! and the stream is marked ended.
//!
//! The task never waits on storage while the stream runs: objects go through the
//! [`super::outbox`] (in order, retried, bounded) and the table writes and status reads
//! through [`super::record`]. A bucket or table outage delays what is stored, it does not
//! stall packaging, and what was queued is stored when storage is back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rill_core::store::{MetricsStore, StreamStore};
use rill_core::{Command, StreamStatus};
use tokio::sync::mpsc;

use super::outbox::{Attempt, Dropped, Job, Purpose, Uploads};
use super::record::{Record, STATUS_EVERY, Write};
use super::sampler::Sampler;
use super::{Counters, Output, PipelineConfig, Stop};
use crate::media::Rendition;
use crate::package::{
    self, AudioMedia, BitrateStats, MediaPlaylist, PlaylistSegment, Segment, VariantStream, Window,
};
use crate::upload::{ObjectKind, Uploader};

/// How long the end of a stream waits for the objects still queued before it writes the
/// final playlists (within the node's stop grace).
const FINISH_DRAIN: Duration = Duration::from_secs(7);

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
    uploads: Uploads,
    record: Record,
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
    /// The master playlist is queued (go-live follows once it is stored).
    master_queued: bool,
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
        let record = Record::start(
            config.stream_id.clone(),
            store.clone(),
            metrics,
            config.resume.is_some(),
        );
        Self {
            id: config.stream_id.clone(),
            sampler: Sampler::new(&config, counters.clone()),
            uploads: Uploads::new(uploader, config.upload_backlog_bytes),
            record,
            config,
            store,
            counters,
            tracks: BTreeMap::new(),
            ladder: None,
            live: false,
            wall_origin: None,
            waiting_since: None,
            reconnects: 0,
            master_queued: false,
            thumbnail_listed: false,
        }
    }

    /// Runs until the stream is over, then finalises it.
    pub(super) async fn run(
        mut self,
        mut out: mpsc::Receiver<Output>,
        mut stop: tokio::sync::watch::Receiver<Stop>,
    ) {
        let mut status_check = tokio::time::interval(STATUS_EVERY);
        let mut sampling = tokio::time::interval(self.config.sample_every);
        let reason = loop {
            tokio::select! {
                msg = out.recv() => {
                    let Some(msg) = msg else { break "media thread ended" };
                    if let Some(reason) = self.on_output(msg) {
                        break reason;
                    }
                }
                attempt = self.uploads.next() => {
                    if let Some(attempt) = attempt {
                        self.on_attempt(attempt);
                    }
                }
                _ = status_check.tick() => {
                    if self.waiting_since.is_some_and(|since| since.elapsed() >= self.config.reconnect_window) {
                        break "reconnect window passed";
                    }
                    if let Some(reason) = self.record.status.borrow().over {
                        break reason;
                    }
                }
                _ = sampling.tick() => {
                    let viewers = self.record.status.borrow().viewers;
                    if let Some(sample) = self.sampler.sample(self.waiting_since.is_none(), viewers) {
                        self.record.write(Write::Sample(Box::new(sample)));
                    }
                }
                _ = stop.changed() => match *stop.borrow() {
                    Stop::Abandon => {
                        tracing::warn!(stream_id = %self.id, "lease lost: the stream is another node's now; stopping without a word to storage");
                        self.record.abandon();
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
    fn on_output(&mut self, msg: Output) -> Option<&'static str> {
        match msg {
            Output::Init {
                rendition,
                name,
                uri,
                data,
            } => self.on_init(rendition, name, uri, data),
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
                if self.on_segment(rendition, segment, discontinuity, media_complete_at)
                    && !self.master_queued
                {
                    self.queue_master();
                }
            }
            Output::Thumbnail(jpeg) => self.queue(Job {
                name: package::THUMBNAIL.to_owned(),
                body: jpeg,
                kind: ObjectKind::Thumbnail,
                purpose: Purpose::Thumbnail,
            }),
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

    /// Queues an object and starts uploading if idle; segments dropped to keep the backlog
    /// bounded become gaps in their playlists.
    fn queue(&mut self, job: Job) {
        let dropped = self.uploads.outbox.push(job);
        if !dropped.is_empty() {
            self.on_dropped(dropped);
        }
        self.uploads.pump();
    }

    /// Marks dropped segments `#EXT-X-GAP` and queues their playlists again (the queued
    /// versions named them as present).
    fn on_dropped(&mut self, dropped: Vec<Dropped>) {
        let mut tracks = Vec::new();
        for d in dropped {
            let Some(track) = self.tracks.get_mut(&d.track) else {
                continue;
            };
            let position = d.position - track.object_offset;
            track.playlist.mark_gap(position);
            tracing::warn!(
                stream_id = %self.id,
                object = %d.name,
                position,
                backlog_bytes = self.uploads.outbox.bytes(),
                backlog_limit = self.uploads.outbox.limit(),
                "the bucket has been failing past the upload backlog: oldest unsent segment dropped, listed as a gap"
            );
            self.counters
                .dropped_segments
                .fetch_add(1, Ordering::Relaxed);
            if !tracks.contains(&d.track) {
                tracks.push(d.track);
            }
        }
        for k in tracks {
            if let Some(job) = self.playlist_job(k, None) {
                // Playlists are never dropped, so this push drops nothing more.
                let _ = self.uploads.outbox.push(job);
            }
        }
    }

    /// The current text of track `k`'s media playlist, as a job.
    fn playlist_job(&self, k: usize, completed_at: Option<Instant>) -> Option<Job> {
        let track = self.tracks.get(&k)?;
        Some(Job {
            name: package::media_playlist_object_name(&track.name),
            body: Bytes::from(track.playlist.render()),
            kind: ObjectKind::Playlist,
            purpose: Purpose::Playlist { completed_at },
        })
    }

    /// An upload finished: what follows from a stored object, or the outage's log line.
    fn on_attempt(&mut self, attempt: Attempt) {
        match attempt {
            Attempt::Stored { job, outage } => {
                if let Some(outage) = outage {
                    tracing::info!(stream_id = %self.id, outage_ms = outage.as_millis() as u64, queued = self.uploads.outbox.len(), "the bucket is back; catching up in order");
                }
                self.on_stored(job.purpose);
            }
            Attempt::Failed { error, first } => {
                self.counters
                    .upload_failures
                    .fetch_add(1, Ordering::Relaxed);
                if first {
                    tracing::error!(stream_id = %self.id, error = %error, queued = self.uploads.outbox.len(), "upload failed; the stream's objects wait and are retried in order");
                }
            }
        }
        self.counters
            .upload_backlog_bytes
            .store(self.uploads.outbox.bytes() as u64, Ordering::Relaxed);
    }

    fn on_stored(&mut self, purpose: Purpose) {
        match purpose {
            Purpose::Playlist {
                completed_at: Some(at),
            } => {
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
            Purpose::Master if !self.live => {
                self.live = true;
                self.record.write(Write::GoLive);
            }
            Purpose::Thumbnail if !self.thumbnail_listed => {
                self.thumbnail_listed = true;
                self.record
                    .write(Write::ListThumbnail(self.config.thumbnail_url.clone()));
            }
            _ => {}
        }
    }

    fn on_init(&mut self, rendition: usize, object: String, uri: String, data: Bytes) {
        self.queue(Job {
            name: object.clone(),
            body: data,
            kind: ObjectKind::Init,
            purpose: Purpose::Init,
        });
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

    /// Queues the segment, then the playlist naming it. True when the segment was listed.
    fn on_segment(
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
        let position = entry.sequence;
        if let Err(e) = track.playlist.push(entry) {
            tracing::warn!(stream_id = %self.id, error = %e, "playlist rejected a segment");
            return false;
        }
        self.queue(Job {
            name: object,
            body: segment.data,
            kind: ObjectKind::Segment,
            purpose: Purpose::Segment {
                track: rendition,
                position: position + self.tracks.get(&rendition).map_or(0, |t| t.object_offset),
            },
        });
        if let Some(job) = self.playlist_job(rendition, media_complete_at) {
            self.queue(job);
        }
        true
    }

    /// Once every rendition has a listed segment: the master playlist (`live` follows once
    /// it is stored, [`Publisher::on_stored`]).
    fn queue_master(&mut self) {
        let Some((renditions, codecs, audio)) = &self.ladder else {
            return;
        };
        let all =
            (0..renditions.len()).all(|k| self.tracks.get(&k).is_some_and(|t| !t.sizes.is_empty()));
        if !all {
            return;
        }
        let master = master(renditions, codecs, *audio, &self.tracks);
        self.master_queued = true;
        self.queue(Job {
            name: package::MASTER_PLAYLIST.to_owned(),
            body: Bytes::from(master),
            kind: ObjectKind::Playlist,
            purpose: Purpose::Master,
        });
    }

    /// Every playlist gets `#EXT-X-ENDLIST` (queued behind what is still unsent, which is
    /// given [`FINISH_DRAIN`] to land); the record's writes are given theirs; the stream
    /// is marked ended.
    async fn finish(mut self, reason: &str) {
        let tracks: Vec<usize> = self.tracks.keys().copied().collect();
        for k in tracks {
            if let Some(t) = self.tracks.get_mut(&k) {
                t.playlist.end();
            }
            if let Some(job) = self.playlist_job(k, None) {
                self.queue(job);
            }
        }
        let deadline = tokio::time::Instant::now() + FINISH_DRAIN;
        while !self.uploads.outbox.is_empty() {
            match tokio::time::timeout_at(deadline, self.uploads.next()).await {
                Ok(Some(attempt)) => self.on_attempt(attempt),
                Ok(None) => {}
                Err(_) => {
                    tracing::error!(stream_id = %self.id, lost = self.uploads.outbox.len(), "the stream ended with objects the bucket never took (final playlists among them)");
                    break;
                }
            }
        }
        self.record.close().await;
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
