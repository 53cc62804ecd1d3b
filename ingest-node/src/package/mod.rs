//! HLS packaging: fMP4/CMAF segments per rendition ([`fmp4`]) and the playlists that list
//! them ([`playlist`]).
//!
//! Input is the transcoder's [`EncodedPacket`](crate::media::EncodedPacket)s of one
//! [`Rendition`](crate::media::Rendition) plus the codec parameters in a [`TrackConfig`].
//! Output is an init segment, numbered media segments and playlist text; uploading them is
//! the caller's job. Every name here is relative: the caller prefixes `live/{streamId}/`.
//!
//! Object layout (all renditions, audio included, use the same scheme):
//!
//! ```text
//! master.m3u8
//! {rendition}/index.m3u8
//! {rendition}/init.mp4            init of the first publish; init-{n}.mp4 after the n-th
//!                                 reconnect that changed the codec parameters
//! {rendition}/seg-{seq:06}.m4s    media segments, sequence numbers never reused
//! ```
//!
//! Invariants the caller keeps: one [`fmp4::Packager`] per rendition and publish; all
//! renditions of a stream use the same `segment_ms`, so cuts fall on the same timeline
//! boundaries; sequence numbers continue across reconnects (pass the next free one to the
//! new packager) so object names are never overwritten.

pub mod boxes;
pub mod fmp4;
#[doc(hidden)]
pub mod fuzz;
pub mod playlist;
pub mod resume;

#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::bitstream::{aac, h264};

pub use fmp4::{MEDIA_TIME_OFFSET_MS, Packager, PackagerOptions, Segment, extradata_of};
pub use playlist::{
    AudioMedia, BitrateStats, MediaPlaylist, PlaylistError, PlaylistSegment, VariantStream, Window,
    master_playlist,
};

/// Errors of the packaging layer.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    #[error("muxer output is not valid ISO BMFF: {0}")]
    Boxes(#[from] boxes::BoxError),
    #[error("invalid track configuration: {0}")]
    Config(String),
    #[error("muxer output out of step with segment cuts: {0}")]
    Framing(String),
}

/// Video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
}

/// Codec parameters of one rendition's elementary stream, as the transcoder's encoder
/// reports them. The packager writes them into the init segment; the playlist writer uses
/// `codec_string`, `width`/`height` and `channels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    pub kind: TrackKind,
    /// RFC 6381 codec string: `avc1.64001f`, `mp4a.40.2` (see [`avc1_codec_string`] and
    /// [`aac_codec_string`] to derive it from `extradata`).
    pub codec_string: String,
    /// H.264: the AVCDecoderConfigurationRecord (avcC), or Annex B SPS/PPS as libx264's
    /// global header has it; packets must be framed to match (length prefixes with avcC,
    /// start codes with Annex B — the muxer converts the latter to length prefixes).
    /// AAC: the AudioSpecificConfig.
    pub extradata: Bytes,
    /// Video only (0 for audio).
    pub width: u32,
    pub height: u32,
    /// Audio only (0 for video).
    pub sample_rate: u32,
    pub channels: u32,
    /// Wished timescale of the track (ticks per second). Video: 90000 is the usual choice;
    /// the MP4 muxer forces audio to `sample_rate`. The effective value is
    /// [`Segment::timescale`].
    pub time_base_den: u32,
}

impl TrackConfig {
    /// The codec the parameters describe, from the `codec_string` prefix.
    fn codec_id(&self) -> Result<ffmpeg_next::codec::Id, PackageError> {
        use ffmpeg_next::codec::Id;
        let s = self.codec_string.as_str();
        match self.kind {
            TrackKind::Video if s.starts_with("avc1") || s.starts_with("avc3") => Ok(Id::H264),
            TrackKind::Audio if s.starts_with("mp4a.40") => Ok(Id::AAC),
            _ => Err(PackageError::Config(format!(
                "unsupported {:?} codec string {s:?}",
                self.kind
            ))),
        }
    }
}

/// `avc1.PPCCLL` (profile, constraint flags, level as hex) from H.264 extradata: an avcC
/// record, or Annex B SPS/PPS with start codes (what libx264 puts in a global header).
/// `None` when no SPS is found.
pub fn avc1_codec_string(extradata: &[u8]) -> Option<String> {
    let sps = match extradata {
        [1, rest @ ..] => rest,
        _ => h264::annexb_nals(extradata)
            .into_iter()
            .find(|unit| h264::nal_type(unit) == h264::nal::SPS)?
            .get(1..)?,
    };
    match sps {
        [profile, constraints, level, ..] => {
            Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
        }
        _ => None,
    }
}

/// `mp4a.40.N` from an AudioSpecificConfig (N = audio object type: 2 = AAC-LC, 5 = HE-AAC).
pub fn aac_codec_string(asc: &[u8]) -> Option<String> {
    aac::object_type(asc).map(|aot| format!("mp4a.40.{aot}"))
}

/// `{rendition}/init.mp4` for the first init of a rendition, `{rendition}/init-{n}.mp4`
/// for the n-th changed one (a reconnect with other codec parameters): the earlier
/// segments of the recording still need the earlier init.
pub fn init_object_name(rendition: &str, generation: u32) -> String {
    format!("{rendition}/{}", init_uri(generation))
}

/// The init segment's name relative to its media playlist (`EXT-X-MAP:URI`).
pub fn init_uri(generation: u32) -> String {
    if generation == 0 {
        "init.mp4".to_owned()
    } else {
        format!("init-{generation}.mp4")
    }
}

/// `{rendition}/seg-{seq:06}.m4s`.
pub fn segment_object_name(rendition: &str, sequence: u64) -> String {
    format!("{rendition}/{}", segment_uri(sequence))
}

/// A media segment's name relative to its media playlist.
pub fn segment_uri(sequence: u64) -> String {
    format!("seg-{sequence:06}.m4s")
}

/// `{rendition}/index.m3u8`, also the URI the master playlist uses for it.
pub fn media_playlist_object_name(rendition: &str) -> String {
    format!("{rendition}/index.m3u8")
}

/// The master playlist's object name.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// The live thumbnail, refreshed every 10 s of media.
pub const THUMBNAIL: &str = "thumb.jpg";

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn codec_strings_from_extradata() {
        assert_eq!(
            avc1_codec_string(&[1, 0x64, 0x00, 0x1f, 0xff]).as_deref(),
            Some("avc1.64001f")
        );
        assert_eq!(
            avc1_codec_string(&[1, 0x42, 0xc0, 0x1e]).as_deref(),
            Some("avc1.42c01e")
        );
        // Annex B global header (libx264): SPS then PPS.
        let annexb = [
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0, 0, 0, 1, 0x68, 0xeb,
        ];
        assert_eq!(avc1_codec_string(&annexb).as_deref(), Some("avc1.64001f"));
        assert_eq!(
            avc1_codec_string(&[0, 0, 1, 0x68, 0xeb, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e]).as_deref(),
            Some("avc1.42c01e")
        );
        assert_eq!(avc1_codec_string(&[0, 0, 0, 1, 0x67]), None);
        assert_eq!(avc1_codec_string(&[0, 0, 0, 1, 0x68, 0xeb]), None);
        // 48 kHz stereo AAC-LC: 0x11 0x90.
        assert_eq!(
            aac_codec_string(&[0x11, 0x90]).as_deref(),
            Some("mp4a.40.2")
        );
        assert_eq!(
            aac_codec_string(&[0x2b, 0x92, 0x08]).as_deref(),
            Some("mp4a.40.5")
        );
        assert_eq!(aac_codec_string(&[]), None);
    }

    #[test]
    fn object_names() {
        assert_eq!(init_object_name("720p", 0), "720p/init.mp4");
        assert_eq!(init_object_name("720p", 2), "720p/init-2.mp4");
        assert_eq!(segment_object_name("audio", 42), "audio/seg-000042.m4s");
        assert_eq!(
            segment_object_name("audio", 1_234_567),
            "audio/seg-1234567.m4s"
        );
        assert_eq!(media_playlist_object_name("360p"), "360p/index.m3u8");
    }
}
