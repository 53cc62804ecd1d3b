//! Scenario 1: one live stream, N signed-in viewers joining at once; counts; chat; a
//! reaction storm; some viewers vanishing; counts again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rill_tests::{Stack, User};
use serde_json::json;

use crate::Args;
use crate::crowd::{self, Crowd};
use crate::measure::{self, Chat, Exact};
use crate::stats::{Histogram, Summary, peak_in_window};

/// How long counts get to become exact before the benchmark says they did not.
const COUNT_LIMIT: Duration = Duration::from_secs(30);
/// Connection lists are cached for 1 s in the socket functions (docs/architecture.md §6):
/// the first chat message goes out this long after the last join at the earliest.
const LIST_CACHE: Duration = Duration::from_millis(1200);
/// After the last reaction is sent: stop waiting once no reaction arrived for this long.
const STORM_QUIET: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct OneStream {
    pub viewers: usize,
    pub join: Duration,
    pub opened: usize,
    pub join_errors: String,
    pub join_error_count: usize,
    pub exact_after_join: Exact,
    pub chat: Chat,
    pub chat_refusals: Vec<String>,
    pub storm: Storm,
    pub left: usize,
    pub exact_after_leave: Exact,
    /// Viewers the server closed during the run (not counting the ones that left).
    pub closed_by_server: usize,
    /// A chat frame as viewers got it, for the anchor.
    pub sample_chat: Option<String>,
}

#[derive(Debug, Default)]
pub struct Storm {
    pub sent: u64,
    pub send_errors: u64,
    /// Refused with `reaction_late`: waited over 0.5 s for a function (the stream was busier
    /// than the store takes), dropped rather than stored.
    pub late: u64,
    /// Other refusals' codes.
    pub refusals: Vec<String>,
    /// Per (viewer, reaction), see the crate doc.
    pub latency: Summary,
    /// Frames per viewer per second: mean over viewers of frames / (last frame - storm
    /// start), and the most any viewer got in one 1 s window.
    pub frames_mean: f64,
    pub frames_peak: usize,
    /// Reactions counted in the frames (`total`) / reactions accepted (sent - late): lowest
    /// viewer, mean.
    pub delivered_min: f64,
    pub delivered_mean: f64,
}

pub async fn run(stack: &Stack, owner: &User, args: &Args) -> OneStream {
    let id = stack
        .live_stream(owner, "bench", "Bench: one stream", json!({}))
        .await;
    let viewers_url = stack.url(&format!("/api/streams/{id}/viewers"));
    let url = |sub: &str| crowd::rill_url(&stack.base, &id, sub);

    eprintln!("[1 stream] {} viewers joining at once", args.viewers);
    let urls = (0..args.viewers)
        .map(|i| url(&format!("viewer-{i}")))
        .collect();
    let mut crowd = crowd::join_at_once(urls).await;
    let opened = crowd.alive_count();
    eprintln!(
        "[1 stream] {opened} open in {:.2} s, errors: {}",
        crowd.join.as_secs_f64(),
        crowd.error_text()
    );
    let exact_after_join = measure::counts_exact(
        &stack.http,
        &viewers_url,
        &crowd,
        opened as u64,
        crowd.last_open,
        COUNT_LIMIT,
    )
    .await;
    eprintln!("[1 stream] count {}", exact_after_join.text());

    eprintln!("[1 stream] chat: {} messages", args.messages);
    let mut sender = crowd::open_sender(&url("chat-sender")).await;
    tokio::time::sleep_until((crowd.last_open + LIST_CACHE).into()).await;
    let sends = measure::chat_rounds(&crowd, args.messages, async |m| {
        let frame = json!({"action": "chat", "content": crowd::chat_marker(m)});
        if let Err(e) = sender.send(&frame).await {
            eprintln!("[1 stream] chat send failed: {e}");
        }
    })
    .await;
    let sends: Vec<(usize, Instant)> = sends.into_iter().map(|t| (0, t)).collect();
    let chat = measure::chat_latency(&crowd, &sends, |_| 0);
    let chat_refusals = sender.refusals();
    eprintln!(
        "[1 stream] chat {}, {}/{} delivered",
        chat.latency.ms(),
        chat.delivered,
        chat.expected
    );
    let sample_chat = crowd.alive().find_map(|v| v.log().sample_chat.clone());

    let storm = storm(&crowd, args, &url).await;
    sender.close().await;
    // Senders gone: back to the viewers only before some of them leave.
    let alive = crowd.alive_count();
    let settled = measure::counts_exact(
        &stack.http,
        &viewers_url,
        &crowd,
        alive as u64,
        Instant::now(),
        Duration::from_secs(15),
    )
    .await;
    if settled.worst().is_none() {
        eprintln!("[1 stream] before the leaves: count {}", settled.text());
    }

    let left = args.leave.min(alive);
    eprintln!("[1 stream] {left} viewers vanish (no close frame)");
    let mut gone = 0;
    for v in crowd.viewers.iter_mut() {
        if gone == left {
            break;
        }
        if v.alive() {
            v.abort();
            gone += 1;
        }
    }
    let left_at = Instant::now();
    let exact_after_leave = measure::counts_exact(
        &stack.http,
        &viewers_url,
        &crowd,
        (alive - left) as u64,
        left_at,
        COUNT_LIMIT,
    )
    .await;
    eprintln!("[1 stream] count {}", exact_after_leave.text());
    let closed_by_server = crowd.closed_by_server();

    OneStream {
        viewers: args.viewers,
        join: crowd.join,
        opened,
        join_errors: crowd.error_text(),
        join_error_count: crowd.error_count(),
        exact_after_join,
        chat,
        chat_refusals,
        storm,
        left,
        exact_after_leave,
        closed_by_server,
        sample_chat,
    }
}

async fn storm(crowd: &Crowd, args: &Args, url: &impl Fn(&str) -> String) -> Storm {
    let total = (args.reactions_per_second * args.storm_seconds).min(crowd::MAX_TAGGED_REACTIONS);
    let k = args.reaction_senders.max(1) as u64;
    eprintln!(
        "[1 stream] reaction storm: {} reactions/s for {} s from {k} sockets",
        args.reactions_per_second, args.storm_seconds
    );
    let urls = (0..k).map(|i| url(&format!("reactor-{i}"))).collect();
    let senders = crowd::open_senders(urls).await;
    tokio::time::sleep(LIST_CACHE).await;

    // sent_at[seq]: ns after `start` + 1 (0: not sent).
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let rate = args.reactions_per_second.max(1) as f64;
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let sent_at = sent_at.clone();
            tokio::spawn(async move {
                let mut errors = 0u64;
                for seq in (i as u64..total).step_by(k as usize) {
                    let due = start + Duration::from_secs_f64(seq as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let (x, y) = crowd::reaction_position(seq);
                    let frame =
                        json!({"action": "react", "emoji": "🔥", "positionX": x, "positionY": y});
                    let t = start.elapsed().as_nanos() as u64 + 1;
                    match s.send(&frame).await {
                        Ok(()) => sent_at[seq as usize].store(t, Ordering::Relaxed),
                        Err(_) => errors += 1,
                    }
                }
                (s, errors)
            })
        })
        .collect();
    let mut out = Storm::default();
    let mut senders = Vec::new();
    for t in tasks {
        let (s, e) = t.await.expect("reaction sender task");
        out.send_errors += e;
        senders.push(s);
    }
    out.sent = total - out.send_errors;
    let sending = start.elapsed();
    // Wait for the frames: until every viewer counted every reaction, or none came for a while.
    let alive = crowd.alive_count() as u64;
    let (mut last, mut last_change) = (u64::MAX, Instant::now());
    loop {
        let got = crowd.counters.reactions.load(Ordering::Relaxed);
        if got >= out.sent * alive || last_change.elapsed() > STORM_QUIET {
            break;
        }
        if got != last {
            (last, last_change) = (got, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in senders {
        for code in s.refusals() {
            if code == "reaction_late" {
                out.late += 1;
            } else {
                out.refusals.push(code);
            }
        }
        s.close().await;
    }
    let accepted = out.sent.saturating_sub(out.late);
    eprintln!(
        "[1 stream] {} reactions sent in {:.1} s ({} send errors)",
        out.sent,
        sending.as_secs_f64(),
        out.send_errors
    );

    let sent_ns: Vec<u64> = sent_at.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let mut hist = Histogram::new();
    let (mut rates, mut fractions) = (Vec::new(), Vec::new());
    for v in crowd.alive() {
        let log = v.log();
        let frames: Vec<_> = log.reactions.iter().filter(|f| f.at >= start).collect();
        // A frame delivers every reaction after the newest one the viewer's previous frame
        // carried, up to the newest one it carries.
        let mut next = 0u64;
        for f in &frames {
            let Some(newest) = f.newest else { continue };
            let at_ns = f.at.duration_since(start).as_nanos() as u64;
            for seq in next..=newest.min(total.saturating_sub(1)) {
                let sent = sent_ns[seq as usize];
                if sent > 0 {
                    hist.add(at_ns.saturating_sub(sent - 1) as f64 / 1e6);
                }
            }
            next = next.max(newest + 1);
        }
        let times: Vec<f64> = frames
            .iter()
            .map(|f| f.at.duration_since(start).as_secs_f64())
            .collect();
        if let Some(&end) = times.last() {
            rates.push(times.len() as f64 / end.max(args.storm_seconds as f64));
        }
        out.frames_peak = out.frames_peak.max(peak_in_window(&times, 1.0));
        let counted: u64 = frames.iter().map(|f| f.total).sum();
        fractions.push(counted as f64 / accepted.max(1) as f64);
    }
    out.latency = hist.summary();
    out.frames_mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    out.delivered_min = fractions.iter().copied().fold(f64::INFINITY, f64::min);
    out.delivered_mean = fractions.iter().sum::<f64>() / fractions.len().max(1) as f64;
    if fractions.is_empty() {
        out.delivered_min = 0.0;
    }
    eprintln!(
        "[1 stream] reactions: latency p99 {:.0} ms, frames/viewer/s mean {:.2} peak {}, delivered {:.1}% of accepted, {} refused late",
        out.latency.p99,
        out.frames_mean,
        out.frames_peak,
        out.delivered_mean * 100.0,
        out.late
    );
    out
}
