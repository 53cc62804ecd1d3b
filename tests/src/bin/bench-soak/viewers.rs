//! The WebSocket viewers: signed in, connected for the whole run, each on one live stream,
//! each behaving like the web app's viewer page plus a chat message every `chat_every`:
//! the QoE `heartbeat` frame every 15 s (`useStreamViewer`), a `ping` every 30 s
//! (`RillEventsClient`'s keepalive). Every frame received is counted by type.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);
const PING_EVERY: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Totals over every viewer.
#[derive(Debug, Default)]
pub struct Counters {
    pub open: AtomicU64,
    pub connect_errors: Mutex<BTreeMap<String, u64>>,
    /// Sockets that ended before the run did (server close, broken connection).
    pub dropped: AtomicU64,
    pub send_errors: AtomicU64,
    pub chat_sent: AtomicU64,
    pub heartbeats_sent: AtomicU64,
    pub pings_sent: AtomicU64,
    /// `stream:chat-message` frames carrying this run's marker.
    pub chat_received: AtomicU64,
    pub pongs: AtomicU64,
    /// Every frame received, by `type` (`error` frames by `error:<code>`).
    pub frames: Mutex<BTreeMap<String, u64>>,
    /// Chat messages sent over sockets, per live stream.
    pub chats_per_stream: Vec<AtomicU64>,
}

impl Counters {
    pub fn new(streams: usize) -> Counters {
        Counters {
            chats_per_stream: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            ..Counters::default()
        }
    }

    pub fn frames(&self) -> BTreeMap<String, u64> {
        self.frames
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn connect_errors(&self) -> BTreeMap<String, u64> {
        self.connect_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `error` frames by code.
    pub fn error_frames(&self) -> BTreeMap<String, u64> {
        self.frames()
            .into_iter()
            .filter_map(|(k, n)| Some((k.strip_prefix("error:")?.to_owned(), n)))
            .collect()
    }

    fn count_frame(&self, kind: String) {
        *self
            .frames
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
    }
}

/// When the viewers send: set once every viewer is in, shared by all.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Viewers stop sending (chat, heartbeats, pings) then.
    pub stop_sending: Instant,
    pub chat_every: Duration,
    pub viewers: usize,
}

/// Opens viewer `index` on `stream` (its `stream_index` among the live ones) and runs it:
/// it reads from the start, sends once `plan` is set, and closes politely when `close`
/// turns true. Returns once the socket opened (its task) or failed (`None`, counted).
pub async fn spawn(
    base: &str,
    stream: &str,
    stream_index: usize,
    index: usize,
    counters: Arc<Counters>,
    close: tokio::sync::watch::Receiver<bool>,
    plan: tokio::sync::watch::Receiver<Option<Plan>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let sub = format!("soak-viewer-{index}");
    let token = rill_tests::token(&sub, &format!("Viewer {index}"));
    let url = format!(
        "{}/ws?streamId={stream}&token={token}",
        base.replacen("http://", "ws://", 1)
    );
    let ws =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                let reason = match e {
                    tokio_tungstenite::tungstenite::Error::Http(r) => {
                        format!("HTTP {}", r.status().as_u16())
                    }
                    other => other.to_string().chars().take(60).collect(),
                };
                count_connect_error(&counters, reason);
                return None;
            }
            Err(_) => {
                count_connect_error(&counters, "no open within 10 s".into());
                return None;
            }
        };
    counters.open.fetch_add(1, Ordering::Relaxed);
    Some(tokio::spawn(run(
        ws,
        stream_index,
        index,
        counters,
        close,
        plan,
    )))
}

fn count_connect_error(counters: &Counters, reason: String) {
    *counters
        .connect_errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(reason)
        .or_default() += 1;
}

/// A timer firing every `every`, first at `phase` of the way into the period (viewers are
/// spread evenly over each period, so the load is steady rather than in waves).
fn timer(every: Duration, phase: f64) -> tokio::time::Interval {
    let first = Instant::now() + every.mul_f64(phase.clamp(0.0, 1.0));
    let mut t = tokio::time::interval_at(first, every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// The next tick of a timer that may not be running yet (never, if not).
async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn run(
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    stream_index: usize,
    index: usize,
    counters: Arc<Counters>,
    mut close: tokio::sync::watch::Receiver<bool>,
    mut plan_rx: tokio::sync::watch::Receiver<Option<Plan>>,
) {
    let (mut sink, mut frames) = ws.split();
    let mut plan: Option<Plan> = None;
    // Running between the plan's arrival and its end.
    let (mut chat, mut heartbeat, mut ping) = (None, None, None);
    let mut sending = false;
    let mut ended = false;
    let mut sent = 0u64;
    loop {
        let frame: Option<(Value, &AtomicU64)> = tokio::select! {
            _ = close.wait_for(|c| *c) => break,
            msg = frames.next() => {
                match msg {
                    Some(Ok(Message::Text(text))) => received(&counters, text.as_str()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        ended = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                }
                None
            }
            p = async { plan_rx.wait_for(Option::is_some).await.ok().and_then(|p| *p) },
                if plan.is_none() =>
            {
                if let Some(p) = p {
                    let phase = index as f64 / p.viewers.max(1) as f64;
                    chat = Some(timer(p.chat_every, phase));
                    heartbeat = Some(timer(HEARTBEAT_EVERY, phase));
                    ping = Some(timer(PING_EVERY, phase));
                    plan = Some(p);
                    sending = true;
                }
                None
            }
            _ = async {
                match plan {
                    Some(p) => tokio::time::sleep_until(p.stop_sending).await,
                    None => std::future::pending().await,
                }
            }, if sending => {
                (chat, heartbeat, ping) = (None, None, None);
                sending = false;
                None
            }
            _ = tick(&mut chat) => {
                sent += 1;
                counters.chats_per_stream[stream_index].fetch_add(1, Ordering::Relaxed);
                let content = format!("soak v{index}#{sent}");
                Some((json!({"action": "chat", "content": content}), &counters.chat_sent))
            }
            _ = tick(&mut heartbeat) => Some((
                json!({"action": "heartbeat", "quality": "360p", "buffering": 0}),
                &counters.heartbeats_sent,
            )),
            _ = tick(&mut ping) => Some((json!({"action": "ping"}), &counters.pings_sent)),
        };
        if let Some((frame, counter)) = frame {
            counter.fetch_add(1, Ordering::Relaxed);
            if sink.send(Message::text(frame.to_string())).await.is_err() {
                counters.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if ended {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    } else {
        let _ = sink.close().await;
        // Read until the server answers the close (or a second passes).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(m)) = frames.next().await {
                if let Message::Text(t) = m {
                    received(&counters, t.as_str());
                }
            }
        })
        .await;
    }
    counters.open.fetch_sub(1, Ordering::Relaxed);
}

fn received(counters: &Counters, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        counters.count_frame("not JSON".into());
        return;
    };
    // API Gateway's own frames have no `type`: `{"message": "Internal server error",
    // "connectionId", "requestId"}` when a route invocation failed (throttled, timed out,
    // crashed), `Forbidden` when no route matched. Errors, by message.
    if v.get("type").is_none()
        && let Some(message) = v["message"].as_str()
    {
        counters.count_frame(format!("error:{message}"));
        return;
    }
    let kind = v["type"].as_str().unwrap_or("?");
    match kind {
        "stream:chat-message"
            if v["data"]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("soak ")) =>
        {
            counters.chat_received.fetch_add(1, Ordering::Relaxed);
        }
        "pong" => {
            counters.pongs.fetch_add(1, Ordering::Relaxed);
        }
        "error" => {
            let code = v["data"]["code"]
                .as_str()
                .or(v["code"].as_str())
                .unwrap_or("?");
            counters.count_frame(format!("error:{code}"));
            return;
        }
        _ => {}
    }
    counters.count_frame(kind.to_owned());
}
