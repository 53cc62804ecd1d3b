//! Viewers and senders: many WebSocket clients opened at once, each with a task that reads
//! every frame and logs what the benchmark measures, when it arrived.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A handshake that has not opened by then is an error.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `ws://.../ws?streamId=..&token=..` on the stack's gateway, signed in as `sub`.
pub fn rill_url(base: &str, stream_id: &str, sub: &str) -> String {
    let token = rill_tests::token(sub, &format!("{sub} (bench)"));
    format!(
        "{}/ws?streamId={stream_id}&token={token}",
        base.replacen("http://", "ws://", 1)
    )
}

/// Chat content carrying the message's index.
pub fn chat_marker(index: usize) -> String {
    format!("bench m{index}")
}

fn parse_marker(content: &str) -> Option<usize> {
    content.strip_prefix("bench m")?.parse().ok()
}

/// A reaction's sequence number rides in its position (both 0-100, as the API requires):
/// `positionX` = seq / 10,000, `positionY` = (seq % 10,000) / 100. Up to 1,000,000.
pub const MAX_TAGGED_REACTIONS: u64 = 1_000_000;

pub fn reaction_position(seq: u64) -> (f64, f64) {
    ((seq / 10_000) as f64, (seq % 10_000) as f64 / 100.0)
}

fn reaction_seq(sample: &Value) -> Option<u64> {
    let x = sample["positionX"].as_f64()?;
    let y = sample["positionY"].as_f64()?;
    Some(x.round() as u64 * 10_000 + (y * 100.0).round() as u64)
}

/// One `stream:reaction` frame as a viewer got it.
#[derive(Debug, Clone, Copy)]
pub struct ReactionFrame {
    pub at: Instant,
    /// `data.total`: reactions coalesced into this frame.
    pub total: u64,
    /// The highest sequence number among the frame's samples (the batch's newest ones).
    pub newest: Option<u64>,
}

/// What one socket received.
#[derive(Debug, Default)]
pub struct Log {
    /// (message index, arrival) per chat frame carrying a bench marker.
    pub chat: Vec<(usize, Instant)>,
    pub reactions: Vec<ReactionFrame>,
    /// `data.count` of the latest `stream:viewer-count`.
    pub count: Option<u64>,
    /// Codes of `error` frames (refusals).
    pub refusals: Vec<String>,
    /// The server ended the connection (or it broke).
    pub closed: bool,
    /// The first chat frame as received: the anchor sends the same shape.
    pub sample_chat: Option<String>,
}

/// Totals across a crowd, for waiting without walking every log.
#[derive(Debug, Default)]
pub struct Counters {
    pub chat: AtomicU64,
    pub reactions: AtomicU64,
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

async fn receive(
    mut frames: impl Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    log: Arc<Mutex<Log>>,
    counters: Arc<Counters>,
) {
    while let Some(Ok(msg)) = frames.next().await {
        let Message::Text(text) = msg else { continue };
        let at = Instant::now();
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let data = &v["data"];
        match v["type"].as_str() {
            Some("stream:chat-message") => {
                if let Some(i) = data["content"].as_str().and_then(parse_marker) {
                    let mut log = lock(&log);
                    log.chat.push((i, at));
                    if log.sample_chat.is_none() {
                        log.sample_chat = Some(text.to_string());
                    }
                    counters.chat.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some("stream:reaction") => {
                let total = data["total"].as_u64().unwrap_or(0);
                let newest = data["samples"]
                    .as_array()
                    .and_then(|s| s.iter().filter_map(reaction_seq).max());
                lock(&log)
                    .reactions
                    .push(ReactionFrame { at, total, newest });
                counters.reactions.fetch_add(total, Ordering::Relaxed);
            }
            Some("stream:viewer-count") => lock(&log).count = data["count"].as_u64(),
            Some("error") => lock(&log)
                .refusals
                .push(data["code"].as_str().unwrap_or("?").to_owned()),
            _ => {}
        }
    }
    lock(&log).closed = true;
}

/// One viewer: its reading task (aborting it drops the TCP connection with no close frame)
/// and its log.
#[derive(Debug)]
pub struct Viewer {
    pub log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
    open: bool,
}

impl Viewer {
    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    /// Opened, not aborted, not closed by the server.
    pub fn alive(&self) -> bool {
        self.open && !self.log().closed
    }

    /// The viewer vanishes: no close handshake, the connection just ends.
    pub fn abort(&mut self) {
        self.task.abort();
        self.open = false;
    }
}

/// Sockets opened at once.
#[derive(Debug)]
pub struct Crowd {
    pub viewers: Vec<Viewer>,
    /// Failed handshakes by reason.
    pub errors: BTreeMap<String, usize>,
    /// First connect attempt to the last socket open.
    pub join: Duration,
    pub last_open: Instant,
    pub counters: Arc<Counters>,
}

impl Crowd {
    pub fn alive(&self) -> impl Iterator<Item = &Viewer> {
        self.viewers.iter().filter(|v| v.alive())
    }

    pub fn alive_count(&self) -> usize {
        self.alive().count()
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// `"none"` or `"timeout x3, HTTP 500 x2"`.
    pub fn error_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        parts.join(", ")
    }

    /// Viewers the server closed after they had opened.
    pub fn closed_by_server(&self) -> usize {
        self.viewers
            .iter()
            .filter(|v| v.open && v.log().closed)
            .count()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for v in &mut self.viewers {
            v.abort();
        }
    }
}

fn reason(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(res) => format!("HTTP {}", res.status().as_u16()),
        tungstenite::Error::Io(e) => format!("io {:?}", e.kind()),
        other => {
            let s = other.to_string();
            s.chars().take(60).collect()
        }
    }
}

async fn connect(url: &str) -> Result<Ws, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(reason(&e)),
        Err(_) => Err(format!("no open within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

/// Starts every handshake at the same moment (one task each, no cap: a tokio-tungstenite
/// handshake costs the client far less than the server's `$connect`) and returns once
/// each has opened or failed.
pub async fn join_at_once(urls: Vec<String>) -> Crowd {
    let counters = Arc::new(Counters::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let mut viewers = Vec::with_capacity(urls.len());
    for (i, url) in urls.into_iter().enumerate() {
        let log = Arc::new(Mutex::new(Log::default()));
        let (tx, log2, counters) = (tx.clone(), log.clone(), counters.clone());
        let task = tokio::spawn(async move {
            match connect(&url).await {
                Ok(ws) => {
                    let _ = tx.send((i, Ok(Instant::now())));
                    drop(tx);
                    receive(ws, log2, counters).await;
                }
                Err(e) => {
                    let _ = tx.send((i, Err(e)));
                }
            }
        });
        viewers.push(Viewer {
            log,
            task,
            open: false,
        });
    }
    drop(tx);
    let mut errors = BTreeMap::new();
    let mut last_open = started;
    while let Some((i, r)) = rx.recv().await {
        match r {
            Ok(at) => {
                viewers[i].open = true;
                last_open = last_open.max(at);
            }
            Err(e) => *errors.entry(e).or_insert(0) += 1,
        }
    }
    Crowd {
        viewers,
        errors,
        join: last_open - started,
        last_open,
        counters,
    }
}

/// A socket that sends (chat, reactions) and reads its own frames (so the gateway never
/// finds it "not reading"), logging refusals.
#[derive(Debug)]
pub struct Sender {
    sink: SplitSink<Ws, Message>,
    pub log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Sender {
    pub async fn open(url: &str) -> Result<Sender, String> {
        let (sink, stream) = connect(url).await?.split();
        let log = Arc::new(Mutex::new(Log::default()));
        let task = tokio::spawn(receive(stream, log.clone(), Arc::new(Counters::default())));
        Ok(Sender { sink, log, task })
    }

    pub async fn send(&mut self, frame: &Value) -> Result<(), String> {
        self.sink
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| reason(&e))
    }

    pub fn refusals(&self) -> Vec<String> {
        lock(&self.log).refusals.clone()
    }

    /// A polite close (close frame), unlike a viewer's abort.
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}

/// Opens a sender, trying up to three times (senders are not what is measured); panics
/// after that.
pub async fn open_sender(url: &str) -> Sender {
    let mut last = String::new();
    for _ in 0..3 {
        match Sender::open(url).await {
            Ok(s) => return s,
            Err(e) => last = e,
        }
    }
    panic!("a sender socket did not open in three tries: {last}")
}

/// [`open_sender`] for each of `urls`, all at once.
pub async fn open_senders(urls: Vec<String>) -> Vec<Sender> {
    futures_util::future::join_all(urls.iter().map(|u| open_sender(u))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaction_tags_round_trip_through_json() {
        for seq in [0, 1, 29, 9_999, 10_000, 123_456, MAX_TAGGED_REACTIONS] {
            let (x, y) = reaction_position(seq);
            assert!((0.0..=100.0).contains(&x) && (0.0..=100.0).contains(&y));
            let sample: Value = serde_json::from_str(
                &serde_json::json!({"positionX": x, "positionY": y}).to_string(),
            )
            .expect("json");
            assert_eq!(reaction_seq(&sample), Some(seq));
        }
        assert_eq!(parse_marker(&chat_marker(17)), Some(17));
    }
}
