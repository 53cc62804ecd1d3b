//! The transcoder: one stream's [`MediaEvent`](crate::media::MediaEvent)s in, the adaptive
//! ladder's [`EncodedPacket`](crate::media::EncodedPacket)s out.
//!
//! - [`ladder`] plans the renditions (pure: presets, no upscaling, aspect ratio, bitrate
//!   caps, the passthrough decision).
//! - [`Transcoder`] decodes H.264 once, scales each rung with swscale, drops frames evenly
//!   for 24 fps rungs, encodes with libx264 and forces an IDR on every rung at the same
//!   source timestamp every `segment_ms`; audio (AAC or Opus) becomes AAC-LC 48 kHz stereo.
//! - the bitstream helpers of [`crate::bitstream`] (avcC, SPS, ADTS) let all of this run on
//!   ffmpeg-next's safe API: no `unsafe` anywhere in this module.
//! - [`file_source`] turns a media file into `MediaEvent`s the way RTMP/WHIP ingest would,
//!   for tests, the benchmark and tools.
//!
//! Choices, measured by `cargo bench -p rill-ingest --bench bench-ladder` (20 s of
//! 1080p30 6 Mbit/s, 2 cores, against the `ffmpeg` CLI with the same settings in the same run):
//! - **Direct scaling** from the decoded source, not a cascade: the cascade saved ~6% CPU
//!   but lost 0.3 dB (480p) and 0.8 dB (360p) PSNR against the CLI;
//! - **no `tune=zerolatency`**: it saves ~30% CPU and ~110 MB but costs 0.25-0.55 dB on every
//!   rung (bframes 0, no lookahead, no mb-tree); the ~8 frames (~0.25 s) of encoder delay it
//!   would remove are small next to a 2 s segment;
//! - **rc-lookahead 5** instead of veryfast's 10: same PSNR, ~100 MB less memory;
//! - **x264 threads** 2 (sliced) for the top rung, 1 for the others, one OS thread per rung:
//!   frame threads or more threads per rung used more memory and no less CPU; one thread for
//!   the top rung made it the critical path;
//! - a single-threaded H.264 decoder and 2-frame rung queues (more cost memory, not time).
//!
//! Output contract (what the packager can rely on):
//! - video packets are length-prefixed (4-byte) H.264 NAL units without SPS/PPS/AUD; the
//!   parameter sets are in [`CodecParams`]'s avcC;
//! - audio packets are raw AAC frames (no ADTS); the AudioSpecificConfig is in
//!   [`CodecParams`];
//! - timestamps are milliseconds on the stream's timeline (0 = the first media event),
//!   shared by audio and video; per rendition, packets come in decode order. Two things
//!   can sit before 0: the dts of the first video frames (x264 B-frame delay) and the first
//!   AAC packet, which carries the encoder's 1024-sample priming (~21 ms before its input);
//!   a packager that needs non-negative times shifts both, or uses an edit list;
//! - on video renditions `keyframe == true` exactly on segment boundaries, and every video
//!   rendition has a keyframe at the same pts for each boundary. Audio packets are all
//!   `keyframe == true`.

mod audio;
pub mod file_source;
pub mod ladder;
mod options;
mod rung;
pub mod thumbnail;
mod transcoder;

// The bitstream helpers, in scope for this module's files as `super::h264` / `super::aac`.
use crate::bitstream::{aac, h264};

#[cfg(test)]
mod tests;

pub use ladder::{Ladder, QualityPreset, SourceInfo, SourceMeter};
pub use options::{
    CodecParams, RenditionStats, ScaleMode, StreamConfig, TranscodeOptions, default_x264_threads,
};
pub use transcoder::Transcoder;

/// What can go wrong while transcoding a stream.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// FFmpeg refused something (opening a codec, a scaler, a resampler).
    #[error("{what}: {source}")]
    Ffmpeg {
        what: String,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// A codec or component this build of FFmpeg lacks (e.g. libx264).
    #[error("FFmpeg has no {0}")]
    Missing(&'static str),
    /// The input's configuration cannot be used.
    #[error("unusable input: {0}")]
    Input(String),
    /// A rung's encoder thread failed or went away.
    #[error("rendition {rendition}: {message}")]
    Rendition { rendition: usize, message: String },
}

impl TranscodeError {
    pub(crate) fn ffmpeg(what: impl Into<String>) -> impl FnOnce(ffmpeg_next::Error) -> Self {
        let what = what.into();
        move |source| Self::Ffmpeg { what, source }
    }
}

/// Initialises FFmpeg once per process and keeps its logging to errors (x264 and the
/// decoders are chatty at the default level).
pub fn init() -> Result<(), TranscodeError> {
    static INIT: std::sync::OnceLock<Result<(), ffmpeg_next::Error>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg_next::init()?;
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
        Ok(())
    })
    .map_err(|e| TranscodeError::Ffmpeg {
        what: "initialising FFmpeg".into(),
        source: e,
    })
}
