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
use ffmpeg_next::{
    ChannelLayout, Dictionary, Packet, Rational, codec, decoder, encoder, format, frame, picture,
    software::{resampling, scaling},
};

use super::aac::AudioSpecificConfig;
use super::h264::{self, AvcConfig, nal};
use super::thumbnail::Thumbnailer;
use super::{TranscodeError, ladder::Ladder};
use crate::media::{AudioCodec, EncodedPacket, MediaEvent, NalFraming, Rendition};

/// The audio rendition's format.
const AUDIO_RATE: u32 = 48_000;
const AAC_FRAME: usize = 1024;
/// Audio gaps longer than this are filled with silence (publishers drop audio on stalls; the
/// AAC timeline must stay continuous for HLS players). Shorter ones are clock jitter.
const AUDIO_GAP_MS: i64 = 100;
/// At most this much silence is inserted at once; a longer gap moves the audio clock.
const AUDIO_MAX_FILL_MS: i64 = 5_000;

/// How lower rungs get their pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleMode {
    /// Every rung scales from the decoded source.
    Direct,
    /// Each rung scales from the next larger rung's scaled picture. About 6% less CPU on
    /// the benchmark, but the repeated bicubic passes cost 0.3 dB (480p) to 0.8 dB (360p)
    /// PSNR, so it is not the default.
    Cascade,
}

/// Knobs of the transcoder; the defaults are what `bench-ladder` chose (figures in the
/// module docs of `transcode` and in the benchmark's output).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeOptions {
    pub scale: ScaleMode,
    /// x264 `tune=zerolatency` (no B-frames, no lookahead, sliced threads). Off: it saves
    /// ~30% CPU and ~110 MB but costs 0.25-0.55 dB PSNR at the ladder's bitrates, while the
    /// latency it removes (~8 frames of lookahead + B-frames, ~0.25 s) is small next to a
    /// 2 s segment.
    pub zerolatency: bool,
    /// x264 `rc-lookahead` (frames; ignored with `zerolatency`). veryfast's 10 costs ~35 MB
    /// per 1080p encoder for no measurable PSNR gain over 5 on the benchmark.
    pub rc_lookahead: u32,
    /// Rungs with more than one x264 thread use sliced threads (one frame, split in
    /// slices) rather than frame threads: no extra frames in flight (memory, latency).
    pub sliced_threads: bool,
    /// x264 preset.
    pub x264_preset: String,
    /// x264 threads per video rung (index = rung); `None`: [`default_x264_threads`].
    pub x264_threads: Option<Vec<usize>>,
    /// H.264 decoder threads (frame threading: each extra thread adds a frame of delay and
    /// a few frames of memory; the rung threads already keep both cores busy).
    pub decoder_threads: usize,
    /// Frames queued per rung thread before the caller blocks (each queued source frame
    /// pins a decoded picture: 3 MB at 1080p).
    pub queue_depth: usize,
    /// Extra x264 parameters (`key=value:key=value`), applied after everything else.
    pub x264_params: Option<String>,
    /// A JPEG of the source every this many ms of media (`None`: no thumbnails).
    pub thumbnail_every_ms: Option<i64>,
}

impl Default for TranscodeOptions {
    fn default() -> Self {
        Self {
            scale: ScaleMode::Direct,
            zerolatency: false,
            rc_lookahead: 5,
            sliced_threads: true,
            x264_preset: "veryfast".to_owned(),
            x264_threads: None,
            decoder_threads: 1,
            queue_depth: 2,
            x264_params: None,
            thumbnail_every_ms: Some(10_000),
        }
    }
}

/// The default x264 thread count per rung: proportional to the rung's share of the ladder's
/// pixel rate, 1.5 threads per core in total (x264's own auto rule), at least 1. On two
/// cores a 1080p ladder gets 2/1/1/1: the 1080p rung is ~60% of the work and would otherwise
/// be the critical path.
pub fn default_x264_threads(rungs: &[Rendition], cores: usize) -> Vec<usize> {
    let rate = |r: &Rendition| f64::from(r.width) * f64::from(r.height) * f64::from(r.fps.max(1));
    let total: f64 = rungs
        .iter()
        .filter(|r| !r.passthrough)
        .map(rate)
        .sum::<f64>()
        .max(1.0);
    rungs
        .iter()
        .map(|r| (((rate(r) / total) * cores as f64 * 1.5).round() as usize).clamp(1, cores.max(1)))
        .collect()
}

/// A rendition's codec configuration, as the packager needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamConfig {
    Video {
        width: u32,
        height: u32,
        /// AVCDecoderConfigurationRecord (`avcC`), 4-byte NAL lengths.
        avcc: Bytes,
    },
    Audio {
        sample_rate: u32,
        channels: u8,
        samples_per_frame: u32,
        /// AudioSpecificConfig.
        asc: Bytes,
    },
}

/// Codec parameters of one rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecParams {
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`).
    pub codec: String,
    /// Time base of [`EncodedPacket`] timestamps: always 1/1000.
    pub time_base: (u32, u32),
    /// The rendition's target bitrate in kbit/s (the actual one is in [`RenditionStats`]).
    pub target_kbps: u32,
    pub config: StreamConfig,
}

/// What a rendition has produced so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RenditionStats {
    pub packets: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub first_dts_ms: Option<i64>,
    /// End of the last packet (dts + duration).
    pub end_ms: i64,
}

impl RenditionStats {
    pub fn duration_ms(&self) -> i64 {
        self.first_dts_ms
            .map_or(0, |first| (self.end_ms - first).max(0))
    }

    /// Actual average bitrate.
    pub fn avg_kbps(&self) -> f64 {
        let ms = self.duration_ms();
        if ms == 0 {
            0.0
        } else {
            self.bytes as f64 * 8.0 / ms as f64
        }
    }

    fn add(&mut self, p: &EncodedPacket) {
        self.packets += 1;
        self.keyframes += u64::from(p.keyframe);
        self.bytes += p.data.len() as u64;
        self.first_dts_ms.get_or_insert(p.dts_ms);
        self.end_ms = self.end_ms.max(p.dts_ms + p.duration_ms);
    }
}

/// From the rung threads to the transcoder.
enum Out {
    Packet(EncodedPacket),
    Params(usize, CodecParams),
    Error(usize, String),
}

/// To a rung thread.
enum Msg {
    /// A picture (source or parent rung's) and the set of rungs (bits) that keep it.
    Frame(Arc<frame::Video>, u64),
    Flush,
}

/// Holds one packet back so its duration is the next packet's dts minus its own.
#[derive(Debug)]
struct Timer {
    pending: Option<EncodedPacket>,
    last_duration: i64,
}

impl Timer {
    fn new(nominal_ms: i64) -> Self {
        Self {
            pending: None,
            last_duration: nominal_ms.max(1),
        }
    }

    fn push(&mut self, next: EncodedPacket) -> Option<EncodedPacket> {
        let done = self.pending.take().map(|mut p| {
            let d = next.dts_ms - p.dts_ms;
            if d > 0 {
                self.last_duration = d;
            }
            p.duration_ms = self.last_duration;
            p
        });
        self.pending = Some(next);
        done
    }

    fn flush(&mut self) -> Option<EncodedPacket> {
        self.pending.take().map(|mut p| {
            p.duration_ms = self.last_duration;
            p
        })
    }
}

/// Keeps frames on an even grid of `1000/fps` ms, re-anchored at every segment boundary.
#[derive(Debug)]
struct FpsGate {
    fps: u32,
    period: f64,
    next_due: Option<f64>,
}

impl FpsGate {
    fn new(fps: u32) -> Self {
        Self {
            fps,
            period: 1000.0 / f64::from(fps.max(1)),
            next_due: None,
        }
    }

    fn keep(&mut self, pts: i64, boundary: bool) -> bool {
        let t = pts as f64;
        // A quarter period of slack absorbs ms rounding and capture jitter without
        // dropping frames of a source that already runs at the rung's rate.
        let keep = boundary || self.next_due.is_none_or(|due| t >= due - self.period / 4.0);
        if keep {
            let base = match self.next_due {
                Some(due) if !boundary && t - due < self.period => due,
                _ => t,
            };
            self.next_due = Some(base + self.period);
        }
        keep
    }
}

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
struct AudioPath {
    index: usize,
    input: Option<AudioInput>,
    resampler: Option<((format::Sample, u64, u32), resampling::Context)>,
    fifo: [Vec<f32>; 2],
    encoder: encoder::Audio,
    /// Timeline ms of output sample 0.
    start_ms: Option<i64>,
    /// Output samples handed to the encoder so far.
    queued: i64,
    warned: bool,
}

struct AudioInput {
    codec: AudioCodec,
    asc: Option<AudioSpecificConfig>,
    decoder: decoder::Audio,
}

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

        let mut gates: Vec<FpsGate> = Vec::new();
        let gate_of = rungs
            .iter()
            .map(|r| {
                (!r.passthrough).then(|| {
                    gates
                        .iter()
                        .position(|g| g.fps == r.fps)
                        .unwrap_or_else(|| {
                            gates.push(FpsGate::new(r.fps));
                            gates.len() - 1
                        })
                })
            })
            .collect();

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

fn video_params(config: &AvcConfig, kbps: u32) -> Result<CodecParams, TranscodeError> {
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

/// What a rung thread needs to know.
struct RungSpec {
    index: usize,
    rung: Rendition,
    threads: usize,
    preset: String,
    zerolatency: bool,
    rc_lookahead: u32,
    sliced_threads: bool,
    x264_params: Option<String>,
    keyint: u32,
    /// Rungs after this one in the cascade (bits).
    downstream: u64,
}

fn rung_thread(
    spec: RungSpec,
    rx: Receiver<Msg>,
    child: Option<SyncSender<Msg>>,
    out: Sender<Out>,
) {
    let index = spec.index;
    let result = RungEncoder::open(spec, out.clone()).and_then(|mut enc| {
        while let Ok(Msg::Frame(picture, mask)) = rx.recv() {
            enc.process(&picture, mask, child.as_ref())?;
        }
        enc.flush()
    });
    if let Err(message) = result {
        let _ = out.send(Out::Error(index, message));
    }
    if let Some(child) = child {
        let _ = child.send(Msg::Flush);
    }
}

/// One rung: scaler + x264 + output framing, on its own thread.
struct RungEncoder {
    spec: RungSpec,
    encoder: encoder::Video,
    scaler: Option<((format::Pixel, u32, u32), scaling::Context)>,
    timer: Timer,
    boundaries: BTreeSet<i64>,
    config: Option<AvcConfig>,
    last_pts: Option<i64>,
    out: Sender<Out>,
}

impl RungEncoder {
    fn open(spec: RungSpec, out: Sender<Out>) -> Result<Self, String> {
        let codec = encoder::find_by_name("libx264").ok_or("FFmpeg has no libx264")?;
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| e.to_string())?;
        let r = &spec.rung;
        let bps = usize::try_from(r.video_kbps)
            .unwrap_or(usize::MAX)
            .saturating_mul(1000);
        ctx.set_width(r.width);
        ctx.set_height(r.height);
        ctx.set_format(format::Pixel::YUV420P);
        ctx.set_time_base(Rational::new(1, 1000));
        ctx.set_frame_rate(Some(Rational::new(
            i32::try_from(r.fps.max(1)).unwrap_or(30),
            1,
        )));
        ctx.set_bit_rate(bps);
        ctx.set_max_bit_rate(bps);
        ctx.set_gop(spec.keyint);
        let mut opts = Dictionary::new();
        opts.set("preset", &spec.preset);
        if spec.zerolatency {
            opts.set("tune", "zerolatency");
        }
        opts.set("profile", "high");
        opts.set(
            "bufsize",
            &(u64::from(Ladder::bufsize_kbits(r)) * 1000).to_string(),
        );
        opts.set("threads", &spec.threads.to_string());
        // Our pict_type=I becomes an IDR; no scene-cut keyframes between boundaries.
        opts.set("forced-idr", "1");
        let mut params = String::from("scenecut=0");
        if !spec.zerolatency {
            params.push_str(&format!(":rc-lookahead={}", spec.rc_lookahead));
        }
        if spec.sliced_threads && spec.threads > 1 {
            params.push_str(":sliced-threads=1");
        }
        if let Some(extra) = spec.x264_params.as_deref().filter(|p| !p.is_empty()) {
            params.push(':');
            params.push_str(extra);
        }
        opts.set("x264-params", &params);
        let encoder = ctx
            .open_with(opts)
            .map_err(|e| format!("opening libx264 for {}: {e}", r.name))?;
        let nominal = 1000 / i64::from(r.fps.max(1));
        Ok(Self {
            spec,
            encoder,
            scaler: None,
            timer: Timer::new(nominal),
            boundaries: BTreeSet::new(),
            config: None,
            last_pts: None,
            out,
        })
    }

    fn process(
        &mut self,
        picture: &Arc<frame::Video>,
        mask: u64,
        child: Option<&SyncSender<Msg>>,
    ) -> Result<(), String> {
        let mine = mask & (1 << self.spec.index) != 0;
        let down = child.is_some() && mask & self.spec.downstream != 0;
        if !mine && !down {
            return Ok(());
        }
        let scaled = self.scale(picture)?;
        if mine {
            self.encode(&scaled)?;
        }
        if down && let Some(child) = child {
            child
                .send(Msg::Frame(scaled, mask))
                .map_err(|_| "the next rung's thread stopped".to_owned())?;
        }
        Ok(())
    }

    fn scale(&mut self, src: &Arc<frame::Video>) -> Result<Arc<frame::Video>, String> {
        let (w, h) = (self.spec.rung.width, self.spec.rung.height);
        if src.width() == w && src.height() == h && src.format() == format::Pixel::YUV420P {
            return Ok(src.clone());
        }
        let key = (src.format(), src.width(), src.height());
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            // Bicubic: what the ffmpeg CLI's scale filter uses, so quality compares 1:1.
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                format::Pixel::YUV420P,
                w,
                h,
                scaling::Flags::BICUBIC,
            )
            .map_err(|e| format!("swscale {}x{} -> {w}x{h}: {e}", key.1, key.2))?;
            self.scaler = Some((key, ctx));
        }
        // A fresh picture each time: it may be shared with the next rung's thread.
        let mut dst = frame::Video::new(format::Pixel::YUV420P, w, h);
        if let Some((_, ctx)) = self.scaler.as_mut() {
            ctx.run(src, &mut dst)
                .map_err(|e| format!("swscale: {e}"))?;
        }
        dst.set_pts(src.pts());
        dst.set_kind(src.kind());
        Ok(Arc::new(dst))
    }

    fn encode(&mut self, picture: &frame::Video) -> Result<(), String> {
        let pts = picture.pts().unwrap_or(0);
        if self.last_pts.is_some_and(|last| pts <= last) {
            return Ok(());
        }
        self.last_pts = Some(pts);
        if picture.kind() == picture::Type::I {
            self.boundaries.insert(pts);
        }
        self.encoder
            .send_frame(picture)
            .map_err(|e| format!("x264: {e}"))?;
        self.drain()
    }

    fn flush(mut self) -> Result<(), String> {
        self.encoder
            .send_eof()
            .map_err(|e| format!("x264 flush: {e}"))?;
        self.drain()?;
        if let Some(p) = self.timer.flush() {
            let _ = self.out.send(Out::Packet(p));
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), String> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            self.on_packet(&packet)?;
        }
        Ok(())
    }

    fn on_packet(&mut self, packet: &Packet) -> Result<(), String> {
        let data = packet.data().unwrap_or(&[]);
        let nals = h264::annexb_nals(data);
        let mut sps = Vec::new();
        let mut pps = Vec::new();
        let mut body = Vec::with_capacity(data.len());
        for unit in nals {
            match h264::nal_type(unit) {
                nal::SPS => sps.push(Bytes::copy_from_slice(unit)),
                nal::PPS => pps.push(Bytes::copy_from_slice(unit)),
                nal::AUD => {}
                _ => h264::write_avcc([unit], &mut body),
            }
        }
        if !sps.is_empty() && !pps.is_empty() {
            let config = AvcConfig::from_parameter_sets(sps, pps).map_err(|e| e.to_string())?;
            if self.config.as_ref() != Some(&config) {
                let params =
                    video_params(&config, self.spec.rung.video_kbps).map_err(|e| e.to_string())?;
                let _ = self.out.send(Out::Params(self.spec.index, params));
                self.config = Some(config);
            }
        }
        let pts = packet.pts().unwrap_or(0);
        let dts = packet.dts().unwrap_or(pts);
        let keyframe = packet.is_key() && self.boundaries.remove(&pts);
        self.boundaries.retain(|&b| b >= dts);
        let p = EncodedPacket {
            rendition: self.spec.index,
            pts_ms: pts,
            dts_ms: dts,
            duration_ms: 0,
            keyframe,
            data: Bytes::from(body),
        };
        if let Some(done) = self.timer.push(p) {
            let _ = self.out.send(Out::Packet(done));
        }
        Ok(())
    }
}

impl AudioPath {
    fn new(index: usize) -> Result<Self, TranscodeError> {
        let codec = encoder::find(codec::Id::AAC).ok_or(TranscodeError::Missing("AAC encoder"))?;
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(TranscodeError::ffmpeg("AAC encoder context"))?;
        ctx.set_rate(AUDIO_RATE as i32);
        ctx.set_channel_layout(ChannelLayout::STEREO);
        ctx.set_channels(2);
        ctx.set_format(format::Sample::F32(format::sample::Type::Planar));
        ctx.set_bit_rate(super::ladder::AUDIO_KBPS as usize * 1000);
        ctx.set_time_base(Rational::new(1, AUDIO_RATE as i32));
        let encoder = ctx
            .open_as(codec)
            .map_err(TranscodeError::ffmpeg("opening the AAC encoder"))?;
        Ok(Self {
            index,
            input: None,
            resampler: None,
            fifo: [Vec::new(), Vec::new()],
            encoder,
            start_ms: None,
            queued: 0,
            warned: false,
        })
    }

    fn configure(&mut self, codec: AudioCodec, config: &[u8]) -> Result<(), TranscodeError> {
        let asc = match codec {
            AudioCodec::Aac => Some(
                AudioSpecificConfig::parse(config)
                    .map_err(|e| TranscodeError::Input(e.to_string()))?,
            ),
            AudioCodec::Opus => None,
        };
        if self
            .input
            .as_ref()
            .is_some_and(|i| i.codec == codec && i.asc == asc)
        {
            return Ok(());
        }
        self.input = Some(AudioInput::open(codec, asc)?);
        Ok(())
    }

    fn on_packet(
        &mut self,
        codec: AudioCodec,
        pts: i64,
        data: &[u8],
        out: &mut Vec<EncodedPacket>,
    ) -> Result<(), TranscodeError> {
        if self.input.as_ref().is_none_or(|i| i.codec != codec) {
            if codec == AudioCodec::Opus {
                // Opus needs no configuration record (RFC 7587: always 48 kHz, stereo max).
                self.input = Some(AudioInput::open(codec, None)?);
            } else {
                if !self.warned {
                    tracing::warn!("AAC audio before its AudioSpecificConfig: dropped");
                    self.warned = true;
                }
                return Ok(());
            }
        }
        let start = *self.start_ms.get_or_insert(pts);
        // Where this packet belongs on the output clock, versus where the output is.
        let expected = (pts - start) * i64::from(AUDIO_RATE) / 1000;
        let position = self.queued + self.fifo[0].len() as i64;
        let gap = expected - position;
        if gap > AUDIO_GAP_MS * i64::from(AUDIO_RATE) / 1000 {
            let max_fill = AUDIO_MAX_FILL_MS * i64::from(AUDIO_RATE) / 1000;
            let fill = gap.min(max_fill);
            for ch in &mut self.fifo {
                ch.resize(ch.len() + fill as usize, 0.0);
            }
            if gap > fill {
                // A long outage: move the clock instead of sending minutes of silence.
                self.start_ms = Some(start + (gap - fill) * 1000 / i64::from(AUDIO_RATE));
            }
        }
        let Some(input) = self.input.as_mut() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(data.len() + 7);
        if let Some(asc) = &input.asc {
            match asc.adts_header(data.len()) {
                Ok(h) => bytes.extend_from_slice(&h),
                Err(e) => {
                    tracing::warn!("dropping an AAC frame: {e}");
                    return Ok(());
                }
            }
        }
        bytes.extend_from_slice(data);
        let packet = Packet::copy(&bytes);
        if let Err(e) = input.decoder.send_packet(&packet) {
            tracing::warn!("audio decoder refused a packet: {e}");
        }
        self.drain_decoder(out)
    }

    fn drain_decoder(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), TranscodeError> {
        loop {
            let mut decoded = frame::Audio::empty();
            let got = self
                .input
                .as_mut()
                .is_some_and(|i| i.decoder.receive_frame(&mut decoded).is_ok());
            if !got {
                return self.encode_ready(out, false);
            }
            self.resample(&decoded)?;
        }
    }

    fn resample(&mut self, decoded: &frame::Audio) -> Result<(), TranscodeError> {
        let layout = if decoded.channel_layout().is_empty() {
            ChannelLayout::default(i32::from(decoded.channels().max(1)))
        } else {
            decoded.channel_layout()
        };
        let key = (decoded.format(), layout.bits(), decoded.rate());
        if self.resampler.as_ref().is_none_or(|(k, _)| *k != key) {
            let ctx = resampling::Context::get(
                key.0,
                layout,
                key.2,
                format::Sample::F32(format::sample::Type::Planar),
                ChannelLayout::STEREO,
                AUDIO_RATE,
            )
            .map_err(TranscodeError::ffmpeg("audio resampler"))?;
            self.resampler = Some((key, ctx));
        }
        let capacity =
            decoded.samples() * AUDIO_RATE as usize / decoded.rate().max(1) as usize + 256;
        let mut converted = frame::Audio::new(
            format::Sample::F32(format::sample::Type::Planar),
            capacity,
            ChannelLayout::STEREO,
        );
        let mut input = decoded.clone();
        if input.channel_layout().is_empty() {
            input.set_channel_layout(layout);
        }
        if let Some((_, ctx)) = self.resampler.as_mut() {
            ctx.run(&input, &mut converted)
                .map_err(TranscodeError::ffmpeg("resampling audio"))?;
        }
        let n = converted.samples();
        for (ch, fifo) in self.fifo.iter_mut().enumerate() {
            fifo.extend_from_slice(&converted.plane::<f32>(ch)[..n]);
        }
        Ok(())
    }

    /// Encodes every complete 1024-sample frame (and, when `last`, the remainder).
    fn encode_ready(
        &mut self,
        out: &mut Vec<EncodedPacket>,
        last: bool,
    ) -> Result<(), TranscodeError> {
        while self.fifo[0].len() >= AAC_FRAME || (last && !self.fifo[0].is_empty()) {
            let n = self.fifo[0].len().min(AAC_FRAME);
            let mut f = frame::Audio::new(
                format::Sample::F32(format::sample::Type::Planar),
                n,
                ChannelLayout::STEREO,
            );
            f.set_rate(AUDIO_RATE);
            f.set_channels(2);
            f.set_pts(Some(self.queued));
            for (ch, fifo) in self.fifo.iter_mut().enumerate() {
                f.plane_mut::<f32>(ch)[..n].copy_from_slice(&fifo[..n]);
                fifo.drain(..n);
            }
            self.queued += n as i64;
            self.encoder
                .send_frame(&f)
                .map_err(TranscodeError::ffmpeg("AAC encoder"))?;
            self.drain_encoder(out);
        }
        Ok(())
    }

    fn drain_encoder(&mut self, out: &mut Vec<EncodedPacket>) {
        let mut packet = Packet::empty();
        let start = self.start_ms.unwrap_or(0);
        let rate = i64::from(AUDIO_RATE);
        let ms = |samples: i64| start + (samples * 1000).div_euclid(rate);
        while self.encoder.receive_packet(&mut packet).is_ok() {
            let pts = packet.pts().unwrap_or(0);
            let duration = if packet.duration() > 0 {
                packet.duration()
            } else {
                AAC_FRAME as i64
            };
            out.push(EncodedPacket {
                rendition: self.index,
                pts_ms: ms(pts),
                dts_ms: ms(packet.dts().unwrap_or(pts)),
                duration_ms: ms(pts + duration) - ms(pts),
                keyframe: true,
                data: Bytes::copy_from_slice(packet.data().unwrap_or(&[])),
            });
        }
    }

    fn flush(&mut self, out: &mut Vec<EncodedPacket>) -> Result<(), TranscodeError> {
        if self.start_ms.is_none() {
            return Ok(()); // no audio ever arrived
        }
        if let Some(input) = self.input.as_mut() {
            let _ = input.decoder.send_eof();
        }
        self.drain_decoder(out)?;
        self.encode_ready(out, true)?;
        self.encoder
            .send_eof()
            .map_err(TranscodeError::ffmpeg("AAC encoder flush"))?;
        self.drain_encoder(out);
        Ok(())
    }
}

impl AudioInput {
    fn open(codec: AudioCodec, asc: Option<AudioSpecificConfig>) -> Result<Self, TranscodeError> {
        let (id, name) = match codec {
            AudioCodec::Aac => (codec::Id::AAC, "AAC decoder"),
            AudioCodec::Opus => (codec::Id::OPUS, "Opus decoder"),
        };
        let found = decoder::find(id).ok_or(TranscodeError::Missing(name))?;
        let mut opts = Dictionary::new();
        if codec == AudioCodec::Opus {
            // Without an OpusHead the decoder needs the channel count and rate from us.
            opts.set("ac", "2");
            opts.set("ar", "48000");
        }
        let decoder = codec::context::Context::new_with_codec(found)
            .decoder()
            .open_as_with(found, opts)
            .and_then(|o| o.audio())
            .map_err(TranscodeError::ffmpeg(format!("opening the {name}")))?;
        Ok(Self {
            codec,
            asc,
            decoder,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(gate: &mut FpsGate, pts: &[i64], boundary_every: usize) -> Vec<i64> {
        pts.iter()
            .enumerate()
            .filter(|(i, p)| gate.keep(**p, boundary_every > 0 && i % boundary_every == 0))
            .map(|(_, p)| *p)
            .collect()
    }

    fn frames(fps: f64, n: usize) -> Vec<i64> {
        (0..n)
            .map(|i| (i as f64 * 1000.0 / fps).round() as i64)
            .collect()
    }

    #[test]
    fn thirty_to_twenty_four_drops_one_frame_in_five_evenly() {
        let src = frames(30.0, 60);
        let out = kept(&mut FpsGate::new(24), &src, 60);
        assert_eq!(out.len(), 48);
        let gaps: Vec<i64> = out.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| (33..=67).contains(g)), "{gaps:?}");
        // Every 5-frame group loses exactly one frame.
        for group in src.chunks(5) {
            assert_eq!(group.iter().filter(|p| out.contains(p)).count(), 4);
        }
    }

    #[test]
    fn boundaries_are_always_kept_and_re_anchor_the_pattern() {
        let src = frames(30.0, 120);
        let out = kept(&mut FpsGate::new(24), &src, 60);
        assert!(out.contains(&src[60]));
        // Both 2 s segments get the same pattern.
        let first: Vec<i64> = out.iter().filter(|&&p| p < 2000).copied().collect();
        let second: Vec<i64> = out
            .iter()
            .filter(|&&p| p >= 2000)
            .map(|p| p - 2000)
            .collect();
        assert_eq!(first, second);
    }

    #[test]
    fn same_rate_keeps_everything_even_with_jitter() {
        let jittery: Vec<i64> = frames(30.0, 90)
            .iter()
            .enumerate()
            .map(|(i, p)| p + [0, 6, -5][i % 3])
            .collect();
        assert_eq!(kept(&mut FpsGate::new(30), &jittery, 0).len(), 90);
        assert_eq!(
            kept(&mut FpsGate::new(30), &frames(25.0, 50), 0).len(),
            50,
            "never duplicates or drops below the rate"
        );
    }

    #[test]
    fn sixty_to_thirty_keeps_every_other_frame() {
        let out = kept(&mut FpsGate::new(30), &frames(60.0, 120), 0);
        assert_eq!(out.len(), 60);
    }

    #[test]
    fn timer_gives_each_packet_the_gap_to_the_next() {
        let p = |dts| EncodedPacket {
            rendition: 0,
            pts_ms: dts,
            dts_ms: dts,
            duration_ms: 0,
            keyframe: false,
            data: Bytes::new(),
        };
        let mut t = Timer::new(33);
        assert!(t.push(p(0)).is_none());
        assert_eq!(t.push(p(40)).map(|x| x.duration_ms), Some(40));
        assert_eq!(
            t.push(p(40)).map(|x| x.duration_ms),
            Some(40),
            "a zero gap keeps the last duration"
        );
        assert_eq!(t.flush().map(|x| x.duration_ms), Some(40));
    }

    #[test]
    fn default_threads_favour_the_top_rung() {
        let ladder = Ladder::plan(1920, 1080, super::super::QualityPreset::P1080, None);
        assert_eq!(default_x264_threads(ladder.rungs(), 2), vec![2, 1, 1, 1]);
        assert_eq!(default_x264_threads(&ladder.rungs()[3..], 2), vec![2]);
    }
}
