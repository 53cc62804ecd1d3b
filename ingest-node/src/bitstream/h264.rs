//! H.264 bitstream helpers (pure Rust, no FFmpeg): NAL unit framing (Annex B and
//! length-prefixed "AVCC"), the avcC decoder configuration record, and the few SPS fields
//! the ladder and the packager need (coded size, profile, level, chroma format). The only
//! H.264 parser of the crate: RTMP validates avcC and NAL lengths with it, WHIP finds
//! keyframes and parameter sets with it, the packager reads codec strings with it.
//!
//! Why not through FFmpeg: the safe ffmpeg-next API cannot read or set a codec context's
//! `extradata`, so the transcoder feeds the decoder Annex B (parameter sets in band) and
//! builds the avcC of every encoded rung itself from the SPS/PPS that x264 writes in band.
//! Everything in this module is total: malformed input gives an error, never a panic.

use bytes::Bytes;

/// NAL unit types this crate cares about (ITU-T H.264 table 7-1).
pub mod nal {
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// A malformed H.264 structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed H.264 {0}")]
pub struct BitstreamError(pub &'static str);

/// The type of a NAL unit (its first byte's low five bits); 0 for an empty unit.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Splits Annex B data (`00 00 01` / `00 00 00 01` start codes) into NAL units, start codes
/// and trailing zero bytes removed. Data before the first start code is ignored.
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&next| next - 3);
        // Trailing zeros belong to the next 4-byte start code (or are trailing_zero_8bits).
        while end > start && data[end - 1] == 0 {
            end -= 1;
        }
        if end > start {
            nals.push(&data[start..end]);
        }
    }
    nals
}

/// Splits length-prefixed data (`length_size`-byte big-endian lengths) into NAL units.
pub fn avcc_nals(data: &[u8], length_size: usize) -> Result<Vec<&[u8]>, BitstreamError> {
    if !(1..=4).contains(&length_size) {
        return Err(BitstreamError("NAL length size"));
    }
    let mut nals = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < length_size {
            return Err(BitstreamError("NAL length prefix"));
        }
        let len = rest[..length_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[length_size..];
        if len > rest.len() {
            return Err(BitstreamError(
                "NAL length (past the end of the access unit)",
            ));
        }
        if len > 0 {
            nals.push(&rest[..len]);
        }
        rest = &rest[len..];
    }
    Ok(nals)
}

/// Writes NAL units as Annex B with 4-byte start codes.
pub fn write_annexb<'a>(nals: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
}

/// Writes NAL units with 4-byte big-endian length prefixes (the framing this crate emits).
pub fn write_avcc<'a>(nals: impl IntoIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    for nal in nals {
        // A NAL unit is bounded by the access unit, far below 4 GiB.
        let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1), the `avcC` box payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Bytes in each NAL length prefix of the samples (1, 2 or 4).
    pub length_size: usize,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

impl AvcConfig {
    /// Parses an avcC record. Refused: a version other than 1, 3-byte NAL lengths (not
    /// allowed by the format), no SPS or no PPS, an empty or truncated parameter set.
    pub fn parse(data: &[u8]) -> Result<Self, BitstreamError> {
        if data.len() < 7 {
            return Err(BitstreamError("avcC record (shorter than 7 bytes)"));
        }
        if data[0] != 1 {
            return Err(BitstreamError(
                "avcC record (configurationVersion is not 1)",
            ));
        }
        let length_size = usize::from(data[4] & 0x03) + 1;
        if length_size == 3 {
            return Err(BitstreamError("avcC record (3-byte NAL lengths)"));
        }
        let mut pos = 5;
        let read_sets = |count: usize,
                         pos: &mut usize,
                         err: BitstreamError|
         -> Result<Vec<Bytes>, BitstreamError> {
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let len_bytes = data.get(*pos..*pos + 2).ok_or(err.clone())?;
                let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                let set = data.get(*pos + 2..*pos + 2 + len).ok_or(err.clone())?;
                if set.is_empty() {
                    return Err(err);
                }
                sets.push(Bytes::copy_from_slice(set));
                *pos += 2 + len;
            }
            Ok(sets)
        };
        let sps_count = usize::from(data[pos] & 0x1f);
        pos += 1;
        let sps = read_sets(
            sps_count,
            &mut pos,
            BitstreamError("avcC record (empty or truncated SPS)"),
        )?;
        let pps_err = BitstreamError("avcC record (empty or truncated PPS)");
        let pps_count = usize::from(*data.get(pos).ok_or(pps_err.clone())?);
        pos += 1;
        let pps = read_sets(pps_count, &mut pos, pps_err)?;
        if sps.is_empty() || pps.is_empty() {
            return Err(BitstreamError("avcC record without SPS or PPS"));
        }
        Ok(Self {
            profile_idc: data[1],
            constraint_flags: data[2],
            level_idc: data[3],
            length_size,
            sps,
            pps,
        })
    }

    /// Builds a record with 4-byte NAL lengths from parameter sets (profile and level are
    /// taken from the first SPS). High profiles get the chroma/bit-depth extension that
    /// ISO/IEC 14496-15 requires for them.
    pub fn from_parameter_sets(sps: Vec<Bytes>, pps: Vec<Bytes>) -> Result<Self, BitstreamError> {
        let first = sps.first().ok_or(BitstreamError("SPS missing"))?;
        if first.len() < 4 || pps.is_empty() {
            return Err(BitstreamError("parameter sets"));
        }
        Ok(Self {
            profile_idc: first[1],
            constraint_flags: first[2],
            level_idc: first[3],
            length_size: 4,
            sps,
            pps,
        })
    }

    /// Serialises the record.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = vec![
            1,
            self.profile_idc,
            self.constraint_flags,
            self.level_idc,
            0xfc | (self.length_size.clamp(1, 4) as u8 - 1),
            0xe0 | (self.sps.len().min(31) as u8),
        ];
        for set in self.sps.iter().take(31) {
            out.extend_from_slice(&(set.len().min(0xffff) as u16).to_be_bytes());
            out.extend_from_slice(set);
        }
        out.push(self.pps.len().min(255) as u8);
        for set in self.pps.iter().take(255) {
            out.extend_from_slice(&(set.len().min(0xffff) as u16).to_be_bytes());
            out.extend_from_slice(set);
        }
        if matches!(self.profile_idc, 100 | 110 | 122 | 144) {
            let info = self.sps.first().and_then(|s| Sps::parse(s).ok());
            let (chroma, luma, chroma_depth) = info.map_or((1, 8, 8), |i| {
                (i.chroma_format_idc, i.bit_depth_luma, i.bit_depth_chroma)
            });
            out.push(0xfc | (chroma & 0x03));
            out.push(0xf8 | (luma.saturating_sub(8) & 0x07));
            out.push(0xf8 | (chroma_depth.saturating_sub(8) & 0x07));
            out.push(0); // numOfSequenceParameterSetExt
        }
        Bytes::from(out)
    }

    /// The RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// The parameter sets as Annex B (what a decoder needs before an IDR).
    pub fn annexb_parameter_sets(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_annexb(
            self.sps.iter().chain(&self.pps).map(|b| b.as_ref()),
            &mut out,
        );
        out
    }
}

/// The SPS fields this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Display size (coded size minus the cropping window).
    pub width: u32,
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (with its one-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<Self, BitstreamError> {
        if nal_type(nal) != nal::SPS || nal.len() < 4 {
            return Err(BitstreamError("SPS"));
        }
        let rbsp = unescape(&nal[1..]);
        let mut r = BitReader::new(&rbsp);
        let profile_idc = r.bits(8)? as u8;
        let constraint_flags = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        r.ue()?; // seq_parameter_set_id
        let (mut chroma_format_idc, mut bit_depth_luma, mut bit_depth_chroma) = (1u8, 8u8, 8u8);
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = small(r.ue()?, 3)?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            bit_depth_luma = small(r.ue()?, 6)? + 8;
            bit_depth_chroma = small(r.ue()?, 6)? + 8;
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        match r.ue()? {
            0 => {
                r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.bit()?;
                r.se()?;
                r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return Err(BitstreamError("SPS poc cycle"));
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.bit()?;
        if !frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
        let mut width = width_mbs * 16;
        let mut height = height_map_units * 16 * field_factor;
        if r.bit()? {
            let (left, right, top, bottom) = (
                u64::from(r.ue()?),
                u64::from(r.ue()?),
                u64::from(r.ue()?),
                u64::from(r.ue()?),
            );
            let (unit_x, unit_y) = match (chroma_format_idc, separate_colour_plane) {
                (0, _) | (3, true) => (1, field_factor),
                (1, _) => (2, 2 * field_factor),
                (2, _) => (2, field_factor),
                _ => (1, field_factor),
            };
            width = width
                .checked_sub(unit_x * (left + right))
                .ok_or(BitstreamError("SPS crop"))?;
            height = height
                .checked_sub(unit_y * (top + bottom))
                .ok_or(BitstreamError("SPS crop"))?;
        }
        Ok(Self {
            profile_idc,
            constraint_flags,
            level_idc,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            width: u32::try_from(width).map_err(|_| BitstreamError("SPS width"))?,
            height: u32::try_from(height).map_err(|_| BitstreamError("SPS height"))?,
        })
    }

    /// True for what every HLS player decodes: 8-bit 4:2:0 Baseline/Main/High.
    pub fn is_player_friendly(&self) -> bool {
        matches!(self.profile_idc, 66 | 77 | 100)
            && self.chroma_format_idc == 1
            && self.bit_depth_luma == 8
            && self.bit_depth_chroma == 8
    }
}

fn small(v: u32, max: u32) -> Result<u8, BitstreamError> {
    if v > max {
        Err(BitstreamError("SPS field out of range"))
    } else {
        Ok(v as u8)
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), BitstreamError> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + i64::from(r.se()?) + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Removes emulation-prevention bytes (`00 00 03` -> `00 00`).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<bool, BitstreamError> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(BitstreamError("SPS (truncated)"))?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32, BitstreamError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    /// Unsigned Exp-Golomb.
    fn ue(&mut self) -> Result<u32, BitstreamError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(BitstreamError("Exp-Golomb code"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed Exp-Golomb.
    fn se(&mut self) -> Result<i32, BitstreamError> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // x264's SPS for 1280x720 High@3.1 (taken from a real stream: `ffmpeg -f lavfi -i
    // testsrc2=size=1280x720 -c:v libx264 -profile:v high`); 720 = 45 MBs, no cropping.
    const SPS_720P: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    #[test]
    fn sps_720p_high() {
        let sps = Sps::parse(SPS_720P).unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!((sps.profile_idc, sps.level_idc), (100, 31));
        assert!(sps.is_player_friendly());
    }

    #[test]
    fn sps_1080p_main_is_cropped_from_1088() {
        // x264 Main@4.0, 1920x1088 coded with an 8-line bottom crop.
        let sps = Sps::parse(&[
            0x67, 0x4d, 0x40, 0x28, 0xec, 0xa0, 0x3c, 0x01, 0x13, 0xf2, 0xe0, 0x22, 0x00, 0x00,
            0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x78, 0x1e, 0x30, 0x63, 0x2c,
        ])
        .unwrap();
        assert_eq!(
            (sps.width, sps.height, sps.profile_idc, sps.level_idc),
            (1920, 1080, 77, 40)
        );
    }

    #[test]
    fn sps_rejects_garbage() {
        assert!(Sps::parse(&[0x67]).is_err());
        assert!(Sps::parse(&[0x68, 1, 2, 3]).is_err());
        assert!(Sps::parse(&[0x67, 0x64, 0, 0x1f, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn annexb_split_handles_3_and_4_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ];
        let nals = annexb_nals(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
    }

    #[test]
    fn avcc_round_trip() {
        let mut framed = Vec::new();
        write_avcc([&[0x65u8, 1, 2][..], &[0x06, 9][..]], &mut framed);
        assert_eq!(
            avcc_nals(&framed, 4).unwrap(),
            vec![&[0x65, 1, 2][..], &[0x06, 9][..]]
        );
        assert!(avcc_nals(&framed[..framed.len() - 1], 4).is_err());
        assert!(avcc_nals(&framed, 0).is_err());
    }

    #[test]
    fn avc_config_round_trip_and_codec_string() {
        let cfg = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS_720P)],
            vec![Bytes::from_static(PPS)],
        )
        .unwrap();
        let bytes = cfg.to_bytes();
        // High profile: 4 extension bytes after the PPS (4:2:0, 8-bit, no SPS ext).
        assert_eq!(&bytes[bytes.len() - 4..], &[0xfd, 0xf8, 0xf8, 0x00]);
        let parsed = AvcConfig::parse(&bytes).unwrap();
        assert_eq!(parsed, cfg);
        assert_eq!(parsed.codec_string(), "avc1.64001f");
        assert_eq!(
            annexb_nals(&parsed.annexb_parameter_sets()),
            vec![SPS_720P, PPS]
        );
        assert!(AvcConfig::parse(&bytes[..8]).is_err());
    }

    #[test]
    fn avc_config_refuses_three_byte_lengths_and_empty_parameter_sets() {
        let good = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS_720P)],
            vec![Bytes::from_static(PPS)],
        )
        .unwrap()
        .to_bytes();
        let mut three = good.to_vec();
        three[4] = 0xfe;
        assert!(AvcConfig::parse(&three).is_err());
        // One SPS of length 0, then one PPS.
        let empty_sps = [1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0, 1, 0, 1, 0x68];
        assert!(AvcConfig::parse(&empty_sps).is_err());
    }
}
