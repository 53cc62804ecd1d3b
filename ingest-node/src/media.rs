//! The media types shared by ingest protocols, the transcoder and the packager.
//!
//! Timestamps are milliseconds on the publisher's clock, starting wherever the publisher
//! starts (RTMP: the FLV timestamp; WebRTC: RTP time converted). Consumers rebase them.

use bytes::Bytes;

/// How H.264 NAL units are framed in [`MediaEvent::Video`] data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalFraming {
    /// 4-byte big-endian length before each NAL unit (RTMP/FLV, MP4). Needs the avcC record
    /// from [`MediaEvent::VideoConfig`].
    Avcc,
    /// `00 00 00 01` start codes, SPS/PPS in band (WebRTC depacketisers).
    AnnexB,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC frames without ADTS headers; configured by an AudioSpecificConfig.
    Aac,
    /// Opus packets (WebRTC), 48 kHz.
    Opus,
}

/// What an ingest protocol hands to the stream's pipeline, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// H.264 decoder configuration: an AVCDecoderConfigurationRecord (avcC), as in the FLV
    /// "AVC sequence header". May repeat (the encoder reconfigured).
    VideoConfig { avcc: Bytes },
    /// AAC AudioSpecificConfig, as in the FLV "AAC sequence header".
    AudioConfig {
        codec: AudioCodec,
        config: Bytes,
        sample_rate: u32,
        channels: u8,
    },
    /// One access unit (a whole frame).
    Video {
        pts_ms: i64,
        dts_ms: i64,
        keyframe: bool,
        framing: NalFraming,
        data: Bytes,
    },
    /// One audio frame.
    Audio {
        codec: AudioCodec,
        pts_ms: i64,
        data: Bytes,
    },
    /// Stream metadata the publisher declared (RTMP `@setDataFrame onMetaData`), if any.
    Metadata {
        width: Option<u32>,
        height: Option<u32>,
        fps: Option<f64>,
        video_kbps: Option<f64>,
    },
    /// The publisher stopped (cleanly or not).
    End,
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    /// `1080p`, `720p`, `480p`, `360p`, or `audio`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video_kbps: u32,
    /// True when the top rung is the source passed through without re-encoding.
    pub passthrough: bool,
}

/// An encoded packet of one rendition, ready for the packager (timestamps in ms of the
/// stream's timeline, which starts at 0 on the first frame).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPacket {
    /// Index into the ladder's renditions; audio has its own index.
    pub rendition: usize,
    pub pts_ms: i64,
    pub dts_ms: i64,
    pub duration_ms: i64,
    pub keyframe: bool,
    pub data: Bytes,
}
