//! The anchor: a bare tokio-tungstenite server on loopback, in this process, that pushes a
//! frame to every socket of a room (`ws://addr/room/{n}`) through a tokio broadcast
//! channel. No functions, no storage: the floor for delivering one frame to N clients on
//! this machine, measured by the same clients as Rill.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::crowd::{self, Crowd};
use crate::measure::{self, Chat};

type Rooms = Arc<Mutex<HashMap<usize, broadcast::Sender<Arc<str>>>>>;

#[derive(Debug)]
pub struct Anchor {
    addr: std::net::SocketAddr,
    rooms: Rooms,
    task: tokio::task::JoinHandle<()>,
}

fn room(rooms: &Rooms, n: usize) -> broadcast::Sender<Arc<str>> {
    let mut rooms = rooms.lock().unwrap_or_else(|p| p.into_inner());
    rooms
        .entry(n)
        .or_insert_with(|| broadcast::channel(1024).0)
        .clone()
}

impl Anchor {
    pub async fn start() -> Anchor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the anchor");
        let addr = listener.local_addr().expect("anchor address");
        let rooms: Rooms = Arc::default();
        let r = rooms.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let rooms = r.clone();
                tokio::spawn(async move {
                    let mut path = String::new();
                    // The signature is tungstenite's `Callback`; it never errs here.
                    #[allow(clippy::result_large_err)]
                    let callback =
                        |req: &Request, res: Response| -> Result<Response, ErrorResponse> {
                            path = req.uri().path().to_owned();
                            Ok(res)
                        };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await
                    else {
                        return;
                    };
                    let n = path
                        .strip_prefix("/room/")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let mut rx = room(&rooms, n).subscribe();
                    loop {
                        match rx.recv().await {
                            Ok(frame) => {
                                if ws.send(Message::text(frame.as_ref())).await.is_err() {
                                    return;
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                });
            }
        });
        Anchor { addr, rooms, task }
    }

    fn url(&self, room: usize) -> String {
        format!("ws://{}/room/{room}", self.addr)
    }

    fn send(&self, n: usize, frame: &str) {
        let _ = room(&self.rooms, n).send(Arc::from(frame));
    }

    /// Sockets subscribe after their handshake: wait until every room has all of its own.
    async fn subscribed(&self, per_room: &HashMap<usize, usize>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && per_room
                .iter()
                .any(|(&n, &want)| room(&self.rooms, n).receiver_count() < want)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rill's chat frame as a viewer got it, with the marker of message `m`.
fn frame_like(sample: Option<&str>, m: usize) -> String {
    let mut v: Value = sample
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| json!({"type": "stream:chat-message", "data": {}}));
    v["data"]["content"] = json!(crowd::chat_marker(m));
    v.to_string()
}

/// The anchor's side of a scenario: join time and chat latency.
#[derive(Debug)]
pub struct AnchorRun {
    pub join: Duration,
    pub opened: usize,
    pub chat: Chat,
}

/// `rooms` x `per_room` sockets join at once; with one room, `messages` go out one at a
/// time as in scenario 1; with several, one message per room at once as in scenario 2.
pub async fn run(
    rooms: usize,
    per_room: usize,
    messages: usize,
    sample: Option<&str>,
) -> AnchorRun {
    let anchor = Anchor::start().await;
    let urls = (0..rooms * per_room)
        .map(|i| anchor.url(i / per_room))
        .collect();
    let crowd: Crowd = crowd::join_at_once(urls).await;
    let opened = crowd.alive_count();
    let mut per_room_open = HashMap::new();
    for (i, v) in crowd.viewers.iter().enumerate() {
        if v.alive() {
            *per_room_open.entry(i / per_room).or_insert(0) += 1;
        }
    }
    anchor.subscribed(&per_room_open).await;
    let sends: Vec<(usize, Instant)> = if rooms == 1 {
        let frames: Vec<String> = (0..messages).map(|m| frame_like(sample, m)).collect();
        let sent = measure::chat_rounds(&crowd, messages, async |m| {
            anchor.send(0, &frames[m]);
        })
        .await;
        sent.into_iter().map(|t| (0, t)).collect()
    } else {
        let frames: Vec<String> = (0..rooms).map(|r| frame_like(sample, r)).collect();
        let before = crowd
            .counters
            .chat
            .load(std::sync::atomic::Ordering::Relaxed);
        let sends = frames
            .iter()
            .enumerate()
            .map(|(r, f)| {
                let at = Instant::now();
                anchor.send(r, f);
                (r, at)
            })
            .collect();
        measure::wait_chat(&crowd, before + opened as u64, Duration::from_secs(10)).await;
        sends
    };
    let chat = measure::chat_latency(&crowd, &sends, |i| i / per_room);
    AnchorRun {
        join: crowd.join,
        opened,
        chat,
    }
}
