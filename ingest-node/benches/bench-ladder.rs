//! Benchmark: our ladder against the `ffmpeg` CLI doing the same job, in the same run.
//!
//! `cargo bench -p rill-ingest --bench bench-ladder [-- OPTIONS]` (add `--profile
//! local-release` to skip the release profile's LTO link). A bench target, not a binary:
//! `cargo build --bins` and the shipped image do not build it.
//!
//! Case A: a 1080p30 6 Mbit/s 20 s H.264+AAC source through the full ladder
//! (1080p/720p/480p/360p + AAC 128k) by (a) our `Transcoder` and (b) the CLI with the
//! reference arguments (one decode, split + scale, libx264 veryfast with the same
//! bitrate/maxrate/bufsize/fps/keyint, AAC 128k). Both discard their output for the timed
//! runs; CPU is user+system seconds (ours: /proc/self/stat deltas; the CLI: `/usr/bin/time`),
//! RSS is the peak (VmHWM / `%M`). Quality: both write their rungs to files in a second,
//! untimed run and the CLI's psnr filter compares each rung with the source scaled
//! (bicubic) to the rung's size, each output frame against the source frame it came from.
//!
//! Case B: a source that fits the top rung (1080p30 2.8 Mbit/s, keyint 60): the top rung
//! is passed through; compared with the CLI re-encoding the whole ladder (the target's
//! anchor) and, for information, with the CLI copying the top rung.
//!
//! Options: `--seconds N` (20), `--no-psnr`, `--scale cascade|direct`, `--zerolatency`,
//! `--threads 2,1,1,1` (x264 threads per rung), `--decoder-threads N`, `--explore`
//! (also time the alternative settings the defaults were chosen from), `--keep` (keep the
//! work directory).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ffmpeg_next::{Packet, Rational, codec, encoder, format, media};
use rill_ingest::bitstream::h264::{self, AvcConfig};
use rill_ingest::media::{EncodedPacket, MediaEvent, NalFraming, Rendition};
use rill_ingest::transcode::file_source::read_events;
use rill_ingest::transcode::{
    Ladder, QualityPreset, ScaleMode, SourceMeter, StreamConfig, TranscodeOptions, Transcoder,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const SEGMENT_MS: u32 = 2000;

struct Args {
    seconds: u32,
    psnr: bool,
    explore: bool,
    keep: bool,
    only_ours: bool,
    options: TranscodeOptions,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        seconds: 20,
        psnr: true,
        explore: false,
        keep: false,
        only_ours: false,
        options: TranscodeOptions::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            // `cargo bench` passes `--bench` to a target without the libtest harness.
            "--bench" => {}
            "--seconds" => a.seconds = value()?.parse()?,
            "--no-psnr" => a.psnr = false,
            "--explore" => a.explore = true,
            "--keep" => a.keep = true,
            "--only-ours" => a.only_ours = true,
            "--zerolatency" => a.options.zerolatency = true,
            "--scale" => {
                a.options.scale = match value()?.as_str() {
                    "cascade" => ScaleMode::Cascade,
                    "direct" => ScaleMode::Direct,
                    other => return Err(format!("--scale {other}: cascade or direct").into()),
                }
            }
            "--threads" => {
                a.options.x264_threads = Some(
                    value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?,
                )
            }
            "--x264-params" => a.options.x264_params = Some(value()?),
            "--cascade-scaling" => a.options.scale = ScaleMode::Cascade,
            "--frame-threads" => a.options.sliced_threads = false,
            "--rc-lookahead" => a.options.rc_lookahead = value()?.parse()?,
            "--queue" => a.options.queue_depth = value()?.parse()?,
            "--decoder-threads" => a.options.decoder_threads = value()?.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(a)
}

fn main() -> Res<()> {
    let args = parse_args()?;
    rill_ingest::transcode::init()?;
    let dir = std::env::temp_dir().join(format!("rill-bench-ladder-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&args, &dir);
    if args.keep {
        println!("work directory kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run(args: &Args, dir: &Path) -> Res<()> {
    let secs = args.seconds;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bench-ladder: {secs} s of 1080p30, {cores} cores, segment {SEGMENT_MS} ms, options {:?}",
        args.options
    );

    // ---------------------------------------------------------------- case A
    let src_a = dir.join("source-6m.ts");
    make_source(
        &src_a,
        secs,
        &["-b:v", "6000k", "-maxrate", "6000k", "-bufsize", "12000k"],
    )?;
    let events_a = read_events(&src_a, NalFraming::Avcc)?;
    let ladder = Ladder::plan(1920, 1080, QualityPreset::P1080, None);

    println!(
        "process RSS before the ladder (libraries + preloaded input): {:.0} MB",
        self_rss_kb()? as f64 / 1024.0
    );
    let ours = time_ladder(&events_a, &ladder, &args.options)?;
    if args.only_ours {
        println!("ours: {ours:?}");
        if args.psnr {
            let files = write_ladder(&events_a, &ladder, &args.options, dir, "ours")?;
            let mut row = Vec::new();
            for (rung, file) in ladder.rungs().iter().zip(&files) {
                row.push(format!(
                    "{} {:.2}",
                    rung.name,
                    psnr(file, &src_a, rung, Match::SourceFrame)?
                ));
            }
            println!("PSNR ours: {}", row.join(", "));
        }
        return Ok(());
    }
    let cli = time_cli(&src_a, ladder.rungs(), false)?;

    let mut rows = vec![
        ("A: full ladder, ours", ours.clone()),
        ("A: full ladder, ffmpeg CLI", cli.clone()),
    ];
    let mut explored = Vec::new();
    if args.explore {
        for (name, options, quality) in variants(&args.options) {
            let m = time_ladder(&events_a, &ladder, &options)?;
            explored.push((name, options, quality, m));
        }
    }

    // ---------------------------------------------------------------- case B
    let src_b = dir.join("source-2800k.ts");
    make_source(
        &src_b,
        secs,
        &["-b:v", "2800k", "-maxrate", "2800k", "-bufsize", "2800k"],
    )?;
    let events_b = read_events(&src_b, NalFraming::Avcc)?;
    let mut meter = SourceMeter::default();
    events_b.iter().for_each(|e| meter.observe(e));
    let info = meter.info();
    let eligible = ladder.passthrough_eligible(&info);
    println!("case B source: {info:?} -> passthrough eligible: {eligible}");
    let ladder_b = ladder.clone().with_passthrough(eligible);
    let ours_b = time_ladder(&events_b, &ladder_b, &args.options)?;
    let cli_b = time_cli(&src_b, ladder.rungs(), false)?;
    let cli_b_copy = time_cli(&src_b, ladder.rungs(), true)?;
    rows.push(("B: passthrough top, ours", ours_b.clone()));
    rows.push(("B: full re-encode, ffmpeg CLI", cli_b.clone()));
    rows.push(("B: copy top, ffmpeg CLI", cli_b_copy));

    // ---------------------------------------------------------------- report
    let media = f64::from(secs);
    println!();
    println!("| run | CPU s | CPU s / media s | wall s | x real time | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, m) in &rows {
        println!(
            "| {name} | {:.2} | {:.3} | {:.2} | {:.2} | {:.0} |",
            m.cpu_s,
            m.cpu_s / media,
            m.wall_s,
            media / m.wall_s,
            m.rss_kb as f64 / 1024.0
        );
    }
    println!();
    println!(
        "CPU ratio A (ours / CLI): {:.3}  (target <= 1.0)",
        ours.cpu_s / cli.cpu_s
    );
    println!(
        "real-time factor A (ours): {:.2}x  (target >= 1.3x on 2 cores)",
        media / ours.wall_s
    );
    println!(
        "peak RSS (ours, this run's peak of the whole process incl. the preloaded input): {:.0} MB  (target <= 300)",
        ours.rss_kb as f64 / 1024.0
    );
    println!(
        "CPU ratio B (ours passthrough / CLI full): {:.3}  (target <= 0.5)",
        ours_b.cpu_s / cli_b.cpu_s
    );
    if !ours.kbps.is_empty() {
        let rates: Vec<String> = ladder
            .rungs()
            .iter()
            .zip(&ours.kbps)
            .map(|(r, k)| format!("{} {:.0}k", r.name, k))
            .collect();
        println!("actual bitrates A (ours): {}", rates.join(", "));
    }

    if !explored.is_empty() {
        println!();
        println!("| variant (case A) | CPU s / media s | x real time | CPU vs CLI | peak RSS MB |");
        println!("|---|---:|---:|---:|---:|");
        for (name, _, _, m) in &explored {
            println!(
                "| {name} | {:.3} | {:.2} | {:.3} | {:.0} |",
                m.cpu_s / media,
                media / m.wall_s,
                m.cpu_s / cli.cpu_s,
                m.rss_kb as f64 / 1024.0
            );
        }
    }

    if args.psnr {
        println!();
        let ours_files = write_ladder(&events_a, &ladder, &args.options, dir, "ours")?;
        let cli_files = write_cli(&src_a, ladder.rungs(), dir)?;
        let mut quality: Vec<(String, Vec<PathBuf>)> =
            vec![("ours".into(), ours_files), ("CLI".into(), cli_files)];
        if args.explore {
            for (name, options, _, _) in explored.iter().filter(|v| v.2) {
                let tag = name.replace([' ', ',', '=', '/'], "_");
                quality.push((
                    name.clone(),
                    write_ladder(&events_a, &ladder, options, dir, &tag)?,
                ));
            }
        }
        let mut table = Vec::new();
        let mut rates = Vec::new();
        for (name, files) in &quality {
            let mut row = Vec::new();
            let mut rate = Vec::new();
            let how = if name == "CLI" {
                Match::FpsFilter
            } else {
                Match::SourceFrame
            };
            for (rung, file) in ladder.rungs().iter().zip(files) {
                row.push(psnr(file, &src_a, rung, how)?);
                rate.push(format!("{:.0}", video_kbps(file, media)?));
            }
            table.push((name.clone(), row));
            rates.push((name.clone(), rate));
        }
        let header: Vec<&str> = ladder.rungs().iter().map(|r| r.name.as_str()).collect();
        println!("| PSNR dB (case A) | {} |", header.join(" | "));
        println!("|---|{}", "---:|".repeat(header.len()));
        for (name, row) in &table {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.2}")).collect();
            println!("| {name} | {} |", cells.join(" | "));
        }
        let cells: Vec<String> = table[0]
            .1
            .iter()
            .zip(&table[1].1)
            .map(|(o, c)| format!("{:+.2}", o - c))
            .collect();
        println!("| ours - CLI (target >= -0.20) | {} |", cells.join(" | "));
        for (name, rate) in &rates {
            println!("| kbit/s, {name} | {} |", rate.join(" | "));
        }
    }
    Ok(())
}

/// The settings the defaults were chosen among (timed in `--explore`); the flag says
/// whether the variant can change quality (those also get a PSNR row).
fn variants(base: &TranscodeOptions) -> Vec<(String, TranscodeOptions, bool)> {
    let other_scale = match base.scale {
        ScaleMode::Cascade => ScaleMode::Direct,
        ScaleMode::Direct => ScaleMode::Cascade,
    };
    let with = |f: &dyn Fn(&mut TranscodeOptions)| {
        let mut o = base.clone();
        f(&mut o);
        o
    };
    let mut v = vec![
        (
            format!("scale {other_scale:?}"),
            with(&|o| o.scale = other_scale),
            true,
        ),
        (
            format!("zerolatency {}", !base.zerolatency),
            with(&|o| o.zerolatency = !o.zerolatency),
            true,
        ),
        (
            "rc-lookahead 10 (veryfast's)".into(),
            with(&|o| o.rc_lookahead = 10),
            true,
        ),
        (
            format!("sliced threads {}", !base.sliced_threads),
            with(&|o| o.sliced_threads = !o.sliced_threads),
            true,
        ),
    ];
    for threads in [
        vec![1, 1, 1, 1],
        vec![2, 2, 1, 1],
        vec![2, 2, 2, 2],
        vec![0, 0, 0, 0],
    ] {
        let name = format!("x264 threads {threads:?}");
        v.push((
            name,
            with(&|o| o.x264_threads = Some(threads.clone())),
            false,
        ));
    }
    v.push((
        "decoder threads 2".into(),
        with(&|o| o.decoder_threads = 2),
        false,
    ));
    v.push(("queue depth 4".into(), with(&|o| o.queue_depth = 4), false));
    v
}

#[derive(Debug, Clone, Default)]
struct Measure {
    cpu_s: f64,
    wall_s: f64,
    rss_kb: u64,
    /// Actual average bitrate per video rung (ours only).
    kbps: Vec<f64>,
}

fn make_source(path: &Path, secs: u32, rate: &[&str]) -> Res<()> {
    let t = secs.to_string();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
        ])
        .args([
            "-t", &t, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "60",
        ])
        .args(rate)
        .args(["-c:a", "aac", "-b:a", "128k", "-f", "mpegts"])
        .arg(path);
    let status = cmd.status()?;
    if !status.success() {
        return Err(format!("ffmpeg could not make {}", path.display()).into());
    }
    Ok(())
}

/// user+system CPU seconds of this process (all threads, alive or exited).
fn self_cpu_s() -> Res<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("bad /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // USER_HZ is 100 on every Linux ABI we run on.
    Ok(ticks / 100.0)
}

fn self_rss_kb() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

fn self_peak_rss_kb() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmHWM")?.parse()?)
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5) so each run reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn time_ladder(events: &[MediaEvent], ladder: &Ladder, options: &TranscodeOptions) -> Res<Measure> {
    reset_peak_rss();
    let mut t = Transcoder::with_options(ladder.clone(), SEGMENT_MS, options.clone())?;
    let cpu0 = self_cpu_s()?;
    let start = Instant::now();
    let mut count = 0usize;
    for e in events {
        count += t.push(e.clone())?.len();
    }
    count += t.finish()?.len();
    let wall_s = start.elapsed().as_secs_f64();
    let cpu_s = self_cpu_s()? - cpu0;
    let kbps = (0..ladder.rungs().len())
        .map(|i| t.stats()[i].avg_kbps())
        .collect();
    drop(t);
    if count == 0 {
        return Err("the ladder produced nothing".into());
    }
    Ok(Measure {
        cpu_s,
        wall_s,
        rss_kb: self_peak_rss_kb()?,
        kbps,
    })
}

/// The reference CLI arguments for the ladder: one decode, split, scale, fps, libx264
/// veryfast with the same rate control and keyint, AAC 128k 48 kHz stereo.
fn cli_args(src: &Path, rungs: &[Rendition], copy_top: bool, outputs: &[String]) -> Vec<String> {
    let mut graph = format!("[0:v]split={}", rungs.len());
    for i in 0..rungs.len() {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, r) in rungs.iter().enumerate() {
        graph.push_str(&format!(
            ";[s{i}]scale={}:{},fps={}[v{i}]",
            r.width, r.height, r.fps
        ));
    }
    let mut a: Vec<String> = ["-hide_banner", "-loglevel", "error", "-y", "-i"]
        .map(String::from)
        .to_vec();
    a.push(src.display().to_string());
    a.push("-filter_complex".into());
    a.push(graph);
    for (i, r) in rungs.iter().enumerate() {
        if i == 0 && copy_top {
            a.extend(["-map", "0:v", "-c:v", "copy"].map(String::from));
        } else {
            let k = r.video_kbps;
            let g = (SEGMENT_MS * r.fps / 1000).to_string();
            a.extend([
                "-map".into(),
                format!("[v{i}]"),
                "-c:v".into(),
                "libx264".into(),
                "-preset".into(),
                "veryfast".into(),
            ]);
            a.extend([
                "-profile:v".into(),
                "high".into(),
                "-b:v".into(),
                format!("{k}k"),
                "-maxrate".into(),
                format!("{k}k"),
            ]);
            a.extend([
                "-bufsize".into(),
                format!("{}k", 2 * k),
                "-g".into(),
                g.clone(),
                "-keyint_min".into(),
                g,
            ]);
            a.extend(["-sc_threshold".into(), "0".into()]);
        }
        a.extend([
            "-an".into(),
            "-f".into(),
            muxer(&outputs[i]).into(),
            outputs[i].clone(),
        ]);
    }
    a.extend(
        [
            "-map", "0:a", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-vn", "-f",
        ]
        .map(String::from),
    );
    a.push(muxer(&outputs[rungs.len()]).into());
    a.push(outputs[rungs.len()].clone());
    if copy_top {
        // The split output for the copied rung is unused: scale it away cheaply.
        a = a
            .into_iter()
            .map(|s| s.replace("[s0]scale=1920:1080,fps=30[v0]", "[s0]nullsink"))
            .collect();
    }
    a
}

/// Timed runs discard their output (null muxer); quality runs write MPEG-TS.
fn muxer(output: &str) -> &'static str {
    if output == "/dev/null" {
        "null"
    } else {
        "mpegts"
    }
}

fn time_cli(src: &Path, rungs: &[Rendition], copy_top: bool) -> Res<Measure> {
    let outputs: Vec<String> = (0..=rungs.len()).map(|_| "/dev/null".to_string()).collect();
    let timing = std::env::temp_dir().join(format!("rill-bench-time-{}", std::process::id()));
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-o")
        .arg(&timing)
        .args(["-f", "%U %S %M"])
        .arg("ffmpeg")
        .args(cli_args(src, rungs, copy_top, &outputs))
        .status()?;
    let wall_s = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err("the ffmpeg CLI ladder failed".into());
    }
    let text = std::fs::read_to_string(&timing)?;
    let _ = std::fs::remove_file(&timing);
    let f: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if f.len() != 3 {
        return Err(format!("cannot parse /usr/bin/time output {text:?}").into());
    }
    Ok(Measure {
        cpu_s: f[0] + f[1],
        wall_s,
        rss_kb: f[2] as u64,
        kbps: Vec::new(),
    })
}

fn write_cli(src: &Path, rungs: &[Rendition], dir: &Path) -> Res<Vec<PathBuf>> {
    let files: Vec<PathBuf> = (0..=rungs.len())
        .map(|i| dir.join(format!("cli-{i}.ts")))
        .collect();
    let outputs: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let status = Command::new("ffmpeg")
        .args(cli_args(src, rungs, false, &outputs))
        .status()?;
    if !status.success() {
        return Err("the ffmpeg CLI ladder (to files) failed".into());
    }
    Ok(files[..rungs.len()].to_vec())
}

/// Runs our ladder and writes each video rung to an MPEG-TS file (Annex B, parameter sets
/// in front of keyframes, our timestamps).
fn write_ladder(
    events: &[MediaEvent],
    ladder: &Ladder,
    options: &TranscodeOptions,
    dir: &Path,
    tag: &str,
) -> Res<Vec<PathBuf>> {
    let mut t = Transcoder::with_options(ladder.clone(), SEGMENT_MS, options.clone())?;
    let mut packets: Vec<EncodedPacket> = Vec::new();
    for e in events {
        packets.extend(t.push(e.clone())?);
    }
    packets.extend(t.finish()?);
    let mut files = Vec::new();
    for i in 0..ladder.rungs().len() {
        let Some(StreamConfig::Video { avcc, .. }) = t.codec_params(i).map(|p| &p.config) else {
            return Err(format!("rung {i} has no parameters").into());
        };
        let config = AvcConfig::parse(avcc)?;
        let path = dir.join(format!("{tag}-{i}.ts"));
        let mut out = format::output_as(&path, "mpegts")?;
        {
            let mut stream = out.add_stream(encoder::find(codec::Id::H264))?;
            let mut par = codec::Parameters::new();
            par.set_medium(media::Type::Video);
            par.set_id(codec::Id::H264);
            stream.set_parameters(par);
            stream.set_time_base(Rational::new(1, 1000));
        }
        out.write_header()?;
        let tb = out.stream(0).ok_or("no stream")?.time_base();
        for p in packets.iter().filter(|p| p.rendition == i) {
            let mut annexb = if p.keyframe {
                config.annexb_parameter_sets()
            } else {
                Vec::new()
            };
            h264::write_annexb(h264::avcc_nals(&p.data, 4)?, &mut annexb);
            let mut packet = Packet::copy(&annexb);
            packet.set_pts(Some(p.pts_ms));
            packet.set_dts(Some(p.dts_ms));
            packet.set_duration(p.duration_ms);
            packet.rescale_ts(Rational::new(1, 1000), tb);
            packet.set_stream(0);
            if p.keyframe {
                packet.set_flags(codec::packet::Flags::KEY);
            }
            packet.write_interleaved(&mut out)?;
        }
        out.write_trailer()?;
        files.push(path);
    }
    Ok(files)
}

/// Average video bitrate of a file's packets over `seconds` (ffprobe).
fn video_kbps(file: &Path, seconds: f64) -> Res<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=size",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()?;
    let bytes: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse::<u64>().ok())
        .sum();
    Ok(bytes as f64 * 8.0 / 1000.0 / seconds)
}

/// How output frames are paired with source frames for PSNR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// Our rungs keep the source frames' own timestamps: put both sides on the source's
    /// 30 fps grid and compare each output frame with the source frame it was made from.
    SourceFrame,
    /// The CLI's rungs went through its `fps` filter: run the same filter on the reference
    /// so that it picks the same source frames.
    FpsFilter,
}

/// Average PSNR (Y/U/V weighted, as FFmpeg prints it) of `file` against the source scaled
/// (bicubic) to the rung, each output frame against the source frame it came from.
fn psnr(file: &Path, src: &Path, rung: &Rendition, how: Match) -> Res<f64> {
    let (w, h, fps) = (rung.width, rung.height, rung.fps);
    let graph = match how {
        Match::SourceFrame => {
            let grid = "setpts=round((PTS-STARTPTS)*TB*30)/(30*TB)";
            format!("[0:v]{grid}[m];[1:v]scale={w}:{h}:flags=bicubic,{grid}[r];[m][r]psnr")
        }
        Match::FpsFilter => format!(
            "[0:v]setpts=PTS-STARTPTS[m];[1:v]scale={w}:{h}:flags=bicubic,fps={fps},setpts=PTS-STARTPTS[r];[m][r]psnr"
        ),
    };
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(file)
        .arg("-i")
        .arg(src)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("PSNR y:"))
        .ok_or_else(|| format!("no PSNR in {text}"))?;
    let avg = line
        .split("average:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .ok_or("no average")?;
    Ok(avg.parse()?)
}
