//! FLV tag bodies as carried by RTMP audio (8), video (9) and aggregate (22) messages,
//! turned into [`MediaEvent`]s.
//!
//! Accepted: H.264 (legacy codec id 7, or Enhanced RTMP FourCC `avc1`) and AAC (legacy sound
//! format 10, or Enhanced RTMP FourCC `mp4a`). Every other codec is refused with an error
//! naming it, so a misconfigured encoder gets a clear reason instead of a silent black
//! stream.
//!
//! Invariants:
//! - Video payloads leave here with 4-byte NAL lengths ([`NalFraming::Avcc`]) and every NAL
//!   length checked against the payload; encoders using 1- or 2-byte lengths are rewritten,
//!   and the avcC they announced is patched to say 4 bytes, so consumers see one framing.
//! - Frames that arrive before their codec's sequence header are dropped: nothing can decode
//!   them and the NAL length size is unknown.
//! - `pts = dts + composition time` (signed 24-bit); timestamps are the caller's, in ms.
//! - Never panics on any input.

use bytes::{Bytes, BytesMut};

use crate::bitstream::{aac, h264};
use crate::media::{AudioCodec, MediaEvent, NalFraming};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("{0} tag is truncated")]
    Truncated(&'static str),
    #[error("unsupported video codec {0}: publish H.264 (AVC)")]
    UnsupportedVideoCodec(String),
    #[error("unsupported audio codec {0}: publish AAC")]
    UnsupportedAudioCodec(String),
    #[error("invalid AVC sequence header: {0}")]
    BadAvcConfig(&'static str),
    #[error("invalid AAC AudioSpecificConfig: {0}")]
    BadAudioConfig(&'static str),
    #[error("H.264 NAL unit length runs past the end of the frame")]
    BadNalLength,
    #[error("malformed aggregate message")]
    BadAggregate,
}

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    /// AVCDecoderConfigurationRecord.
    SequenceHeader(Bytes),
    /// One access unit, NAL units with the length prefixes of the current avcC.
    Frame {
        keyframe: bool,
        composition_ms: i32,
        data: Bytes,
    },
    /// End of sequence, video info/command frames, metadata: nothing to forward.
    Ignored,
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioTag {
    /// AudioSpecificConfig, with the channel count the legacy FLV header claims (used only
    /// when the ASC defers channels to a program config element).
    SequenceHeader {
        config: Bytes,
        flv_channels: u8,
    },
    Frame(Bytes),
    Ignored,
}

const VIDEO: &str = "video";
const AUDIO: &str = "audio";

fn legacy_video_codec_name(id: u8) -> String {
    let name = match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        12 => "HEVC (non-standard codec id 12)",
        13 => "AV1 (non-standard codec id 13)",
        _ => "unknown",
    };
    format!("{name} (FLV codec id {id})")
}

fn fourcc_name(f: &[u8]) -> String {
    let printable: String = f
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    format!("'{printable}' (Enhanced RTMP)")
}

fn si24(b: &[u8]) -> i32 {
    // Sign-extend the 24-bit big-endian value.
    (i32::from(b[0]) << 24 | i32::from(b[1]) << 16 | i32::from(b[2]) << 8) >> 8
}

/// Parses a video message body (an FLV VIDEODATA).
pub fn parse_video_tag(p: &Bytes) -> Result<VideoTag, FlvError> {
    let Some(&b0) = p.first() else {
        return Ok(VideoTag::Ignored);
    };
    if b0 & 0x80 != 0 {
        return parse_enhanced_video(p, b0);
    }
    let frame_type = b0 >> 4;
    let codec = b0 & 0x0F;
    if frame_type == 5 {
        // Video info/command frame (seek markers): carries no picture.
        return Ok(VideoTag::Ignored);
    }
    if codec != 7 {
        return Err(FlvError::UnsupportedVideoCodec(legacy_video_codec_name(
            codec,
        )));
    }
    if p.len() < 5 {
        return Err(FlvError::Truncated(VIDEO));
    }
    match p[1] {
        0 => Ok(VideoTag::SequenceHeader(p.slice(5..))),
        1 => Ok(VideoTag::Frame {
            keyframe: frame_type == 1,
            composition_ms: si24(&p[2..5]),
            data: p.slice(5..),
        }),
        // 2 = end of sequence; others are reserved.
        _ => Ok(VideoTag::Ignored),
    }
}

fn parse_enhanced_video(p: &Bytes, b0: u8) -> Result<VideoTag, FlvError> {
    let frame_type = (b0 >> 4) & 0x07;
    let packet_type = b0 & 0x0F;
    let Some(fourcc) = p.get(1..5) else {
        return Err(FlvError::Truncated(VIDEO));
    };
    if packet_type == 6 || packet_type == 7 {
        // Multitrack / ModEx wrappers: not something a single-rendition ingest takes.
        return Err(FlvError::UnsupportedVideoCodec(format!(
            "{} with Enhanced RTMP packet type {packet_type} (multitrack/ModEx)",
            fourcc_name(fourcc)
        )));
    }
    if fourcc != b"avc1" {
        return Err(FlvError::UnsupportedVideoCodec(fourcc_name(fourcc)));
    }
    if frame_type == 5 {
        return Ok(VideoTag::Ignored);
    }
    let keyframe = frame_type == 1;
    match packet_type {
        0 => Ok(VideoTag::SequenceHeader(p.slice(5..))),
        1 => {
            let Some(ct) = p.get(5..8) else {
                return Err(FlvError::Truncated(VIDEO));
            };
            Ok(VideoTag::Frame {
                keyframe,
                composition_ms: si24(ct),
                data: p.slice(8..),
            })
        }
        3 => Ok(VideoTag::Frame {
            keyframe,
            composition_ms: 0,
            data: p.slice(5..),
        }),
        // 2 = sequence end, 4 = metadata (HDR info), 5 = MPEG-2 TS sequence start (not AVC).
        _ => Ok(VideoTag::Ignored),
    }
}

fn legacy_audio_codec_name(id: u8) -> String {
    let name = match id {
        0 => "Linear PCM (platform endian)",
        1 => "ADPCM",
        2 => "MP3",
        3 => "Linear PCM (little endian)",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        11 => "Speex",
        13 => "Opus (non-standard sound format 13)",
        14 => "MP3 8 kHz",
        15 => "device-specific sound",
        _ => "reserved",
    };
    format!("{name} (FLV sound format {id})")
}

/// Parses an audio message body (an FLV AUDIODATA).
pub fn parse_audio_tag(p: &Bytes) -> Result<AudioTag, FlvError> {
    let Some(&b0) = p.first() else {
        return Ok(AudioTag::Ignored);
    };
    let format = b0 >> 4;
    if format == 9 {
        return parse_enhanced_audio(p, b0);
    }
    if format != 10 {
        return Err(FlvError::UnsupportedAudioCodec(legacy_audio_codec_name(
            format,
        )));
    }
    let Some(&packet_type) = p.get(1) else {
        return Err(FlvError::Truncated(AUDIO));
    };
    let flv_channels = if b0 & 1 == 1 { 2 } else { 1 };
    Ok(match packet_type {
        0 => AudioTag::SequenceHeader {
            config: p.slice(2..),
            flv_channels,
        },
        1 if p.len() > 2 => AudioTag::Frame(p.slice(2..)),
        _ => AudioTag::Ignored,
    })
}

fn parse_enhanced_audio(p: &Bytes, b0: u8) -> Result<AudioTag, FlvError> {
    let packet_type = b0 & 0x0F;
    let Some(fourcc) = p.get(1..5) else {
        return Err(FlvError::Truncated(AUDIO));
    };
    if packet_type == 5 || packet_type == 7 {
        return Err(FlvError::UnsupportedAudioCodec(format!(
            "{} with Enhanced RTMP packet type {packet_type} (multitrack/ModEx)",
            fourcc_name(fourcc)
        )));
    }
    if fourcc != b"mp4a" {
        return Err(FlvError::UnsupportedAudioCodec(fourcc_name(fourcc)));
    }
    Ok(match packet_type {
        0 => AudioTag::SequenceHeader {
            config: p.slice(5..),
            flv_channels: 2,
        },
        1 if p.len() > 5 => AudioTag::Frame(p.slice(5..)),
        // 2 = sequence end, 4 = multichannel config (informational).
        _ => AudioTag::Ignored,
    })
}

/// The NAL length size (1, 2 or 4) an AVC sequence header announces, once the whole
/// record is known to be valid.
fn nal_length_size(avcc: &[u8]) -> Result<usize, FlvError> {
    let config = h264::AvcConfig::parse(avcc).map_err(|e| FlvError::BadAvcConfig(e.0))?;
    Ok(config.length_size)
}

/// Checks the NAL length prefixes of one access unit, rewriting them to 4 bytes if needed.
fn to_four_byte_lengths(data: &Bytes, size: usize) -> Result<Bytes, FlvError> {
    let nals = h264::avcc_nals(data, size).map_err(|_| FlvError::BadNalLength)?;
    if size == 4 {
        return Ok(data.clone());
    }
    let mut out = Vec::with_capacity(data.len() + 4 * nals.len());
    h264::write_avcc(nals, &mut out);
    Ok(Bytes::from(out))
}

/// One sub-message of an aggregate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatePart {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Splits an aggregate message (type 22: FLV tags back to back, each followed by its
/// back-pointer). Sub-tag times are rebased so the first one lands on `message_ts`.
pub fn split_aggregate(p: &Bytes, message_ts: u32) -> Result<Vec<AggregatePart>, FlvError> {
    let mut parts = Vec::new();
    let mut pos = 0;
    let mut first_ts = None;
    while pos < p.len() {
        let h = p.get(pos..pos + 11).ok_or(FlvError::BadAggregate)?;
        let size = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        let ts =
            u32::from(h[7]) << 24 | u32::from(h[4]) << 16 | u32::from(h[5]) << 8 | u32::from(h[6]);
        let start = pos + 11;
        if p.len() < start + size + 4 {
            return Err(FlvError::BadAggregate);
        }
        let base = *first_ts.get_or_insert(ts);
        parts.push(AggregatePart {
            type_id: h[0] & 0x1F,
            timestamp: message_ts.wrapping_add(ts.wrapping_sub(base)),
            payload: p.slice(start..start + size),
        });
        pos = start + size + 4;
    }
    Ok(parts)
}

/// Per-publish FLV state: the current NAL length size and whether audio is configured.
#[derive(Debug, Default)]
pub struct FlvDemuxer {
    nal_length_size: Option<usize>,
    audio_configured: bool,
}

impl FlvDemuxer {
    /// A video message at `dts_ms` → at most one event.
    pub fn video(&mut self, dts_ms: i64, payload: &Bytes) -> Result<Option<MediaEvent>, FlvError> {
        match parse_video_tag(payload)? {
            VideoTag::SequenceHeader(avcc) => {
                let size = nal_length_size(&avcc)?;
                self.nal_length_size = Some(size);
                let avcc = if size == 4 {
                    avcc
                } else {
                    let mut patched = BytesMut::from(&avcc[..]);
                    patched[4] |= 0x03;
                    patched.freeze()
                };
                Ok(Some(MediaEvent::VideoConfig { avcc }))
            }
            VideoTag::Frame {
                keyframe,
                composition_ms,
                data,
            } => {
                let Some(size) = self.nal_length_size else {
                    return Ok(None);
                };
                if data.is_empty() {
                    return Ok(None);
                }
                let data = to_four_byte_lengths(&data, size)?;
                Ok(Some(MediaEvent::Video {
                    pts_ms: dts_ms + i64::from(composition_ms),
                    dts_ms,
                    keyframe,
                    framing: NalFraming::Avcc,
                    data,
                }))
            }
            VideoTag::Ignored => Ok(None),
        }
    }

    /// An audio message at `pts_ms` → at most one event.
    pub fn audio(&mut self, pts_ms: i64, payload: &Bytes) -> Result<Option<MediaEvent>, FlvError> {
        match parse_audio_tag(payload)? {
            AudioTag::SequenceHeader {
                config,
                flv_channels,
            } => {
                let aac =
                    aac::AudioFormat::parse(&config).map_err(|e| FlvError::BadAudioConfig(e.0))?;
                self.audio_configured = true;
                let channels = if aac.channels == 0 {
                    flv_channels
                } else {
                    aac.channels
                };
                Ok(Some(MediaEvent::AudioConfig {
                    codec: AudioCodec::Aac,
                    config,
                    sample_rate: aac.sample_rate,
                    channels,
                }))
            }
            AudioTag::Frame(data) if self.audio_configured => Ok(Some(MediaEvent::Audio {
                codec: AudioCodec::Aac,
                pts_ms,
                data,
            })),
            AudioTag::Frame(_) | AudioTag::Ignored => Ok(None),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal but structurally valid avcC (High profile, level 3.1, 4-byte lengths).
    pub(crate) fn avcc() -> Vec<u8> {
        let sps = [0x67, 0x64, 0x00, 0x1F, 0xAC, 0xD9];
        let pps = [0x68, 0xEB, 0xE3, 0xCB];
        let mut v = vec![1, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0, sps.len() as u8];
        v.extend_from_slice(&sps);
        v.extend_from_slice(&[1, 0, pps.len() as u8]);
        v.extend_from_slice(&pps);
        v
    }

    pub(crate) fn video_seq_header() -> Bytes {
        let mut v = vec![0x17, 0, 0, 0, 0];
        v.extend(avcc());
        Bytes::from(v)
    }

    /// An AVC NALU tag: keyframe or not, composition time, one NAL unit of `nal` bytes.
    pub(crate) fn video_frame(keyframe: bool, cts: i32, nal: &[u8]) -> Bytes {
        let ct = cts.to_be_bytes();
        let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 1, ct[1], ct[2], ct[3]];
        v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        v.extend_from_slice(nal);
        Bytes::from(v)
    }

    /// AAC LC, 48 kHz, stereo.
    pub(crate) fn audio_seq_header() -> Bytes {
        Bytes::from_static(&[0xAF, 0, 0x11, 0x90])
    }

    pub(crate) fn audio_frame(data: &[u8]) -> Bytes {
        let mut v = vec![0xAF, 1];
        v.extend_from_slice(data);
        Bytes::from(v)
    }

    #[test]
    fn avc_sequence_header_becomes_video_config() {
        let mut d = FlvDemuxer::default();
        let ev = d.video(0, &video_seq_header()).unwrap();
        assert_eq!(
            ev,
            Some(MediaEvent::VideoConfig {
                avcc: Bytes::from(avcc())
            })
        );
    }

    #[test]
    fn avc_keyframe_with_composition_time_sets_pts_after_dts() {
        let mut d = FlvDemuxer::default();
        d.video(0, &video_seq_header()).unwrap();
        let ev = d
            .video(1000, &video_frame(true, 67, &[0x65, 0x88, 0x84]))
            .unwrap()
            .unwrap();
        let MediaEvent::Video {
            pts_ms,
            dts_ms,
            keyframe,
            framing,
            data,
        } = ev
        else {
            panic!("not video: {ev:?}");
        };
        assert_eq!(
            (pts_ms, dts_ms, keyframe, framing),
            (1067, 1000, true, NalFraming::Avcc)
        );
        assert_eq!(&data[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
    }

    #[test]
    fn inter_frames_are_not_keyframes_and_negative_composition_time_is_signed() {
        let mut d = FlvDemuxer::default();
        d.video(0, &video_seq_header()).unwrap();
        let ev = d
            .video(500, &video_frame(false, -33, &[0x41, 0x9A]))
            .unwrap()
            .unwrap();
        assert!(matches!(
            ev,
            MediaEvent::Video {
                pts_ms: 467,
                dts_ms: 500,
                keyframe: false,
                ..
            }
        ));
    }

    #[test]
    fn frames_before_their_sequence_header_are_dropped() {
        let mut d = FlvDemuxer::default();
        assert_eq!(d.video(0, &video_frame(true, 0, &[0x65])).unwrap(), None);
        assert_eq!(d.audio(0, &audio_frame(&[1, 2, 3])).unwrap(), None);
    }

    #[test]
    fn two_byte_nal_lengths_are_rewritten_to_four_and_the_avcc_patched() {
        let mut d = FlvDemuxer::default();
        let mut hdr = video_seq_header().to_vec();
        hdr[5 + 4] = 0xFD; // lengthSizeMinusOne = 1
        let Some(MediaEvent::VideoConfig { avcc }) = d.video(0, &Bytes::from(hdr)).unwrap() else {
            panic!("no config");
        };
        assert_eq!(avcc[4] & 3, 3);
        let frame = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 2, 0x65, 0x01, 0, 1, 0x06]);
        let Some(MediaEvent::Video { data, .. }) = d.video(0, &frame).unwrap() else {
            panic!("no frame");
        };
        assert_eq!(&data[..], &[0, 0, 0, 2, 0x65, 0x01, 0, 0, 0, 1, 0x06]);
    }

    #[test]
    fn nal_length_past_the_frame_is_rejected() {
        let mut d = FlvDemuxer::default();
        d.video(0, &video_seq_header()).unwrap();
        let frame = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65]);
        assert_eq!(d.video(0, &frame), Err(FlvError::BadNalLength));
        let frame = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0]);
        assert_eq!(d.video(0, &frame), Err(FlvError::BadNalLength));
    }

    #[test]
    fn malformed_avc_sequence_headers_are_rejected() {
        let good = avcc();
        for cut in 0..good.len() {
            assert!(
                nal_length_size(&good[..cut]).is_err(),
                "{cut}-byte avcC accepted"
            );
        }
        let mut v0 = good.clone();
        v0[0] = 0;
        assert!(nal_length_size(&v0).is_err());
        assert_eq!(nal_length_size(&good), Ok(4));
    }

    #[test]
    fn aac_sequence_header_reports_rate_and_channels() {
        let mut d = FlvDemuxer::default();
        let ev = d.audio(0, &audio_seq_header()).unwrap().unwrap();
        assert_eq!(
            ev,
            MediaEvent::AudioConfig {
                codec: AudioCodec::Aac,
                config: Bytes::from_static(&[0x11, 0x90]),
                sample_rate: 48000,
                channels: 2
            }
        );
        // 44.1 kHz stereo LC (what OBS sends by default); the other configurations are
        // covered where the ASC is parsed (bitstream::aac).
        let mut header = audio_seq_header().to_vec();
        header.truncate(2);
        header.extend_from_slice(&[0x12, 0x10]);
        assert!(matches!(
            d.audio(0, &Bytes::from(header)).unwrap(),
            Some(MediaEvent::AudioConfig {
                sample_rate: 44100,
                channels: 2,
                ..
            })
        ));
        let mut reserved = audio_seq_header().to_vec();
        reserved.truncate(2);
        reserved.extend_from_slice(&[0x16, 0x90]);
        assert_eq!(
            d.audio(0, &Bytes::from(reserved)),
            Err(FlvError::BadAudioConfig(
                "reserved sampling frequency index"
            ))
        );
    }

    #[test]
    fn pce_channel_configuration_falls_back_to_the_flv_header() {
        let mut d = FlvDemuxer::default();
        let ev = d
            .audio(0, &Bytes::from_static(&[0xAE, 0, 0x11, 0x80]))
            .unwrap();
        assert!(matches!(
            ev,
            Some(MediaEvent::AudioConfig {
                channels: 1,
                sample_rate: 48000,
                ..
            })
        ));
    }

    #[test]
    fn aac_raw_frames_become_audio_events() {
        let mut d = FlvDemuxer::default();
        d.audio(0, &audio_seq_header()).unwrap();
        let ev = d.audio(21, &audio_frame(&[0x21, 0x10, 0x04])).unwrap();
        assert_eq!(
            ev,
            Some(MediaEvent::Audio {
                codec: AudioCodec::Aac,
                pts_ms: 21,
                data: Bytes::from_static(&[0x21, 0x10, 0x04])
            })
        );
    }

    #[test]
    fn other_codecs_are_rejected_with_their_name() {
        let mp3 = parse_audio_tag(&Bytes::from_static(&[0x2F, 0xFF, 0xFB])).unwrap_err();
        assert_eq!(
            mp3.to_string(),
            "unsupported audio codec MP3 (FLV sound format 2): publish AAC"
        );
        let vp6 = parse_video_tag(&Bytes::from_static(&[0x14, 0, 0])).unwrap_err();
        assert!(vp6.to_string().contains("On2 VP6"), "{vp6}");
        let hevc = parse_video_tag(&Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2]))
            .unwrap_err();
        assert_eq!(
            hevc.to_string(),
            "unsupported video codec 'hvc1' (Enhanced RTMP): publish H.264 (AVC)"
        );
        let opus =
            parse_audio_tag(&Bytes::from_static(&[0x91, b'O', b'p', b'u', b's', 0])).unwrap_err();
        assert!(opus.to_string().contains("'Opus'"), "{opus}");
    }

    #[test]
    fn enhanced_rtmp_avc1_and_mp4a_are_accepted() {
        let mut hdr = vec![0x90, b'a', b'v', b'c', b'1'];
        hdr.extend(avcc());
        assert_eq!(
            parse_video_tag(&Bytes::from(hdr)).unwrap(),
            VideoTag::SequenceHeader(Bytes::from(avcc()))
        );
        let coded = Bytes::from_static(&[0x91, b'a', b'v', b'c', b'1', 0, 0, 40, 0, 0, 0, 1, 0x65]);
        assert!(matches!(
            parse_video_tag(&coded).unwrap(),
            VideoTag::Frame {
                keyframe: true,
                composition_ms: 40,
                ..
            }
        ));
        let coded_x = Bytes::from_static(&[0xA3, b'a', b'v', b'c', b'1', 0, 0, 0, 1, 0x41]);
        assert!(matches!(
            parse_video_tag(&coded_x).unwrap(),
            VideoTag::Frame {
                keyframe: false,
                composition_ms: 0,
                ..
            }
        ));
        let asc = Bytes::from_static(&[0x90, b'm', b'p', b'4', b'a', 0x11, 0x90]);
        assert!(matches!(
            parse_audio_tag(&asc).unwrap(),
            AudioTag::SequenceHeader { .. }
        ));
    }

    #[test]
    fn empty_and_truncated_tags_do_not_panic() {
        assert_eq!(parse_video_tag(&Bytes::new()), Ok(VideoTag::Ignored));
        assert_eq!(parse_audio_tag(&Bytes::new()), Ok(AudioTag::Ignored));
        assert_eq!(
            parse_video_tag(&Bytes::from_static(&[0x17, 1])),
            Err(FlvError::Truncated("video"))
        );
        assert_eq!(
            parse_audio_tag(&Bytes::from_static(&[0xAF])),
            Err(FlvError::Truncated("audio"))
        );
        assert!(parse_video_tag(&Bytes::from_static(&[0x91, b'a'])).is_err());
    }

    #[test]
    fn aggregate_messages_split_into_rebased_tags() {
        let mut agg = Vec::new();
        for (ty, ts, body) in [(9u8, 5000u32, &b"vid"[..]), (8, 5021, &b"au"[..])] {
            agg.push(ty);
            agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            agg.extend_from_slice(&ts.to_be_bytes()[1..]);
            agg.push((ts >> 24) as u8);
            agg.extend_from_slice(&[0, 0, 0]);
            agg.extend_from_slice(body);
            agg.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        let parts = split_aggregate(&Bytes::from(agg.clone()), 100).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].type_id, parts[0].timestamp, &parts[0].payload[..]),
            (9, 100, &b"vid"[..])
        );
        assert_eq!(
            (parts[1].type_id, parts[1].timestamp, &parts[1].payload[..]),
            (8, 121, &b"au"[..])
        );
        assert_eq!(
            split_aggregate(&Bytes::from(agg[..agg.len() - 1].to_vec()), 0),
            Err(FlvError::BadAggregate)
        );
    }
}
