//! End-to-end packaging tests with real tools: a clip encoded by the `ffmpeg` CLI (H.264 +
//! AAC, keyframe every 30 frames at 30 fps, 6 s), demuxed with ffmpeg-next into
//! [`EncodedPacket`]s, packaged, written to a temp dir with playlists, then checked with
//! `ffprobe` and `ffmpeg` as an HLS client would read it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use ffmpeg_next as ffmpeg;

use super::boxes::{self, find_child};
use super::fmp4::{MEDIA_TIME_OFFSET_MS, extradata_of};
use super::playlist::BitrateStats;
use super::*;
use crate::media::EncodedPacket;

const CLIP_SECS: f64 = 6.0;

/// A fresh directory under the system temp dir, removed on drop unless the test failed or
/// `RILL_KEEP_TEST_DIRS` is set (to look at the HLS output).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rill-package-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("RILL_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 6 s of 1280x720 30 fps H.264 (keyint 30, no scene-cut keyframes, B-frames on) and
/// 48 kHz stereo AAC, as an MP4 file.
fn encode_clip(dir: &Path) -> PathBuf {
    encode_clip_sized(dir, "1280x720")
}

fn encode_clip_sized(dir: &Path, size: &str) -> PathBuf {
    let path = dir.join(format!("clip-{size}.mp4"));
    let source = format!("testsrc2=size={size}:rate=30");
    let (ok, _, err) = run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &source,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ac",
            "2",
        ])
        .arg(&path));
    assert!(ok, "ffmpeg encode failed: {err}");
    path
}

/// One demuxed elementary stream, as the transcoder would hand it over.
struct Track {
    config: TrackConfig,
    packets: Vec<EncodedPacket>,
}

/// Demuxes the clip with ffmpeg-next into a video and an audio [`Track`] (ms timestamps
/// like the transcoder's, decode order).
fn demux(path: &Path) -> (Track, Track) {
    ffmpeg::init().unwrap();
    let mut ictx = ffmpeg::format::input(path).unwrap();
    let mut video = None;
    let mut audio = None;
    for stream in ictx.streams() {
        let params = stream.parameters();
        let extradata = extradata_of(&params);
        let ctx = ffmpeg::codec::Context::from_parameters(params).unwrap();
        match ctx.medium() {
            ffmpeg::media::Type::Video => {
                let dec = ctx.decoder().video().unwrap();
                let config = TrackConfig {
                    kind: TrackKind::Video,
                    codec_string: avc1_codec_string(&extradata).unwrap(),
                    extradata,
                    width: dec.width(),
                    height: dec.height(),
                    sample_rate: 0,
                    channels: 0,
                    time_base_den: 90_000,
                };
                video = Some((stream.index(), stream.time_base(), config));
            }
            ffmpeg::media::Type::Audio => {
                let dec = ctx.decoder().audio().unwrap();
                let config = TrackConfig {
                    kind: TrackKind::Audio,
                    codec_string: aac_codec_string(&extradata).unwrap(),
                    extradata,
                    width: 0,
                    height: 0,
                    sample_rate: dec.rate(),
                    channels: u32::from(dec.channels()),
                    time_base_den: dec.rate(),
                };
                audio = Some((stream.index(), stream.time_base(), config));
            }
            _ => {}
        }
    }
    let (vi, vtb, vcfg) = video.unwrap();
    let (ai, atb, acfg) = audio.unwrap();
    let ms = |ts: i64, tb: ffmpeg::Rational| {
        let num = i128::from(ts) * i128::from(tb.numerator()) * 1000;
        let den = i128::from(tb.denominator());
        i64::try_from((num + num.signum() * den / 2) / den).unwrap()
    };
    let (mut vp, mut ap) = (Vec::new(), Vec::new());
    for (stream, packet) in ictx.packets() {
        let tb = stream.time_base();
        let pts = packet.pts().or(packet.dts()).unwrap();
        let dts = packet.dts().unwrap_or(pts);
        let p = EncodedPacket {
            rendition: 0,
            pts_ms: ms(pts, tb),
            dts_ms: ms(dts, tb),
            duration_ms: ms(packet.duration(), tb),
            keyframe: packet.is_key(),
            data: Bytes::copy_from_slice(packet.data().unwrap()),
        };
        if stream.index() == vi {
            assert_eq!(tb, vtb);
            vp.push(p);
        } else if stream.index() == ai {
            assert_eq!(tb, atb);
            ap.push(EncodedPacket { rendition: 1, ..p });
        }
    }
    (
        Track {
            config: vcfg,
            packets: vp,
        },
        Track {
            config: acfg,
            packets: ap,
        },
    )
}

/// Everything one rendition produced.
struct Packaged {
    name: &'static str,
    config: TrackConfig,
    init: Bytes,
    segments: Vec<Segment>,
}

fn package(name: &'static str, track: &Track, segment_ms: u32) -> Packaged {
    let options = PackagerOptions {
        segment_ms,
        first_sequence: 0,
    };
    let mut packager = Packager::new(&track.config, options).unwrap();
    let mut segments = Vec::new();
    for packet in &track.packets {
        let done = packager.push(packet).unwrap();
        assert!(done.len() <= 1, "one cut per packet at most");
        // The init is known from the first segment on.
        assert!(done.is_empty() || packager.init_segment().is_some());
        segments.extend(done);
    }
    segments.extend(packager.finish().unwrap());
    assert_eq!(packager.finish().unwrap(), []);
    assert_eq!(packager.dropped_before_keyframe(), 0);
    let init = packager.init_segment().unwrap().clone();
    Packaged {
        name,
        config: track.config.clone(),
        init,
        segments,
    }
}

fn wall_clock_origin() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 21, 0, 0).unwrap()
}

/// Writes init, segments and the rendition playlists (keep-all, ended) plus the master
/// playlist under `dir` with the production object names.
fn write_hls(dir: &Path, renditions: &[&Packaged], segment_ms: u32) {
    let mut audio_media = None;
    let mut variants = Vec::new();
    for r in renditions {
        std::fs::create_dir_all(dir.join(r.name)).unwrap();
        std::fs::write(dir.join(init_object_name(r.name, 0)), &r.init).unwrap();
        let mut playlist = MediaPlaylist::new(
            Window::KeepAll,
            Duration::from_millis(u64::from(segment_ms)),
        );
        for s in &r.segments {
            std::fs::write(dir.join(segment_object_name(r.name, s.sequence)), &s.data).unwrap();
            let pdt = wall_clock_origin() + chrono::Duration::milliseconds(s.start_ms());
            playlist
                .push(PlaylistSegment::from_segment(s, pdt))
                .unwrap();
        }
        playlist.end();
        std::fs::write(
            dir.join(media_playlist_object_name(r.name)),
            playlist.render(),
        )
        .unwrap();

        let stats = BitrateStats::from_segments(
            r.segments
                .iter()
                .map(|s| (s.byte_size(), Duration::from_secs_f64(s.duration_secs()))),
        );
        match r.config.kind {
            TrackKind::Audio => {
                audio_media = Some(AudioMedia {
                    group_id: "aac".into(),
                    name: "audio".into(),
                    uri: media_playlist_object_name(r.name),
                    codecs: r.config.codec_string.clone(),
                    channels: Some(r.config.channels),
                    bandwidth: stats.peak_bps,
                    average_bandwidth: stats.average_bps,
                })
            }
            TrackKind::Video => variants.push(VariantStream {
                uri: media_playlist_object_name(r.name),
                bandwidth: stats.peak_bps,
                average_bandwidth: stats.average_bps,
                width: r.config.width,
                height: r.config.height,
                codecs: r.config.codec_string.clone(),
                frame_rate: 30.0,
            }),
        }
    }
    let master = master_playlist(&variants, audio_media.as_ref());
    std::fs::write(dir.join(MASTER_PLAYLIST), master).unwrap();
}

/// `tfdt` (baseMediaDecodeTime) and the number of `moof`s of a media segment.
fn fragment_info(segment: &[u8]) -> (u64, usize) {
    let (top, used) = boxes::complete_boxes(segment).unwrap();
    assert_eq!(used, segment.len(), "segment is not whole boxes");
    let moofs: Vec<_> = top.iter().filter(|b| &b.kind == b"moof").collect();
    assert_eq!(
        top.last().map(|b| b.kind),
        Some(*b"mdat"),
        "segment must end with mdat"
    );
    let moof = &segment[moofs[0].range.clone()];
    let traf = find_child(&moof[8..], b"traf").unwrap();
    let tfdt = find_child(&traf[8..], b"tfdt").unwrap();
    let base = match tfdt[8] {
        1 => u64::from_be_bytes(tfdt[12..20].try_into().unwrap()),
        _ => u64::from(u32::from_be_bytes(tfdt[12..16].try_into().unwrap())),
    };
    (base, moofs.len())
}

/// ffprobe `stream=codec_name,width,height` of init + one segment, a full decode of it,
/// and the earliest presentation time (s) of its packets as a player sees it.
fn probe_segment(dir: &Path, init: &[u8], segment: &Segment) -> (String, f64) {
    let path = dir.join(format!("probe-{}.mp4", segment.sequence));
    std::fs::write(&path, [init, &segment.data[..]].concat()).unwrap();
    let (ok, out, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&path));
    assert!(
        ok && err.is_empty(),
        "ffprobe segment {}: {err}",
        segment.sequence
    );
    let (ok, _, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"]));
    assert!(
        ok && err.is_empty(),
        "decoding segment {} failed: {err}",
        segment.sequence
    );
    let (ok, pts, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&path));
    assert!(ok, "ffprobe packets: {err}");
    let first_pts = pts
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min);
    std::fs::remove_file(&path).unwrap();
    (out.trim().to_owned(), first_pts)
}

/// Where a segment's first frame should be presented: its stream time plus the offset.
fn media_time_secs(s: &Segment) -> f64 {
    s.start_pts as f64 / f64::from(s.timescale) + MEDIA_TIME_OFFSET_MS as f64 / 1000.0
}

/// Duration ffprobe reads from a playlist.
fn probe_duration(path: &Path) -> f64 {
    let (ok, out, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    assert!(ok, "ffprobe {}: {err}", path.display());
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration in {out:?} ({err})"))
}

fn check_ladder(segment_ms: u32) {
    let tmp = TempDir::new(&format!("ladder-{segment_ms}"));
    let clip = encode_clip(&tmp.0);
    let (video_track, audio_track) = demux(&clip);
    let video = package("720p", &video_track, segment_ms);
    let audio = package("audio", &audio_track, segment_ms);
    let out = tmp.0.join("hls");
    write_hls(&out, &[&video, &audio], segment_ms);

    let expected_segments = (CLIP_SECS * 1000.0 / f64::from(segment_ms)).round() as usize;
    let target = f64::from(segment_ms) / 1000.0;
    let aac_frame = 1024.0 / 48_000.0;

    // Video: keyframes sit exactly on the grid, so every cut is exact.
    assert_eq!(video.segments.len(), expected_segments);
    assert_eq!(video.config.codec_string, "avc1.64001f");
    for (i, s) in video.segments.iter().enumerate() {
        assert_eq!(s.sequence, i as u64);
        assert!(s.starts_with_keyframe);
        assert_eq!(s.timescale, 90_000);
        assert_eq!(
            s.start_pts,
            i as i64 * i64::from(segment_ms) * 90,
            "video cut {i}"
        );
        assert!(
            (s.duration_secs() - target).abs() < 1e-9,
            "video segment {i}: {}",
            s.duration_secs()
        );
        let (tfdt, moofs) = fragment_info(&s.data);
        assert_eq!(moofs, 1);
        // tfdt is a decode time: at most a few frames of B-frame delay before the pts.
        let pts_media = s.start_pts + MEDIA_TIME_OFFSET_MS * 90;
        let delay = pts_media - i64::try_from(tfdt).unwrap();
        assert!(
            (0..=3 * 3000).contains(&delay),
            "video tfdt {tfdt} vs pts {pts_media}"
        );
        let (streams, first_pts) = probe_segment(&tmp.0, &video.init, s);
        assert_eq!(streams, "h264,1280,720");
        // Presented exactly at its timeline position: no decode-delay shift.
        assert!(
            (first_pts - media_time_secs(s)).abs() < 1e-3,
            "video {i} at {first_pts}"
        );
    }

    // Audio: cut at the first frame at or after each grid point, frames laid end to end.
    assert_eq!(audio.segments.len(), expected_segments);
    assert_eq!(audio.config.codec_string, "mp4a.40.2");
    let mut next_start = audio.segments[0].start_pts;
    for (i, s) in audio.segments.iter().enumerate() {
        assert_eq!(s.timescale, 48_000);
        assert_eq!(s.start_pts, next_start, "audio segments must be contiguous");
        next_start += s.duration;
        assert_eq!(s.duration % 1024, 0, "whole AAC frames");
        let boundary = i as f64 * target;
        let start = s.start_pts as f64 / 48_000.0;
        if i > 0 {
            assert!(
                start >= boundary - 1e-3 && start < boundary + aac_frame,
                "audio cut {i}: {start}"
            );
        }
        if i + 1 < audio.segments.len() {
            // The first one also holds the AAC priming frame before 0.
            let slack = if i == 0 { 2.0 * aac_frame } else { aac_frame };
            assert!(
                (s.duration_secs() - target).abs() <= slack,
                "audio segment {i}"
            );
        }
        let (tfdt, moofs) = fragment_info(&s.data);
        assert_eq!(moofs, 1);
        assert_eq!(
            i64::try_from(tfdt).unwrap(),
            s.start_pts + MEDIA_TIME_OFFSET_MS * 48
        );
        let (streams, first_pts) = probe_segment(&tmp.0, &audio.init, s);
        assert_eq!(streams, "aac");
        assert!(
            (first_pts - media_time_secs(s)).abs() < 1e-3,
            "audio {i} at {first_pts}"
        );
    }

    // Whole playlists through ffprobe's HLS demuxer.
    for name in ["720p", "audio"] {
        let d = probe_duration(&out.join(media_playlist_object_name(name)));
        assert!((d - CLIP_SECS).abs() <= 0.1, "{name} playlist duration {d}");
    }
    let playlist = std::fs::read_to_string(out.join("720p/index.m3u8")).unwrap();
    let target_line = format!("#EXT-X-TARGETDURATION:{}\n", segment_ms / 1000);
    assert!(playlist.contains(&target_line), "{playlist}");
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));

    // The master playlist decodes end to end without a single error line.
    let (ok, _, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(out.join(MASTER_PLAYLIST))
        .args(["-f", "null", "-"]));
    assert!(ok && err.is_empty(), "ffmpeg -i master.m3u8: {err}");
    let master = std::fs::read_to_string(out.join(MASTER_PLAYLIST)).unwrap();
    assert!(
        master.contains("CODECS=\"avc1.64001f,mp4a.40.2\""),
        "{master}"
    );
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
}

#[test]
fn packages_1s_segments_that_ffprobe_and_ffmpeg_accept() {
    check_ladder(1000);
}

#[test]
fn packages_2s_segments_that_ffprobe_and_ffmpeg_accept() {
    check_ladder(2000);
}

#[test]
fn cuts_at_first_keyframe_at_or_after_each_boundary() {
    // 1 s GOPs with 1.5 s segments: boundaries at 1.5, 3, 4.5 s, keyframes at whole
    // seconds, so video cuts at 2, 3 and 5 s; the grid (not the last cut) sets the next
    // boundary, which keeps every rendition on the same cuts.
    let tmp = TempDir::new("grid");
    let (video_track, audio_track) = demux(&encode_clip(&tmp.0));
    let video = package("720p", &video_track, 1500);
    let starts: Vec<i64> = video.segments.iter().map(Segment::start_ms).collect();
    let durations: Vec<i64> = video.segments.iter().map(Segment::duration_ms).collect();
    assert_eq!(starts, [0, 2000, 3000, 5000]);
    assert_eq!(durations, [2000, 1000, 2000, 1000]);
    // Audio has no keyframe constraint: it cuts on the grid itself.
    let audio = package("audio", &audio_track, 1500);
    let audio_starts: Vec<i64> = audio
        .segments
        .iter()
        .skip(1)
        .map(Segment::start_ms)
        .collect();
    assert_eq!(audio_starts.len(), 3);
    for (start, boundary) in audio_starts.into_iter().zip([1500, 3000, 4500]) {
        assert!(
            (boundary..boundary + 22).contains(&start),
            "audio cut {start} for {boundary}"
        );
    }
}

#[test]
fn drops_video_until_the_first_keyframe() {
    let tmp = TempDir::new("midgop");
    let (video_track, _) = demux(&encode_clip(&tmp.0));
    // Join 10 packets into the first GOP, as a viewer of a running RTMP feed would.
    let late = Track {
        config: video_track.config.clone(),
        packets: video_track.packets[10..].to_vec(),
    };
    let mut packager = Packager::new(
        &late.config,
        PackagerOptions {
            segment_ms: 1000,
            first_sequence: 7,
        },
    )
    .unwrap();
    let mut segments = Vec::new();
    for p in &late.packets {
        segments.extend(packager.push(p).unwrap());
    }
    segments.extend(packager.finish().unwrap());
    // The GOP's remaining 20 frames cannot be decoded, so they are not packaged.
    assert_eq!(packager.dropped_before_keyframe(), 20);
    assert_eq!(segments.len(), 5);
    assert_eq!(segments[0].sequence, 7);
    assert_eq!(segments[0].start_ms(), 1000);
    assert!(segments.iter().all(|s| s.starts_with_keyframe));
    assert_eq!(packager.next_sequence(), 12);
}

#[test]
fn reconnect_continues_sequence_with_discontinuity_and_new_init() {
    // Publish 1: 3 s of 720p. Publish 2 (a reconnect at another resolution): 6 s of 360p,
    // 3.1 s later on the stream timeline, packaged by a new packager that continues the
    // sequence numbers. One keep-all playlist lists both with a discontinuity and a new
    // EXT-X-MAP, and ffprobe reads all 9 s of it.
    let tmp = TempDir::new("reconnect");
    let (v1, _) = demux(&encode_clip(&tmp.0));
    let (v2, _) = demux(&encode_clip_sized(&tmp.0, "640x360"));
    let options = PackagerOptions {
        segment_ms: 1000,
        first_sequence: 0,
    };

    let mut first = Packager::new(&v1.config, options).unwrap();
    let mut segments = Vec::new();
    for p in v1
        .packets
        .iter()
        .take_while(|p| !(p.keyframe && p.pts_ms >= 3000))
    {
        segments.extend(first.push(p).unwrap());
    }
    segments.extend(first.finish().unwrap());
    assert_eq!(segments.len(), 3);

    let shift = 3100;
    let options = PackagerOptions {
        first_sequence: first.next_sequence(),
        ..options
    };
    let mut second = Packager::new(&v2.config, options).unwrap();
    let mut later = Vec::new();
    for p in &v2.packets {
        let p = EncodedPacket {
            pts_ms: p.pts_ms + shift,
            dts_ms: p.dts_ms + shift,
            ..p.clone()
        };
        later.extend(second.push(&p).unwrap());
    }
    later.extend(second.finish().unwrap());
    assert_eq!(later.len(), 6);
    assert_eq!(later[0].sequence, 3);
    assert_eq!(later[0].start_ms(), 3100);
    let (init1, init2) = (
        first.init_segment().unwrap(),
        second.init_segment().unwrap(),
    );
    assert_ne!(init1, init2, "another resolution needs another init");

    let dir = tmp.0.join("hls");
    std::fs::create_dir_all(dir.join("720p")).unwrap();
    std::fs::write(dir.join(init_object_name("720p", 0)), init1).unwrap();
    std::fs::write(dir.join(init_object_name("720p", 1)), init2).unwrap();
    let mut playlist = MediaPlaylist::new(Window::KeepAll, Duration::from_secs(1));
    for (i, s) in segments.iter().chain(&later).enumerate() {
        std::fs::write(dir.join(segment_object_name("720p", s.sequence)), &s.data).unwrap();
        let pdt = wall_clock_origin() + chrono::Duration::milliseconds(s.start_ms());
        let mut entry = PlaylistSegment::from_segment(s, pdt);
        if i >= segments.len() {
            entry.discontinuity = i == segments.len();
            entry.init_uri = init_uri(1);
        }
        playlist.push(entry).unwrap();
    }
    playlist.end();
    let text = playlist.render();
    assert!(
        text.contains("seg-000002.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-23T21:00:03.100Z\n"),
        "{text}"
    );
    let path = dir.join(media_playlist_object_name("720p"));
    std::fs::write(&path, &text).unwrap();
    let d = probe_duration(&path);
    assert!((d - 9.0).abs() <= 0.1, "duration {d}");
    let (_, out, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&path));
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("1280,720"), "{out}");
    for s in &later {
        assert_eq!(probe_segment(&tmp.0, init2, s).0, "h264,640,360");
    }
}

/// avcC + length-prefixed packets -> Annex B global header + start-code packets, which is
/// what libx264 hands out through ffmpeg-next (`GLOBAL_HEADER`).
fn to_annexb(track: &Track) -> Track {
    let avcc = &track.config.extradata;
    let length_size = usize::from(avcc[4] & 3) + 1;
    let mut header = Vec::new();
    let mut pos = 5;
    for _ in 0..2 {
        // SPS set count has 3 reserved bits; the PPS count is a plain byte.
        let count = if pos == 5 {
            avcc[pos] & 0x1f
        } else {
            avcc[pos]
        };
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([avcc[pos], avcc[pos + 1]]));
            header.extend_from_slice(&[0, 0, 0, 1]);
            header.extend_from_slice(&avcc[pos + 2..pos + 2 + len]);
            pos += 2 + len;
        }
    }
    let packets = track
        .packets
        .iter()
        .map(|p| {
            let mut out = Vec::with_capacity(p.data.len());
            let mut i = 0;
            while i < p.data.len() {
                let mut len = 0usize;
                for b in &p.data[i..i + length_size] {
                    len = (len << 8) | usize::from(*b);
                }
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(&p.data[i + length_size..i + length_size + len]);
                i += length_size + len;
            }
            EncodedPacket {
                data: out.into(),
                ..p.clone()
            }
        })
        .collect();
    let config = TrackConfig {
        extradata: header.into(),
        ..track.config.clone()
    };
    Track { config, packets }
}

#[test]
fn packages_annexb_input_like_libx264_global_header() {
    let tmp = TempDir::new("annexb");
    let (video_track, _) = demux(&encode_clip(&tmp.0));
    let annexb = to_annexb(&video_track);
    assert_eq!(annexb.config.extradata[..4], [0, 0, 0, 1]);
    assert_eq!(
        avc1_codec_string(&annexb.config.extradata).as_deref(),
        Some("avc1.64001f")
    );
    let video = package("720p", &annexb, 2000);
    assert_eq!(video.segments.len(), 3);
    for s in &video.segments {
        assert_eq!(probe_segment(&tmp.0, &video.init, s).0, "h264,1280,720");
    }
    // The muxer turned the Annex B header into a real avcC record in the init segment.
    let moov = boxes::complete_boxes(&video.init)
        .unwrap()
        .0
        .into_iter()
        .find(|b| &b.kind == b"moov");
    assert!(moov.is_some());
    assert!(video.init.windows(4).any(|w| w == b"avcC"));
    let out = tmp.0.join("hls");
    write_hls(&out, &[&video], 2000);
    let d = probe_duration(&out.join("720p/index.m3u8"));
    assert!((d - CLIP_SECS).abs() <= 0.1, "duration {d}");
    let (ok, _, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(out.join(MASTER_PLAYLIST))
        .args(["-f", "null", "-"]));
    assert!(ok && err.is_empty(), "{err}");
}
