//! AAC configuration helpers (pure Rust): the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1)
//! and ADTS headers. The only AAC parser of the crate.
//!
//! Two readings of an ASC, for two questions:
//! - [`AudioFormat`]: what a decoder will output (object type, output rate, channels), for
//!   any valid ASC: RTMP reports it in the publish's `AudioConfig`;
//! - [`AudioSpecificConfig`]: what an ADTS header can carry (the core coder), stricter.
//!
//! Why ADTS: the safe ffmpeg-next API cannot hand a decoder its `extradata`, so raw AAC
//! frames from RTMP are wrapped in an ADTS header built from the stream's
//! AudioSpecificConfig; the decoder configures itself from that header. The reverse
//! (ADTS -> raw + ASC) lets the file source turn MPEG-TS audio into what RTMP delivers.

use bytes::Bytes;

/// The sampling frequencies an ASC/ADTS frequency index stands for.
const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// A malformed or unsupported AAC configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AAC configuration: {0}")]
pub struct AacError(pub &'static str);

/// The fields of an AudioSpecificConfig that ADTS can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type of the core coder (2 = AAC-LC); for explicitly signalled HE-AAC this
    /// is the core's type, with `sbr` set.
    pub object_type: u8,
    /// Index into the standard rate table (the core rate for HE-AAC).
    pub frequency_index: u8,
    /// 1..=7 (0 means "in a program config element", unsupported here).
    pub channel_config: u8,
    /// Explicitly signalled SBR/PS (HE-AAC v1/v2).
    pub sbr: bool,
}

impl AudioSpecificConfig {
    /// Parses the start of an ASC.
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let mut bits = Bits { data, pos: 0 };
        let mut object_type = bits.object_type()?;
        let mut frequency_index = bits.take(4)? as u8;
        if frequency_index == 15 {
            return Err(AacError("explicit sampling frequency (no ADTS equivalent)"));
        }
        let channel_config = bits.take(4)? as u8;
        let mut sbr = false;
        if object_type == 5 || object_type == 29 {
            // Explicit hierarchical SBR signalling: extension rate, then the core's type.
            sbr = true;
            let _extension_index = bits.take(4)?;
            object_type = bits.object_type()?;
            if object_type == 22 {
                bits.take(4)?;
            }
            // The ADTS header must carry the core rate, which is half the output rate here.
            frequency_index = frequency_index.min(12);
        }
        if !(1..=4).contains(&object_type) {
            return Err(AacError("object type ADTS cannot signal"));
        }
        if channel_config == 0 || channel_config > 7 {
            return Err(AacError("channel configuration"));
        }
        if usize::from(frequency_index) >= RATES.len() {
            return Err(AacError("sampling frequency index"));
        }
        Ok(Self {
            object_type,
            frequency_index,
            channel_config,
            sbr,
        })
    }

    /// A two-byte AAC-LC style ASC for the given rate and channel count.
    pub fn build(object_type: u8, sample_rate: u32, channels: u8) -> Result<Bytes, AacError> {
        let index = RATES
            .iter()
            .position(|&r| r == sample_rate)
            .ok_or(AacError("sample rate"))? as u16;
        let v: u16 = (u16::from(object_type & 0x1f) << 11)
            | (index << 7)
            | (u16::from(channels & 0x0f) << 3);
        Ok(Bytes::copy_from_slice(&v.to_be_bytes()))
    }

    /// The core sample rate.
    pub fn sample_rate(&self) -> u32 {
        RATES[usize::from(self.frequency_index).min(RATES.len() - 1)]
    }

    /// The 7-byte ADTS header (no CRC) for a raw frame of `payload_len` bytes.
    pub fn adts_header(&self, payload_len: usize) -> Result<[u8; 7], AacError> {
        let frame_len = payload_len + 7;
        if frame_len >= 1 << 13 {
            return Err(AacError("frame too long for ADTS"));
        }
        let profile = self.object_type - 1;
        let len = frame_len as u32;
        Ok([
            0xff,
            0xf1, // MPEG-4, layer 0, no CRC
            (profile << 6) | (self.frequency_index << 2) | ((self.channel_config >> 2) & 1),
            ((self.channel_config & 3) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            (((len & 7) as u8) << 5) | 0x1f,
            0xfc, // buffer fullness 0x7ff (VBR), one raw data block
        ])
    }

    /// The RFC 6381 codec string (`mp4a.40.2` for AAC-LC, `mp4a.40.5` for HE-AAC).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", if self.sbr { 5 } else { self.object_type })
    }
}

/// Parses an ADTS header at the start of `data`: the config, the header length and the
/// whole frame's length.
pub fn parse_adts(data: &[u8]) -> Result<(AudioSpecificConfig, usize, usize), AacError> {
    if data.len() < 7 || data[0] != 0xff || data[1] & 0xf6 != 0xf0 {
        return Err(AacError("ADTS sync word"));
    }
    let header_len = if data[1] & 1 == 0 { 9 } else { 7 };
    let object_type = (data[2] >> 6) + 1;
    let frequency_index = (data[2] >> 2) & 0x0f;
    let channel_config = ((data[2] & 1) << 2) | (data[3] >> 6);
    let frame_len =
        (usize::from(data[3] & 3) << 11) | (usize::from(data[4]) << 3) | usize::from(data[5] >> 5);
    if frame_len < header_len || usize::from(frequency_index) >= RATES.len() {
        return Err(AacError("ADTS header"));
    }
    Ok((
        AudioSpecificConfig {
            object_type,
            frequency_index,
            channel_config,
            sbr: false,
        },
        header_len,
        frame_len,
    ))
}

/// What a decoder outputs for an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// The signalled audio object type (5 or 29 for explicitly signalled HE-AAC).
    pub object_type: u8,
    /// Output sample rate (the SBR rate for explicitly signalled HE-AAC).
    pub sample_rate: u32,
    /// 0 when the ASC defers to a program config element.
    pub channels: u8,
}

impl AudioFormat {
    pub fn parse(asc: &[u8]) -> Result<Self, AacError> {
        let mut bits = Bits { data: asc, pos: 0 };
        let object_type = bits.object_type()?;
        if object_type == 0 {
            return Err(AacError("object type 0"));
        }
        let mut sample_rate = bits.rate()?;
        let channels = match bits.take(4)? {
            c @ 0..=6 => c as u8,
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            _ => return Err(AacError("reserved channel configuration")),
        };
        if object_type == 5 || object_type == 29 {
            // Explicit SBR/PS signalling: the decoder outputs at the extension rate.
            sample_rate = bits.rate()?;
        }
        Ok(AudioFormat {
            object_type,
            sample_rate,
            channels,
        })
    }
}

/// The audio object type an ASC starts with (`None` when empty or 0), for codec strings.
pub fn object_type(asc: &[u8]) -> Option<u8> {
    Bits { data: asc, pos: 0 }
        .object_type()
        .ok()
        .filter(|&t| t != 0)
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: usize) -> Result<u32, AacError> {
        let mut v = 0;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).ok_or(AacError("truncated"))?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    /// A sampling frequency: an index into [`RATES`], or 15 and an explicit 24-bit rate.
    fn rate(&mut self) -> Result<u32, AacError> {
        match self.take(4)? {
            15 => match self.take(24)? {
                0 => Err(AacError("sample rate 0")),
                r => Ok(r),
            },
            i => RATES
                .get(i as usize)
                .copied()
                .ok_or(AacError("reserved sampling frequency index")),
        }
    }

    fn object_type(&mut self) -> Result<u8, AacError> {
        let t = self.take(5)? as u8;
        if t == 31 {
            Ok(32 + self.take(6)? as u8)
        } else {
            Ok(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_48k_stereo_builds_and_parses() {
        let asc = AudioSpecificConfig::build(2, 48000, 2).unwrap();
        assert_eq!(&asc[..], &[0x11, 0x90]);
        let cfg = AudioSpecificConfig::parse(&asc).unwrap();
        assert_eq!(
            (cfg.object_type, cfg.sample_rate(), cfg.channel_config),
            (2, 48000, 2)
        );
        assert_eq!(cfg.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn adts_round_trip() {
        let cfg = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap(); // LC 44.1 kHz stereo
        let header = cfg.adts_header(300).unwrap();
        let (parsed, header_len, frame_len) = parse_adts(&header).unwrap();
        assert_eq!((parsed, header_len, frame_len), (cfg, 7, 307));
    }

    #[test]
    fn he_aac_maps_to_its_core() {
        // HE-AAC: type 5, 24 kHz core (index 6), stereo, extension 48 kHz, core type 2.
        let cfg = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(
            (cfg.object_type, cfg.sample_rate(), cfg.sbr),
            (2, 24000, true)
        );
        assert_eq!(cfg.codec_string(), "mp4a.40.5");
    }

    #[test]
    fn rejects_what_adts_cannot_carry() {
        assert!(AudioSpecificConfig::parse(&[0x17, 0x80, 0, 0, 0]).is_err()); // explicit rate
        assert!(AudioSpecificConfig::parse(&[0x11, 0x80]).is_err()); // channel config 0 (PCE)
        assert!(AudioSpecificConfig::parse(&[0x11]).is_err());
        assert!(parse_adts(&[0xff, 0xf1, 0, 0]).is_err());
    }

    #[test]
    fn audio_format_reports_output_rate_and_channels() {
        // 44.1 kHz stereo LC (what OBS sends by default), mono 22.05 kHz.
        assert_eq!(
            AudioFormat::parse(&[0x12, 0x10]),
            Ok(AudioFormat {
                object_type: 2,
                sample_rate: 44100,
                channels: 2
            })
        );
        assert_eq!(
            AudioFormat::parse(&[0x13, 0x88]),
            Ok(AudioFormat {
                object_type: 2,
                sample_rate: 22050,
                channels: 1
            })
        );
        // Explicit HE-AAC: core 24 kHz, SBR output 48 kHz.
        assert_eq!(
            AudioFormat::parse(&[0x2B, 0x11, 0x88]),
            Ok(AudioFormat {
                object_type: 5,
                sample_rate: 48000,
                channels: 2
            })
        );
        // Explicit 24-bit frequency.
        assert_eq!(
            AudioFormat::parse(&[0x17, 0x80, 0x3E, 0x80, 0x10]).map(|c| c.sample_rate),
            Ok(32000)
        );
        assert!(
            AudioFormat::parse(&[0x16, 0x90]).is_err(),
            "reserved index 13"
        );
        assert!(AudioFormat::parse(&[0x12]).is_err(), "truncated");
        assert!(AudioFormat::parse(&[]).is_err(), "empty");
    }
}
