//! Ladder planning (pure): which renditions a stream gets, from the source size, the
//! stream's quality preset (the top rung) and its bitrate limit.
//!
//! Invariants of a planned [`Ladder`]:
//! - at least one video rung; rungs are ordered largest first and never larger than the
//!   source in either dimension (no upscaling);
//! - every rung keeps the source's aspect ratio (fitted into the preset's box, turned to
//!   the source's orientation) with even dimensions (4:2:0 chroma needs them);
//! - every rung's bitrate is `min(preset, limit)`; maxrate = bitrate, bufsize = 2 × bitrate;
//! - only the top rung can be a passthrough of the source, and only when
//!   [`Ladder::passthrough_eligible`] said so.

use std::fmt;
use std::str::FromStr;

use crate::media::{MediaEvent, NalFraming, Rendition};

use super::h264::{self, AvcConfig, Sps};

/// The audio rendition's bitrate (AAC-LC, 48 kHz stereo).
pub const AUDIO_KBPS: u32 = 128;

/// Longest keyframe interval a passthrough source may have: a segment cannot be shorter
/// than the source's GOP when its packets are forwarded untouched.
pub const PASSTHROUGH_MAX_KEYFRAME_INTERVAL_MS: u32 = 2000;

/// A stream's quality preset: the top rung of its ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QualityPreset {
    P360,
    P480,
    P720,
    P1080,
}

/// One preset's rung parameters (from the reference document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetSpec {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
    pub fps: u32,
}

impl QualityPreset {
    /// All presets, largest first.
    pub const ALL: [QualityPreset; 4] = [Self::P1080, Self::P720, Self::P480, Self::P360];

    pub fn spec(self) -> PresetSpec {
        match self {
            Self::P1080 => PresetSpec {
                name: "1080p",
                width: 1920,
                height: 1080,
                kbps: 3000,
                fps: 30,
            },
            Self::P720 => PresetSpec {
                name: "720p",
                width: 1280,
                height: 720,
                kbps: 1500,
                fps: 30,
            },
            Self::P480 => PresetSpec {
                name: "480p",
                width: 854,
                height: 480,
                kbps: 800,
                fps: 24,
            },
            Self::P360 => PresetSpec {
                name: "360p",
                width: 640,
                height: 360,
                kbps: 400,
                fps: 24,
            },
        }
    }
}

impl fmt::Display for QualityPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().name)
    }
}

/// An unknown preset name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quality preset {0:?} (expected 1080p, 720p, 480p or 360p)")]
pub struct UnknownPreset(pub String);

impl FromStr for QualityPreset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.spec().name == s)
            .ok_or_else(|| UnknownPreset(s.to_owned()))
    }
}

/// What is known about the source when deciding on passthrough. Unknown values make a
/// source ineligible: forwarding a stream we cannot vouch for would break the ladder's
/// promises (bitrate, segment length) to players.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SourceInfo {
    /// The video is H.264 that every player decodes (8-bit 4:2:0 Baseline/Main/High).
    pub h264: bool,
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
    pub video_kbps: Option<f64>,
    /// The longest interval between source keyframes seen so far.
    pub max_keyframe_interval_ms: Option<u32>,
}

impl SourceInfo {
    /// Codec and size from an avcC record; rate and GOP facts are left unknown.
    pub fn from_avcc(avcc: &[u8]) -> Option<Self> {
        let config = AvcConfig::parse(avcc).ok()?;
        let sps = Sps::parse(config.sps.first()?).ok()?;
        Some(Self {
            h264: sps.is_player_friendly(),
            width: sps.width,
            height: sps.height,
            ..Self::default()
        })
    }
}

/// Measures a live source for [`Ladder::passthrough_eligible`]: feed it the events of the
/// first seconds (it copies nothing but counters) and read [`SourceMeter::info`].
#[derive(Debug, Clone, Default)]
pub struct SourceMeter {
    codec: Option<(bool, u32, u32)>,
    frames: u64,
    bytes: u64,
    first_dts: Option<i64>,
    last_dts: i64,
    last_keyframe: Option<i64>,
    max_keyframe_interval: Option<i64>,
}

impl SourceMeter {
    pub fn observe(&mut self, event: &MediaEvent) {
        match event {
            MediaEvent::VideoConfig { avcc } => {
                if let Some(i) = SourceInfo::from_avcc(avcc) {
                    self.codec = Some((i.h264, i.width, i.height));
                }
            }
            MediaEvent::Video {
                pts_ms,
                dts_ms,
                keyframe,
                framing,
                data,
            } => {
                if *framing == NalFraming::AnnexB && *keyframe {
                    let sps = h264::annexb_nals(data)
                        .into_iter()
                        .find(|n| h264::nal_type(n) == h264::nal::SPS);
                    if let Some(sps) = sps.and_then(|n| Sps::parse(n).ok()) {
                        self.codec = Some((sps.is_player_friendly(), sps.width, sps.height));
                    }
                }
                self.frames += 1;
                self.bytes += data.len() as u64;
                self.first_dts.get_or_insert(*dts_ms);
                self.last_dts = *dts_ms;
                if *keyframe {
                    if let Some(last) = self.last_keyframe {
                        let gap = pts_ms - last;
                        self.max_keyframe_interval =
                            Some(self.max_keyframe_interval.map_or(gap, |m| m.max(gap)));
                    }
                    self.last_keyframe = Some(*pts_ms);
                }
            }
            _ => {}
        }
    }

    /// Codec and size, once a configuration or an in-band SPS (WebRTC sends parameter sets
    /// only with keyframes, never as a separate configuration) was seen.
    pub fn source(&self) -> Option<SourceInfo> {
        self.codec.map(|(h264, width, height)| SourceInfo {
            h264,
            width,
            height,
            ..SourceInfo::default()
        })
    }

    /// Milliseconds of video observed so far.
    pub fn observed_ms(&self) -> i64 {
        self.first_dts.map_or(0, |first| self.last_dts - first)
    }

    /// What was measured; rates need at least a second of video, the keyframe interval two
    /// keyframes (or an open interval already longer than the passthrough limit).
    pub fn info(&self) -> SourceInfo {
        let (h264, width, height) = self.codec.unwrap_or((false, 0, 0));
        let span = self.observed_ms();
        let measured = span >= 1000 && self.frames > 1;
        let open = self
            .last_keyframe
            .map(|k| self.last_dts - k)
            .filter(|&g| g > i64::from(PASSTHROUGH_MAX_KEYFRAME_INTERVAL_MS));
        let max_gap = match (self.max_keyframe_interval, open) {
            (Some(m), Some(o)) => Some(m.max(o)),
            (m, o) => m.or(o),
        };
        SourceInfo {
            h264,
            width,
            height,
            fps: measured.then(|| (self.frames - 1) as f64 * 1000.0 / span as f64),
            // Bytes of all frames over the span of all but the last frame: close enough
            // after a few seconds, slightly high (i.e. conservative) before.
            video_kbps: measured.then(|| self.bytes as f64 * 8.0 / span as f64),
            max_keyframe_interval_ms: max_gap.map(|g| u32::try_from(g.max(0)).unwrap_or(u32::MAX)),
        }
    }
}

/// The planned video rungs of one stream (the audio rendition is implied and always last).
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    rungs: Vec<Rendition>,
}

impl Ladder {
    /// Plans the ladder for a `source_width`×`source_height` source, topped by `preset`,
    /// every rung capped at `max_bitrate_kbps` (when given; 0 counts as 1).
    pub fn plan(
        source_width: u32,
        source_height: u32,
        preset: QualityPreset,
        max_bitrate_kbps: Option<u32>,
    ) -> Self {
        let (sw, sh) = (source_width.max(2), source_height.max(2));
        let cap = max_bitrate_kbps.map_or(u32::MAX, |k| k.max(1));
        let mut rungs: Vec<Rendition> = QualityPreset::ALL
            .into_iter()
            .filter(|p| *p <= preset)
            .filter_map(|p| {
                let spec = p.spec();
                let (w, h) = fit(sw, sh, spec.width, spec.height);
                (w <= sw && h <= sh)
                    .then(|| rendition(spec.name.to_owned(), w, h, spec.fps, spec.kbps.min(cap)))
            })
            .collect();
        rungs.dedup_by(|a, b| a.width == b.width && a.height == b.height);
        if rungs.is_empty() {
            // Smaller than the smallest preset: one rung at the source's own (even) size,
            // with the smallest preset's rate, named after its short side.
            let spec = QualityPreset::P360.spec();
            let (w, h) = (sw & !1, sh & !1);
            rungs.push(rendition(
                format!("{}p", w.min(h)),
                w,
                h,
                spec.fps,
                spec.kbps.min(cap),
            ));
        }
        Self { rungs }
    }

    /// A ladder from explicit rungs (tests, tools). Passthrough flags are kept as given.
    pub fn from_rungs(rungs: Vec<Rendition>) -> Self {
        Self { rungs }
    }

    /// The video rungs, largest first.
    pub fn rungs(&self) -> &[Rendition] {
        &self.rungs
    }

    /// Every rendition: the video rungs, then the audio rendition (index = rung count).
    pub fn renditions(&self) -> Vec<Rendition> {
        let mut all = self.rungs.clone();
        all.push(Rendition {
            name: "audio".to_owned(),
            width: 0,
            height: 0,
            fps: 0,
            video_kbps: 0,
            passthrough: false,
        });
        all
    }

    /// Index of the audio rendition.
    pub fn audio_index(&self) -> usize {
        self.rungs.len()
    }

    /// Whether the top rung can be the source passed through: H.264 that players decode,
    /// exactly the top rung's size, fps ≤ the rung's, a known bitrate ≤ the rung's, and
    /// keyframes at least every [`PASSTHROUGH_MAX_KEYFRAME_INTERVAL_MS`].
    pub fn passthrough_eligible(&self, source: &SourceInfo) -> bool {
        let Some(top) = self.rungs.first() else {
            return false;
        };
        source.h264
            && source.width == top.width
            && source.height == top.height
            // A little slack: 29.97 and measured 30.02 are "30".
            && source.fps.is_some_and(|f| f > 0.0 && f <= f64::from(top.fps) + 0.1)
            && source.video_kbps.is_some_and(|k| k > 0.0 && k <= f64::from(top.video_kbps))
            && source.max_keyframe_interval_ms.is_some_and(|i| i <= PASSTHROUGH_MAX_KEYFRAME_INTERVAL_MS)
    }

    /// Marks the top rung as passthrough (or not). The caller decides, normally from
    /// [`Ladder::passthrough_eligible`].
    pub fn with_passthrough(mut self, on: bool) -> Self {
        if let Some(top) = self.rungs.first_mut() {
            top.passthrough = on;
        }
        Self { rungs: self.rungs }
    }

    /// x264 VBV maxrate of a rung, in kbit/s.
    pub fn maxrate_kbps(rung: &Rendition) -> u32 {
        rung.video_kbps
    }

    /// x264 VBV buffer size of a rung, in kbit.
    pub fn bufsize_kbits(rung: &Rendition) -> u32 {
        rung.video_kbps.saturating_mul(2)
    }
}

fn rendition(name: String, width: u32, height: u32, fps: u32, kbps: u32) -> Rendition {
    Rendition {
        name,
        width,
        height,
        fps,
        video_kbps: kbps,
        passthrough: false,
    }
}

/// Fits `sw`×`sh` into the preset box (turned portrait for a portrait source), keeping the
/// aspect ratio, rounded to even dimensions.
fn fit(sw: u32, sh: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    let (bw, bh) = if sh > sw {
        (box_h, box_w)
    } else {
        (box_w, box_h)
    };
    let scale = (f64::from(bw) / f64::from(sw)).min(f64::from(bh) / f64::from(sh));
    let even = |v: f64, max: u32| (((v / 2.0).round() as u32) * 2).clamp(2, max);
    (
        even(f64::from(sw) * scale, bw),
        even(f64::from(sh) * scale, bh),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(l: &Ladder) -> Vec<(String, u32, u32, u32, u32)> {
        l.rungs()
            .iter()
            .map(|r| (r.name.clone(), r.width, r.height, r.fps, r.video_kbps))
            .collect()
    }

    fn s(name: &str, w: u32, h: u32, fps: u32, kbps: u32) -> (String, u32, u32, u32, u32) {
        (name.to_owned(), w, h, fps, kbps)
    }

    #[test]
    fn full_ladder_for_1080p_source() {
        let l = Ladder::plan(1920, 1080, QualityPreset::P1080, None);
        assert_eq!(
            sizes(&l),
            vec![
                s("1080p", 1920, 1080, 30, 3000),
                s("720p", 1280, 720, 30, 1500),
                s("480p", 854, 480, 24, 800),
                s("360p", 640, 360, 24, 400),
            ]
        );
        assert_eq!(l.audio_index(), 4);
        assert_eq!(l.renditions()[4].name, "audio");
        assert_eq!(
            (
                Ladder::maxrate_kbps(&l.rungs()[1]),
                Ladder::bufsize_kbits(&l.rungs()[1])
            ),
            (1500, 3000)
        );
    }

    #[test]
    fn preset_caps_the_top() {
        let l = Ladder::plan(1920, 1080, QualityPreset::P720, None);
        assert_eq!(
            l.rungs()
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["720p", "480p", "360p"]
        );
    }

    #[test]
    fn never_upscales() {
        let l = Ladder::plan(640, 360, QualityPreset::P1080, None);
        assert_eq!(sizes(&l), vec![s("360p", 640, 360, 24, 400)]);
        let l = Ladder::plan(1280, 720, QualityPreset::P1080, None);
        assert_eq!(l.rungs()[0].name, "720p");
        assert_eq!(l.rungs().len(), 3);
    }

    #[test]
    fn bitrate_limit_caps_every_rung() {
        let l = Ladder::plan(1920, 1080, QualityPreset::P1080, Some(1000));
        assert_eq!(
            l.rungs().iter().map(|r| r.video_kbps).collect::<Vec<_>>(),
            [1000, 1000, 800, 400]
        );
        assert_eq!(Ladder::bufsize_kbits(&l.rungs()[0]), 2000);
    }

    #[test]
    fn four_by_three_keeps_aspect_with_even_sizes() {
        let l = Ladder::plan(1440, 1080, QualityPreset::P1080, None);
        let dims: Vec<_> = l.rungs().iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(dims, [(1440, 1080), (960, 720), (640, 480), (480, 360)]);
        let l = Ladder::plan(640, 480, QualityPreset::P1080, None);
        let dims: Vec<_> = l.rungs().iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(dims, [(640, 480), (480, 360)]);
    }

    #[test]
    fn portrait_and_odd_sources() {
        let l = Ladder::plan(1080, 1920, QualityPreset::P1080, None);
        assert_eq!((l.rungs()[0].width, l.rungs()[0].height), (1080, 1920));
        assert_eq!((l.rungs()[1].width, l.rungs()[1].height), (720, 1280));
        let l = Ladder::plan(1366, 768, QualityPreset::P1080, None);
        assert_eq!(
            (
                l.rungs()[0].name.as_str(),
                l.rungs()[0].width,
                l.rungs()[0].height
            ),
            ("720p", 1280, 720)
        );
        for r in l.rungs() {
            assert!(r.width % 2 == 0 && r.height % 2 == 0);
        }
    }

    #[test]
    fn tiny_source_gets_one_rung_at_its_size() {
        let l = Ladder::plan(321, 241, QualityPreset::P1080, Some(300));
        assert_eq!(sizes(&l), vec![s("240p", 320, 240, 24, 300)]);
    }

    #[test]
    fn preset_names_parse() {
        assert_eq!("720p".parse::<QualityPreset>(), Ok(QualityPreset::P720));
        assert!("4k".parse::<QualityPreset>().is_err());
        assert_eq!(QualityPreset::P1080.to_string(), "1080p");
    }

    fn good_source() -> SourceInfo {
        SourceInfo {
            h264: true,
            width: 1920,
            height: 1080,
            fps: Some(30.0),
            video_kbps: Some(2800.0),
            max_keyframe_interval_ms: Some(2000),
        }
    }

    #[test]
    fn passthrough_needs_every_condition() {
        let l = Ladder::plan(1920, 1080, QualityPreset::P1080, None);
        assert!(l.passthrough_eligible(&good_source()));
        let bad = [
            SourceInfo {
                h264: false,
                ..good_source()
            },
            SourceInfo {
                width: 1280,
                height: 720,
                ..good_source()
            },
            SourceInfo {
                fps: Some(60.0),
                ..good_source()
            },
            SourceInfo {
                fps: None,
                ..good_source()
            },
            SourceInfo {
                video_kbps: Some(3500.0),
                ..good_source()
            },
            SourceInfo {
                video_kbps: None,
                ..good_source()
            },
            SourceInfo {
                max_keyframe_interval_ms: Some(4000),
                ..good_source()
            },
            SourceInfo {
                max_keyframe_interval_ms: None,
                ..good_source()
            },
        ];
        for source in bad {
            assert!(!l.passthrough_eligible(&source), "{source:?}");
        }
        // The bitrate limit lowers the top rung's rate and so the bar.
        let capped = Ladder::plan(1920, 1080, QualityPreset::P1080, Some(2500));
        assert!(!capped.passthrough_eligible(&good_source()));
        let on = l.with_passthrough(true);
        assert!(on.rungs()[0].passthrough && !on.rungs()[1].passthrough);
    }

    #[test]
    fn meter_measures_rate_size_and_gop() {
        let sps = AvcConfig::from_parameter_sets(
            vec![bytes::Bytes::from_static(&[
                0x67, 0x4d, 0x40, 0x28, 0xec, 0xa0, 0x3c, 0x01, 0x13, 0xf2, 0xe0, 0x22, 0x00, 0x00,
                0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x78, 0x1e, 0x30, 0x63, 0x2c,
            ])],
            vec![bytes::Bytes::from_static(&[0x68, 0xef, 0x8f, 0xcb])],
        )
        .unwrap();
        let mut m = SourceMeter::default();
        m.observe(&MediaEvent::VideoConfig {
            avcc: sps.to_bytes(),
        });
        assert_eq!(m.info().fps, None);
        // 4 s at 30 fps, 10 kB per frame (2.4 Mbit/s), a keyframe every 60 frames.
        for i in 0..120i64 {
            let t = i * 1000 / 30;
            m.observe(&MediaEvent::Video {
                pts_ms: t,
                dts_ms: t,
                keyframe: i % 60 == 0,
                framing: NalFraming::Avcc,
                data: bytes::Bytes::from(vec![0u8; 10_000]),
            });
        }
        let info = m.info();
        assert!(info.h264 && info.width == 1920 && info.height == 1080);
        assert!((info.fps.unwrap() - 30.0).abs() < 0.2, "{info:?}");
        assert!((info.video_kbps.unwrap() - 2420.0).abs() < 30.0, "{info:?}");
        assert_eq!(info.max_keyframe_interval_ms, Some(2000));
        assert!(Ladder::plan(1920, 1080, QualityPreset::P1080, None).passthrough_eligible(&info));
    }

    #[test]
    fn source_info_from_avcc() {
        let sps = bytes::Bytes::from_static(&[
            0x67, 0x4d, 0x40, 0x28, 0xec, 0xa0, 0x3c, 0x01, 0x13, 0xf2, 0xe0, 0x22, 0x00, 0x00,
            0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x78, 0x1e, 0x30, 0x63, 0x2c,
        ]);
        let pps = bytes::Bytes::from_static(&[0x68, 0xef, 0x8f, 0xcb]);
        let avcc = AvcConfig::from_parameter_sets(vec![sps], vec![pps])
            .unwrap()
            .to_bytes();
        let info = SourceInfo::from_avcc(&avcc).unwrap();
        assert!(info.h264);
        assert_eq!((info.width, info.height, info.fps), (1920, 1080, None));
        assert!(SourceInfo::from_avcc(&[1, 2, 3]).is_none());
    }
}
