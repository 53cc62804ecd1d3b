//! One thread per encoded rung: scale (swscale) -> libx264 -> length-prefixed packets.
//!
//! Invariants:
//! - a boundary picture (`pict_type = I`) becomes an IDR (`forced-idr=1`, `scenecut=0`) and
//!   is the only packet marked `keyframe`;
//! - x264 gets strictly increasing pts; decode timestamps handed on strictly increase, also
//!   across an encoder reopened for a governor level (same B-frame delay at every level, and
//!   clamped if a reopen ever produced an overlap);
//! - a governor level applies from the boundary picture that follows it, so a segment is
//!   encoded with one setting throughout; its parameter sets stay those of level 0
//!   ([`crate::governor`]); should they ever differ they are repeated in band.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

use bytes::Bytes;
use ffmpeg_next::{
    Dictionary, Packet, Rational, codec, encoder, format, frame, picture, software::scaling,
};

use super::h264::{self, AvcConfig, nal};
use super::ladder::Ladder;
use super::options::CodecParams;
use super::transcoder::video_params;
use crate::governor;
use crate::media::{EncodedPacket, Rendition};

/// From the rung threads to the transcoder.
pub(super) enum Out {
    Packet(EncodedPacket),
    Params(usize, CodecParams),
    Error(usize, String),
}

/// To a rung thread.
pub(super) enum Msg {
    /// A picture (source or parent rung's) and the set of rungs (bits) that keep it.
    Frame(Arc<frame::Video>, u64),
    /// A governor level, sent right before the boundary picture it applies from.
    Level(u8),
    Flush,
}

/// Holds one packet back so its duration is the next packet's dts minus its own.
#[derive(Debug)]
pub(super) struct Timer {
    pending: Option<EncodedPacket>,
    last_duration: i64,
}

impl Timer {
    pub(super) fn new(nominal_ms: i64) -> Self {
        Self {
            pending: None,
            last_duration: nominal_ms.max(1),
        }
    }

    pub(super) fn push(&mut self, next: EncodedPacket) -> Option<EncodedPacket> {
        let done = self.pending.take().map(|mut p| {
            let d = next.dts_ms - p.dts_ms;
            if d > 0 {
                self.last_duration = d;
            }
            p.duration_ms = self.last_duration;
            p
        });
        self.pending = Some(next);
        done
    }

    pub(super) fn flush(&mut self) -> Option<EncodedPacket> {
        self.pending.take().map(|mut p| {
            p.duration_ms = self.last_duration;
            p
        })
    }
}

/// Keeps frames on an even grid of `1000/fps` ms, re-anchored at every segment boundary.
#[derive(Debug)]
pub(super) struct FpsGate {
    fps: u32,
    period: f64,
    next_due: Option<f64>,
}

impl FpsGate {
    pub(super) fn new(fps: u32) -> Self {
        Self {
            fps,
            period: 1000.0 / f64::from(fps.max(1)),
            next_due: None,
        }
    }

    pub(super) fn fps(&self) -> u32 {
        self.fps
    }

    pub(super) fn keep(&mut self, pts: i64, boundary: bool) -> bool {
        let t = pts as f64;
        // A quarter period of slack absorbs ms rounding and capture jitter without
        // dropping frames of a source that already runs at the rung's rate.
        let keep = boundary || self.next_due.is_none_or(|due| t >= due - self.period / 4.0);
        if keep {
            let base = match self.next_due {
                Some(due) if !boundary && t - due < self.period => due,
                _ => t,
            };
            self.next_due = Some(base + self.period);
        }
        keep
    }
}

/// What a rung thread needs to know.
pub(super) struct RungSpec {
    pub(super) index: usize,
    pub(super) rung: Rendition,
    pub(super) threads: usize,
    /// x264 preset at level 0 (`veryfast` unless a benchmark chose another).
    pub(super) preset: String,
    pub(super) zerolatency: bool,
    pub(super) rc_lookahead: u32,
    pub(super) sliced_threads: bool,
    pub(super) x264_params: Option<String>,
    pub(super) keyint: u32,
    /// Rungs after this one in the cascade (bits).
    pub(super) downstream: u64,
    /// Governor level the encoder is opened at.
    pub(super) level: u8,
}

pub(super) fn rung_thread(
    spec: RungSpec,
    rx: Receiver<Msg>,
    child: Option<SyncSender<Msg>>,
    out: Sender<Out>,
) {
    let index = spec.index;
    let result = RungEncoder::open(spec, out.clone()).and_then(|mut enc| {
        loop {
            match rx.recv() {
                Ok(Msg::Frame(picture, mask)) => enc.process(&picture, mask, child.as_ref())?,
                Ok(Msg::Level(level)) => {
                    if let Some(child) = &child {
                        let _ = child.send(Msg::Level(level));
                    }
                    enc.set_level(level)?;
                }
                Ok(Msg::Flush) | Err(_) => break,
            }
        }
        enc.flush()
    });
    if let Err(message) = result {
        let _ = out.send(Out::Error(index, message));
    }
    if let Some(child) = child {
        let _ = child.send(Msg::Flush);
    }
}

/// One rung: scaler + x264 + output framing, on its own thread.
struct RungEncoder {
    spec: RungSpec,
    encoder: encoder::Video,
    scaler: Option<(ScalerKey, scaling::Context)>,
    timer: Timer,
    boundaries: BTreeSet<i64>,
    config: Option<AvcConfig>,
    /// The parameter sets changed (an encoder reopened): repeat them in band once.
    inband_params: bool,
    last_pts: Option<i64>,
    last_dts: Option<i64>,
    out: Sender<Out>,
}

/// Source format and size, and whether the governor asked for the fast scaler.
type ScalerKey = (format::Pixel, u32, u32, bool);

/// Opens libx264 for `spec` at its level.
fn open_x264(spec: &RungSpec) -> Result<encoder::Video, String> {
    let codec = encoder::find_by_name("libx264").ok_or("FFmpeg has no libx264")?;
    let mut ctx = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    let r = &spec.rung;
    let bps = usize::try_from(r.video_kbps)
        .unwrap_or(usize::MAX)
        .saturating_mul(1000);
    ctx.set_width(r.width);
    ctx.set_height(r.height);
    ctx.set_format(format::Pixel::YUV420P);
    ctx.set_time_base(Rational::new(1, 1000));
    // The nominal rate at every level: it is written in the SPS (timing info), and a level
    // that halves the frame rate must not change the parameter sets.
    ctx.set_frame_rate(Some(Rational::new(
        i32::try_from(r.fps.max(1)).unwrap_or(30),
        1,
    )));
    ctx.set_bit_rate(bps);
    ctx.set_max_bit_rate(bps);
    ctx.set_gop(spec.keyint);
    let level = governor::rung_level(spec.level, spec.index);
    let mut opts = Dictionary::new();
    opts.set(
        "preset",
        if level.speed == governor::Speed::Veryfast {
            &spec.preset
        } else {
            level.preset()
        },
    );
    if spec.zerolatency {
        opts.set("tune", "zerolatency");
    }
    opts.set("profile", "high");
    opts.set(
        "bufsize",
        &(u64::from(Ladder::bufsize_kbits(r)) * 1000).to_string(),
    );
    opts.set("threads", &spec.threads.to_string());
    // Our pict_type=I becomes an IDR; no scene-cut keyframes between boundaries.
    opts.set("forced-idr", "1");
    let mut params = String::from("scenecut=0");
    if !spec.zerolatency {
        params.push_str(&format!(":rc-lookahead={}", spec.rc_lookahead));
    }
    if spec.sliced_threads && spec.threads > 1 {
        params.push_str(":sliced-threads=1");
    }
    let overrides = level.x264_overrides();
    if !overrides.is_empty() {
        params.push(':');
        params.push_str(overrides);
    }
    // The operator's parameters come last and win, at every level alike (so they keep the
    // parameter sets constant too).
    if let Some(extra) = spec.x264_params.as_deref().filter(|p| !p.is_empty()) {
        params.push(':');
        params.push_str(extra);
    }
    opts.set("x264-params", &params);
    ctx.open_with(opts)
        .map_err(|e| format!("opening libx264 for {}: {e}", r.name))
}

impl RungEncoder {
    fn open(spec: RungSpec, out: Sender<Out>) -> Result<Self, String> {
        let encoder = open_x264(&spec)?;
        let nominal = 1000 / i64::from(spec.rung.fps.max(1));
        Ok(Self {
            spec,
            encoder,
            scaler: None,
            timer: Timer::new(nominal),
            boundaries: BTreeSet::new(),
            config: None,
            inband_params: false,
            last_pts: None,
            last_dts: None,
            out,
        })
    }

    /// Switches to a governor level: the current encoder is drained (its last packets
    /// complete the segment before the boundary that follows) and a new one opened. Sent
    /// right before a boundary picture, so the new encoder starts with an IDR.
    fn set_level(&mut self, level: u8) -> Result<(), String> {
        if level == self.spec.level {
            return Ok(());
        }
        let before = governor::rung_level(self.spec.level, self.spec.index);
        let after = governor::rung_level(level, self.spec.index);
        self.spec.level = level;
        if (before.speed, before.fast_scaler) == (after.speed, after.fast_scaler) {
            // Only the frame rate changes, which the transcoder's gates do.
            return Ok(());
        }
        if before.speed != after.speed {
            self.encoder
                .send_eof()
                .map_err(|e| format!("x264 flush: {e}"))?;
            self.drain()?;
            self.encoder = open_x264(&self.spec)?;
        }
        Ok(())
    }

    fn process(
        &mut self,
        picture: &Arc<frame::Video>,
        mask: u64,
        child: Option<&SyncSender<Msg>>,
    ) -> Result<(), String> {
        let mine = mask & (1 << self.spec.index) != 0;
        let down = child.is_some() && mask & self.spec.downstream != 0;
        if !mine && !down {
            return Ok(());
        }
        let scaled = self.scale(picture)?;
        if mine {
            self.encode(&scaled)?;
        }
        if down && let Some(child) = child {
            child
                .send(Msg::Frame(scaled, mask))
                .map_err(|_| "the next rung's thread stopped".to_owned())?;
        }
        Ok(())
    }

    fn scale(&mut self, src: &Arc<frame::Video>) -> Result<Arc<frame::Video>, String> {
        let (w, h) = (self.spec.rung.width, self.spec.rung.height);
        if src.width() == w && src.height() == h && src.format() == format::Pixel::YUV420P {
            return Ok(src.clone());
        }
        let fast = governor::rung_level(self.spec.level, self.spec.index).fast_scaler;
        let key = (src.format(), src.width(), src.height(), fast);
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            // Bicubic: what the ffmpeg CLI's scale filter uses, so quality compares 1:1; the
            // governor's cheaper levels take fast bilinear.
            let flags = if fast {
                scaling::Flags::FAST_BILINEAR
            } else {
                scaling::Flags::BICUBIC
            };
            let ctx =
                scaling::Context::get(key.0, key.1, key.2, format::Pixel::YUV420P, w, h, flags)
                    .map_err(|e| format!("swscale {}x{} -> {w}x{h}: {e}", key.1, key.2))?;
            self.scaler = Some((key, ctx));
        }
        // A fresh picture each time: it may be shared with the next rung's thread.
        let mut dst = frame::Video::new(format::Pixel::YUV420P, w, h);
        if let Some((_, ctx)) = self.scaler.as_mut() {
            ctx.run(src, &mut dst)
                .map_err(|e| format!("swscale: {e}"))?;
        }
        dst.set_pts(src.pts());
        dst.set_kind(src.kind());
        Ok(Arc::new(dst))
    }

    fn encode(&mut self, picture: &frame::Video) -> Result<(), String> {
        let pts = picture.pts().unwrap_or(0);
        if self.last_pts.is_some_and(|last| pts <= last) {
            return Ok(());
        }
        self.last_pts = Some(pts);
        if picture.kind() == picture::Type::I {
            self.boundaries.insert(pts);
        }
        self.encoder
            .send_frame(picture)
            .map_err(|e| format!("x264: {e}"))?;
        self.drain()
    }

    fn flush(mut self) -> Result<(), String> {
        self.encoder
            .send_eof()
            .map_err(|e| format!("x264 flush: {e}"))?;
        self.drain()?;
        if let Some(p) = self.timer.flush() {
            let _ = self.out.send(Out::Packet(p));
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), String> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            self.on_packet(&packet)?;
        }
        Ok(())
    }

    fn on_packet(&mut self, packet: &Packet) -> Result<(), String> {
        let data = packet.data().unwrap_or(&[]);
        let nals = h264::annexb_nals(data);
        let mut sps = Vec::new();
        let mut pps = Vec::new();
        let mut body = Vec::with_capacity(data.len());
        for unit in nals {
            match h264::nal_type(unit) {
                nal::SPS => sps.push(Bytes::copy_from_slice(unit)),
                nal::PPS => pps.push(Bytes::copy_from_slice(unit)),
                nal::AUD => {}
                _ => h264::write_avcc([unit], &mut body),
            }
        }
        if !sps.is_empty() && !pps.is_empty() {
            let config = AvcConfig::from_parameter_sets(sps, pps).map_err(|e| e.to_string())?;
            if self.config.as_ref() != Some(&config) {
                if self.config.is_some() {
                    // The levels are built so that this does not happen; should x264 ever
                    // disagree, players that read the init segment once still decode.
                    tracing::warn!(
                        rendition = self.spec.index,
                        level = self.spec.level,
                        "parameter sets changed mid-stream; repeated in band"
                    );
                    self.inband_params = true;
                }
                let params =
                    video_params(&config, self.spec.rung.video_kbps).map_err(|e| e.to_string())?;
                let _ = self.out.send(Out::Params(self.spec.index, params));
                self.config = Some(config);
            }
        }
        let pts = packet.pts().unwrap_or(0);
        let mut dts = packet.dts().unwrap_or(pts);
        // Decode order must survive an encoder reopened at a level change.
        if let Some(last) = self.last_dts
            && dts <= last
        {
            dts = (last + 1).min(pts);
        }
        self.last_dts = Some(dts);
        let keyframe = packet.is_key() && self.boundaries.remove(&pts);
        self.boundaries.retain(|&b| b >= dts);
        if keyframe
            && std::mem::take(&mut self.inband_params)
            && let Some(config) = &self.config
        {
            let mut with_params = Vec::with_capacity(body.len() + 128);
            h264::write_avcc(
                config.sps.iter().chain(&config.pps).map(|b| b.as_ref()),
                &mut with_params,
            );
            with_params.extend_from_slice(&body);
            body = with_params;
        }
        let p = EncodedPacket {
            rendition: self.spec.index,
            pts_ms: pts,
            dts_ms: dts,
            duration_ms: 0,
            keyframe,
            data: Bytes::from(body),
        };
        if let Some(done) = self.timer.push(p) {
            let _ = self.out.send(Out::Packet(done));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::default_x264_threads;

    fn kept(gate: &mut FpsGate, pts: &[i64], boundary_every: usize) -> Vec<i64> {
        pts.iter()
            .enumerate()
            .filter(|(i, p)| gate.keep(**p, boundary_every > 0 && i % boundary_every == 0))
            .map(|(_, p)| *p)
            .collect()
    }

    fn frames(fps: f64, n: usize) -> Vec<i64> {
        (0..n)
            .map(|i| (i as f64 * 1000.0 / fps).round() as i64)
            .collect()
    }

    #[test]
    fn thirty_to_twenty_four_drops_one_frame_in_five_evenly() {
        let src = frames(30.0, 60);
        let out = kept(&mut FpsGate::new(24), &src, 60);
        assert_eq!(out.len(), 48);
        let gaps: Vec<i64> = out.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| (33..=67).contains(g)), "{gaps:?}");
        // Every 5-frame group loses exactly one frame.
        for group in src.chunks(5) {
            assert_eq!(group.iter().filter(|p| out.contains(p)).count(), 4);
        }
    }

    #[test]
    fn boundaries_are_always_kept_and_re_anchor_the_pattern() {
        let src = frames(30.0, 120);
        let out = kept(&mut FpsGate::new(24), &src, 60);
        assert!(out.contains(&src[60]));
        // Both 2 s segments get the same pattern.
        let first: Vec<i64> = out.iter().filter(|&&p| p < 2000).copied().collect();
        let second: Vec<i64> = out
            .iter()
            .filter(|&&p| p >= 2000)
            .map(|p| p - 2000)
            .collect();
        assert_eq!(first, second);
    }

    #[test]
    fn same_rate_keeps_everything_even_with_jitter() {
        let jittery: Vec<i64> = frames(30.0, 90)
            .iter()
            .enumerate()
            .map(|(i, p)| p + [0, 6, -5][i % 3])
            .collect();
        assert_eq!(kept(&mut FpsGate::new(30), &jittery, 0).len(), 90);
        assert_eq!(
            kept(&mut FpsGate::new(30), &frames(25.0, 50), 0).len(),
            50,
            "never duplicates or drops below the rate"
        );
    }

    #[test]
    fn sixty_to_thirty_keeps_every_other_frame() {
        let out = kept(&mut FpsGate::new(30), &frames(60.0, 120), 0);
        assert_eq!(out.len(), 60);
    }

    #[test]
    fn timer_gives_each_packet_the_gap_to_the_next() {
        let p = |dts| EncodedPacket {
            rendition: 0,
            pts_ms: dts,
            dts_ms: dts,
            duration_ms: 0,
            keyframe: false,
            data: Bytes::new(),
        };
        let mut t = Timer::new(33);
        assert!(t.push(p(0)).is_none());
        assert_eq!(t.push(p(40)).map(|x| x.duration_ms), Some(40));
        assert_eq!(
            t.push(p(40)).map(|x| x.duration_ms),
            Some(40),
            "a zero gap keeps the last duration"
        );
        assert_eq!(t.flush().map(|x| x.duration_ms), Some(40));
    }

    #[test]
    fn default_threads_favour_the_top_rung() {
        let ladder = Ladder::plan(1920, 1080, super::super::QualityPreset::P1080, None);
        assert_eq!(default_x264_threads(ladder.rungs(), 2), vec![2, 1, 1, 1]);
        assert_eq!(default_x264_threads(&ladder.rungs()[3..], 2), vec![2]);
    }
}
