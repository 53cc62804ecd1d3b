//! `bench-overload`: does the ingest node stay real time when the CPU is short?
//!
//! A pre-encoded source (H.264 High 1080p30 at 4.5 Mbit/s, 2 s GOP, no B-frames, AAC
//! 128k; a noisy test pattern so that x264 has real work) is pushed over RTMP with
//! `ffmpeg -re -c copy` through a real node into S3 (moto), 1080p preset (the whole
//! 4-rung ladder is encoded), while 0, 1 or 1.5 cores are taken from it by busy processes
//! at a higher priority (nice -10; see [`Load`]). Each load
//! runs twice in the same run: with the overload governor (`GOVERNOR=on`) and without it
//! (`GOVERNOR=off`, today's behaviour: the anchor).
//!
//! Per case it prints: output lag p50/p90/max and its growth per minute (lag = when the
//! bench first sees a 1080p segment listed in the playlist minus when the publisher had
//! sent the media that segment ends with, on the publisher's clock: `-re` start + the
//! segment's end in media time; playlists polled every 100 ms), the node's own
//! availability lag p90 (`/metrics`), the governor's level over time (one digit per 10 s),
//! CPU-s per media-s of the node process, and per-rung PSNR against the source over the
//! last 30 s of media (where the governor has settled).
//!
//! `--levels`: instead, each fixed governor level for `--seconds` without load, for the
//! cost table the governor's decisions use (`RELATIVE_COST` in `ingest-node/src/governor.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rill_tests::{IngestNode, Stack, User};
use serde_json::json;

struct Args {
    seconds: u32,
    loads: Vec<f64>,
    levels: bool,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 120,
        loads: vec![0.0, 1.0, 1.5],
        levels: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => {
                a.seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.seconds)
                    .max(20)
            }
            "--loads" => {
                a.loads = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|v| v.trim().parse().ok())
                    .collect()
            }
            "--levels" => a.levels = true,
            _ => {
                eprintln!("usage: bench-overload [--seconds 120] [--loads 0,1,1.5] [--levels]");
                std::process::exit(2)
            }
        }
    }
    a
}

const RUNGS: [(&str, u32, u32); 4] = [
    ("1080p", 1920, 1080),
    ("720p", 1280, 720),
    ("480p", 854, 480),
    ("360p", 640, 360),
];

/// The source file, made once per length.
fn source(seconds: u32) -> PathBuf {
    let path = std::env::temp_dir().join(format!("rill-overload-1080p30-4500k-{seconds}s.mp4"));
    if path.exists() {
        return path;
    }
    let t = seconds.to_string();
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=1920x1080:rate=30,noise=alls=6:allf=t")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &t,
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
        ])
        .args(["-b:v", "4500k", "-maxrate", "4500k", "-bufsize", "9000k"])
        .args(["-g", "60", "-bf", "0", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "128k"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .expect("ffmpeg");
    assert!(made.success(), "could not make the source");
    path
}

/// Steals `cores` cores from the node (a fraction at that duty cycle) until dropped: busy
/// processes at nice -10, so the scheduler gives them their share first, whatever the node's
/// thread count (plain busy threads at the node's priority lose to its many encoder threads
/// and steal almost nothing: measured, the node then kept level 0 at 1.5 "cores" of load).
/// This is what a noisy neighbour, a hypervisor's steal time or a lower cgroup quota does.
struct Load {
    children: Vec<std::process::Child>,
}

impl Load {
    fn start(cores: f64) -> Load {
        let mut children = Vec::new();
        let mut left = cores;
        while left > 0.0 {
            let duty = left.min(1.0);
            left -= duty;
            let script = format!(
                "import time\nwhile True:\n    end = time.perf_counter() + {busy}\n    while time.perf_counter() < end: pass\n    time.sleep({idle})\n",
                busy = 0.01 * duty,
                idle = 0.01 * (1.0 - duty),
            );
            let child = Command::new("nice")
                .args(["-n", "-10", "python3", "-c", &script])
                .stdin(Stdio::null())
                .spawn()
                .expect("nice python3 (the load needs root for a negative nice value)");
            children.push(child);
        }
        Load { children }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    rill_tests::cpu_seconds(&format!("/proc/{pid}/stat"))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Least-squares slope of lag (s) over time (s), in s per minute.
fn growth_per_minute(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}

struct CaseResult {
    lags: Vec<f64>,
    growth: f64,
    node_p90: Option<f64>,
    levels: String,
    cpu_per_media_s: f64,
    psnr: Vec<Option<f64>>,
}

fn metric(metrics: &str, name: &str, id: &str, extra: &str) -> Option<f64> {
    let prefix = format!("{name}{{stream_id=\"{id}\"{extra}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Downloads a rendition (init + every segment) into one fragmented MP4 file.
async fn download(stack: &Stack, id: &str, rung: &str, to: &Path) -> bool {
    let base = format!("/hls/live/{id}/{rung}");
    let Some(playlist) = stack.text(&format!("{base}/index.m3u8")).await else {
        return false;
    };
    let mut out = Vec::new();
    let mut init_seen = String::new();
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            let uri = rest.trim_end_matches('"');
            if uri != init_seen {
                match stack.bytes(&format!("{base}/{uri}")).await {
                    Some(b) => out.extend(b),
                    None => return false,
                }
                init_seen = uri.to_owned();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            match stack.bytes(&format!("{base}/{line}")).await {
                Some(b) => out.extend(b),
                None => return false,
            }
        }
    }
    std::fs::write(to, out).is_ok()
}

/// PSNR (average, dB) of `rendition` upscaled to 1080p against the source, over media
/// seconds `from..from+len`.
fn psnr(rendition: &Path, source: &Path, from: u32, len: u32) -> Option<f64> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(rendition)
        .arg("-i")
        .arg(source)
        .args([
            "-filter_complex",
            &format!(
                "[0:v]trim=start={from}:duration={len},setpts=PTS-STARTPTS,scale=1920:1080:flags=bicubic[a];\
                 [1:v]trim=start={from}:duration={len},setpts=PTS-STARTPTS[b];[a][b]psnr"
            ),
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter_map(|l| l.split("average:").nth(1))
        .filter_map(|v| v.split_whitespace().next())
        .filter_map(|v| v.parse::<f64>().ok())
        .next_back()
}

async fn run_case(
    stack: &Stack,
    governor: &str,
    load: f64,
    seconds: u32,
    src: &Path,
) -> CaseResult {
    let node = IngestNode::start(stack, &[("GOVERNOR", governor)]);
    let owner = User::named("bench");
    let (id, key) = owner
        .create_stream(
            stack,
            json!({"channelId":"bench","title":format!("overload {governor} {load}"),"settings":{"quality":"1080p"}}),
        )
        .await;
    let url = format!("{}/live/{key}", node.rtmp);
    let _load = (load > 0.0).then(|| Load::start(load));
    let cpu0 = cpu_seconds(node.pid());
    let src_owned = src.to_owned();
    let started = Instant::now();
    let publisher = tokio::task::spawn_blocking(move || {
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(&src_owned)
            .args(["-c", "copy", "-f", "flv", &url])
            .stdin(Stdio::null())
            .status()
    });
    let playlist = format!("/hls/live/{id}/1080p/index.m3u8");
    let mut seen = 0usize;
    let mut lags: Vec<(f64, f64)> = Vec::new();
    let mut levels = String::new();
    let mut next_level_probe = Duration::ZERO;
    let mut ended_at: Option<Instant> = None;
    // Until the publisher is done and the node has drained its backlog (or 60 s more).
    loop {
        let now = started.elapsed();
        if let Some(p) = stack.text(&playlist).await {
            let durations: Vec<f64> = p
                .lines()
                .filter_map(|l| l.strip_prefix("#EXTINF:"))
                .filter_map(|d| d.trim_end_matches(',').parse().ok())
                .collect();
            if durations.len() > seen {
                let mut end = durations[..seen].iter().sum::<f64>();
                for d in &durations[seen..] {
                    end += d;
                    lags.push((end, now.as_secs_f64() - end));
                }
                seen = durations.len();
            }
        }
        if now >= next_level_probe {
            next_level_probe += Duration::from_secs(10);
            let m = reqwest::get(format!("{}/metrics", node.http)).await.ok();
            let text = match m {
                Some(r) => r.text().await.unwrap_or_default(),
                None => String::new(),
            };
            let level = metric(&text, "rill_ingest_governor_level", &id, "");
            levels.push(level.map_or('?', |l| char::from(b'0' + l as u8)));
        }
        if publisher.is_finished() && ended_at.is_none() {
            ended_at = Some(Instant::now());
        }
        let media_done = lags
            .last()
            .is_some_and(|(end, _)| *end >= f64::from(seconds) - 1.5);
        if ended_at.is_some_and(|at| media_done || at.elapsed() > Duration::from_secs(60)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = publisher.await;
    drop(_load);
    let metrics = reqwest::get(format!("{}/metrics", node.http))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let node_p90 = metric(
        &metrics,
        "rill_ingest_segment_availability_seconds",
        &id,
        ",quantile=\"0.9\"",
    );
    let media_s = lags.last().map_or(f64::from(seconds), |(end, _)| *end);
    let cpu = cpu_seconds(node.pid()) - cpu0;
    owner
        .post(stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    drop(node);
    let growth = growth_per_minute(&lags);
    let mut values: Vec<f64> = lags.iter().map(|(_, l)| *l).collect();
    values.sort_by(f64::total_cmp);
    let mut psnrs = Vec::new();
    let window = 30.min(seconds.saturating_sub(2));
    for (rung, _, _) in RUNGS {
        let file = std::env::temp_dir().join(format!("rill-overload-{id}-{rung}.mp4"));
        let v = if download(stack, &id, rung, &file).await {
            psnr(&file, src, seconds.saturating_sub(window + 1), window)
        } else {
            None
        };
        let _ = std::fs::remove_file(&file);
        psnrs.push(v);
    }
    CaseResult {
        lags: values,
        growth,
        node_p90,
        levels,
        cpu_per_media_s: cpu / media_s.max(1.0),
        psnr: psnrs,
    }
}

fn print_header() {
    println!(
        "{:<22} {:>7} {:>7} {:>7} {:>9} {:>8} {:>7}  {:<14} PSNR dB 1080p/720p/480p/360p",
        "case", "p50 s", "p90 s", "max s", "growth/m", "node p90", "CPU s/s", "level /10s",
    );
}

fn print_row(label: &str, r: &CaseResult) {
    let psnr = r
        .psnr
        .iter()
        .map(|p| p.map_or("-".to_owned(), |v| format!("{v:.2}")))
        .collect::<Vec<_>>()
        .join("/");
    println!(
        "{label:<22} {:>7.2} {:>7.2} {:>7.2} {:>9.2} {:>8} {:>7.2}  {:<14} {psnr}",
        quantile(&r.lags, 0.5),
        quantile(&r.lags, 0.9),
        r.lags.last().copied().unwrap_or(f64::NAN),
        r.growth,
        r.node_p90.map_or("-".to_owned(), |v| format!("{v:.2}")),
        r.cpu_per_media_s,
        r.levels,
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let src = source(a.seconds);
    let stack = Stack::start();
    println!(
        "bench-overload: {} s of 1080p30 4.5 Mbit/s (GOP 2 s, no B-frames) over RTMP (-re -c copy), 1080p preset, 1 s segments, {} cores",
        a.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print_header();
    if a.levels {
        let mut base = None;
        for level in 0..=5u8 {
            let r = run_case(&stack, &level.to_string(), 0.0, a.seconds, &src).await;
            let b = *base.get_or_insert(r.cpu_per_media_s);
            print_row(&format!("level {level} (fixed)"), &r);
            println!(
                "  relative CPU cost of level {level}: {:.2}",
                r.cpu_per_media_s / b
            );
        }
        return;
    }
    for load in &a.loads {
        let on = run_case(&stack, "on", *load, a.seconds, &src).await;
        print_row(&format!("load {load} governor on"), &on);
        let off = run_case(&stack, "off", *load, a.seconds, &src).await;
        print_row(&format!("load {load} OFF (anchor)"), &off);
        println!(
            "  ratio on/off at load {load}: lag p90 {:.2}x, growth {:+.2} vs {:+.2} s/min; targets p90 <= 1.0 s and no growth: {}",
            quantile(&on.lags, 0.9) / quantile(&off.lags, 0.9),
            on.growth,
            off.growth,
            if quantile(&on.lags, 0.9) <= 1.0 && on.growth < 0.1 {
                "met"
            } else {
                "missed"
            }
        );
    }
}
