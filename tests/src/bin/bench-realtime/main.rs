//! `bench-realtime`: the WebSocket API under a crowd. Run through
//! `scripts/bench.sh realtime [flags]` (local-release build, raised `ulimit -n`), against
//! the local stack (`rill_tests::Stack`: the gateway running the real function binaries
//! over the harness's local DynamoDB/S3). No timing is asserted; targets are printed
//! next to the numbers.
//!
//! **Scenario 1, one live stream** (`--viewers` N, default 1,000):
//! - *Join*: N signed-in viewers (each its own token, `viewer-{i}`) start their handshakes
//!   at the same moment, one task each, uncapped (a client handshake costs far less than
//!   the server's `$connect`, so the client is not the bottleneck). Join time = first
//!   connect attempt to the last socket open. Errors = handshakes refused or not open
//!   within 10 s, by reason.
//! - *Count after joins*: from the last open, how long until `GET
//!   /api/streams/{id}/viewers` says the number of open sockets, and until every viewer's
//!   latest `stream:viewer-count` frame does (polled every ~20 ms; "not exact after 30 s"
//!   otherwise).
//! - *Chat*: a signed-in sender (chat rate limit raised for the run) sends `--messages`
//!   messages one at a time: each once the previous one reached every viewer (or 5 s
//!   passed), plus 100 ms; the first at least 1.2 s after the last join, past the socket
//!   functions' 1 s connection-list cache. Latency = arrival at a viewer - the moment
//!   before the send, over all (viewer, message) pairs: p50, p99, and missing deliveries.
//! - *Reaction storm*: `--reactions-per-second` for `--storm-seconds` on a fixed schedule,
//!   round-robin over `--reaction-senders` signed-in sockets (the gateway invokes one
//!   connection's frames one at a time, as API Gateway does, so one socket cannot carry
//!   the storm). Every reaction carries its sequence number in `positionX`/`positionY`.
//!   `events-fanout` coalesces a batch's reactions into one `stream:reaction` frame with
//!   the batch `total` and samples of its newest reactions. Reaction latency: a viewer's
//!   frame is taken to deliver every reaction after the newest one its previous frame
//!   carried, up to the newest one it carries (so each reaction counts once, in the first
//!   frame that could hold it; exact when the table stream keeps the send order); latency
//!   = the frame's arrival - that reaction's send, over all (viewer, reaction) pairs: p99.
//!   Frames per viewer per second: mean over viewers of frames / (last frame - storm
//!   start, at least the storm's length), and the peak: most frames any viewer got in one
//!   1 s window (the target is checked on the peak). Reactions refused `reaction_late` (they
//!   waited over 0.5 s for a function) are counted apart. Delivered = sum of the frames' totals
//!   / reactions accepted (sent - late), per viewer (lowest and mean).
//! - *Leaves*: the senders close politely, then `--leave` viewers vanish (the task holding
//!   the socket is aborted: the TCP connection ends with no close frame); count exactness
//!   is measured again from that moment.
//!
//! Each scenario runs on a fresh stack (a new gateway and table) and a fresh DynamoDB
//! Local, so the second does not inherit the first one's backlog or storage.
//!
//! **Scenario 2, many streams** (skipped with `--streams 0`) (`--streams` S x `--per-stream` P, default 50 x 20): S
//! live streams, S x P signed-in viewers all starting their handshakes at once: join time
//! and errors; then one chat message per stream, all S sent at the same moment from one
//! signed-in sender per stream: latency p50/p99 across all viewers, missing.
//!
//! **Anchor, same run**: a bare tokio-tungstenite server on loopback (in this process)
//! pushing the same chat frame (Rill's frame as received, with the marker) through a
//! broadcast channel to the same number of sockets, joined and measured by the same client
//! code: 1 x N with the same one-at-a-time messages, and S rooms x P with one message per
//! room at once. The Rill/anchor ratios are what the gateway, the functions and storage
//! cost on top of pushing bytes to sockets.
//!
//! At the end: a markdown table (metric | value | target | met?) and the anchor lines.
//! `--quick` is a small smoke run; explicit flags after it still win.

mod anchor;
mod crowd;
mod many_streams;
mod measure;
mod one_stream;
mod report;
mod stats;

use rill_tests::{Stack, User};

#[derive(Debug, Clone)]
pub struct Args {
    pub viewers: usize,
    pub messages: usize,
    pub reactions_per_second: u64,
    pub storm_seconds: u64,
    pub reaction_senders: usize,
    pub leave: usize,
    pub streams: usize,
    pub per_stream: usize,
    /// `GATEWAY_MAX_INSTANCES`: instances per function.
    pub instances: usize,
    /// `FANOUT_SHARD_SIZE`: connections per fan-out shard.
    pub shard_size: usize,
    /// `FANOUT_CONCURRENCY`: posts in flight per fan-out process.
    pub concurrency: usize,
}

const USAGE: &str = "usage: bench-realtime [--quick] [--viewers 1000] [--messages 20] \
[--reactions-per-second 1000] [--storm-seconds 10] [--reaction-senders 20] [--leave 500] \
[--streams 50] [--per-stream 20] [--instances 8] [--shard-size 1000] [--concurrency 128]";

fn args() -> Args {
    let mut a = Args {
        viewers: 1000,
        messages: 20,
        reactions_per_second: 1000,
        storm_seconds: 10,
        reaction_senders: 20,
        leave: 500,
        streams: 50,
        per_stream: 20,
        instances: 8,
        shard_size: 1000,
        concurrency: 128,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.iter().any(|f| f == "--quick") {
        a = Args {
            viewers: 50,
            messages: 5,
            reactions_per_second: 100,
            storm_seconds: 2,
            reaction_senders: 5,
            leave: 25,
            streams: 5,
            per_stream: 5,
            ..a
        };
    }
    let mut it = raw.into_iter().filter(|f| f != "--quick");
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        let Some(v) = value else {
            eprintln!("{USAGE}");
            std::process::exit(2)
        };
        let n = v as usize;
        match flag.as_str() {
            "--viewers" => a.viewers = n,
            "--messages" => a.messages = n,
            "--reactions-per-second" => a.reactions_per_second = v,
            "--storm-seconds" => a.storm_seconds = v,
            "--reaction-senders" => a.reaction_senders = n,
            "--leave" => a.leave = n,
            "--streams" => a.streams = n,
            "--per-stream" => a.per_stream = n,
            "--instances" => a.instances = n,
            "--shard-size" => a.shard_size = n.max(1),
            "--concurrency" => a.concurrency = n.max(1),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2)
            }
        }
    }
    a
}

/// A new gateway with its own table (same storage server), chat rate limit raised so the
/// sender is never refused.
fn stack(args: &Args) -> Stack {
    let instances = args.instances.to_string();
    let shard_size = args.shard_size.to_string();
    let concurrency = args.concurrency.to_string();
    let stack = Stack::start_with(&[
        ("CHAT_RATE_PER_SECOND", "1000"),
        ("CHAT_RATE_BURST", "1000"),
        ("GATEWAY_MAX_INSTANCES", instances.as_str()),
        ("FANOUT_SHARD_SIZE", shard_size.as_str()),
        ("FANOUT_CONCURRENCY", concurrency.as_str()),
    ]);
    eprintln!("gateway {}", stack.base);
    stack
}

#[tokio::main]
async fn main() {
    let args = args();
    eprintln!("bench-realtime: {args:?}");
    let owner = User::named("bench-owner");
    // Each scenario on a fresh stack and a fresh DynamoDB Local: the second one must not
    // inherit the first one's backlog (disconnects, the storm's table-stream records) nor
    // DynamoDB Local's slowdown as it fills (run after the storm, the 50 x 20 joins fell
    // from 869 to 268-463 within 10 s on the same server).
    let one = {
        let stack = stack(&args);
        one_stream::run(&stack, &owner, &args).await
    };
    // `--streams 0` (or `--per-stream 0`) runs the one-stream scenario alone.
    let many = if args.streams * args.per_stream > 0 {
        rill_tests::services::restart_dynamodb_local();
        let stack = stack(&args);
        Some(many_streams::run(&stack, &owner, &args).await)
    } else {
        None
    };
    eprintln!("[anchor] 1 x {} sockets", args.viewers);
    let anchor_one = anchor::run(1, args.viewers, args.messages, one.sample_chat.as_deref()).await;
    let many = match many {
        Some(many) => {
            eprintln!("[anchor] {} x {} sockets", args.streams, args.per_stream);
            let anchor =
                anchor::run(args.streams, args.per_stream, 0, one.sample_chat.as_deref()).await;
            Some((many, anchor))
        }
        None => None,
    };
    report::print(&args, &one, many.as_ref(), &anchor_one);
}
