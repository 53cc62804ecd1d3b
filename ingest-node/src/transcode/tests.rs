//! End-to-end tests of the transcoder on real FFmpeg: clips made by the `ffmpeg` CLI,
//! demuxed with ffmpeg-next, transcoded, and the output decoded again with FFmpeg.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use ffmpeg_next::{Packet, codec, decoder, frame};

use super::file_source::read_events;
use super::h264::{self, AvcConfig};
use super::{CodecParams, Ladder, QualityPreset, StreamConfig, TranscodeOptions, Transcoder};
use crate::media::{EncodedPacket, MediaEvent, NalFraming, Rendition};

/// Makes (once per test binary) a clip with the ffmpeg CLI and returns its path.
fn clip(name: &str, args: &[&str]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static MADE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rill-transcode-tests-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    let made = MADE.get_or_init(Default::default);
    let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.get(name) {
        return p.clone();
    }
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&path)
        .status()
        .expect("the ffmpeg CLI is installed");
    assert!(status.success(), "ffmpeg failed making {name}");
    made.insert(name.to_owned(), path.clone());
    path
}

/// `seconds` of testsrc2 (size, fps) with a sine tone, H.264 + AAC in MPEG-TS.
fn test_clip(size: &str, fps: u32, seconds: u32, video_args: &[&str]) -> PathBuf {
    let name = format!(
        "src-{size}-{fps}-{seconds}-{}.ts",
        video_args.join("_").replace(['/', ':'], "-")
    );
    let vsrc = format!("testsrc2=size={size}:rate={fps}");
    let t = seconds.to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &vsrc,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-t",
        &t,
    ];
    args.extend_from_slice(&[
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]);
    args.extend_from_slice(video_args);
    args.extend_from_slice(&["-c:a", "aac", "-b:a", "128k", "-f", "mpegts"]);
    clip(&name, &args)
}

struct Run {
    packets: Vec<EncodedPacket>,
    renditions: Vec<Rendition>,
    params: Vec<Option<CodecParams>>,
    audio: usize,
}

impl Run {
    fn of(&self, rendition: usize) -> Vec<&EncodedPacket> {
        self.packets
            .iter()
            .filter(|p| p.rendition == rendition)
            .collect()
    }

    fn keyframe_pts(&self, rendition: usize) -> BTreeSet<i64> {
        self.of(rendition)
            .into_iter()
            .filter(|p| p.keyframe)
            .map(|p| p.pts_ms)
            .collect()
    }

    fn video_config(&self, rendition: usize) -> (u32, u32, AvcConfig) {
        match &self.params[rendition].as_ref().expect("params").config {
            StreamConfig::Video {
                width,
                height,
                avcc,
            } => (*width, *height, AvcConfig::parse(avcc).unwrap()),
            StreamConfig::Audio { .. } => panic!("rendition {rendition} is audio"),
        }
    }
}

fn transcode(
    events: Vec<MediaEvent>,
    ladder: Ladder,
    segment_ms: u32,
    options: TranscodeOptions,
) -> Run {
    let mut t = Transcoder::with_options(ladder, segment_ms, options).unwrap();
    let mut packets = Vec::new();
    for e in events {
        packets.extend(t.push(e).unwrap());
    }
    packets.extend(t.finish().unwrap());
    let renditions = t.renditions().to_vec();
    let params = (0..renditions.len())
        .map(|i| t.codec_params(i).cloned())
        .collect();
    // The reported average bitrate agrees with the packets.
    for (i, s) in t.stats().iter().enumerate() {
        let n = packets.iter().filter(|p| p.rendition == i).count() as u64;
        assert_eq!(s.packets, n, "stats of rendition {i}");
    }
    Run {
        packets,
        renditions,
        params,
        audio: t.audio_index(),
    }
}

/// Decodes a rendition's packets with FFmpeg: (frame count, every frame's size).
fn decode(run: &Run, rendition: usize) -> (usize, BTreeSet<(u32, u32)>) {
    let (_, _, config) = run.video_config(rendition);
    let codec = decoder::find(codec::Id::H264).unwrap();
    let mut dec = codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()
        .unwrap();
    let (mut count, mut sizes) = (0, BTreeSet::new());
    let mut receive = |dec: &mut decoder::Video| {
        let mut f = frame::Video::empty();
        while dec.receive_frame(&mut f).is_ok() {
            count += 1;
            sizes.insert((f.width(), f.height()));
        }
    };
    for p in run.of(rendition) {
        let mut annexb = if p.keyframe {
            config.annexb_parameter_sets()
        } else {
            Vec::new()
        };
        h264::write_annexb(h264::avcc_nals(&p.data, 4).unwrap(), &mut annexb);
        let mut packet = Packet::copy(&annexb);
        packet.set_pts(Some(p.pts_ms));
        packet.set_dts(Some(p.dts_ms));
        dec.send_packet(&packet).unwrap();
        receive(&mut dec);
    }
    dec.send_eof().unwrap();
    receive(&mut dec);
    (count, sizes)
}

fn assert_near(actual: usize, expected: f64, slack: f64, what: &str) {
    assert!(
        (actual as f64 - expected).abs() <= slack,
        "{what}: {actual}, expected {expected} ± {slack}"
    );
}

/// The rungs' keyframes: the same pts on every video rendition, one per segment boundary.
fn assert_aligned(run: &Run, video: usize, seconds: u32, segment_ms: i64) {
    let reference = run.keyframe_pts(0);
    for r in 1..video {
        assert_eq!(
            run.keyframe_pts(r),
            reference,
            "keyframes of rung {r} vs rung 0"
        );
    }
    let segments = (i64::from(seconds) * 1000 + segment_ms - 1) / segment_ms;
    assert_eq!(
        reference.len() as i64,
        segments,
        "one keyframe per segment: {reference:?}"
    );
    for (k, pts) in reference.iter().enumerate() {
        let boundary = k as i64 * segment_ms;
        assert!(
            (boundary..boundary + 34).contains(pts),
            "keyframe {k} at {pts} ms"
        );
    }
    for r in 0..video {
        assert!(run.of(r)[0].keyframe, "rung {r} starts with a keyframe");
    }
}

#[test]
fn full_ladder_from_1080p30_avcc_with_aligned_keyframes() {
    let (seconds, segment_ms) = (3, 1000);
    let src = test_clip("1920x1080", 30, seconds, &["-g", "60"]);
    let events = read_events(&src, NalFraming::Avcc).unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MediaEvent::VideoConfig { .. }))
    );
    let origin_ms = match &events
        .iter()
        .find(|e| matches!(e, MediaEvent::Video { .. } | MediaEvent::Audio { .. }))
    {
        Some(MediaEvent::Video { pts_ms, dts_ms, .. }) => *pts_ms.min(dts_ms),
        Some(MediaEvent::Audio { pts_ms, .. }) => *pts_ms,
        _ => panic!("no media"),
    };
    let first_audio_ms = events
        .iter()
        .find_map(|e| {
            if let MediaEvent::Audio { pts_ms, .. } = e {
                Some(*pts_ms)
            } else {
                None
            }
        })
        .unwrap();
    let source_audio_s = events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Audio { .. }))
        .count() as f64
        * 1024.0
        / 44100.0;
    let ladder = Ladder::plan(1920, 1080, QualityPreset::P1080, None);
    let run = transcode(events, ladder, segment_ms, TranscodeOptions::default());

    assert_eq!(run.renditions.len(), 5);
    let expected = [
        (1920, 1080, 30.0),
        (1280, 720, 30.0),
        (854, 480, 24.0),
        (640, 360, 24.0),
    ];
    for (r, &(w, h, fps)) in expected.iter().enumerate() {
        let (pw, ph, config) = run.video_config(r);
        assert_eq!((pw, ph), (w, h), "codec params of rung {r}");
        assert_eq!(config.profile_idc, 100, "High profile on rung {r}");
        assert!(run.params[r].as_ref().unwrap().codec.starts_with("avc1.64"));
        let (frames, sizes) = decode(&run, r);
        assert_eq!(sizes, BTreeSet::from([(w, h)]), "decoded size of rung {r}");
        assert_near(
            frames,
            fps * f64::from(seconds),
            2.0,
            &format!("frames of rung {r}"),
        );
        assert_eq!(frames, run.of(r).len());
        let total: i64 = run.of(r).iter().map(|p| p.duration_ms).sum();
        assert_near(
            total as usize,
            f64::from(seconds) * 1000.0,
            50.0,
            &format!("duration of rung {r}"),
        );
    }
    assert_aligned(&run, 4, seconds, i64::from(segment_ms));

    // 44.1 kHz mono in, 48 kHz stereo AAC out: one packet per 1024 samples, plus the
    // encoder's priming packet and the flushed tail.
    let audio = run.of(run.audio);
    assert_near(
        audio.len(),
        f64::from(seconds) * 48000.0 / 1024.0,
        4.0,
        "AAC packets vs the nominal duration",
    );
    assert_near(
        audio.len(),
        source_audio_s * 48000.0 / 1024.0 + 2.0,
        1.5,
        "AAC packets vs the source's samples",
    );
    assert_eq!(run.params[run.audio].as_ref().unwrap().codec, "mp4a.40.2");
    assert!(audio.windows(2).all(|w| w[1].pts_ms > w[0].pts_ms));
    // The first AAC packet carries the encoder's priming (1024 samples): it starts 21-22 ms
    // before the first input sample, on the shared timeline (0 = the first event).
    let expected = first_audio_ms - origin_ms - 22;
    assert!(
        (expected..=expected + 1).contains(&audio[0].pts_ms),
        "first AAC pts {} vs {expected}",
        audio[0].pts_ms
    );
}

#[test]
fn passthrough_forwards_the_source_and_cuts_the_other_rungs_on_its_keyframes() {
    let (seconds, segment_ms) = (4, 2000);
    let src = test_clip(
        "1920x1080",
        30,
        seconds,
        &[
            "-g", "60", "-b:v", "2800k", "-maxrate", "2800k", "-bufsize", "5600k",
        ],
    );
    let events = read_events(&src, NalFraming::AnnexB).unwrap();
    let source_frames = events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Video { .. }))
        .count();
    let ladder = Ladder::plan(1920, 1080, QualityPreset::P1080, None).with_passthrough(true);
    let run = transcode(events, ladder, segment_ms, TranscodeOptions::default());

    assert!(run.renditions[0].passthrough);
    assert_eq!(
        run.of(0).len(),
        source_frames,
        "every source frame forwarded"
    );
    let (w, h, _) = run.video_config(0);
    assert_eq!((w, h), (1920, 1080));
    for p in run.of(0) {
        let nals = h264::avcc_nals(&p.data, 4).unwrap();
        assert!(
            nals.iter().all(|n| !matches!(h264::nal_type(n), 7..=9)),
            "no in-band SPS/PPS/AUD"
        );
    }
    let (frames, sizes) = decode(&run, 0);
    assert_eq!(
        (frames, sizes),
        (source_frames, BTreeSet::from([(1920, 1080)]))
    );
    assert_aligned(&run, 4, seconds, i64::from(segment_ms));
}

#[test]
fn source_of_640x360_gets_only_the_360p_rung() {
    let src = test_clip("640x360", 30, 2, &["-g", "30"]);
    let ladder = Ladder::plan(640, 360, QualityPreset::P1080, None);
    assert_eq!(ladder.rungs().len(), 1);
    let run = transcode(
        read_events(&src, NalFraming::Avcc).unwrap(),
        ladder,
        1000,
        TranscodeOptions::default(),
    );
    assert_eq!(
        run.renditions
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["360p", "audio"]
    );
    let (frames, sizes) = decode(&run, 0);
    assert_eq!(sizes, BTreeSet::from([(640, 360)]));
    assert_near(frames, 48.0, 2.0, "24 fps frames");
    assert_aligned(&run, 1, 2, 1000);
}

#[test]
fn four_by_three_source_keeps_its_aspect_in_both_scale_modes() {
    let src = test_clip("960x720", 30, 2, &["-g", "30"]);
    let ladder = Ladder::plan(960, 720, QualityPreset::P1080, None);
    let expected = [(960, 720), (640, 480), (480, 360)];
    for scale in [super::ScaleMode::Cascade, super::ScaleMode::Direct] {
        let options = TranscodeOptions {
            scale,
            ..TranscodeOptions::default()
        };
        let run = transcode(
            read_events(&src, NalFraming::AnnexB).unwrap(),
            ladder.clone(),
            1000,
            options,
        );
        for (r, &(w, h)) in expected.iter().enumerate() {
            let (_, sizes) = decode(&run, r);
            assert_eq!(sizes, BTreeSet::from([(w, h)]), "{scale:?} rung {r}");
        }
        assert_aligned(&run, 3, 2, 1000);
    }
}

#[test]
fn opus_audio_becomes_aac_48k_stereo() {
    let src = clip(
        "opus.mka",
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:sample_rate=48000",
            "-t",
            "3",
            "-ac",
            "2",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
        ],
    );
    let events = read_events(&src, NalFraming::AnnexB).unwrap();
    let ladder = Ladder::plan(1280, 720, QualityPreset::P720, None);
    let run = transcode(events, ladder, 2000, TranscodeOptions::default());
    let audio = run.of(run.audio);
    assert_near(
        audio.len(),
        3.0 * 48000.0 / 1024.0,
        3.0,
        "AAC packets from Opus",
    );
    // No video came: the video rungs stay empty and have no parameters.
    assert!(run.of(0).is_empty() && run.params[0].is_none());
    match &run.params[run.audio].as_ref().unwrap().config {
        StreamConfig::Audio {
            sample_rate,
            channels,
            asc,
            ..
        } => {
            assert_eq!(
                (*sample_rate, *channels, asc.clone()),
                (48000, 2, Bytes::from_static(&[0x11, 0x90]))
            );
        }
        StreamConfig::Video { .. } => panic!("audio rendition has video params"),
    }
}

#[test]
fn frames_before_the_first_keyframe_and_before_config_are_dropped() {
    let src = test_clip("640x360", 30, 2, &["-g", "30"]);
    let events = read_events(&src, NalFraming::Avcc).unwrap();
    // Start mid-GOP: drop the config and the first 5 frames, then put the config back.
    let config = events
        .iter()
        .find(|e| matches!(e, MediaEvent::VideoConfig { .. }))
        .cloned()
        .unwrap();
    let mut skipped = 0;
    let mut trimmed = Vec::new();
    for e in events {
        match e {
            MediaEvent::VideoConfig { .. } => {}
            MediaEvent::Video { .. } if skipped < 5 => {
                skipped += 1;
                if skipped == 3 {
                    trimmed.push(config.clone());
                }
            }
            other => trimmed.push(other),
        }
    }
    let run = transcode(
        trimmed,
        Ladder::plan(640, 360, QualityPreset::P360, None),
        1000,
        TranscodeOptions::default(),
    );
    // The next keyframe is at 1 s: only the second second is encoded.
    let video = run.of(0);
    assert!(video[0].keyframe);
    assert_near(video.len(), 24.0, 2.0, "frames after the first keyframe");
}

#[test]
fn source_path_is_a_real_file() {
    // The helper refuses containers whose H.264 lives in extradata, with a clear error.
    let mp4 = clip(
        "src.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-t",
            "1",
            "-c:v",
            "libx264",
        ],
    );
    let err = read_events(Path::new(&mp4), NalFraming::Avcc).unwrap_err();
    assert!(err.to_string().contains("Annex B"), "{err}");
}

#[test]
fn governor_levels_change_cost_but_not_parameter_sets_keyframes_or_decode_order() {
    let (seconds, segment_ms) = (7, 1000);
    let src = test_clip("1280x720", 30, seconds, &["-g", "30"]);
    let events = read_events(&src, NalFraming::Avcc).unwrap();
    let ladder = Ladder::plan(1280, 720, QualityPreset::P720, None);
    let mut t = Transcoder::with_options(ladder, segment_ms, TranscodeOptions::default()).unwrap();
    let origin = events
        .iter()
        .find_map(|e| match e {
            MediaEvent::Video { pts_ms, dts_ms, .. } => Some(*pts_ms.min(dts_ms)),
            _ => None,
        })
        .unwrap();
    // Second k of the stream runs at level LEVELS[k]: down through every level, then back.
    const LEVELS: [u8; 7] = [0, 1, 2, 3, 4, 5, 0];
    let mut packets = Vec::new();
    for e in events {
        if let MediaEvent::Video { pts_ms, .. } = &e {
            let second = ((pts_ms - origin) / 1000).clamp(0, 6) as usize;
            t.set_level(LEVELS[second]);
        }
        packets.extend(t.push(e).unwrap());
    }
    packets.extend(t.finish().unwrap());
    assert_eq!(t.level(), 0);
    let renditions = t.renditions().to_vec();
    let run = Run {
        params: (0..renditions.len())
            .map(|i| t.codec_params(i).cloned())
            .collect(),
        renditions,
        packets,
        audio: t.audio_index(),
    };
    let video = run.audio;
    assert_eq!(video, 3, "720p, 480p, 360p");
    // Same parameter sets throughout: none had to be repeated in band.
    for p in run.packets.iter().filter(|p| p.rendition < video) {
        let nals = h264::avcc_nals(&p.data, 4).unwrap();
        assert!(
            nals.iter().all(|n| h264::nal_type(n) != h264::nal::SPS),
            "in-band SPS on rung {} at {} ms",
            p.rendition,
            p.pts_ms
        );
    }
    assert_aligned(&run, video, seconds, i64::from(segment_ms));
    for r in 0..video {
        let dts: Vec<i64> = run.of(r).iter().map(|p| p.dts_ms).collect();
        assert!(
            dts.windows(2).all(|w| w[0] < w[1]),
            "dts of rung {r} increase"
        );
        let (frames, _) = decode(&run, r);
        assert_eq!(frames, run.of(r).len(), "every packet of rung {r} decodes");
    }
    // Frame rates: level 4 halves the lower rungs, level 5 every rung (one second each).
    let top = run.of(0).len() as f64;
    assert_near(top as usize, 30.0 * 6.0 + 15.0, 3.0, "720p frames");
    let low = run.of(2).len();
    assert_near(low, 24.0 * 5.0 + 12.0 * 2.0, 3.0, "360p frames");
}

#[test]
fn shedding_at_the_last_level_keeps_only_boundary_frames() {
    let (seconds, segment_ms) = (3, 1000);
    let src = test_clip("640x360", 30, seconds, &["-g", "30"]);
    let events = read_events(&src, NalFraming::Avcc).unwrap();
    let ladder = Ladder::plan(640, 360, QualityPreset::P360, None);
    let mut t = Transcoder::with_options(ladder, segment_ms, TranscodeOptions::default()).unwrap();
    t.set_level(crate::governor::MAX_LEVEL);
    t.set_shedding(true);
    let mut packets = Vec::new();
    for e in events {
        packets.extend(t.push(e).unwrap());
    }
    packets.extend(t.finish().unwrap());
    let video: Vec<&EncodedPacket> = packets.iter().filter(|p| p.rendition == 0).collect();
    assert_eq!(video.len(), 3, "one frame per segment");
    assert!(video.iter().all(|p| p.keyframe));
    let shed = t.take_shed_frames();
    assert!(shed >= 80, "shed {shed}");
}
