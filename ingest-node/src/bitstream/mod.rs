//! H.264 and AAC bitstream helpers (pure Rust, no FFmpeg, no I/O), in one place for every
//! module that looks inside media: RTMP (avcC, NAL lengths, AudioSpecificConfig), WHIP
//! (keyframes and parameter sets in Annex B), the transcoder (avcC of every rung, ADTS for
//! the decoder) and the packager (codec strings).
//!
//! Invariant: every function here is total — malformed input is an error, never a panic —
//! because most of what it reads comes straight from publishers.

pub mod aac;
pub mod h264;
