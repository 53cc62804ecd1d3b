//! `bench-availability`: segment availability lag of the ingest node. Run through
//! `scripts/bench.sh availability` (release build).
//!
//! The ffmpeg CLI publishes a 1080p30 test pattern (encoded to a file first, so the publisher's
//! encoder does not compete for the node's cores) over RTMP in real time (`-re -c copy`) for
//! `--seconds`; the node records, for every segment of every rendition, the time from the
//! moment it had all of the segment's source media (the arrival of the first frame past its
//! end) to the moment the segment and the playlist naming it were stored in S3 (moto). The
//! node's `/metrics` summary gives p50/p90/p99. Two cases: a 4000 kbit/s source (the whole
//! ladder encoded) and a 2500 kbit/s source with 2 s keyframes (top rung passed through).
//!
//! Anchor, same run: the upload floor — a segment-sized PUT followed by a playlist PUT to the
//! same moto, sequentially, as many times as there were top-rung segments. The ratio is what
//! encoding, packaging and queueing add on top of storing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rill_tests::{IngestNode, Stack, User};
use serde_json::json;

struct Args {
    seconds: u32,
}

fn args() -> Args {
    let mut a = Args { seconds: 40 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => a.seconds = v.parse().unwrap_or(a.seconds).max(5),
            _ => {
                eprintln!("usage: bench-availability [--seconds 40]");
                std::process::exit(2)
            }
        }
    }
    a
}

struct Lag {
    p50: f64,
    p90: f64,
    p99: f64,
    count: u64,
}

fn parse_lag(metrics: &str, id: &str) -> Option<Lag> {
    let name = "rill_ingest_segment_availability_seconds";
    let value = |suffix: &str, labels: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{suffix}{{stream_id=\"{id}\"{labels}}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(Lag {
        p50: value("", ",quantile=\"0.5\"")?,
        p90: value("", ",quantile=\"0.9\"")?,
        p99: value("", ",quantile=\"0.99\"")?,
        count: value("_count", "")? as u64,
    })
}

async fn run_case(stack: &Stack, node: &IngestNode, kbps: u32, seconds: u32) -> (Lag, usize) {
    let owner = User::named("bench");
    let (id, key) = owner
        .create_stream(
            stack,
            json!({"channelId":"bench","title":format!("availability {kbps}k")}),
        )
        .await;
    let url = format!("{}/live/{key}", node.rtmp);
    // Encoded beforehand, pushed as a copy: the publisher's encoder must not share the
    // node's two cores, as it would not in production.
    let source = std::env::temp_dir().join(format!("rill-bench-{kbps}k-{seconds}s.mp4"));
    if !source.exists() {
        let made = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(rill_tests::test_pattern_args("1920x1080", seconds, kbps))
            .arg(&source)
            .stdin(Stdio::null())
            .status()
            .expect("ffmpeg");
        assert!(made.success(), "could not generate the source");
    }
    let status = tokio::task::spawn_blocking(move || {
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
            .arg(&source)
            .args(["-c", "copy", "-f", "flv", &url])
            .stdin(Stdio::null())
            .status()
    })
    .await
    .expect("join")
    .expect("ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    // A node that fell behind is still working through its backlog: those segments count.
    let mut metrics = String::new();
    let mut last = None;
    for _ in 0..240 {
        metrics = reqwest::get(format!("{}/metrics", node.http))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let count = parse_lag(&metrics, &id).map(|l| l.count);
        if count.is_some() && count == last {
            break;
        }
        last = count;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let lag = parse_lag(&metrics, &id).expect("availability summary in /metrics");
    let playlist = stack
        .http
        .get(stack.url(&format!("/hls/live/{id}/1080p/index.m3u8")))
        .send()
        .await
        .expect("playlist")
        .text()
        .await
        .expect("playlist text");
    let segments = playlist
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .count();
    owner
        .post(stack, &format!("/api/streams/{id}/end"), json!({}))
        .await;
    (lag, segments)
}

/// Sequential segment + playlist PUTs: the storage floor of making one segment available.
async fn anchor(stack: &Stack, segment_bytes: usize, rounds: usize) -> (f64, f64) {
    let s3 = stack.s3().await;
    let segment = vec![0x5au8; segment_bytes];
    let playlist = "#EXTM3U\n".repeat(200).into_bytes();
    let mut lags = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let start = Instant::now();
        for (key, body) in [
            (format!("anchor/seg{i}.m4s"), segment.clone()),
            ("anchor/index.m3u8".to_owned(), playlist.clone()),
        ] {
            s3.put_object()
                .bucket(&stack.bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .expect("anchor PUT");
        }
        lags.push(start.elapsed().as_secs_f64());
    }
    lags.sort_by(f64::total_cmp);
    let q = |q: f64| lags[((q * lags.len() as f64).ceil() as usize).clamp(1, lags.len()) - 1];
    (q(0.5), q(0.9))
}

#[tokio::main]
async fn main() {
    let a = args();
    let stack = Stack::start();
    let node = IngestNode::start(&stack, &[]);
    println!(
        "segment availability lag: {} s of 1080p30 over RTMP (-re) per case, 1 s segments, 5 renditions",
        a.seconds
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>9}",
        "case", "p50 ms", "p90 ms", "p99 ms", "segments"
    );
    let mut top_segments = 0;
    let mut rows = Vec::new();
    for (label, kbps) in [
        ("full ladder (4000k source)", 4000),
        ("top rung passthrough (2500k)", 2500),
    ] {
        let (lag, segments) = run_case(&stack, &node, kbps, a.seconds).await;
        top_segments = top_segments.max(segments);
        println!(
            "{label:<34} {:>8.0} {:>8.0} {:>8.0} {:>9}",
            lag.p50 * 1000.0,
            lag.p90 * 1000.0,
            lag.p99 * 1000.0,
            lag.count
        );
        rows.push((label, lag));
    }
    // A 1 s top-rung segment at 3000 kbit/s.
    let (p50, p90) = anchor(&stack, 375_000, top_segments.max(20)).await;
    println!(
        "{:<34} {:>8.0} {:>8.0} {:>8} {:>9}",
        "anchor: segment+playlist PUT",
        p50 * 1000.0,
        p90 * 1000.0,
        "-",
        top_segments.max(20)
    );
    for (label, lag) in rows {
        println!(
            "ratio {label}: p50 {:.2}x, p90 {:.2}x the upload floor (target p90 <= 300 ms: {})",
            lag.p50 / p50,
            lag.p90 / p90,
            if lag.p90 <= 0.3 { "met" } else { "missed" }
        );
    }
}
