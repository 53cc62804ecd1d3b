//! `bench-realtime`: fan-out cost of the WebSocket API. Run through
//! `scripts/bench.sh realtime` (release build).
//!
//! For each N in `--viewers` (default 100,1000): N anonymous sockets join one live stream;
//! one signed-in sender sends `--messages` chat frames, one at a time; every viewer records
//! when each message arrives. Latency = arrival - send, over all (viewer, message) pairs:
//! p50/p99. Then a reaction storm (`--reactions-per-second` for `--storm-seconds` from 10
//! sockets) and the `stream:reaction` frames each viewer receives per second.
//!
//! Anchor, same run, same N: a bare tokio-tungstenite server on loopback that pushes the same
//! frame to N sockets — the floor of delivering one frame to N clients on this machine.
//! The ratio is what the Lambda/Management-API path costs on top.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rill_core::store::StreamStore;
use rill_core::{Command, time};
use rill_tests::{Stack, User};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

struct Args {
    viewers: Vec<usize>,
    messages: usize,
    reactions_per_second: usize,
    storm_seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        viewers: vec![100, 1000],
        messages: 20,
        reactions_per_second: 1000,
        storm_seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_default();
        match flag.as_str() {
            "--viewers" => a.viewers = v.split(',').filter_map(|x| x.parse().ok()).collect(),
            "--messages" => a.messages = v.parse().unwrap_or(a.messages),
            "--reactions-per-second" => {
                a.reactions_per_second = v.parse().unwrap_or(a.reactions_per_second)
            }
            "--storm-seconds" => a.storm_seconds = v.parse().unwrap_or(a.storm_seconds),
            _ => {
                eprintln!(
                    "usage: bench-realtime [--viewers 100,1000] [--messages N] [--reactions-per-second N] [--storm-seconds N]"
                );
                std::process::exit(2)
            }
        }
    }
    a
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str) -> Ws {
    for attempt in 0..20 {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => return ws,
            Err(e) if attempt < 19 => {
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
                let _ = e;
            }
            Err(e) => panic!("connect {url}: {e}"),
        }
    }
    unreachable!()
}

/// Per-viewer receive loop: chat latencies and reaction frame arrival times.
struct Recorder {
    latencies: Mutex<Vec<f64>>,
    reaction_frames: AtomicUsize,
    reactions_seen: AtomicUsize,
}

async fn viewer_loop(mut ws: Ws, rec: Arc<Recorder>) {
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        let arrived = now_ms();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
            continue;
        };
        match v["type"].as_str() {
            Some("stream:chat-message") | Some("anchor") => {
                let content = v["data"]["content"].as_str().unwrap_or("");
                if let Some(sent) = content
                    .strip_prefix("t=")
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    rec.latencies.lock().await.push(arrived - sent);
                }
            }
            Some("stream:reaction") => {
                rec.reaction_frames.fetch_add(1, Ordering::Relaxed);
                rec.reactions_seen.fetch_add(
                    v["data"]["total"].as_u64().unwrap_or(0) as usize,
                    Ordering::Relaxed,
                );
            }
            _ => {}
        }
    }
}

async fn anchor(n: usize, messages: usize) -> Vec<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, _) = tokio::sync::broadcast::channel::<String>(1024);
    let tx2 = tx.clone();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut rx = tx2.subscribe();
            acc.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Ok(frame) = rx.recv().await {
                    if ws.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let rec = Arc::new(Recorder {
        latencies: Mutex::new(Vec::new()),
        reaction_frames: AtomicUsize::new(0),
        reactions_seen: AtomicUsize::new(0),
    });
    for _ in 0..n {
        let ws = open(&format!("ws://{addr}")).await;
        tokio::spawn(viewer_loop(ws, rec.clone()));
    }
    while accepted.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..messages {
        let frame =
            json!({"type":"anchor","data":{"content":format!("t={}", now_ms())}}).to_string();
        let _ = tx.send(frame);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut l = rec.latencies.lock().await.clone();
    l.sort_by(|a, b| a.total_cmp(b));
    l
}

#[tokio::main]
async fn main() {
    let args = args();
    let stack = Stack::start_with(&[
        ("CHAT_RATE_PER_SECOND", "1000"),
        ("CHAT_RATE_BURST", "1000"),
        ("GATEWAY_MAX_INSTANCES", "8"),
    ]);
    let owner = User::named("bench-owner");
    let created = owner
        .post(
            &stack,
            "/api/streams/create",
            json!({"channelId":"bench","title":"Bench"}),
        )
        .await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    stack
        .store()
        .await
        .apply(&id, Command::GoLive, time::now())
        .await
        .expect("live");
    let ws_base = format!(
        "{}/ws?streamId={id}",
        stack.base.replacen("http://", "ws://", 1)
    );

    println!(
        "\n## Chat delivery latency (one sender, {} messages)\n",
        args.messages
    );
    println!(
        "| viewers | rill p50 ms | rill p99 ms | anchor p50 ms | anchor p99 ms | ratio p50 | ratio p99 | deliveries |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut storm_rec = None;
    let mut joined = 0usize;
    let rec = Arc::new(Recorder {
        latencies: Mutex::new(Vec::new()),
        reaction_frames: AtomicUsize::new(0),
        reactions_seen: AtomicUsize::new(0),
    });
    for &n in &args.viewers {
        let started = Instant::now();
        while joined < n {
            let ws = open(&ws_base).await;
            tokio::spawn(viewer_loop(ws, rec.clone()));
            joined += 1;
        }
        loop {
            let c = User::anonymous()
                .get(&stack, &format!("/api/streams/{id}/viewers"))
                .await
                .body["count"]
                .as_u64()
                .unwrap_or(0);
            if c as usize >= n {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                eprintln!("only {c} of {n} viewers counted after 120 s; measuring anyway");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "{n} viewers joined in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        rec.latencies.lock().await.clear();
        let sender_token = rill_tests::token("bench-sender", "Sender");
        let mut sender = open(&format!("{ws_base}&token={sender_token}")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..args.messages {
            let frame = json!({"action":"chat","content":format!("t={}", now_ms())}).to_string();
            sender.send(Message::text(frame)).await.expect("send");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut l = rec.latencies.lock().await.clone();
        l.sort_by(|a, b| a.total_cmp(b));
        let a = anchor(n, args.messages).await;
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}x | {:.1}x | {}/{} |",
            pct(&l, 0.5),
            pct(&l, 0.99),
            pct(&a, 0.5),
            pct(&a, 0.99),
            pct(&l, 0.5) / pct(&a, 0.5),
            pct(&l, 0.99) / pct(&a, 0.99),
            l.len(),
            n * args.messages
        );
        let _ = sender.close(None).await;
        storm_rec = Some(n);
    }

    let n = storm_rec.unwrap_or(0);
    println!(
        "\n## Reaction storm: {} reactions/s for {} s, {n} viewers\n",
        args.reactions_per_second, args.storm_seconds
    );
    rec.reaction_frames.store(0, Ordering::Relaxed);
    rec.reactions_seen.store(0, Ordering::Relaxed);
    let mut senders = Vec::new();
    for _ in 0..10 {
        senders.push(open(&ws_base).await);
    }
    let per_tick = (args.reactions_per_second / 10 / 10).max(1);
    let started = Instant::now();
    let mut sent = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < Duration::from_secs(args.storm_seconds) {
        tick.tick().await;
        for s in senders.iter_mut() {
            for _ in 0..per_tick {
                let frame = json!({"action":"react","emoji":"🔥","positionX":50,"positionY":50})
                    .to_string();
                s.send(Message::text(frame)).await.expect("react");
                sent += 1;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let frames = rec.reaction_frames.load(Ordering::Relaxed) as f64;
    let seen = rec.reactions_seen.load(Ordering::Relaxed) as f64;
    let secs = args.storm_seconds as f64;
    println!(
        "| reactions sent | reaction frames per viewer per second | reactions delivered per viewer |"
    );
    println!("|---:|---:|---:|");
    println!(
        "| {sent} | {:.2} | {:.0} |",
        frames / n.max(1) as f64 / secs,
        seen / n.max(1) as f64
    );
}
