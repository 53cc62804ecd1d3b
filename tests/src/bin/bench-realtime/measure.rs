//! Measurements shared by the scenarios: chat rounds and their latencies, viewer counts
//! becoming exact.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::crowd::Crowd;
use crate::stats::Summary;

/// Longest wait for one chat message to reach everyone before the next is sent.
const CHAT_WAIT: Duration = Duration::from_secs(5);
/// Pause between one message reaching everyone and the next send.
const CHAT_GAP: Duration = Duration::from_millis(100);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends `messages` chat messages one at a time through `send` (message index in): each
/// goes out once the previous one reached every live viewer (or [`CHAT_WAIT`] passed),
/// plus [`CHAT_GAP`]. Returns each message's send time (taken just before `send`).
pub async fn chat_rounds(
    crowd: &Crowd,
    messages: usize,
    mut send: impl AsyncFnMut(usize),
) -> Vec<Instant> {
    let alive = crowd.alive_count() as u64;
    let mut sent = Vec::with_capacity(messages);
    for m in 0..messages {
        let before = crowd.counters.chat.load(Ordering::Relaxed);
        sent.push(Instant::now());
        send(m).await;
        wait_chat(crowd, before + alive, CHAT_WAIT).await;
        tokio::time::sleep(CHAT_GAP).await;
    }
    sent
}

/// Waits until the crowd's chat deliveries reach `total`, or `within` passes.
pub async fn wait_chat(crowd: &Crowd, total: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while crowd.counters.chat.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Chat latency over all (viewer, message) pairs a viewer should have got.
#[derive(Debug, Default)]
pub struct Chat {
    pub latency: Summary,
    pub delivered: u64,
    pub expected: u64,
}

impl Chat {
    pub fn missing(&self) -> u64 {
        self.expected - self.delivered
    }
}

/// `sends[m] = (stream of message m, its send time)`; `stream_of(i)` is viewer i's stream.
/// Only viewers alive now count; a message's first arrival at a viewer is its delivery.
pub fn chat_latency(
    crowd: &Crowd,
    sends: &[(usize, Instant)],
    stream_of: impl Fn(usize) -> usize,
) -> Chat {
    let mut out = Chat::default();
    let mut values = Vec::new();
    for (i, v) in crowd.viewers.iter().enumerate() {
        if !v.alive() {
            continue;
        }
        let s = stream_of(i);
        out.expected += sends.iter().filter(|(stream, _)| *stream == s).count() as u64;
        let mut seen = HashSet::new();
        for &(m, at) in &v.log().chat {
            match sends.get(m) {
                Some(&(stream, sent)) if stream == s && seen.insert(m) => {
                    values.push(ms(at.saturating_duration_since(sent)));
                }
                _ => {}
            }
        }
        out.delivered += seen.len() as u64;
    }
    out.latency = Summary::of(values);
    out
}

/// When the viewer count became exact, after a change at `since`.
#[derive(Debug)]
pub struct Exact {
    pub want: u64,
    /// `GET /api/streams/{id}/viewers` first said `want` (s after `since`).
    pub rest: Option<f64>,
    /// Every live viewer's latest `stream:viewer-count` said `want`.
    pub pushed: Option<f64>,
    /// What they said last, when not exact.
    pub rest_last: Option<u64>,
    pub pushed_last: (Option<u64>, Option<u64>),
    pub limit: Duration,
}

impl Exact {
    pub fn worst(&self) -> Option<f64> {
        Some(self.rest?.max(self.pushed?))
    }

    pub fn text(&self) -> String {
        let one = |t: Option<f64>, last: String| match t {
            Some(t) => format!("{t:.2} s"),
            None => format!("not exact after {} s ({last})", self.limit.as_secs()),
        };
        let rest = one(self.rest, format!("{:?}", self.rest_last));
        let (lo, hi) = self.pushed_last;
        let pushed = one(self.pushed, format!("{lo:?}..{hi:?}"));
        format!("{} -> REST {rest}, pushed {pushed}", self.want)
    }
}

/// Polls the REST count (back to back) and the viewers' latest pushed counts until both
/// equal `want` or `limit` passes; times are from `since`.
pub async fn counts_exact(
    http: &reqwest::Client,
    viewers_url: &str,
    crowd: &Crowd,
    want: u64,
    since: Instant,
    limit: Duration,
) -> Exact {
    let mut e = Exact {
        want,
        rest: None,
        pushed: None,
        rest_last: None,
        pushed_last: (None, None),
        limit,
    };
    while since.elapsed() < limit && (e.rest.is_none() || e.pushed.is_none()) {
        if e.rest.is_none() {
            let request = http.get(viewers_url).timeout(Duration::from_secs(5));
            let got = match request.send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["count"].as_u64()),
                Err(_) => None,
            };
            e.rest_last = got;
            if got == Some(want) {
                e.rest = Some(since.elapsed().as_secs_f64());
            }
        }
        if e.pushed.is_none() {
            let counts: Vec<Option<u64>> = crowd.alive().map(|v| v.log().count).collect();
            if counts.iter().all(|c| *c == Some(want)) {
                e.pushed = Some(since.elapsed().as_secs_f64());
            }
            let min = counts.iter().min().copied().flatten();
            let max = counts.iter().max().copied().flatten();
            e.pushed_last = (min, max);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e
}
