//! `bench-soak`: the whole local stack under a steady, mixed load for a long time. Run
//! through `scripts/bench.sh soak [flags]` (local-release build, raised `ulimit -n`).
//!
//! This is a soak, not a comparison: there is no anchor and no ratio. It passes when
//! nothing failed and memory stayed flat, and exits non-zero otherwise.
//!
//! Setup: a gateway (`rill_tests::Stack`, the real function binaries, default instance
//! limits and chat rate limits) and an ingest node (`IngestNode`) on the harness's
//! DynamoDB Local and moto; `--streams` live streams, each an `RtmpPublisher` pushing a
//! 640x360 test pattern in real time (360p preset) for the whole run plus a margin;
//! `--viewers` signed-in WebSocket viewers split evenly over them, opened 50 at a time.
//!
//! For `--minutes`:
//! - REST (`rest.rs`): `--rps` requests a second on a fixed schedule (open loop), a mix of
//!   reads (stream, live and past lists, chat, viewers, metrics, HLS URL, master playlist,
//!   channel, questions), chat posts by 20 signed-in users in turn, a title edit by the
//!   owner (one at a time per stream: 409 `conflict` is the right answer to two
//!   overlapping edits), and a stream created then ended by the owner; every answer
//!   counted by route and status. Errors: 5xx, transport errors and timeouts (30 s), and
//!   any 4xx but 429 (the mix asks for nothing a correct server refuses). 429s (rate
//!   limits) are counted apart; the chatters post far under the per-user limit (1/s,
//!   burst 3), so none are expected.
//! - WebSocket (`viewers.rs`): every viewer chats every `--chat-every` seconds (default
//!   25), sends the web app's `heartbeat` every 15 s and `ping` every 30 s, spread evenly
//!   over each period; frames received are counted by type. Errors: failed handshakes,
//!   sockets that end before the run does, failed sends, `error` frames (any code) and
//!   API Gateway's `{"message": "Internal server error"}` frames (a route invocation that
//!   failed: the gateway's log says why).
//!   Chat deliveries: messages received vs (messages sent on a stream x its viewers).
//! - Every 10 s (`procs.rs`): RSS (`VmRSS`) of the gateway, the node and each function
//!   instance (the gateway's child processes, named by executable); DynamoDB Local and moto
//!   for context. Printed as it goes (stderr) and as a table at the end.
//!
//! Memory is judged between the warm-up sample (`--warmup` seconds, default 120, at most
//! half the run) and the last one: growth must stay under 10 % for the gateway, the node
//! and the function instances (summed over the instances alive at both samples; instances
//! the gateway started in between are listed apart, since a new instance is not a leak).

mod procs;
mod rest;
mod viewers;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rill_tests::{IngestNode, RtmpPublisher, Stack, User};
use serde_json::json;
use tokio::time::Instant;

/// Growth at or past this fails the run.
const GROWTH_LIMIT: f64 = 0.10;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const REST_CHATTERS: usize = 20;

#[derive(Debug, Clone)]
struct Args {
    minutes: f64,
    rps: u32,
    viewers: usize,
    streams: usize,
    warmup: u64,
    chat_every: u64,
}

const USAGE: &str = "usage: bench-soak [--minutes 10] [--rps 50] [--viewers 300] [--streams 2] \
[--warmup 120] [--chat-every 25]";

fn args() -> Args {
    let mut a = Args {
        minutes: 10.0,
        rps: 50,
        viewers: 300,
        streams: 2,
        warmup: 120,
        chat_every: 25,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(v) = it.next().and_then(|v| v.parse::<f64>().ok()) else {
            eprintln!("{USAGE}");
            std::process::exit(2)
        };
        match flag.as_str() {
            "--minutes" if v > 0.0 => a.minutes = v,
            "--rps" => a.rps = (v as u32).max(1),
            "--viewers" => a.viewers = v as usize,
            "--streams" => a.streams = (v as usize).max(1),
            "--warmup" => a.warmup = v as u64,
            "--chat-every" => a.chat_every = (v as u64).max(2),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2)
            }
        }
    }
    a
}

/// One sample of the time series.
#[derive(Debug, Clone)]
struct Sample {
    t: f64,
    procs: procs::Snapshot,
    sent: u64,
    errors: u64,
    ws_open: u64,
    chat_received: u64,
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn growth(from: u64, to: u64) -> f64 {
    if from == 0 {
        return f64::NAN;
    }
    to as f64 / from as f64 - 1.0
}

async fn wait_live(stack: &Stack, id: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if User::anonymous()
            .get(stack, &format!("/api/streams/{id}"))
            .await
            .body["status"]
            == "live"
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = args();
    eprintln!("bench-soak: {args:?}");
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = Duration::from_secs(args.warmup).min(duration / 2);
    let load_start = procs::load_average();

    let stack = Stack::start();
    let node = IngestNode::start(&stack, &[]);
    eprintln!(
        "gateway {} (pid {}), node pid {}",
        stack.base,
        stack.gateway_pid(),
        node.pid()
    );
    let owner = User::named("soak-owner");
    let channel = "soak";
    // The publishers outlive the run: setup, the run, the drain, a margin.
    let publish_seconds = duration.as_secs() as u32 + 300;
    let mut streams = Vec::new();
    let mut publishers = Vec::new();
    for i in 0..args.streams {
        let (id, key) = owner
            .create_stream(
                &stack,
                json!({"channelId": channel, "title": format!("Soak {i}"),
                       "settings": {"quality": "360p"}}),
            )
            .await;
        publishers.push(RtmpPublisher::start(
            &node.rtmp,
            &key,
            "640x360",
            publish_seconds,
        ));
        streams.push(id);
    }
    for id in &streams {
        assert!(
            wait_live(&stack, id, Duration::from_secs(90)).await,
            "stream {id} did not go live within 90 s"
        );
    }
    eprintln!("{} streams live", streams.len());

    // Viewers, 50 at a time, round robin over the streams.
    let counters = Arc::new(viewers::Counters::new(streams.len()));
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let join_started = Instant::now();
    // Sending starts once everyone is in: the plan's clock is set after the joins.
    let (plan_tx, plan_rx) = tokio::sync::watch::channel(None::<viewers::Plan>);
    let mut tasks = Vec::new();
    let mut per_stream = vec![0u64; streams.len()];
    for batch in (0..args.viewers).collect::<Vec<_>>().chunks(50) {
        let opened = futures_util::future::join_all(batch.iter().map(|&i| {
            let s = i % streams.len();
            let (base, id) = (stack.base.clone(), streams[s].clone());
            let (counters, close, plan) = (counters.clone(), close_rx.clone(), plan_rx.clone());
            async move {
                let handle = viewers::spawn(&base, &id, s, i, counters, close, plan).await;
                (s, handle)
            }
        }))
        .await;
        for (s, handle) in opened {
            if let Some(h) = handle {
                per_stream[s] += 1;
                tasks.push(h);
            }
        }
    }
    let join_secs = join_started.elapsed().as_secs_f64();
    eprintln!(
        "{} / {} viewers open in {join_secs:.1} s",
        counters.open.load(Ordering::Relaxed),
        args.viewers
    );
    // Past the socket functions' 1 s connection-list cache before anything is said.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let t0 = Instant::now();
    let end = t0 + duration;
    let _ = plan_tx.send(Some(viewers::Plan {
        stop_sending: end,
        chat_every: Duration::from_secs(args.chat_every),
        viewers: args.viewers,
    }));
    let tally = Arc::new(rest::Tally::new(streams.len()));
    let http = reqwest::Client::builder()
        .timeout(rest::REQUEST_TIMEOUT)
        .build()
        .expect("http client");
    let target = rest::Target {
        base: stack.base.clone(),
        http,
        streams: streams.clone(),
        channel: channel.to_owned(),
        owner_token: owner.token.clone().expect("owner token"),
        chatter_tokens: (0..REST_CHATTERS)
            .map(|i| rill_tests::token(&format!("soak-chatter-{i}"), &format!("Chatter {i}")))
            .collect(),
        edits: Arc::new(streams.iter().map(|_| Default::default()).collect()),
    };
    let rest_task = tokio::spawn(rest::run(target, tally.clone(), args.rps, end));

    // The time series, sampled until the end of the run.
    let (gateway_pid, node_pid) = (stack.gateway_pid(), node.pid());
    let mut samples: Vec<Sample> = Vec::new();
    let mut tick = tokio::time::interval_at(t0, SAMPLE_EVERY);
    eprintln!(
        "   t s | req sent | errors | ws open | gateway MB | node MB | functions MB (n) | DynamoDB Local MB"
    );
    loop {
        let at = tick.tick().await;
        let procs = tokio::task::spawn_blocking(move || procs::snapshot(gateway_pid, node_pid))
            .await
            .expect("snapshot");
        let s = Sample {
            t: (at - t0).as_secs_f64(),
            procs,
            sent: tally.sent.load(Ordering::Relaxed),
            errors: tally.errors.load(Ordering::Relaxed),
            ws_open: counters.open.load(Ordering::Relaxed),
            chat_received: counters.chat_received.load(Ordering::Relaxed),
        };
        eprintln!(
            "{:>6.0} | {:>8} | {:>6} | {:>7} | {:>10.1} | {:>7.1} | {:>11.1} ({:>2}) | {:>8.1}",
            s.t,
            s.sent,
            s.errors,
            s.ws_open,
            mb(s.procs.gateway_kb),
            mb(s.procs.node_kb),
            mb(s.procs.functions_kb()),
            s.procs.functions.len(),
            mb(s.procs.dynamodb_kb)
        );
        samples.push(s);
        // The next tick would be at (or past) the end: the end's own sample follows.
        if at + SAMPLE_EVERY + Duration::from_millis(500) > end {
            break;
        }
    }
    // The last sample is at the end of the run.
    tokio::time::sleep_until(end).await;
    let last = tokio::task::spawn_blocking(move || procs::snapshot(gateway_pid, node_pid))
        .await
        .expect("snapshot");
    let run_secs = t0.elapsed().as_secs_f64();
    samples.push(Sample {
        t: run_secs,
        procs: last,
        sent: tally.sent.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        ws_open: counters.open.load(Ordering::Relaxed),
        chat_received: counters.chat_received.load(Ordering::Relaxed),
    });

    // Drain: requests in flight answer, chat in flight arrives, then the viewers leave.
    rest_task.await.expect("rest load");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let open_at_end = counters.open.load(Ordering::Relaxed);
    let mut still_live = 0;
    for id in &streams {
        if User::anonymous()
            .get(&stack, &format!("/api/streams/{id}"))
            .await
            .body["status"]
            == "live"
        {
            still_live += 1;
        }
    }
    let publishing = publishers
        .iter_mut()
        .map(RtmpPublisher::running)
        .filter(|&r| r)
        .count();
    let _ = close_tx.send(true);
    // Each viewer waits at most a second for the server's answer to its close.
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(tasks),
    )
    .await;
    let load_end = procs::load_average();

    let passed = report(Report {
        args: &args,
        run_secs,
        warmup,
        samples: &samples,
        tally: &tally,
        counters: &counters,
        per_stream: &per_stream,
        join_secs,
        open_at_end,
        still_live,
        publishing,
        load: (load_start, load_end),
    });
    // Stopped here, not by `exit`, which would skip the destructors and leave the gateway
    // (with its instances), the node and ffmpeg running.
    drop(publishers);
    drop(node);
    drop(stack);
    if !passed {
        std::process::exit(1);
    }
}

struct Report<'a> {
    args: &'a Args,
    run_secs: f64,
    warmup: Duration,
    samples: &'a [Sample],
    tally: &'a rest::Tally,
    counters: &'a viewers::Counters,
    per_stream: &'a [u64],
    join_secs: f64,
    open_at_end: u64,
    still_live: usize,
    publishing: usize,
    load: (String, String),
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

fn pct(g: f64) -> String {
    if g.is_nan() {
        "-".into()
    } else {
        format!("{:+.1} %", g * 100.0)
    }
}

fn listing(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints everything; whether the soak passed.
fn report(r: Report<'_>) -> bool {
    let a = r.args;
    let c = r.counters;
    println!(
        "\n## Soak: {:.1} min, {} REST req/s, {} WebSocket viewers on {} live streams (local stack)\n",
        r.run_secs / 60.0,
        a.rps,
        a.viewers,
        a.streams
    );
    println!(
        "machine load average (1/5/15 min): {} at start, {} at end\n",
        r.load.0, r.load.1
    );

    // Time series.
    println!("### Every 10 s\n");
    println!(
        "| t s | req/s | errors (total) | ws open | chat frames/s | gateway MB | node MB | functions MB (instances) | largest instance MB | DynamoDB Local MB | moto MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    let mut prev: Option<&Sample> = None;
    for s in r.samples {
        let (rate, chat_rate) = match prev {
            Some(p) if s.t > p.t => (
                (s.sent - p.sent) as f64 / (s.t - p.t),
                (s.chat_received - p.chat_received) as f64 / (s.t - p.t),
            ),
            _ => (0.0, 0.0),
        };
        let largest = s
            .procs
            .largest()
            .map(|(f, kb)| format!("{:.1} ({f})", mb(kb)))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {:.0} | {rate:.1} | {} | {} | {chat_rate:.0} | {:.1} | {:.1} | {:.1} ({}) | {largest} | {:.1} | {:.1} |",
            s.t,
            s.errors,
            s.ws_open,
            mb(s.procs.gateway_kb),
            mb(s.procs.node_kb),
            mb(s.procs.functions_kb()),
            s.procs.functions.len(),
            mb(s.procs.dynamodb_kb),
            mb(s.procs.moto_kb),
        );
        prev = Some(s);
    }

    // REST.
    let rows = r.tally.rows();
    println!("\n### REST, by request\n");
    println!("| request | answered | 2xx | 4xx (429) | 5xx | transport errors | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut all = rest::Row::default();
    for (label, row) in &rows {
        let mut lat = row.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        println!(
            "| {label} | {} | {} | {} ({}) | {} | {} | {:.1} | {:.1} |",
            row.total(),
            row.class(2),
            row.class(4),
            row.rate_limited(),
            row.class(5),
            row.transport_errors(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
        for (k, n) in &row.by_status {
            *all.by_status.entry(*k).or_default() += n;
        }
        for (k, n) in &row.transport {
            *all.transport.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &row.codes {
            *all.codes.entry(k.clone()).or_default() += n;
        }
        all.latencies_ms.extend(&row.latencies_ms);
    }
    all.latencies_ms.sort_by(f64::total_cmp);
    println!(
        "| **all** | {} | {} | {} ({}) | {} | {} | {:.1} | {:.1} |",
        all.total(),
        all.class(2),
        all.class(4),
        all.rate_limited(),
        all.class(5),
        all.transport_errors(),
        percentile(&all.latencies_ms, 0.5),
        percentile(&all.latencies_ms, 0.99)
    );
    let codes: std::collections::BTreeMap<String, u64> = all
        .codes
        .iter()
        .map(|((s, code), n)| (format!("{s} {code}"), *n))
        .collect();
    println!("\n4xx by code: {}", listing(&codes));
    let transport: std::collections::BTreeMap<String, u64> =
        all.transport.clone().into_iter().collect();
    println!("transport errors: {}", listing(&transport));
    let sent = r.tally.sent.load(Ordering::Relaxed);
    let skipped = r.tally.skipped.load(Ordering::Relaxed);
    let unanswered = sent.saturating_sub(all.total());

    // WebSocket.
    let ws_chat = c.chat_sent.load(Ordering::Relaxed);
    let rest_chat: u64 = r
        .tally
        .chats_ok
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .sum();
    let expected: u64 = (0..a.streams)
        .map(|s| {
            (c.chats_per_stream[s].load(Ordering::Relaxed)
                + r.tally.chats_ok[s].load(Ordering::Relaxed))
                * r.per_stream[s]
        })
        .sum();
    let received = c.chat_received.load(Ordering::Relaxed);
    let opened: u64 = r.per_stream.iter().sum();
    let dropped = c.dropped.load(Ordering::Relaxed);
    let connect_errors: u64 = c.connect_errors().values().sum();
    let error_frames = c.error_frames();
    let error_frame_count: u64 = error_frames.values().sum();
    let send_errors = c.send_errors.load(Ordering::Relaxed);
    println!("\n### WebSocket\n");
    println!("| metric | value |");
    println!("|---|---|");
    println!(
        "| viewers open / asked | {opened} / {} in {:.1} s (per stream: {:?}) |",
        a.viewers, r.join_secs, r.per_stream
    );
    println!("| failed handshakes | {} |", listing(&c.connect_errors()));
    println!(
        "| viewers dropped before the end | {dropped} (open at the end: {}) |",
        r.open_at_end
    );
    println!(
        "| chat sent: sockets / REST | {ws_chat} / {rest_chat} ({:.1} messages/s) |",
        (ws_chat + rest_chat) as f64 / r.run_secs
    );
    println!(
        "| chat frames received / expected | {received} / {expected} ({:.1} frames/s) |",
        received as f64 / r.run_secs
    );
    println!(
        "| heartbeats sent, pings sent / pongs | {}, {} / {} |",
        c.heartbeats_sent.load(Ordering::Relaxed),
        c.pings_sent.load(Ordering::Relaxed),
        c.pongs.load(Ordering::Relaxed)
    );
    println!("| error frames | {} |", listing(&error_frames));
    println!("| failed sends | {send_errors} |");
    println!("| frames received by type | {} |", listing(&c.frames()));

    // Memory.
    let first = &r.samples[0];
    let warm = r
        .samples
        .iter()
        .find(|s| s.t + 0.5 >= r.warmup.as_secs_f64())
        .unwrap_or(first);
    let last = r.samples.last().unwrap_or(first);
    let (fw, fe, same) = procs::same_instances_kb(&warm.procs, &last.procs);
    let g_gateway = growth(warm.procs.gateway_kb, last.procs.gateway_kb);
    let g_node = growth(warm.procs.node_kb, last.procs.node_kb);
    let g_functions = growth(fw, fe);
    println!(
        "\n### Memory (RSS): warm-up (t = {:.0} s) vs end (t = {:.0} s)\n",
        warm.t, last.t
    );
    println!("| process | warm-up MB | end MB | growth | < 10 %? |");
    println!("|---|---:|---:|---:|---|");
    let flat = |g: f64| yes(!g.is_nan() && g < GROWTH_LIMIT);
    println!(
        "| gateway | {:.1} | {:.1} | {} | {} |",
        mb(warm.procs.gateway_kb),
        mb(last.procs.gateway_kb),
        pct(g_gateway),
        flat(g_gateway)
    );
    println!(
        "| ingest node | {:.1} | {:.1} | {} | {} |",
        mb(warm.procs.node_kb),
        mb(last.procs.node_kb),
        pct(g_node),
        flat(g_node)
    );
    println!(
        "| function instances alive at both ({same}) | {:.1} | {:.1} | {} | {} |",
        mb(fw),
        mb(fe),
        pct(g_functions),
        flat(g_functions)
    );
    println!(
        "| all function instances ({} -> {}) | {:.1} | {:.1} | {} | - |",
        warm.procs.functions.len(),
        last.procs.functions.len(),
        mb(warm.procs.functions_kb()),
        mb(last.procs.functions_kb()),
        pct(growth(warm.procs.functions_kb(), last.procs.functions_kb()))
    );
    println!(
        "| DynamoDB Local (context: holds the data) | {:.1} | {:.1} | {} | - |",
        mb(warm.procs.dynamodb_kb),
        mb(last.procs.dynamodb_kb),
        pct(growth(warm.procs.dynamodb_kb, last.procs.dynamodb_kb))
    );
    println!(
        "| moto (context: holds the media) | {:.1} | {:.1} | {} | - |",
        mb(warm.procs.moto_kb),
        mb(last.procs.moto_kb),
        pct(growth(warm.procs.moto_kb, last.procs.moto_kb))
    );
    println!("\nPer function (instances, largest instance, total):\n");
    println!(
        "| function | instances | largest MB warm-up -> end | total MB warm-up -> end | growth of total |"
    );
    println!("|---|---:|---:|---:|---:|");
    let before = warm.procs.by_function();
    let after = last.procs.by_function();
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    for f in names {
        let (n0, m0, t0) = before.get(f).copied().unwrap_or_default();
        let (n1, m1, t1) = after.get(f).copied().unwrap_or_default();
        println!(
            "| {f} | {n0} -> {n1} | {:.1} -> {:.1} | {:.1} -> {:.1} | {} |",
            mb(m0),
            mb(m1),
            mb(t0),
            mb(t1),
            pct(growth(t0, t1))
        );
    }
    let cpu = |a: f64, b: f64| (b - a) / (last.t - first.t).max(1.0);
    println!(
        "\nCPU over the run (cores): gateway {:.2}, node {:.2}, function instances {:.2} (instances that exited are not counted)",
        cpu(first.procs.gateway_cpu, last.procs.gateway_cpu),
        cpu(first.procs.node_cpu, last.procs.node_cpu),
        cpu(first.procs.functions_cpu, last.procs.functions_cpu),
    );

    // Summary.
    let rest_errors = all.errors() + unanswered;
    let ws_errors = connect_errors + dropped + error_frame_count + send_errors;
    let streams_ok = r.still_live == a.streams && r.publishing == a.streams;
    let checks = [
        (
            "REST errors (5xx, transport, 4xx but 429, unanswered)",
            rest_errors == 0,
        ),
        ("REST 5xx", all.class(5) == 0),
        ("REST requests not started (client backlog)", skipped == 0),
        ("WebSocket errors", ws_errors == 0),
        ("chat deliveries", received == expected),
        ("streams live and publishing at the end", streams_ok),
        (
            "gateway RSS growth",
            !g_gateway.is_nan() && g_gateway < GROWTH_LIMIT,
        ),
        ("node RSS growth", !g_node.is_nan() && g_node < GROWTH_LIMIT),
        (
            "functions RSS growth",
            !g_functions.is_nan() && g_functions < GROWTH_LIMIT,
        ),
    ];
    println!("\n### Summary\n");
    println!("| metric | value | target | met? |");
    println!("|---|---|---|---|");
    println!(
        "| duration | {:.1} min | {} min | - |",
        r.run_secs / 60.0,
        a.minutes
    );
    println!(
        "| REST requests sent | {sent} ({:.1}/s; {skipped} not started) | {}/s | {} |",
        sent as f64 / r.run_secs,
        a.rps,
        yes(skipped == 0)
    );
    println!(
        "| by status class | 2xx {}, 3xx {}, 4xx {} (429: {}), 5xx {}, transport {}, unanswered {unanswered} | - | - |",
        all.class(2),
        all.class(3),
        all.class(4),
        all.rate_limited(),
        all.class(5),
        all.transport_errors()
    );
    println!(
        "| REST errors | {rest_errors} | 0 | {} |",
        yes(rest_errors == 0)
    );
    println!(
        "| REST 5xx | {} | 0 | {} |",
        all.class(5),
        yes(all.class(5) == 0)
    );
    println!(
        "| WebSocket viewers connected / dropped | {opened} / {dropped} | {} / 0 | {} |",
        a.viewers,
        yes(opened == a.viewers as u64 && dropped == 0)
    );
    println!(
        "| chat sent (sockets + REST) / frames received | {} / {received} (expected {expected}) | all delivered | {} |",
        ws_chat + rest_chat,
        yes(received == expected)
    );
    println!(
        "| WebSocket error frames, failed handshakes, failed sends | {error_frame_count}, {connect_errors}, {send_errors} | 0 | {} |",
        yes(ws_errors - dropped == 0)
    );
    println!(
        "| streams live / publishing at the end | {} / {} | {} | {} |",
        r.still_live,
        r.publishing,
        a.streams,
        yes(streams_ok)
    );
    println!(
        "| gateway RSS warm-up -> end | {:.1} -> {:.1} MB ({}) | < 10 % | {} |",
        mb(warm.procs.gateway_kb),
        mb(last.procs.gateway_kb),
        pct(g_gateway),
        flat(g_gateway)
    );
    println!(
        "| node RSS warm-up -> end | {:.1} -> {:.1} MB ({}) | < 10 % | {} |",
        mb(warm.procs.node_kb),
        mb(last.procs.node_kb),
        pct(g_node),
        flat(g_node)
    );
    println!(
        "| functions RSS warm-up -> end ({same} instances) | {:.1} -> {:.1} MB ({}) | < 10 % | {} |",
        mb(fw),
        mb(fe),
        pct(g_functions),
        flat(g_functions)
    );
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(w, _)| *w)
        .collect();
    if failed.is_empty() {
        println!("\nsoak passed");
    } else {
        println!("\nsoak FAILED: {}", failed.join("; "));
    }
    failed.is_empty()
}
