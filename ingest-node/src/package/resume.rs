//! Reading back what another node wrote, so a stream taken over continues the same
//! playlists (issue: a node dies, the publisher comes back on another node within the
//! reconnect window).
//!
//! Only the subset of RFC 8216 that [`super::playlist`] writes is understood: the master
//! playlist's variant and audio URIs, and a media playlist's target duration,
//! discontinuity sequence, `EXT-X-MAP`, `EXT-X-DISCONTINUITY`, `EXT-X-GAP`, `EXT-X-PROGRAM-DATE-TIME`,
//! `EXTINF` and URIs. Anything else is ignored; a playlist this node could not have written
//! (no PDT, no map) is refused rather than guessed at.
//!
//! Invariants of a resumed rendition ([`ResumedTrack`]):
//! - its playlist lists exactly the segments that were listed, with their positions, PDTs
//!   and maps, and keeps its target duration;
//! - the next media segment and init segment get object names that do not exist yet
//!   (`next_object`, `next_init`): a dead node may have stored a segment (or an init) whose
//!   playlist update never happened, and nothing in the bucket is ever overwritten.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::playlist::{MediaPlaylist, PlaylistSegment, Window};

/// Why a stored playlist cannot be continued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("playlist line {line}: {what}")]
pub struct ParseError {
    pub line: usize,
    pub what: &'static str,
}

/// The media playlist URIs a master playlist names (variants, then audio), relative to it.
pub fn master_uris(text: &str) -> Vec<String> {
    let mut uris = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("#EXT-X-MEDIA:") {
            if let Some(uri) = attribute(media, "URI") {
                uris.push(uri.to_owned());
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            uris.push(line.to_owned());
        }
    }
    uris
}

/// A quoted attribute's value from an attribute list (`URI="a/b.m3u8"`).
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let start = list.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &list[start..];
    Some(&rest[..rest.find('"')?])
}

/// A media playlist as [`MediaPlaylist::render`] writes it, back into a keep-all
/// [`MediaPlaylist`] (not ended: the caller continues it).
pub fn parse_media_playlist(text: &str) -> Result<MediaPlaylist, ParseError> {
    let mut target_secs = None;
    let mut media_sequence = 0u64;
    let mut discontinuity_sequence = 0u64;
    let mut init: Option<String> = None;
    let mut pdt: Option<DateTime<Utc>> = None;
    let mut extinf: Option<Duration> = None;
    let mut discontinuity = false;
    let mut gap = false;
    let mut segments = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |what| ParseError { line: i + 1, what };
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target_secs = Some(v.parse::<u64>().map_err(|_| err("bad target duration"))?);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            // RFC 8216 4.4.3.2/4.4.3.3: before the first segment. One after a segment would
            // renumber the rest and leave a hole the text cannot say.
            if !segments.is_empty() {
                return Err(err("media sequence after a segment"));
            }
            media_sequence = v.parse().map_err(|_| err("bad media sequence"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            if !segments.is_empty() {
                return Err(err("discontinuity sequence after a segment"));
            }
            discontinuity_sequence = v.parse().map_err(|_| err("bad discontinuity sequence"))?;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            init = Some(
                attribute(v, "URI")
                    .ok_or(err("map without URI"))?
                    .to_owned(),
            );
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t = DateTime::parse_from_rfc3339(v).map_err(|_| err("bad program date-time"))?;
            pdt = Some(t.with_timezone(&Utc));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let secs = v.split(',').next().unwrap_or_default();
            let secs: f64 = secs.parse().map_err(|_| err("bad EXTINF"))?;
            if !secs.is_finite() || secs < 0.0 {
                return Err(err("bad EXTINF"));
            }
            extinf = Some(Duration::from_millis((secs * 1000.0).round() as u64));
        } else if !line.is_empty() && !line.starts_with('#') {
            let position = media_sequence + segments.len() as u64;
            segments.push(PlaylistSegment {
                sequence: position,
                uri: line.to_owned(),
                duration: extinf.take().ok_or(err("segment without EXTINF"))?,
                program_date_time: pdt.take().ok_or(err("segment without PDT"))?,
                discontinuity: std::mem::take(&mut discontinuity),
                init_uri: init.clone().ok_or(err("segment before any map"))?,
                gap: std::mem::take(&mut gap),
            });
        }
    }
    let target_secs = target_secs.ok_or(ParseError {
        line: 0,
        what: "no target duration",
    })?;
    Ok(MediaPlaylist::resumed(
        Window::KeepAll,
        target_secs,
        segments,
        discontinuity_sequence,
    ))
}

/// The number in `seg-000042.m4s` (any number of digits).
pub fn segment_number(uri: &str) -> Option<u64> {
    uri.strip_prefix("seg-")?.strip_suffix(".m4s")?.parse().ok()
}

/// The generation of `init.mp4` (0) or `init-3.mp4` (3).
pub fn init_generation(uri: &str) -> Option<u32> {
    if uri == "init.mp4" {
        return Some(0);
    }
    uri.strip_prefix("init-")?
        .strip_suffix(".mp4")?
        .parse()
        .ok()
}

/// One rendition of a stream taken over.
#[derive(Debug, Clone)]
pub struct ResumedTrack {
    /// The rendition's name (its directory: `720p`, `audio`).
    pub name: String,
    pub playlist: MediaPlaylist,
    /// The first free media segment number (object name).
    pub next_object: u64,
    /// The first free init generation.
    pub next_init: u32,
}

impl ResumedTrack {
    /// Object number minus playlist position for the segments this node adds: positions
    /// continue the playlist, object names skip whatever the bucket already holds.
    pub fn object_offset(&self) -> u64 {
        self.next_object
            .saturating_sub(self.playlist.next_sequence())
    }
}

/// What a node needs to continue a stream another node wrote: every rendition the master
/// playlist names.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    pub tracks: Vec<ResumedTrack>,
}

impl Resume {
    pub fn track(&self, name: &str) -> Option<&ResumedTrack> {
        self.tracks.iter().find(|t| t.name == name)
    }

    /// The highest segment number and init generation a playlist names, as the starting
    /// point of the probe for free names.
    pub fn listed_high_marks(playlist: &MediaPlaylist) -> (Option<u64>, Option<u32>) {
        let seg = playlist
            .segments()
            .filter_map(|s| segment_number(&s.uri))
            .max();
        let init = playlist
            .segments()
            .filter_map(|s| init_generation(&s.init_uri))
            .max();
        (seg, init)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{AudioMedia, VariantStream, master_playlist};

    fn entry(seq: u64, init: &str, discontinuity: bool) -> PlaylistSegment {
        PlaylistSegment {
            sequence: seq,
            uri: format!("seg-{seq:06}.m4s"),
            duration: Duration::from_millis(1001 + seq),
            program_date_time: DateTime::from_timestamp_millis(
                1_800_000_000_000 + seq as i64 * 1000,
            )
            .expect("valid"),
            discontinuity,
            init_uri: init.into(),
            gap: false,
        }
    }

    #[test]
    fn a_written_media_playlist_reads_back_identically() {
        let mut p = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(1));
        p.push(entry(0, "init.mp4", false)).expect("push");
        p.push(entry(1, "init.mp4", false)).expect("push");
        p.push(entry(2, "init-1.mp4", true)).expect("push");
        assert!(p.mark_gap(1));
        let text = p.render();
        let back = parse_media_playlist(&text).expect("parses");
        assert_eq!(back.render(), text);
        assert!(text.contains("#EXT-X-GAP"), "{text}");
        assert_eq!(back.next_sequence(), 3);
        assert_eq!(Resume::listed_high_marks(&back), (Some(2), Some(1)));
    }

    #[test]
    fn a_resumed_playlist_keeps_its_target_duration_and_continues() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n\
                    #EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n\
                    #EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:00.000Z\n\
                    #EXTINF:1.000,\nseg-000000.m4s\n";
        let mut p = parse_media_playlist(text).expect("parses");
        assert_eq!(p.target_duration_secs(), 3);
        // The dead node had stored seg-000001 without listing it: the next object is 2,
        // listed at position 1.
        let mut next = entry(1, "init-1.mp4", true);
        next.uri = "seg-000002.m4s".into();
        p.push(next).expect("continues at the next position");
        let out = p.render();
        assert!(out.contains("#EXT-X-TARGETDURATION:3\n"), "{out}");
        assert!(
            out.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"),
            "{out}"
        );
        assert!(out.ends_with("seg-000002.m4s\n"), "{out}");
    }

    #[test]
    fn playlists_this_node_could_not_have_written_are_refused() {
        let no_pdt = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.0,\nseg-000000.m4s\n";
        assert_eq!(
            parse_media_playlist(no_pdt).map(|_| ()),
            Err(ParseError {
                line: 5,
                what: "segment without PDT"
            })
        );
        assert!(parse_media_playlist("#EXTM3U\n").is_err());
        assert!(parse_media_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:x\n").is_err());
    }

    #[test]
    fn master_playlists_name_their_renditions() {
        let variant = |name: &str| VariantStream {
            uri: format!("{name}/index.m3u8"),
            bandwidth: 1_000_000,
            average_bandwidth: 900_000,
            width: 1280,
            height: 720,
            codecs: "avc1.64001f".into(),
            frame_rate: 30.0,
        };
        let audio = AudioMedia {
            group_id: "aac".into(),
            name: "audio".into(),
            uri: "audio/index.m3u8".into(),
            codecs: "mp4a.40.2".into(),
            channels: Some(2),
            bandwidth: 128_000,
            average_bandwidth: 120_000,
        };
        let text = master_playlist(&[variant("720p"), variant("360p")], Some(&audio));
        assert_eq!(
            master_uris(&text),
            ["audio/index.m3u8", "720p/index.m3u8", "360p/index.m3u8"]
        );
    }

    #[test]
    fn object_names_give_their_numbers() {
        assert_eq!(segment_number("seg-000042.m4s"), Some(42));
        assert_eq!(segment_number("seg-1234567.m4s"), Some(1_234_567));
        assert_eq!(segment_number("other.m4s"), None);
        assert_eq!(init_generation("init.mp4"), Some(0));
        assert_eq!(init_generation("init-12.mp4"), Some(12));
        assert_eq!(init_generation("x.mp4"), None);
    }
}
