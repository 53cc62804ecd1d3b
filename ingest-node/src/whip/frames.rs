//! Pure per-session media logic, kept apart from the I/O so it can be tested frame by frame:
//! the RTP-time → milliseconds timeline, and the H.264 keyframe gate.
//!
//! ## Timeline
//!
//! RTP timestamps start at a random value per track and run at the codec clock (90 kHz for
//! video, 48 kHz for Opus). Each track is anchored at the *arrival* of its first frame:
//! `ms = (arrival(first frame of the track) - arrival(first frame of the session))
//!       + (rtp - rtp(first frame of the track)) / clock`.
//! So the session starts near 0, both tracks share one timeline, and the frames of a track
//! keep the exact spacing the sender stamped (no arrival jitter inside a track).
//!
//! The cost is that lip sync is only as good as the arrival of the first packet of each
//! track (typically within a few tens of ms: a keyframe is several packets, audio is one).
//! RTCP sender reports would give the exact NTP↔RTP mapping, but they arrive about a second
//! after the first frames, when timestamps have already been handed out and cannot move.
//!
//! ## Keyframe gate
//!
//! Browsers put SPS/PPS only in front of keyframes. A decoder that starts on a delta frame,
//! or continues after lost packets, produces garbage until the next IDR. So video is held
//! back until a keyframe whose parameter sets are known, and again after every
//! discontinuity; each time the gate closes it asks for a keyframe (PLI), rate-limited so
//! that heavy loss does not turn into a keyframe storm. NAL units are found with the crate's
//! one H.264 parser ([`crate::bitstream::h264`]).

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::bitstream::h264::{annexb_nals, nal, nal_type};

/// Minimum spacing of keyframe requests for one track.
pub(crate) const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(250);

const START_CODE: [u8; 4] = [0, 0, 0, 1];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    Video = 0,
    Audio = 1,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    first_rtp: u64,
    clock: u64,
    offset_ms: i64,
}

/// Maps (extended) RTP time to milliseconds on the session's timeline. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    origin: Option<Instant>,
    anchors: [Option<Anchor>; 2],
}

impl Timeline {
    /// `rtp` is str0m's 64-bit extended RTP time (no wrap-around), `clock` its rate in Hz,
    /// `arrival` when the first packet of this frame arrived.
    pub(crate) fn timestamp_ms(
        &mut self,
        track: Track,
        rtp: u64,
        clock: u32,
        arrival: Instant,
    ) -> i64 {
        let origin = *self.origin.get_or_insert(arrival);
        let anchor = *self.anchors[track as usize].get_or_insert_with(|| Anchor {
            first_rtp: rtp,
            clock: u64::from(clock.max(1)),
            offset_ms: i64::try_from(arrival.saturating_duration_since(origin).as_millis())
                .unwrap_or(i64::MAX / 2),
        });
        // i128: the difference of two u64 times, times 1000, cannot overflow it.
        let delta = i128::from(rtp) - i128::from(anchor.first_rtp);
        let ms = (delta * 1000).div_euclid(i128::from(anchor.clock));
        anchor.offset_ms + i64::try_from(ms).unwrap_or(0)
    }
}

/// What is inside one access unit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccessUnit {
    /// Contains an IDR slice.
    pub idr: bool,
    /// Contains any coded slice (types 1-5): something a decoder turns into a picture.
    pub vcl: bool,
    pub sps: bool,
    pub pps: bool,
}

impl AccessUnit {
    pub(crate) fn scan(data: &[u8]) -> AccessUnit {
        let mut au = AccessUnit::default();
        for nal in annexb_nals(data) {
            match nal_type(nal) {
                nal::IDR => {
                    au.idr = true;
                    au.vcl = true;
                }
                1..=4 => au.vcl = true,
                nal::SPS => au.sps = true,
                nal::PPS => au.pps = true,
                _ => {}
            }
        }
        au
    }
}

/// What to do with one depacketized video frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GateOutput {
    /// The frame to hand on (Annex B, parameter sets prepended to keyframes that lacked
    /// them) and whether it is a keyframe. `None`: drop it.
    pub emit: Option<(Bytes, bool)>,
    /// Send a keyframe request (PLI) now.
    pub request_keyframe: bool,
}

/// Holds video back until a decodable keyframe. See the module docs.
#[derive(Debug)]
pub(crate) struct VideoGate {
    waiting: bool,
    started: bool,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    last_request: Option<Instant>,
}

impl Default for VideoGate {
    fn default() -> Self {
        VideoGate {
            waiting: true,
            started: false,
            sps: None,
            pps: None,
            last_request: None,
        }
    }
}

impl VideoGate {
    /// Feeds one frame as str0m delivered it (`contiguous == false`: packets before it were
    /// lost for good).
    pub(crate) fn on_frame(&mut self, data: &[u8], contiguous: bool, now: Instant) -> GateOutput {
        let first = !self.started;
        self.started = true;
        let au = AccessUnit::scan(data);
        if au.sps || au.pps {
            for unit in annexb_nals(data) {
                match nal_type(unit) {
                    nal::SPS => self.sps = Some(Bytes::copy_from_slice(unit)),
                    nal::PPS => self.pps = Some(Bytes::copy_from_slice(unit)),
                    _ => {}
                }
            }
        }
        let decodable_key = au.idr && self.sps.is_some() && self.pps.is_some();
        let mut out = GateOutput::default();
        if !contiguous && !first && !decodable_key {
            // References are missing: what follows would decode as garbage.
            self.waiting = true;
        }
        if !au.vcl {
            // Parameter sets (kept above) or SEI alone: nothing a decoder shows.
            return out;
        }
        if decodable_key {
            self.waiting = false;
            let data = if au.sps && au.pps {
                Bytes::copy_from_slice(data)
            } else {
                self.with_parameter_sets(data, au)
            };
            out.emit = Some((data, true));
            return out;
        }
        if self.waiting {
            // On start this is the "request a keyframe as soon as the track starts" of
            // PITFALLS; it is skipped only when the very first frame is already usable.
            out.request_keyframe = self.may_request(now);
            return out;
        }
        out.emit = Some((Bytes::copy_from_slice(data), false));
        out
    }

    /// Closes the gate from outside (a frame had to be dropped downstream), so that video
    /// resumes on a keyframe. Returns whether to request one now.
    pub(crate) fn force_wait(&mut self, now: Instant) -> bool {
        self.waiting = true;
        self.may_request(now)
    }

    #[cfg(test)]
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting
    }

    fn may_request(&mut self, now: Instant) -> bool {
        let due = self
            .last_request
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        if due {
            self.last_request = Some(now);
        }
        due
    }

    /// A keyframe whose SPS/PPS came earlier (their own access unit, or a previous
    /// keyframe): put the known ones in front so every emitted keyframe stands alone.
    fn with_parameter_sets(&self, data: &[u8], au: AccessUnit) -> Bytes {
        let mut out = BytesMut::with_capacity(data.len() + 64);
        if !au.sps
            && let Some(sps) = &self.sps
        {
            out.put_slice(&START_CODE);
            out.put_slice(sps);
        }
        if !au.pps
            && let Some(pps) = &self.pps
        {
            out.put_slice(&START_CODE);
            out.put_slice(pps);
        }
        out.put_slice(data);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&START_CODE);
            v.extend_from_slice(n);
        }
        v
    }

    const SPS: &[u8] = &[0x67, 0x42, 0xe0, 0x1f, 0x8d];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x21];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    #[test]
    fn nal_units_split_on_3_and_4_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9,
        ];
        let nals = annexb_nals(&data);
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 9][..]]
        );
        assert!(annexb_nals(&[]).is_empty());
        assert!(annexb_nals(&[0, 0, 1]).is_empty());
        let scan = AccessUnit::scan(&data);
        assert!(scan.idr && scan.vcl && scan.sps && scan.pps);
    }

    #[test]
    fn timeline_starts_at_zero_and_keeps_tracks_on_one_clock() {
        let t0 = Instant::now();
        let mut tl = Timeline::default();
        // Audio arrives first with a random RTP base, video 40 ms later.
        assert_eq!(tl.timestamp_ms(Track::Audio, 1_000_000, 48_000, t0), 0);
        assert_eq!(tl.timestamp_ms(Track::Audio, 1_000_960, 48_000, t0), 20);
        let tv = t0 + Duration::from_millis(40);
        assert_eq!(tl.timestamp_ms(Track::Video, 3_000_000_000, 90_000, tv), 40);
        // 33.3 ms later at 90 kHz, whatever the arrival jitter.
        let late = tv + Duration::from_millis(90);
        assert_eq!(
            tl.timestamp_ms(Track::Video, 3_000_003_000, 90_000, late),
            73
        );
        // Past the 32-bit wrap: str0m's extended time keeps counting.
        assert_eq!(
            tl.timestamp_ms(Track::Video, 3_000_000_000 + (1 << 32), 90_000, late),
            40 + ((1u64 << 32) * 1000 / 90_000) as i64
        );
        // A reordered earlier frame gets an earlier time, not a huge one.
        assert_eq!(tl.timestamp_ms(Track::Audio, 999_040, 48_000, late), -20);
    }

    #[test]
    fn video_is_held_until_a_keyframe_with_parameter_sets() {
        let now = Instant::now();
        let mut gate = VideoGate::default();
        // Starting on a delta frame: dropped, keyframe requested.
        let out = gate.on_frame(&au(&[P]), true, now);
        assert_eq!(out.emit, None);
        assert!(out.request_keyframe);
        // Again within the interval: dropped, no new request.
        let out = gate.on_frame(&au(&[P]), true, now + Duration::from_millis(10));
        assert_eq!(out, GateOutput::default());
        // An IDR without SPS/PPS ever seen is not decodable either.
        let out = gate.on_frame(&au(&[IDR]), true, now + Duration::from_millis(300));
        assert_eq!(out.emit, None);
        assert!(out.request_keyframe);
        // The real keyframe opens the gate, and deltas follow.
        let key = au(&[SPS, PPS, IDR]);
        let out = gate.on_frame(&key, true, now + Duration::from_millis(400));
        assert_eq!(out.emit, Some((Bytes::from(key), true)));
        assert!(!out.request_keyframe);
        let out = gate.on_frame(&au(&[P]), true, now + Duration::from_millis(433));
        assert_eq!(out.emit, Some((Bytes::from(au(&[P])), false)));
    }

    #[test]
    fn first_frame_already_a_keyframe_needs_no_request() {
        let mut gate = VideoGate::default();
        let out = gate.on_frame(&au(&[SPS, PPS, IDR]), false, Instant::now());
        assert!(out.emit.is_some());
        assert!(!out.request_keyframe);
        assert!(!gate.is_waiting());
    }

    #[test]
    fn a_gap_closes_the_gate_until_the_next_keyframe() {
        let now = Instant::now();
        let mut gate = VideoGate::default();
        assert!(
            gate.on_frame(&au(&[SPS, PPS, IDR]), true, now)
                .emit
                .is_some()
        );
        let out = gate.on_frame(&au(&[P]), false, now + Duration::from_millis(33));
        assert_eq!(out.emit, None);
        assert!(out.request_keyframe);
        assert!(
            gate.on_frame(&au(&[P]), true, now + Duration::from_millis(66))
                .emit
                .is_none()
        );
        // A gap that lands on a keyframe is harmless.
        let out = gate.on_frame(
            &au(&[SPS, PPS, IDR]),
            false,
            now + Duration::from_millis(99),
        );
        assert!(out.emit.is_some());
        assert!(!out.request_keyframe);
    }

    #[test]
    fn parameter_sets_sent_apart_are_put_in_front_of_the_keyframe() {
        let now = Instant::now();
        let mut gate = VideoGate::default();
        let out = gate.on_frame(&au(&[SPS, PPS]), true, now);
        assert_eq!(out, GateOutput::default());
        let out = gate.on_frame(&au(&[IDR]), true, now);
        let (data, key) = out.emit.unwrap();
        assert!(key);
        assert_eq!(&data[..], &au(&[SPS, PPS, IDR])[..]);
    }

    #[test]
    fn force_wait_resumes_on_a_keyframe() {
        let now = Instant::now();
        let mut gate = VideoGate::default();
        gate.on_frame(&au(&[SPS, PPS, IDR]), true, now);
        assert!(gate.force_wait(now));
        assert!(gate.on_frame(&au(&[P]), true, now).emit.is_none());
        let out = gate.on_frame(&au(&[IDR]), true, now);
        assert_eq!(out.emit.unwrap().0, Bytes::from(au(&[SPS, PPS, IDR])));
    }
}
