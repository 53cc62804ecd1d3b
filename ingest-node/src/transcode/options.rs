//! The transcoder's knobs ([`TranscodeOptions`], chosen by `bench-ladder`) and what it
//! reports per rendition ([`CodecParams`], [`RenditionStats`]).

use bytes::Bytes;

use crate::media::{EncodedPacket, Rendition};

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

    pub(super) fn add(&mut self, p: &EncodedPacket) {
        self.packets += 1;
        self.keyframes += u64::from(p.keyframe);
        self.bytes += p.data.len() as u64;
        self.first_dts_ms.get_or_insert(p.dts_ms);
        self.end_ms = self.end_ms.max(p.dts_ms + p.duration_ms);
    }
}
