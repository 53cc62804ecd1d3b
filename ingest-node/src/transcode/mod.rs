//! The transcoder: one stream's [`MediaEvent`](crate::media::MediaEvent)s in, the adaptive
//! ladder's [`EncodedPacket`](crate::media::EncodedPacket)s out.
//!
//! - [`ladder`] plans the renditions (pure: presets, no upscaling, aspect ratio, bitrate
//!   caps, the passthrough decision).
//! - [`Transcoder`] decodes H.264 once, scales each rung with swscale, drops frames evenly
//!   for 24 fps rungs, encodes with libx264 and forces an IDR on every rung at the same
//!   source timestamp every `segment_ms`; audio (AAC or Opus) becomes AAC-LC 48 kHz stereo.
//! - [`h264`] and [`aac`] are the bitstream helpers (avcC, SPS, ADTS) that let all of this
//!   run on ffmpeg-next's safe API: no `unsafe` anywhere in this module.
//! - [`file_source`] turns a media file into `MediaEvent`s the way RTMP/WHIP ingest would,
//!   for tests, the benchmark and tools.
//!
//! Output contract (what the packager can rely on):
//! - video packets are length-prefixed (4-byte) H.264 NAL units without SPS/PPS/AUD; the
//!   parameter sets are in [`CodecParams`]'s avcC;
//! - audio packets are raw AAC frames (no ADTS); the AudioSpecificConfig is in
//!   [`CodecParams`];
//! - timestamps are milliseconds on the stream's timeline (0 = the first media event),
//!   shared by audio and video; per rendition, packets come in decode order;
//! - on video renditions `keyframe == true` exactly on segment boundaries, and every video
//!   rendition has a keyframe at the same pts for each boundary. Audio packets are all
//!   `keyframe == true`.

pub mod aac;
pub mod file_source;
pub mod h264;
pub mod ladder;
mod transcoder;

#[cfg(test)]
mod tests;

pub use ladder::{Ladder, QualityPreset, SourceInfo, SourceMeter};
pub use transcoder::{
    CodecParams, RenditionStats, ScaleMode, StreamConfig, TranscodeOptions, Transcoder,
};

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
