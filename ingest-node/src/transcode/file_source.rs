//! A media file as a publisher: demuxes a file with ffmpeg-next into the
//! [`MediaEvent`]s an ingest protocol would deliver (for tests, the benchmark and tools).
//!
//! Supported input: H.264 in Annex B (MPEG-TS, raw `.h264`), AAC in ADTS (MPEG-TS, `.aac`)
//! and Opus in any container. MP4/FLV/MKV keep H.264/AAC configuration in `extradata`,
//! which ffmpeg-next's safe API cannot read: remux those to MPEG-TS first
//! (`ffmpeg -i in.mp4 -c copy -f mpegts out.ts`).
//!
//! With [`NalFraming::Avcc`] the events look like RTMP's: a `VideoConfig` (avcC built from
//! the in-band SPS/PPS) before the first frame and after every parameter change, and frames
//! with 4-byte length prefixes and no parameter sets. With [`NalFraming::AnnexB`] they look
//! like WebRTC's: the access units as they are. AAC becomes an `AudioConfig` plus raw
//! frames (RTMP); Opus packets pass as they are.

use std::path::Path;

use bytes::Bytes;
use ffmpeg_next::{Rational, codec, format, media};

use super::TranscodeError;
use super::aac::{self, AudioSpecificConfig};
use super::h264::{self, AvcConfig, nal};
use crate::media::{AudioCodec, MediaEvent, NalFraming};

/// Reads the whole file into events (ending with [`MediaEvent::End`]), in file order.
pub fn read_events(path: &Path, framing: NalFraming) -> Result<Vec<MediaEvent>, TranscodeError> {
    super::init()?;
    let mut input = format::input(path).map_err(TranscodeError::ffmpeg(format!(
        "opening {}",
        path.display()
    )))?;
    let pick = |kind: media::Type| {
        input.streams().best(kind).map(|s| {
            (
                s.index(),
                s.time_base(),
                s.parameters().id(),
                s.avg_frame_rate(),
            )
        })
    };
    let video = pick(media::Type::Video);
    let audio = pick(media::Type::Audio);
    if let Some((_, _, id, _)) = video
        && id != codec::Id::H264
    {
        return Err(TranscodeError::Input(format!(
            "video codec {id:?} (only H.264)"
        )));
    }
    let audio_codec = match audio.map(|a| a.2) {
        Some(codec::Id::AAC) => Some(AudioCodec::Aac),
        Some(codec::Id::OPUS) => Some(AudioCodec::Opus),
        Some(other) => {
            return Err(TranscodeError::Input(format!(
                "audio codec {other:?} (only AAC and Opus)"
            )));
        }
        None => None,
    };

    let mut events = Vec::new();
    let mut config: Option<AvcConfig> = None;
    let mut asc: Option<AudioSpecificConfig> = None;
    let mut announced = false;
    if audio_codec == Some(AudioCodec::Opus) {
        events.push(MediaEvent::AudioConfig {
            codec: AudioCodec::Opus,
            config: Bytes::new(),
            sample_rate: 48_000,
            channels: 2,
        });
    }
    for (stream, packet) in input.packets() {
        let Some(data) = packet.data() else { continue };
        let tb = stream.time_base();
        let Some(ts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        if video.is_some_and(|v| v.0 == stream.index()) {
            let pts_ms = to_ms(ts, tb);
            let dts_ms = packet.dts().map_or(pts_ms, |d| to_ms(d, tb));
            let nals = h264::annexb_nals(data);
            if !(data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])) || nals.is_empty()
            {
                return Err(TranscodeError::Input(
                    "H.264 is not Annex B (remux to MPEG-TS)".into(),
                ));
            }
            let sets = |kind| {
                nals.iter()
                    .filter(|n| h264::nal_type(n) == kind)
                    .map(|n| Bytes::copy_from_slice(n))
                    .collect::<Vec<_>>()
            };
            let (sps, pps) = (sets(nal::SPS), sets(nal::PPS));
            if !sps.is_empty() && !pps.is_empty() {
                let found = AvcConfig::from_parameter_sets(sps, pps)
                    .map_err(|e| TranscodeError::Input(e.to_string()))?;
                if !announced {
                    let info = h264::Sps::parse(&found.sps[0]).ok();
                    let fps = video
                        .map(|v| v.3)
                        .filter(|r| r.denominator() != 0 && r.numerator() > 0)
                        .map(f64::from);
                    events.push(MediaEvent::Metadata {
                        width: info.map(|i| i.width),
                        height: info.map(|i| i.height),
                        fps,
                        video_kbps: None,
                    });
                    announced = true;
                }
                if framing == NalFraming::Avcc && config.as_ref() != Some(&found) {
                    events.push(MediaEvent::VideoConfig {
                        avcc: found.to_bytes(),
                    });
                }
                config = Some(found);
            }
            let body = match framing {
                NalFraming::AnnexB => Bytes::copy_from_slice(data),
                NalFraming::Avcc => {
                    let mut out = Vec::with_capacity(data.len());
                    h264::write_avcc(
                        nals.iter().copied().filter(|n| {
                            !matches!(h264::nal_type(n), nal::SPS | nal::PPS | nal::AUD)
                        }),
                        &mut out,
                    );
                    Bytes::from(out)
                }
            };
            events.push(MediaEvent::Video {
                pts_ms,
                dts_ms,
                keyframe: packet.is_key(),
                framing,
                data: body,
            });
        } else if audio.is_some_and(|a| a.0 == stream.index()) {
            let pts_ms = to_ms(ts, tb);
            match audio_codec {
                Some(AudioCodec::Aac) => {
                    // A PES packet may carry several ADTS frames.
                    let mut rest = data;
                    let mut k = 0i64;
                    while !rest.is_empty() {
                        let (cfg, header, len) = aac::parse_adts(rest)
                            .map_err(|e| TranscodeError::Input(e.to_string()))?;
                        if len > rest.len() {
                            break;
                        }
                        if asc != Some(cfg) {
                            let config = AudioSpecificConfig::build(
                                cfg.object_type,
                                cfg.sample_rate(),
                                cfg.channel_config,
                            )
                            .map_err(|e| TranscodeError::Input(e.to_string()))?;
                            events.push(MediaEvent::AudioConfig {
                                codec: AudioCodec::Aac,
                                config,
                                sample_rate: cfg.sample_rate(),
                                channels: cfg.channel_config,
                            });
                            asc = Some(cfg);
                        }
                        events.push(MediaEvent::Audio {
                            codec: AudioCodec::Aac,
                            pts_ms: pts_ms + k * 1024 * 1000 / i64::from(cfg.sample_rate()),
                            data: Bytes::copy_from_slice(&rest[header..len]),
                        });
                        rest = &rest[len..];
                        k += 1;
                    }
                }
                Some(AudioCodec::Opus) => events.push(MediaEvent::Audio {
                    codec: AudioCodec::Opus,
                    pts_ms,
                    data: Bytes::copy_from_slice(data),
                }),
                None => {}
            }
        }
    }
    events.push(MediaEvent::End);
    Ok(events)
}

fn to_ms(ts: i64, tb: Rational) -> i64 {
    let (num, den) = (
        i128::from(tb.numerator()),
        i128::from(tb.denominator().max(1)),
    );
    // Round to nearest: 30 fps at 1/90000 -> 0, 33, 67, 100 ms.
    let v = (i128::from(ts) * num * 1000 * 2 + den).div_euclid(den * 2);
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_rounding() {
        let tb = Rational::new(1, 90_000);
        assert_eq!(
            [0, 3000, 6000, 9000].map(|t| to_ms(t, tb)),
            [0, 33, 67, 100]
        );
    }
}
