//! [`Transcoder`]: one stream's `MediaEvent`s in, every rendition's `EncodedPacket`s out.
//!
//! Shape of the pipeline (see `mod.rs` for the output contract):
//!
//! ```text
//! caller thread: events -> H.264 decode (once) -> boundary + fps decisions ----+
//!                      \-> passthrough top rung (source packets, rebased)      |
//!                      \-> audio: decode -> resample 48k stereo -> AAC-LC      |
//! one thread per encoded rung:  scale (swscale) -> libx264  <-----------------+
//!   (cascade: rung k scales from rung k-1's scaled frame and hands it on)
//! ```
//!
//! Invariants:
//! - segment boundaries are decided once, on the caller thread, per source frame; the frame
//!   carries the decision (`pict_type = I`) to every rung, and a rung at a lower frame rate
//!   never drops a boundary frame. With `forced-idr=1` and `scenecut=0` every rung therefore
//!   has an IDR at the same pts for every boundary;
//! - in passthrough mode boundaries are the source's keyframes (at least `segment_ms`
//!   apart), so the forwarded rung and the encoded rungs cut at the same pts;
//! - x264 gets strictly increasing pts per rung (a frame that would go back is dropped);
//! - the frame-rate gate only ever drops frames (never duplicates) and re-anchors at every
//!   boundary, so a segment's frame pattern does not depend on earlier segments.
//!
//! Threads: the caller blocks when a rung's queue is full (bounded channels), so a slow
//! machine slows ingest down instead of growing memory. `push` returns whatever packets the
//! rung threads have finished so far; [`Transcoder::finish`] drains everything.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use bytes::Bytes;
use ffmpeg_next::{Packet, Rational, codec, decoder, frame, picture};

use super::aac::AudioSpecificConfig;
use super::audio::{AAC_FRAME, AUDIO_RATE, AudioPath};
use super::h264::{self, AvcConfig, nal};
use super::options::{
    CodecParams, RenditionStats, ScaleMode, StreamConfig, TranscodeOptions, default_x264_threads,
};
use super::rung::{FpsGate, Msg, Out, RungSpec, Timer, rung_thread};
use super::thumbnail::Thumbnailer;
use super::{TranscodeError, ladder::Ladder};
use crate::governor;
use crate::media::{EncodedPacket, MediaEvent, NalFraming, Rendition};

/// A running rung thread.
struct Worker {
    rung: usize,
    tx: Option<SyncSender<Msg>>,
    join: Option<JoinHandle<()>>,
}

/// The top rung forwarded from the source.
struct Passthrough {
    timer: Timer,
    config: Option<AvcConfig>,
    /// Parameter sets changed: repeat them in band at the next forwarded keyframe.
    inband_params: bool,
}

/// The audio rendition.
/// Transcodes one stream. Synchronous: run it on a blocking thread; it starts one thread
/// per encoded rung.
pub struct Transcoder {
    renditions: Vec<Rendition>,
    segment_ms: i64,
    options: TranscodeOptions,
    params: Vec<Option<CodecParams>>,
    stats: Vec<RenditionStats>,
    origin_ms: Option<i64>,
    // Video input.
    avc: Option<AvcConfig>,
    decoder: Option<decoder::Video>,
    seen_keyframe: bool,
    warned_no_config: bool,
    last_frame_pts: Option<i64>,
    first_frame_pts: Option<i64>,
    next_boundary_ms: i64,
    last_boundary_ms: Option<i64>,
    /// Passthrough mode: source keyframe pts chosen as boundaries, not yet decoded.
    pending_boundaries: BTreeSet<i64>,
    gates: Vec<FpsGate>,
    /// Rung index -> index into `gates` (None for the passthrough rung).
    gate_of: Vec<Option<usize>>,
    /// Governor level in effect, and one asked for that starts at the next boundary.
    level: u8,
    pending_level: Option<u8>,
    /// Shed frames between boundaries (the governor's last resort).
    shedding: bool,
    shed_frames: u64,
    workers: Vec<Worker>,
    passthrough: Option<Passthrough>,
    audio: AudioPath,
    out_tx: Option<Sender<Out>>,
    out_rx: Receiver<Out>,
    error: Option<TranscodeError>,
    finished: bool,
    thumbnailer: Option<Thumbnailer>,
    thumbnail: Option<Bytes>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("renditions", &self.renditions)
            .field("segment_ms", &self.segment_ms)
            .field("options", &self.options)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    /// A transcoder for `ladder` that forces aligned keyframes every `segment_ms`.
    pub fn new(ladder: Ladder, segment_ms: u32) -> Result<Self, TranscodeError> {
        Self::with_options(ladder, segment_ms, TranscodeOptions::default())
    }

    pub fn with_options(
        ladder: Ladder,
        segment_ms: u32,
        options: TranscodeOptions,
    ) -> Result<Self, TranscodeError> {
        super::init()?;
        let segment_ms = i64::from(segment_ms.max(100));
        let rungs = ladder.rungs().to_vec();
        if rungs.is_empty() {
            return Err(TranscodeError::Input("empty ladder".into()));
        }
        if rungs.iter().skip(1).any(|r| r.passthrough) {
            return Err(TranscodeError::Input(
                "only the top rung can be passthrough".into(),
            ));
        }
        let renditions = ladder.renditions();
        let audio_index = ladder.audio_index();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = options
            .x264_threads
            .clone()
            .unwrap_or_else(|| default_x264_threads(&rungs, cores));

        let (gates, gate_of) = build_gates(&rungs, 0);

        let (out_tx, out_rx) = mpsc::channel();
        let encoded: Vec<usize> = (0..rungs.len())
            .filter(|&i| !rungs[i].passthrough)
            .collect();
        let mut workers = Vec::new();
        // Spawned smallest first so that in cascade mode each thread can be handed its child.
        let mut child: Option<SyncSender<Msg>> = None;
        for (k, &index) in encoded.iter().enumerate().rev() {
            let downstream = encoded[k + 1..].iter().fold(0u64, |m, &i| m | (1 << i));
            let (tx, rx) = mpsc::sync_channel(options.queue_depth.max(1));
            let spec = RungSpec {
                index,
                rung: rungs[index].clone(),
                threads: threads.get(index).copied().unwrap_or(1).max(1),
                preset: options.x264_preset.clone(),
                zerolatency: options.zerolatency,
                rc_lookahead: options.rc_lookahead,
                sliced_threads: options.sliced_threads,
                x264_params: options.x264_params.clone(),
                keyint: keyint(segment_ms, rungs[index].fps),
                downstream,
                level: 0,
            };
            let to_child = if options.scale == ScaleMode::Cascade {
                child.take()
            } else {
                None
            };
            let out = out_tx.clone();
            let join = std::thread::Builder::new()
                .name(format!("rill-x264-{}", rungs[index].name))
                .spawn(move || rung_thread(spec, rx, to_child, out))
                .map_err(|e| TranscodeError::Input(format!("cannot start a rung thread: {e}")))?;
            child = Some(tx.clone());
            workers.push(Worker {
                rung: index,
                tx: Some(tx),
                join: Some(join),
            });
        }
        workers.reverse();

        let mut params = vec![None; renditions.len()];
        params[audio_index] = Some(CodecParams {
            codec: "mp4a.40.2".into(),
            time_base: (1, 1000),
            target_kbps: super::ladder::AUDIO_KBPS,
            config: StreamConfig::Audio {
                sample_rate: AUDIO_RATE,
                channels: 2,
                samples_per_frame: AAC_FRAME as u32,
                asc: AudioSpecificConfig::build(2, AUDIO_RATE, 2)
                    .map_err(|e| TranscodeError::Input(e.to_string()))?,
            },
        });
        let passthrough = rungs[0].passthrough.then(|| Passthrough {
            timer: Timer::new(1000 / i64::from(rungs[0].fps.max(1))),
            config: None,
            inband_params: false,
        });
        let thumbnailer = options.thumbnail_every_ms.map(Thumbnailer::new);
        Ok(Self {
            stats: vec![RenditionStats::default(); renditions.len()],
            renditions,
            segment_ms,
            options,
            params,
            origin_ms: None,
            avc: None,
            decoder: None,
            seen_keyframe: false,
            warned_no_config: false,
            last_frame_pts: None,
            first_frame_pts: None,
            next_boundary_ms: 0,
            last_boundary_ms: None,
            pending_boundaries: BTreeSet::new(),
            gates,
            gate_of,
            level: 0,
            pending_level: None,
            shedding: false,
            shed_frames: 0,
            workers,
            passthrough,
            audio: AudioPath::new(audio_index)?,
            out_tx: Some(out_tx),
            out_rx,
            error: None,
            finished: false,
            thumbnailer,
            thumbnail: None,
        })
    }

    /// The source timestamp (ms) that output timestamps count from, once media arrived.
    pub fn origin_ms(&self) -> Option<i64> {
        self.origin_ms
    }

    /// Asks for a governor level ([`crate::governor`]); it applies from the next segment
    /// boundary on every rung at once.
    pub fn set_level(&mut self, level: u8) {
        let level = level.min(governor::MAX_LEVEL);
        self.pending_level = (level != self.level).then_some(level);
    }

    /// The governor level in effect (the last one applied at a boundary).
    pub fn level(&self) -> u8 {
        self.level
    }

    /// While on, and at a level that allows it, decoded frames between segment boundaries
    /// go to no encoder: the input catches up at the cost of a stuttering picture.
    pub fn set_shedding(&mut self, on: bool) {
        self.shedding = on;
    }

    /// Frames shed since the last call.
    pub fn take_shed_frames(&mut self) -> u64 {
        std::mem::take(&mut self.shed_frames)
    }

    /// The newest thumbnail (JPEG) since the last call, if one was taken.
    pub fn take_thumbnail(&mut self) -> Option<Bytes> {
        self.thumbnail.take()
    }

    /// Every rendition: video rungs, then audio.
    pub fn renditions(&self) -> &[Rendition] {
        &self.renditions
    }

    /// Index of the audio rendition.
    pub fn audio_index(&self) -> usize {
        self.audio.index
    }

    /// A rendition's codec parameters: known for audio from the start, for a video rung once
    /// its first packet has been returned (never later than that packet).
    pub fn codec_params(&self, rendition: usize) -> Option<&CodecParams> {
        self.params.get(rendition).and_then(Option::as_ref)
    }

    /// Packets, keyframes, bytes and actual average bitrate per rendition so far.
    pub fn stats(&self) -> &[RenditionStats] {
        &self.stats
    }

    /// Feeds one event; returns the packets finished since the last call (any renditions,
    /// decode order within each). `End` flushes everything (as [`Transcoder::finish`]).
    ///
    /// Errors: a broken rendition (encoder failure) or an unusable configuration. Bad media
    /// data (a corrupt frame) is logged and skipped, not an error.
    pub fn push(&mut self, event: MediaEvent) -> Result<Vec<EncodedPacket>, TranscodeError> {
        if self.finished {
            return Ok(Vec::new());
        }
        let result = match event {
            MediaEvent::VideoConfig { avcc } => self.on_video_config(&avcc),
            MediaEvent::AudioConfig { codec, config, .. } => self.audio.configure(codec, &config),
            MediaEvent::Video {
                pts_ms,
                dts_ms,
                keyframe,
                framing,
                data,
            } => {
                let base = self.rebase(dts_ms.min(pts_ms));
                self.on_video(pts_ms - base, dts_ms - base, keyframe, framing, data)
            }
            MediaEvent::Audio {
                codec,
                pts_ms,
                data,
            } => {
                let pts = pts_ms - self.rebase(pts_ms);
                let mut out = Vec::new();
                let r = self.audio.on_packet(codec, pts, &data, &mut out);
                self.record(out);
                r
            }
            MediaEvent::Metadata { .. } => Ok(()),
            MediaEvent::End => return self.finish(),
        };
        let collected = self.collect();
        result?;
        collected
    }

    /// Flushes the decoder, every encoder and the audio path, waits for the rung threads and
    /// returns the remaining packets. Idempotent.
    pub fn finish(&mut self) -> Result<Vec<EncodedPacket>, TranscodeError> {
        if self.finished {
            return self.collect();
        }
        self.finished = true;
        if let Some(dec) = self.decoder.as_mut() {
            // Draining: errors here only mean there was nothing left.
            let _ = dec.send_eof();
        }
        let drained = self.drain_decoder();
        // In cascade mode only the first rung thread is told: it passes the flush down
        // after its last frame, so no rung stops before its parent has handed on everything.
        let cascade = self.options.scale == ScaleMode::Cascade;
        for (k, w) in self.workers.iter_mut().enumerate() {
            if let Some(tx) = w.tx.take()
                && (k == 0 || !cascade)
            {
                let _ = tx.send(Msg::Flush);
            }
        }
        for w in &mut self.workers {
            if let Some(join) = w.join.take()
                && join.join().is_err()
            {
                self.error.get_or_insert(TranscodeError::Rendition {
                    rendition: w.rung,
                    message: "encoder thread panicked".into(),
                });
            }
        }
        if let Some(pt) = self.passthrough.as_mut()
            && let Some(p) = pt.timer.flush()
        {
            self.forward(p);
        }
        let mut out = Vec::new();
        let audio = self.audio.flush(&mut out);
        self.record(out);
        self.out_tx = None;
        let collected = self.collect();
        drained?;
        audio?;
        collected
    }

    /// Stream timeline: 0 = the first media event's timestamp.
    fn rebase(&mut self, ts: i64) -> i64 {
        *self.origin_ms.get_or_insert(ts)
    }

    fn record(&mut self, packets: Vec<EncodedPacket>) {
        for p in packets {
            self.forward(p);
        }
    }

    /// Packets produced on this thread go through the same channel as the rung threads'
    /// so that `collect` is the only place that hands packets out.
    fn forward(&mut self, p: EncodedPacket) {
        if let Some(tx) = &self.out_tx {
            let _ = tx.send(Out::Packet(p));
        }
    }

    fn collect(&mut self) -> Result<Vec<EncodedPacket>, TranscodeError> {
        let mut packets = Vec::new();
        loop {
            match self.out_rx.try_recv() {
                Ok(Out::Packet(p)) => {
                    self.stats[p.rendition].add(&p);
                    packets.push(p);
                }
                Ok(Out::Params(i, params)) => self.params[i] = Some(params),
                Ok(Out::Error(rendition, message)) => {
                    self.error
                        .get_or_insert(TranscodeError::Rendition { rendition, message });
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(packets),
        }
    }

    fn on_video_config(&mut self, avcc: &[u8]) -> Result<(), TranscodeError> {
        let config = AvcConfig::parse(avcc).map_err(|e| TranscodeError::Input(e.to_string()))?;
        if self.avc.as_ref() == Some(&config) {
            return Ok(());
        }
        if let Some(pt) = self.passthrough.as_mut() {
            let mut forwarded = config.clone();
            forwarded.length_size = 4;
            self.params[0] = Some(video_params(&forwarded, self.renditions[0].video_kbps)?);
            pt.inband_params = pt.config.is_some();
            pt.config = Some(forwarded);
        }
        self.avc = Some(config);
        Ok(())
    }

    fn on_video(
        &mut self,
        pts: i64,
        dts: i64,
        keyframe: bool,
        framing: NalFraming,
        data: Bytes,
    ) -> Result<(), TranscodeError> {
        // The NAL units of this access unit, whatever the framing.
        let nals: Vec<&[u8]> = match framing {
            NalFraming::Avcc => {
                let Some(config) = &self.avc else {
                    if !self.warned_no_config {
                        tracing::warn!("AVCC video before its decoder configuration: dropped");
                        self.warned_no_config = true;
                    }
                    return Ok(());
                };
                match h264::avcc_nals(&data, config.length_size) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!("dropping a video frame: {e}");
                        return Ok(());
                    }
                }
            }
            NalFraming::AnnexB => h264::annexb_nals(&data),
        };
        let keyframe = keyframe || nals.iter().any(|n| h264::nal_type(n) == nal::IDR);
        if !self.seen_keyframe && !keyframe {
            // Nothing decodes (or may be forwarded) before the first keyframe.
            return Ok(());
        }
        self.seen_keyframe = true;

        // In-band parameter sets (Annex B sources) configure the decoder and passthrough.
        let sps: Vec<Bytes> = nals
            .iter()
            .filter(|n| h264::nal_type(n) == nal::SPS)
            .map(|n| Bytes::copy_from_slice(n))
            .collect();
        let pps: Vec<Bytes> = nals
            .iter()
            .filter(|n| h264::nal_type(n) == nal::PPS)
            .map(|n| Bytes::copy_from_slice(n))
            .collect();
        if !sps.is_empty() && !pps.is_empty() && framing == NalFraming::AnnexB {
            let config = AvcConfig::from_parameter_sets(sps, pps)
                .map_err(|e| TranscodeError::Input(e.to_string()))?;
            if let Some(pt) = self.passthrough.as_mut()
                && pt.config.as_ref() != Some(&config)
            {
                self.params[0] = Some(video_params(&config, self.renditions[0].video_kbps)?);
                pt.config = Some(config.clone());
            }
            self.avc.get_or_insert(config);
        }

        if self.passthrough.is_some() {
            self.forward_source(pts, dts, keyframe, &nals);
        }

        // The decoder gets Annex B with the parameter sets in front of every keyframe.
        let mut annexb = Vec::with_capacity(data.len() + 64);
        if keyframe
            && framing == NalFraming::Avcc
            && let Some(config) = &self.avc
        {
            annexb.extend_from_slice(&config.annexb_parameter_sets());
        }
        h264::write_annexb(nals.iter().copied(), &mut annexb);
        self.decode(&annexb, pts, dts, keyframe)
    }

    /// Passthrough: the top rung is the source's access unit, rebased and re-framed.
    fn forward_source(&mut self, pts: i64, dts: i64, keyframe: bool, nals: &[&[u8]]) {
        let segment_ms = self.segment_ms;
        let tolerance = (segment_ms / 4).min(100);
        let boundary = keyframe
            && self
                .last_boundary_ms
                .is_none_or(|last| pts - last >= segment_ms - tolerance);
        if boundary {
            self.last_boundary_ms = Some(pts);
            self.pending_boundaries.insert(pts);
        }
        let Some(pt) = self.passthrough.as_mut() else {
            return;
        };
        let mut body = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum::<usize>() + 64);
        if boundary
            && pt.inband_params
            && let Some(config) = &pt.config
        {
            // A reconfigured source: repeat the new parameter sets in band so that players
            // that only read the init segment once still decode (avc3-style).
            h264::write_avcc(
                config.sps.iter().chain(&config.pps).map(|b| b.as_ref()),
                &mut body,
            );
            pt.inband_params = false;
        }
        h264::write_avcc(
            nals.iter()
                .copied()
                .filter(|n| !matches!(h264::nal_type(n), nal::SPS | nal::PPS | nal::AUD)),
            &mut body,
        );
        let packet = EncodedPacket {
            rendition: 0,
            pts_ms: pts,
            dts_ms: dts,
            duration_ms: 0,
            keyframe: boundary,
            data: Bytes::from(body),
        };
        if let Some(done) = pt.timer.push(packet) {
            self.forward(done);
        }
    }

    fn decode(
        &mut self,
        annexb: &[u8],
        pts: i64,
        dts: i64,
        keyframe: bool,
    ) -> Result<(), TranscodeError> {
        if self.decoder.is_none() {
            let codec =
                decoder::find(codec::Id::H264).ok_or(TranscodeError::Missing("H.264 decoder"))?;
            let mut ctx = codec::context::Context::new_with_codec(codec);
            ctx.set_threading(codec::threading::Config {
                kind: codec::threading::Type::Frame,
                count: self.options.decoder_threads.max(1),
                ..Default::default()
            });
            let mut dec = ctx.decoder();
            dec.set_packet_time_base(Rational::new(1, 1000));
            self.decoder = Some(
                dec.video()
                    .map_err(TranscodeError::ffmpeg("opening the H.264 decoder"))?,
            );
        }
        let mut packet = Packet::copy(annexb);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(dts));
        if keyframe {
            packet.set_flags(ffmpeg_next::codec::packet::Flags::KEY);
        }
        if let Some(dec) = self.decoder.as_mut()
            && let Err(e) = dec.send_packet(&packet)
        {
            tracing::warn!("H.264 decoder refused a packet: {e}");
        }
        self.drain_decoder()
    }

    fn drain_decoder(&mut self) -> Result<(), TranscodeError> {
        loop {
            let mut frame = frame::Video::empty();
            match self.decoder.as_mut().map(|d| d.receive_frame(&mut frame)) {
                Some(Ok(())) => self.on_frame(frame)?,
                _ => return Ok(()),
            }
        }
    }

    fn on_frame(&mut self, mut frame: frame::Video) -> Result<(), TranscodeError> {
        let Some(pts) = frame.timestamp().or(frame.pts()) else {
            return Ok(());
        };
        if self.last_frame_pts.is_some_and(|last| pts <= last) {
            return Ok(());
        }
        self.last_frame_pts = Some(pts);
        if let Some(t) = self.thumbnailer.as_mut()
            && t.due(pts)
        {
            match t.encode(&frame) {
                Ok(jpeg) => self.thumbnail = Some(Bytes::from(jpeg)),
                Err(e) => tracing::warn!(error = %e, "thumbnail skipped"),
            }
        }
        let boundary = if self.passthrough.is_some() {
            // Boundaries were chosen among the source's keyframes when they were forwarded.
            let hit = self.pending_boundaries.remove(&pts);
            self.pending_boundaries.retain(|&b| b > pts);
            hit
        } else {
            let first = *self.first_frame_pts.get_or_insert(pts);
            // 2 ms of slack for timestamps rounded to ms just below the grid line.
            if pts == first || pts >= self.next_boundary_ms - 2 {
                let k = (pts - first + 2).div_euclid(self.segment_ms) + 1;
                self.next_boundary_ms = first + k * self.segment_ms;
                true
            } else {
                false
            }
        };
        if boundary && let Some(level) = self.pending_level.take() {
            self.apply_level(level);
        }
        if self.shedding && !boundary && governor::sheds_frames(self.level) {
            self.shed_frames += 1;
            return Ok(());
        }
        let keeps: Vec<bool> = self
            .gates
            .iter_mut()
            .map(|g| g.keep(pts, boundary))
            .collect();
        let mask = self
            .gate_of
            .iter()
            .enumerate()
            .filter(|(_, g)| g.is_some_and(|g| keeps[g]))
            .fold(0u64, |m, (i, _)| m | (1 << i));
        if mask == 0 {
            return Ok(());
        }
        frame.set_pts(Some(pts));
        frame.set_kind(if boundary {
            picture::Type::I
        } else {
            picture::Type::None
        });
        let frame = Arc::new(frame);
        let cascade = self.options.scale == ScaleMode::Cascade;
        for w in &self.workers {
            let wanted = if cascade {
                // The first rung thread scales for (and hands on to) all the others.
                mask >> w.rung != 0
            } else {
                mask & (1 << w.rung) != 0
            };
            if !wanted {
                continue;
            }
            let sent =
                w.tx.as_ref()
                    .is_some_and(|tx| tx.send(Msg::Frame(frame.clone(), mask)).is_ok());
            if !sent {
                return Err(self.error.take().unwrap_or(TranscodeError::Rendition {
                    rendition: w.rung,
                    message: "encoder thread stopped".into(),
                }));
            }
            if cascade {
                break;
            }
        }
        Ok(())
    }
}

impl Transcoder {
    /// Called on a boundary frame: the gates take the level's frame rates (re-anchored on
    /// this boundary) and every rung thread gets the level before the boundary picture.
    fn apply_level(&mut self, level: u8) {
        tracing::info!(from = self.level, to = level, "governor level applied");
        self.level = level;
        // Video rungs come first in `renditions`, audio last.
        (self.gates, self.gate_of) = build_gates(&self.renditions[..self.audio.index], level);
        // In cascade mode the first rung thread hands the level down ahead of the picture.
        let cascade = self.options.scale == ScaleMode::Cascade;
        for w in self
            .workers
            .iter()
            .take(if cascade { 1 } else { usize::MAX })
        {
            if let Some(tx) = &w.tx {
                let _ = tx.send(Msg::Level(level));
            }
        }
    }
}

/// One frame-rate gate per distinct rate the encoded rungs run at, at `level`.
fn build_gates(rungs: &[Rendition], level: u8) -> (Vec<FpsGate>, Vec<Option<usize>>) {
    let mut gates: Vec<FpsGate> = Vec::new();
    let gate_of = rungs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (!r.passthrough).then(|| {
                let fps = (r.fps / governor::rung_level(level, i).fps_divisor).max(1);
                gates
                    .iter()
                    .position(|g| g.fps() == fps)
                    .unwrap_or_else(|| {
                        gates.push(FpsGate::new(fps));
                        gates.len() - 1
                    })
            })
        })
        .collect();
    (gates, gate_of)
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        // Closing the queues makes every rung thread flush and exit; wait so that no
        // encoder outlives the stream.
        for w in &mut self.workers {
            w.tx = None;
        }
        for w in &mut self.workers {
            if let Some(join) = w.join.take() {
                let _ = join.join();
            }
        }
    }
}

fn keyint(segment_ms: i64, fps: u32) -> u32 {
    // A backstop only: forced IDRs come every segment. Twice the segment so that a late
    // boundary (jittery timestamps) never meets a natural keyframe just before it.
    ((segment_ms * i64::from(fps.max(1)) * 2) / 1000).clamp(1, 10_000) as u32
}

pub(super) fn video_params(config: &AvcConfig, kbps: u32) -> Result<CodecParams, TranscodeError> {
    let sps = config
        .sps
        .first()
        .ok_or(TranscodeError::Input("no SPS".into()))?;
    let info = h264::Sps::parse(sps).map_err(|e| TranscodeError::Input(e.to_string()))?;
    Ok(CodecParams {
        codec: config.codec_string(),
        time_base: (1, 1000),
        target_kbps: kbps,
        config: StreamConfig::Video {
            width: info.width,
            height: info.height,
            avcc: config.to_bytes(),
        },
    })
}
