//! The fuzz harness of the playlist writer ([`MediaPlaylist`]) and its reader
//! ([`resume::parse_media_playlist`]).
//!
//! Run by the AFL++ target `playlist` (`fuzz/fuzz_targets/playlist.rs`, `scripts/fuzz.sh`)
//! and by the unit tests below. The first byte picks the mode:
//!
//! - even: the rest is a program of writer operations (push the next segment with a
//!   fuzzer-chosen duration, discontinuity and init change; push out of sequence; push after
//!   the end; end; mark a segment missing, as the outbox does after a storage outage; read the
//!   text back as a node taking over would). After every step the
//!   rendered text is checked against a model of every segment pushed, for the invariants of
//!   `playlist.rs`: the header tags in order; `#EXT-X-MEDIA-SEQUENCE` is the first listed
//!   segment's, never going down; listed sequences are consecutive (no holes) and are the
//!   last N pushed (sliding) or all of them (keep-all, with `PLAYLIST-TYPE:EVENT`);
//!   `#EXT-X-TARGETDURATION` is at least the ceiling of every `#EXTINF` ever pushed and of
//!   the configured target, and never goes down; `#EXT-X-MAP` before the first segment and
//!   at every init change only; `#EXT-X-DISCONTINUITY` exactly where flagged, and
//!   `#EXT-X-DISCONTINUITY-SEQUENCE` counts the flagged segments that slid out; every
//!   segment has its PDT and EXTINF; `#EXT-X-GAP` exactly on the marked segments (marking one
//!   no longer listed is refused); `#EXT-X-ENDLIST` last and only once ended; a refused
//!   push changes nothing. Reading the text back gives the same segments, target and next
//!   position.
//! - odd: the rest is playlist text from the bucket (what another node left), read as a
//!   taking-over node reads it: anything it accepts renders to text that reads back to the
//!   same playlist.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::playlist::{MediaPlaylist, PlaylistError, PlaylistSegment, Window};
use super::resume::{self, Resume};
use super::{init_uri, segment_uri};

/// One input. Panics only on a bug.
pub fn playlist(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    if first & 1 == 0 {
        writer_program(rest);
    } else if let Ok(text) = std::str::from_utf8(rest) {
        reader(text);
    }
}

fn reader(text: &str) {
    let _ = resume::master_uris(text);
    let Ok(p) = resume::parse_media_playlist(text) else {
        return;
    };
    let _ = Resume::listed_high_marks(&p);
    let rendered = p.render();
    let back = resume::parse_media_playlist(&rendered)
        .unwrap_or_else(|e| panic!("a rendered playlist does not read back: {e}\n{rendered}"));
    assert_eq!(back.render(), rendered, "read back differently");
    assert_eq!(back.next_sequence(), p.next_sequence());
}

/// Bytes consumed front to back; zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8().unwrap_or(0), self.u8().unwrap_or(0)])
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) << 16 | u32::from(self.u16())
    }
}

/// What was pushed, as the model the text is checked against.
#[derive(Debug, Clone)]
struct Pushed {
    sequence: u64,
    extinf_ms: u64,
    discontinuity: bool,
    init: String,
    /// Marked missing (`mark_gap`): `#EXT-X-GAP` after its EXTINF.
    gap: bool,
}

struct Model {
    window: Window,
    min_target_secs: u64,
    pushed: Vec<Pushed>,
    ended: bool,
    /// Previous render's target duration, media sequence and discontinuity sequence.
    last: Option<(u64, u64, u64)>,
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_000).unwrap_or_default()
}

fn writer_program(data: &[u8]) {
    let mut input = Input(data);
    let window = match input.u8().unwrap_or(0) % 10 {
        0 => Window::KeepAll,
        n => Window::Sliding(usize::from(n - 1)),
    };
    let target = Duration::from_millis(u64::from(input.u16()));
    let mut playlist = MediaPlaylist::new(window, target);
    let mut model = Model {
        window,
        min_target_secs: duration_ms(target).div_ceil(1000).max(1),
        pushed: Vec::new(),
        ended: false,
        last: None,
    };
    let first_sequence = u64::from(input.u32());
    let mut generation = 0u32;
    let mut pdt = t0();
    check(&playlist, &mut model);
    while let Some(op) = input.u8() {
        let next = model
            .pushed
            .last()
            .map_or(first_sequence, |p| p.sequence + 1);
        match op % 6 {
            0 | 1 => {
                // The next segment: ms and a sub-ms part, as a timescale produces them.
                let ms = u64::from(input.u16()) * if op % 6 == 1 { 100 } else { 1 };
                let nanos = u64::from(input.u16()) % 1_000_000;
                let duration = Duration::from_millis(ms) + Duration::from_nanos(nanos);
                let flags = input.u8().unwrap_or(0);
                let discontinuity = flags & 1 != 0;
                if flags & 2 != 0 {
                    generation += 1;
                }
                let segment = PlaylistSegment {
                    sequence: next,
                    uri: segment_uri(next),
                    duration,
                    program_date_time: pdt,
                    discontinuity,
                    init_uri: init_uri(generation),
                    gap: false,
                };
                pdt += chrono::Duration::milliseconds(i64::from(input.u16()));
                let result = playlist.push(segment);
                if model.ended {
                    assert_eq!(result, Err(PlaylistError::Ended));
                } else {
                    assert_eq!(result, Ok(()));
                    model.pushed.push(Pushed {
                        sequence: next,
                        extinf_ms: duration_ms(duration),
                        discontinuity,
                        init: init_uri(generation),
                        gap: false,
                    });
                }
            }
            2 => {
                // Out of sequence: refused, nothing changes.
                let before = playlist.clone();
                let skip = u64::from(input.u8().unwrap_or(0)) + 1;
                let wrong = if input.u8().unwrap_or(0) & 1 == 0 {
                    next + skip
                } else {
                    next.saturating_sub(skip)
                };
                if model.pushed.is_empty() || wrong == next {
                    continue;
                }
                let segment = PlaylistSegment {
                    sequence: wrong,
                    uri: segment_uri(wrong),
                    duration: Duration::from_secs(1),
                    program_date_time: pdt,
                    discontinuity: false,
                    init_uri: init_uri(generation),
                    gap: false,
                };
                assert!(playlist.push(segment).is_err(), "segment {wrong} accepted");
                assert_eq!(playlist, before, "a refused push changed the playlist");
            }
            3 => {
                playlist.end();
                model.ended = true;
            }
            4 => {
                // A segment dropped in a storage outage: marked only while listed.
                let back = u64::from(input.u8().unwrap_or(0));
                let position = next.saturating_sub(back);
                let listed = listed(&model).iter().position(|p| p.sequence == position);
                assert_eq!(playlist.mark_gap(position), listed.is_some(), "{position}");
                if let Some(i) = listed {
                    let offset = model.pushed.len() - listed_len(&model);
                    model.pushed[offset + i].gap = true;
                }
            }
            _ => read_back(&playlist),
        }
        check(&playlist, &mut model);
    }
    read_back(&playlist);
}

/// A node taking over reads the same segments, target and next position.
fn read_back(playlist: &MediaPlaylist) {
    let text = playlist.render();
    let back = resume::parse_media_playlist(&text)
        .unwrap_or_else(|e| panic!("written playlist does not read back: {e}\n{text}"));
    assert_eq!(back.target_duration_secs(), playlist.target_duration_secs());
    assert_eq!(back.next_sequence(), playlist.next_sequence());
    let ours: Vec<_> = playlist.segments().collect();
    let theirs: Vec<_> = back.segments().collect();
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(
            (
                a.sequence,
                &a.uri,
                a.program_date_time,
                a.discontinuity,
                &a.init_uri,
                a.gap
            ),
            (
                b.sequence,
                &b.uri,
                b.program_date_time,
                b.discontinuity,
                &b.init_uri,
                b.gap
            )
        );
        assert_eq!(duration_ms(a.duration), duration_ms(b.duration));
    }
    // Continuing it writes what continuing the original would (bar the playlist type).
    let mut continued = back.clone();
    let mut original = playlist.clone();
    if !original.is_ended() {
        let next = PlaylistSegment {
            sequence: original.next_sequence(),
            uri: segment_uri(original.next_sequence()),
            duration: Duration::from_millis(1500),
            program_date_time: t0(),
            discontinuity: true,
            init_uri: init_uri(99),
            gap: false,
        };
        assert_eq!(original.push(next.clone()), Ok(()));
        assert_eq!(continued.push(next), Ok(()));
        assert_eq!(
            continued.render().lines().last(),
            original.render().lines().last()
        );
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from((d.as_nanos() + 500_000) / 1_000_000).unwrap_or(u64::MAX)
}

/// The pushed segments the playlist lists.
fn listed(model: &Model) -> &[Pushed] {
    &model.pushed[model.pushed.len() - listed_len(model)..]
}

fn listed_len(model: &Model) -> usize {
    match model.window {
        Window::KeepAll => model.pushed.len(),
        Window::Sliding(n) => model.pushed.len().min(n.max(1)),
    }
}

/// The rendered text against the model.
fn check(playlist: &MediaPlaylist, model: &mut Model) {
    let text = playlist.render();
    let listed = listed(model);
    let dropped = &model.pushed[..model.pushed.len() - listed.len()];
    let discontinuity_sequence = dropped.iter().filter(|p| p.discontinuity).count() as u64;
    let longest = model.pushed.iter().map(|p| p.extinf_ms).max().unwrap_or(0);
    let target = model.min_target_secs.max(longest.div_ceil(1000));
    let media_sequence = listed.first().map_or(0, |p| p.sequence);

    let mut lines = text.lines();
    let mut next = || {
        lines
            .next()
            .unwrap_or_else(|| panic!("text ends early:\n{text}"))
    };
    assert_eq!(next(), "#EXTM3U");
    assert_eq!(next(), "#EXT-X-VERSION:7");
    assert_eq!(next(), format!("#EXT-X-TARGETDURATION:{target}"));
    assert_eq!(next(), format!("#EXT-X-MEDIA-SEQUENCE:{media_sequence}"));
    let mut line = next();
    if discontinuity_sequence > 0 {
        assert_eq!(
            line,
            format!("#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
        );
        line = next();
    }
    if model.window == Window::KeepAll {
        assert_eq!(line, "#EXT-X-PLAYLIST-TYPE:EVENT");
        line = next();
    }
    assert_eq!(line, "#EXT-X-INDEPENDENT-SEGMENTS");
    let mut init: Option<&str> = None;
    for (i, p) in listed.iter().enumerate() {
        if i > 0 {
            assert_eq!(
                p.sequence,
                listed[i - 1].sequence + 1,
                "hole in the listing"
            );
        }
        let mut line = next();
        if p.discontinuity {
            assert_eq!(line, "#EXT-X-DISCONTINUITY");
            line = next();
        }
        if init != Some(p.init.as_str()) {
            assert_eq!(line, format!("#EXT-X-MAP:URI=\"{}\"", p.init));
            init = Some(&p.init);
            line = next();
        }
        assert!(line.starts_with("#EXT-X-PROGRAM-DATE-TIME:"), "{line}");
        let extinf = next();
        assert_eq!(
            extinf,
            format!("#EXTINF:{}.{:03},", p.extinf_ms / 1000, p.extinf_ms % 1000)
        );
        assert!(p.extinf_ms.div_ceil(1000) <= target);
        if p.gap {
            assert_eq!(next(), "#EXT-X-GAP");
        }
        assert_eq!(next(), segment_uri(p.sequence));
    }
    if model.ended {
        assert_eq!(next(), "#EXT-X-ENDLIST");
    }
    assert_eq!(
        lines.next(),
        None,
        "unexpected text after the segments:\n{text}"
    );
    assert_eq!(playlist.target_duration_secs(), target);
    if let Some((t, m, d)) = model.last {
        assert!(target >= t, "target duration went down");
        assert!(media_sequence >= m, "media sequence went down");
        assert!(
            discontinuity_sequence >= d,
            "discontinuity sequence went down"
        );
    }
    model.last = Some((target, media_sequence, discontinuity_sequence));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_programs_reach_every_operation() {
        for window in [0u8, 1, 4] {
            let mut program = vec![0, window, 0x07, 0xd0, 0, 0, 0, 5];
            for op in [0u8, 0, 1, 2, 4, 5, 0, 3, 0, 5] {
                program.extend([op, 0x07, 0xd5, 0x12, 0x34, 3, 0x07, 0xd0]);
            }
            playlist(&program);
        }
    }

    #[test]
    fn written_text_reads_back_in_reader_mode() {
        let mut p = MediaPlaylist::new(Window::Sliding(2), Duration::from_secs(2));
        for s in 0..4 {
            let mut seg = PlaylistSegment {
                sequence: s,
                uri: segment_uri(s),
                duration: Duration::from_millis(2002),
                program_date_time: t0(),
                discontinuity: s == 2,
                init_uri: init_uri(0),
                gap: false,
            };
            if s == 3 {
                seg.init_uri = init_uri(1);
            }
            p.push(seg).expect("push");
        }
        assert!(p.mark_gap(3));
        let mut data = vec![1u8];
        data.extend_from_slice(p.render().as_bytes());
        playlist(&data);
        playlist(&[1, b'#']);
    }

    /// Found by AFL++ (41 crashes in 4 M executions): a media sequence tag after a segment
    /// renumbered the segments after it, so the text read back with other numbers.
    #[test]
    fn a_sequence_tag_after_a_segment_is_refused_not_renumbered() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MAP:URI=\"init.mp4\"\n\
                    #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:00.000Z\n#EXTINF:2.0,\n\
                    seg-000001.m4s\n#EXT-X-MEDIA-SEQUENCE:7\n\
                    #EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.000Z\n#EXTINF:2.0,\n\
                    seg-000008.m4s\n";
        let err = resume::parse_media_playlist(text).expect_err("refused");
        assert_eq!(err.what, "media sequence after a segment");
        let late_discontinuity = text.replace("MEDIA-SEQUENCE:7", "DISCONTINUITY-SEQUENCE:2");
        assert!(resume::parse_media_playlist(&late_discontinuity).is_err());
        let mut data = vec![1u8];
        data.extend_from_slice(text.as_bytes());
        playlist(&data);
    }
}
