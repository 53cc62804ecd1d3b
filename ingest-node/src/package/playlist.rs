//! HLS playlist text (RFC 8216), written by hand: media playlists for fMP4 segments and the
//! master playlist of the ladder. Pure functions and plain state; no I/O.
//!
//! Media playlist invariants:
//! - Segments are pushed in sequence order without gaps; `#EXT-X-MEDIA-SEQUENCE` is the
//!   sequence number of the first listed segment.
//! - `#EXT-X-TARGETDURATION` is the ceiling of the longest `#EXTINF` (as written, ms
//!   precision) ever pushed, and never below the configured target: it only grows, because
//!   RFC 8216 forbids a live playlist's target duration to change and a sliding window
//!   would otherwise lower it again. Consequence for audio: AAC cuts land up to one frame
//!   (21 ms) after the grid point, so 2.005 s segments make an audio playlist advertise 3
//!   (RFC 8216 itself only requires the *rounded* EXTINF to fit; ceil is the stricter rule).
//! - `#EXT-X-MAP` precedes the first listed segment and every segment whose init differs
//!   from the previous one's; `#EXT-X-DISCONTINUITY` precedes a segment flagged as the
//!   first after a publisher reconnect; when the sliding window drops such a segment,
//!   `#EXT-X-DISCONTINUITY-SEQUENCE` goes up by one so clients keep their timelines apart.
//! - Every segment carries `#EXT-X-PROGRAM-DATE-TIME` (UTC, ms).
//! - A segment that could not be stored (a storage outage longer than the node's upload
//!   backlog, see `pipeline::outbox`) keeps its position and is marked `#EXT-X-GAP`
//!   (RFC 8216bis 4.4.4.7): players skip it instead of failing on a missing object, and the
//!   media sequence has no hole.
//!
//! Live vs. recording — which [`Window`] to use: DESIGN wants the recording playable as VOD
//! from the same objects, so the natural choice for `{rendition}/index.m3u8` is
//! [`Window::KeepAll`]: `#EXT-X-PLAYLIST-TYPE:EVENT` while live (players may seek back to
//! the start, i.e. DVR), then `#EXT-X-ENDLIST` at the end turns the same URL into a VOD
//! playlist — no copy, no rewrite, and clients watching at the end see a legal update
//! (RFC 8216 6.2.1 only allows appending and the end tag). The cost is size: each segment
//! adds ~80 bytes (PDT + EXTINF + URI), so a 4 h stream at 2 s segments is ~580 KB per
//! rendition, re-uploaded every segment and re-fetched by every viewer every target
//! duration (it compresses very well, so serve it compressed from the CDN; it is still
//! the dominant playlist egress of long streams). [`Window::Sliding`] keeps live playlists
//! small and fixed-size but cannot become the recording by itself: a long-stream
//! alternative is a sliding `index.m3u8` for live plus a keep-all `vod.m3u8` written only
//! at the end, at the price of a second master playlist for the recording.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::fmp4::Segment;
use super::{init_uri, segment_uri};

/// Which segments a media playlist keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Keep only the last N segments (classic live playlist, no `EXT-X-PLAYLIST-TYPE`).
    Sliding(usize),
    /// Keep every segment (`#EXT-X-PLAYLIST-TYPE:EVENT`; VOD once ended).
    KeepAll,
}

/// One entry of a media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistSegment {
    pub sequence: u64,
    /// Relative to the playlist, e.g. `seg-000042.m4s`.
    pub uri: String,
    pub duration: Duration,
    /// Wall clock of the segment's first frame.
    pub program_date_time: DateTime<Utc>,
    /// First segment after a publisher reconnect (timestamps or codec may jump).
    pub discontinuity: bool,
    /// The init segment this segment needs, relative to the playlist (`init.mp4`).
    pub init_uri: String,
    /// The object is missing (dropped during a storage outage): `#EXT-X-GAP`.
    pub gap: bool,
}

impl PlaylistSegment {
    /// The entry for a packaged segment with the default names (`seg-{seq:06}.m4s`,
    /// `init.mp4`) and no discontinuity; set `discontinuity`/`init_uri` after a reconnect.
    pub fn from_segment(segment: &Segment, program_date_time: DateTime<Utc>) -> Self {
        let ticks = u128::try_from(segment.duration).unwrap_or(0);
        let nanos = ticks * 1_000_000_000 / u128::from(segment.timescale.max(1));
        Self {
            sequence: segment.sequence,
            uri: segment_uri(segment.sequence),
            duration: Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
            program_date_time,
            discontinuity: false,
            init_uri: init_uri(0),
            gap: false,
        }
    }
}

/// Why a segment cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    #[error("segment {got} pushed, expected {expected}")]
    SequenceGap { expected: u64, got: u64 },
    #[error("the playlist has ended")]
    Ended,
}

/// A media playlist being built (see the module docs for its invariants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlaylist {
    window: Window,
    min_target_secs: u64,
    segments: VecDeque<PlaylistSegment>,
    discontinuity_sequence: u64,
    max_extinf_ms: u64,
    ended: bool,
}

impl MediaPlaylist {
    /// An empty playlist. `target_duration` is the packager's segment duration: the
    /// advertised target never drops below its ceiling.
    pub fn new(window: Window, target_duration: Duration) -> Self {
        Self {
            window,
            min_target_secs: ceil_secs(duration_ms(target_duration)).max(1),
            segments: VecDeque::new(),
            discontinuity_sequence: 0,
            max_extinf_ms: 0,
            ended: false,
        }
    }

    /// A playlist continued from one written earlier (a node taking over a stream):
    /// `segments` as listed, the advertised `target_secs` kept (RFC 8216 forbids changing
    /// it), and the discontinuity sequence as it stood.
    pub fn resumed(
        window: Window,
        target_secs: u64,
        segments: Vec<PlaylistSegment>,
        discontinuity_sequence: u64,
    ) -> Self {
        let max_extinf_ms = segments
            .iter()
            .map(|s| duration_ms(s.duration))
            .max()
            .unwrap_or(0);
        Self {
            window,
            min_target_secs: target_secs.max(1),
            segments: segments.into(),
            discontinuity_sequence,
            max_extinf_ms,
            ended: false,
        }
    }

    /// The playlist position the next segment takes.
    pub fn next_sequence(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.sequence + 1)
    }

    /// Appends a segment; with a sliding window, drops the oldest beyond the window.
    pub fn push(&mut self, segment: PlaylistSegment) -> Result<(), PlaylistError> {
        if self.ended {
            return Err(PlaylistError::Ended);
        }
        if let Some(last) = self.segments.back() {
            let expected = last.sequence + 1;
            if segment.sequence != expected {
                return Err(PlaylistError::SequenceGap {
                    expected,
                    got: segment.sequence,
                });
            }
        }
        self.max_extinf_ms = self.max_extinf_ms.max(duration_ms(segment.duration));
        self.segments.push_back(segment);
        if let Window::Sliding(n) = self.window {
            while self.segments.len() > n.max(1) {
                if let Some(dropped) = self.segments.pop_front()
                    && dropped.discontinuity
                {
                    self.discontinuity_sequence += 1;
                }
            }
        }
        Ok(())
    }

    /// Marks the segment at `position` as missing (`#EXT-X-GAP`); false when the playlist
    /// does not list it (any more).
    pub fn mark_gap(&mut self, position: u64) -> bool {
        let first = self.segments.front().map_or(0, |s| s.sequence);
        let Some(index) = position.checked_sub(first) else {
            return false;
        };
        match usize::try_from(index)
            .ok()
            .and_then(|i| self.segments.get_mut(i))
        {
            Some(segment) => {
                segment.gap = true;
                true
            }
            None => false,
        }
    }

    /// Marks the playlist finished (`#EXT-X-ENDLIST`); later pushes fail.
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The listed segments, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &PlaylistSegment> {
        self.segments.iter()
    }

    /// `#EXT-X-TARGETDURATION` as it would be written now.
    pub fn target_duration_secs(&self) -> u64 {
        self.min_target_secs.max(ceil_secs(self.max_extinf_ms))
    }

    /// The playlist text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 + self.segments.len() * 96);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration_secs());
        let media_sequence = self.segments.front().map_or(0, |s| s.sequence);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if self.window == Window::KeepAll {
            out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut current_init: Option<&str> = None;
        for segment in &self.segments {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if current_init != Some(segment.init_uri.as_str()) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", segment.init_uri);
                current_init = Some(&segment.init_uri);
            }
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                segment.program_date_time.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let ms = duration_ms(segment.duration);
            let _ = writeln!(out, "#EXTINF:{}.{:03},", ms / 1000, ms % 1000);
            if segment.gap {
                out.push_str("#EXT-X-GAP\n");
            }
            out.push_str(&segment.uri);
            out.push('\n');
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// One video rung of the master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantStream {
    /// Relative URI of its media playlist, e.g. `720p/index.m3u8`.
    pub uri: String,
    /// Peak segment bit rate of the video rendition (bit/s); the audio's is added.
    pub bandwidth: u64,
    /// Average bit rate of the video rendition (bit/s); the audio's is added.
    pub average_bandwidth: u64,
    pub width: u32,
    pub height: u32,
    /// Video codec string, e.g. `avc1.64001f`.
    pub codecs: String,
    pub frame_rate: f64,
}

/// The audio rendition every variant refers to (`#EXT-X-MEDIA`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMedia {
    /// `aac`.
    pub group_id: String,
    /// `audio`.
    pub name: String,
    /// `audio/index.m3u8`.
    pub uri: String,
    /// `mp4a.40.2`.
    pub codecs: String,
    pub channels: Option<u32>,
    /// Peak and average segment bit rates (bit/s).
    pub bandwidth: u64,
    pub average_bandwidth: u64,
}

/// Peak and average bit rate of a rendition, as RFC 8216 defines them for `BANDWIDTH`
/// (largest per-segment bit rate) and `AVERAGE-BANDWIDTH` (total bits over total time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BitrateStats {
    pub peak_bps: u64,
    pub average_bps: u64,
}

impl BitrateStats {
    /// From `(byte size, duration)` of segments; zero-length segments are skipped.
    pub fn from_segments(segments: impl IntoIterator<Item = (usize, Duration)>) -> Self {
        let (mut peak, mut bits, mut nanos) = (0u64, 0u128, 0u128);
        for (size, duration) in segments {
            let d = duration.as_nanos();
            if d == 0 {
                continue;
            }
            let b = (size as u128) * 8;
            peak = peak.max(u64::try_from(b * 1_000_000_000 / d).unwrap_or(u64::MAX));
            bits += b;
            nanos += d;
        }
        let average = (bits * 1_000_000_000).checked_div(nanos).unwrap_or(0);
        Self {
            peak_bps: peak,
            average_bps: u64::try_from(average).unwrap_or(u64::MAX),
        }
    }
}

/// The master playlist: one `#EXT-X-STREAM-INF` per video rung (in the given order), each
/// referring to the audio group when there is one.
pub fn master_playlist(variants: &[VariantStream], audio: Option<&AudioMedia>) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = audio {
        let _ = write!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\",DEFAULT=YES,AUTOSELECT=YES",
            a.group_id, a.name
        );
        if let Some(channels) = a.channels {
            let _ = write!(out, ",CHANNELS=\"{channels}\"");
        }
        let _ = writeln!(out, ",URI=\"{}\"", a.uri);
    }
    for v in variants {
        let (peak, average, codecs) = match audio {
            Some(a) => (
                v.bandwidth + a.bandwidth,
                v.average_bandwidth + a.average_bandwidth,
                format!("{},{}", v.codecs, a.codecs),
            ),
            None => (v.bandwidth, v.average_bandwidth, v.codecs.clone()),
        };
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},RESOLUTION={}x{},\
             CODECS=\"{codecs}\",FRAME-RATE={:.3}",
            v.width, v.height, v.frame_rate
        );
        if let Some(a) = audio {
            let _ = write!(out, ",AUDIO=\"{}\"", a.group_id);
        }
        out.push('\n');
        out.push_str(&v.uri);
        out.push('\n');
    }
    out
}

/// Duration rounded to whole milliseconds (what `#EXTINF` shows).
fn duration_ms(d: Duration) -> u64 {
    u64::try_from((d.as_nanos() + 500_000) / 1_000_000).unwrap_or(u64::MAX)
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 21, 0, 0).unwrap()
    }

    fn seg(sequence: u64, ms: u64) -> PlaylistSegment {
        let offset = i64::try_from(sequence).unwrap() * 2000;
        PlaylistSegment {
            sequence,
            uri: segment_uri(sequence),
            duration: Duration::from_millis(ms),
            program_date_time: t0() + chrono::Duration::milliseconds(offset),
            discontinuity: false,
            init_uri: "init.mp4".into(),
            gap: false,
        }
    }

    #[test]
    fn a_segment_marked_missing_keeps_its_position_and_is_written_as_a_gap() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(2));
        for n in 0..3 {
            p.push(seg(n, 2000)).expect("in order");
        }
        assert!(p.mark_gap(1));
        assert!(!p.mark_gap(3), "not listed");
        p.push(seg(3, 2000))
            .expect("the sequence goes on after a gap");
        let text = p.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
        assert!(
            text.contains("#EXTINF:2.000,\n#EXT-X-GAP\nseg-000001.m4s\n"),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-GAP").count(), 1, "{text}");
        assert_eq!(text.matches("seg-0000").count(), 4, "{text}");
    }

    #[test]
    fn event_playlist_exact_text() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(2));
        p.push(seg(0, 2000)).unwrap();
        p.push(seg(1, 2000)).unwrap();
        p.push(seg(2, 1234)).unwrap();
        assert_eq!(
            p.render(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:EVENT\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:00.000Z\n\
             #EXTINF:2.000,\n\
             seg-000000.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:02.000Z\n\
             #EXTINF:2.000,\n\
             seg-000001.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:04.000Z\n\
             #EXTINF:1.234,\n\
             seg-000002.m4s\n"
        );
    }

    #[test]
    fn endlist_after_end_and_no_push_after() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(2));
        p.push(seg(0, 1500)).unwrap();
        p.end();
        let text = p.render();
        assert!(
            text.ends_with("#EXTINF:1.500,\nseg-000000.m4s\n#EXT-X-ENDLIST\n"),
            "{text}"
        );
        assert_eq!(p.push(seg(1, 2000)), Err(PlaylistError::Ended));
    }

    #[test]
    fn discontinuity_and_new_map_after_reconnect() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(2));
        p.push(seg(0, 2000)).unwrap();
        let mut s1 = seg(1, 2000);
        s1.discontinuity = true;
        s1.init_uri = "init-1.mp4".into();
        p.push(s1).unwrap();
        let mut s2 = seg(2, 2000);
        s2.init_uri = "init-1.mp4".into();
        p.push(s2).unwrap();
        let text = p.render();
        let body: Vec<&str> = text.lines().skip(6).collect();
        assert_eq!(
            body,
            [
                "#EXT-X-MAP:URI=\"init.mp4\"",
                "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:00.000Z",
                "#EXTINF:2.000,",
                "seg-000000.m4s",
                "#EXT-X-DISCONTINUITY",
                "#EXT-X-MAP:URI=\"init-1.mp4\"",
                "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:02.000Z",
                "#EXTINF:2.000,",
                "seg-000001.m4s",
                "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:04.000Z",
                "#EXTINF:2.000,",
                "seg-000002.m4s",
            ]
        );
    }

    #[test]
    fn discontinuity_without_init_change_repeats_no_map() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(2));
        p.push(seg(0, 2000)).unwrap();
        let mut s1 = seg(1, 2000);
        s1.discontinuity = true;
        p.push(s1).unwrap();
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        assert!(text.contains("seg-000000.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME"));
    }

    #[test]
    fn sliding_window_keeps_last_n_and_counts_dropped_discontinuities() {
        let mut p = MediaPlaylist::new(Window::Sliding(3), Duration::from_secs(2));
        p.push(seg(0, 2000)).unwrap();
        let mut s1 = seg(1, 2000);
        s1.discontinuity = true;
        s1.init_uri = "init-1.mp4".into();
        p.push(s1).unwrap();
        for s in 2..5 {
            let mut next = seg(s, 2000);
            next.init_uri = "init-1.mp4".into();
            p.push(next).unwrap();
        }
        let text = p.render();
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:2\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init-1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:04.000Z\n\
             #EXTINF:2.000,\n\
             seg-000002.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:06.000Z\n\
             #EXTINF:2.000,\n\
             seg-000003.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:08.000Z\n\
             #EXTINF:2.000,\n\
             seg-000004.m4s\n"
        );
        assert_eq!(p.segments().count(), 3);
    }

    #[test]
    fn target_duration_is_ceil_of_longest_and_never_shrinks() {
        let mut p = MediaPlaylist::new(Window::Sliding(2), Duration::from_secs(2));
        p.push(seg(0, 2021)).unwrap();
        assert_eq!(p.target_duration_secs(), 3);
        p.push(seg(1, 2000)).unwrap();
        p.push(seg(2, 2000)).unwrap();
        // The long segment slid out; the target stays.
        assert_eq!(p.target_duration_secs(), 3);
        // 2.0004 s is written as 2.000, so it does not raise a 2 s target.
        let mut q = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(2));
        let mut s = seg(0, 0);
        s.duration = Duration::from_micros(2_000_400);
        q.push(s).unwrap();
        assert_eq!(q.target_duration_secs(), 2);
        assert!(q.render().contains("#EXTINF:2.000,\n"));
    }

    #[test]
    fn rejects_sequence_gaps() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(1));
        p.push(seg(5, 1000)).unwrap();
        assert_eq!(
            p.push(seg(7, 1000)),
            Err(PlaylistError::SequenceGap {
                expected: 6,
                got: 7
            })
        );
        assert!(p.render().contains("#EXT-X-MEDIA-SEQUENCE:5\n"));
    }

    #[test]
    fn empty_playlist_is_valid_header_only() {
        let p = MediaPlaylist::new(Window::Sliding(6), Duration::from_millis(1500));
        assert_eq!(
            p.render(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n"
        );
    }

    #[test]
    fn program_date_time_has_millisecond_precision() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(2));
        let mut s = seg(0, 2000);
        s.program_date_time = Utc.timestamp_millis_opt(1_795_000_000_123).unwrap();
        p.push(s).unwrap();
        assert!(
            p.render()
                .contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-18T11:06:40.123Z\n")
        );
    }

    #[test]
    fn from_segment_uses_exact_ticks() {
        let s = Segment {
            sequence: 3,
            start_pts: 96_000,
            duration: 96_256,
            timescale: 48_000,
            starts_with_keyframe: true,
            data: bytes::Bytes::from_static(b"x"),
        };
        let p = PlaylistSegment::from_segment(&s, t0());
        assert_eq!(p.uri, "seg-000003.m4s");
        assert_eq!(p.init_uri, "init.mp4");
        assert_eq!(p.duration, Duration::from_nanos(2_005_333_333));
        assert_eq!(duration_ms(p.duration), 2005);
    }

    #[test]
    fn master_playlist_exact_text() {
        let variants = [
            VariantStream {
                uri: "720p/index.m3u8".into(),
                bandwidth: 1_650_000,
                average_bandwidth: 1_500_000,
                width: 1280,
                height: 720,
                codecs: "avc1.64001f".into(),
                frame_rate: 30.0,
            },
            VariantStream {
                uri: "360p/index.m3u8".into(),
                bandwidth: 440_000,
                average_bandwidth: 400_000,
                width: 640,
                height: 360,
                codecs: "avc1.64001e".into(),
                frame_rate: 24000.0 / 1001.0,
            },
        ];
        let audio = AudioMedia {
            group_id: "aac".into(),
            name: "audio".into(),
            uri: "audio/index.m3u8".into(),
            codecs: "mp4a.40.2".into(),
            channels: Some(2),
            bandwidth: 140_000,
            average_bandwidth: 128_000,
        };
        assert_eq!(
            master_playlist(&variants, Some(&audio)),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,\
             CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1790000,AVERAGE-BANDWIDTH=1628000,RESOLUTION=1280x720,\
             CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=30.000,AUDIO=\"aac\"\n\
             720p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=580000,AVERAGE-BANDWIDTH=528000,RESOLUTION=640x360,\
             CODECS=\"avc1.64001e,mp4a.40.2\",FRAME-RATE=23.976,AUDIO=\"aac\"\n\
             360p/index.m3u8\n"
        );
        let video_only = master_playlist(&variants[..1], None);
        assert!(video_only.ends_with(
            "#EXT-X-STREAM-INF:BANDWIDTH=1650000,AVERAGE-BANDWIDTH=1500000,RESOLUTION=1280x720,\
             CODECS=\"avc1.64001f\",FRAME-RATE=30.000\n720p/index.m3u8\n"
        ));
    }

    #[test]
    fn bitrate_stats_peak_and_average() {
        let stats = BitrateStats::from_segments([
            (250_000, Duration::from_secs(2)),
            (150_000, Duration::from_secs(1)),
            (0, Duration::ZERO),
        ]);
        assert_eq!(stats.peak_bps, 1_200_000);
        assert_eq!(stats.average_bps, 1_066_666);
    }
}
