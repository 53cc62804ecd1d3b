//! Scenario 2: S live streams x P signed-in viewers, all joining at once; then one chat
//! message per stream, all sent at the same moment.

use std::time::{Duration, Instant};

use rill_tests::{Stack, User};
use serde_json::json;

use crate::Args;
use crate::crowd;
use crate::measure::{self, Chat};

/// How long the chat messages get to reach everyone.
const CHAT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ManyStreams {
    pub streams: usize,
    pub per_stream: usize,
    pub join: Duration,
    pub opened: usize,
    pub join_errors: String,
    pub join_error_count: usize,
    pub chat: Chat,
    pub chat_refusals: Vec<String>,
    pub closed_by_server: usize,
}

pub async fn run(stack: &Stack, owner: &User, args: &Args) -> ManyStreams {
    let (s, p) = (args.streams, args.per_stream);
    eprintln!("[{s} streams] creating {s} live streams");
    // One after another: creating is not what is measured.
    let mut ids = Vec::with_capacity(s);
    for i in 0..s {
        let title = format!("Bench {i}");
        ids.push(
            stack
                .live_stream(owner, "bench-many", &title, json!({}))
                .await,
        );
    }

    eprintln!(
        "[{s} streams] {} viewers ({s} x {p}) joining at once",
        s * p
    );
    let urls = (0..s * p)
        .map(|i| {
            crowd::rill_url(
                &stack.base,
                &ids[i / p],
                &format!("s{}-viewer-{}", i / p, i % p),
            )
        })
        .collect();
    let crowd = crowd::join_at_once(urls).await;
    let opened = crowd.alive_count();
    eprintln!(
        "[{s} streams] {opened} open in {:.2} s, errors: {}",
        crowd.join.as_secs_f64(),
        crowd.error_text()
    );

    let urls = ids
        .iter()
        .enumerate()
        .map(|(i, id)| crowd::rill_url(&stack.base, id, &format!("s{i}-sender")))
        .collect();
    let mut senders = crowd::open_senders(urls).await;
    // Past the socket functions' 1 s connection-list cache (see one_stream.rs).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = crowd
        .counters
        .chat
        .load(std::sync::atomic::Ordering::Relaxed);
    let sends = senders
        .iter_mut()
        .enumerate()
        .map(|(i, sender)| async move {
            let frame = json!({"action": "chat", "content": crowd::chat_marker(i)});
            let at = Instant::now();
            if let Err(e) = sender.send(&frame).await {
                eprintln!("[many streams] chat send failed: {e}");
            }
            (i, at)
        });
    let sends: Vec<(usize, Instant)> = futures_util::future::join_all(sends).await;
    measure::wait_chat(&crowd, before + opened as u64, CHAT_WAIT).await;
    let chat = measure::chat_latency(&crowd, &sends, |i| i / p);
    eprintln!(
        "[{s} streams] chat {}, {}/{} delivered",
        chat.latency.ms(),
        chat.delivered,
        chat.expected
    );
    let mut chat_refusals = Vec::new();
    for sender in senders {
        chat_refusals.extend(sender.refusals());
        sender.close().await;
    }
    ManyStreams {
        streams: s,
        per_stream: p,
        join: crowd.join,
        opened,
        join_errors: crowd.error_text(),
        join_error_count: crowd.error_count(),
        chat,
        chat_refusals,
        closed_by_server: crowd.closed_by_server(),
    }
}
